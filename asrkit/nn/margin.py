"""Face-embedding layers: L2 normalization and the cosine-margin classifier
(ArcFace / CosFace). Kernels in :mod:`asrkit.nn.functional.margin`."""
from __future__ import annotations

import torch
import torch.nn.functional as TF

from asrkit.nn import init
from asrkit.nn.functional import margin as M
from asrkit.nn.module import Module


class Normalize(Module):
    """``x / max(||x||_2, eps)`` along ``dim`` (``torch.nn.functional.normalize``): ``(N, D) -> (N, D)``."""

    def __init__(self, dim: int = 1, eps: float = M.EPS, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.dim = dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:
            return TF.normalize(x, p=2.0, dim=self.dim, eps=self.eps)
        return M.normalize(x, self.dim, self.eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, " + super().extra_repr()


class MarginLinear(Module):
    """Cosine classifier with an additive margin on the target class:
    ``(N, in_features), target (N,) -> logits (N, out_features)``.

    ``logits = scale * cos(angle between x and each class centre)``, the
    target's cosine replaced by ``cos(angle + m_arc) - m_cos`` when targets
    are given (training): ``m_arc > 0`` is ArcFace, ``m_cos > 0`` CosFace.
    Without targets (evaluation) the logits carry no margin. Parameter
    ``weight (out_features, in_features)``, the class centres (their norm does
    not matter), initialized N(0, 0.01) as InsightFace does.
    """

    def __init__(self, in_features: int, out_features: int, scale: float = 30.0, m_arc: float = 0.5,
                 m_cos: float = 0.0, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.in_features = in_features
        self.out_features = out_features
        self.scale = float(scale)
        self.m_arc = float(m_arc)
        self.m_cos = float(m_cos)
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight, std=0.01)

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        f = M.cosine_margin_logits_reference if self.native else M.cosine_margin_logits
        return f(x, self.weight, target, self.scale, self.m_arc, self.m_cos)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, scale={self.scale:g}, "
                f"m_arc={self.m_arc:g}, m_cos={self.m_cos:g}, " + super().extra_repr())
