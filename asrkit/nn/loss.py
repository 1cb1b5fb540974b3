"""Loss layers: MSELoss, CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss (torch.nn signatures;
``weight`` / ``pos_weight`` are buffers as in torch, so state_dicts match)."""
from __future__ import annotations

import torch
import torch.nn.functional as TF

from asrkit.nn.functional import loss as LF
from asrkit.nn.module import Module


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", *,
                 impl: str = "scratch") -> None:
        super().__init__(impl)
        self.reduction = LF.legacy_reduction(size_average, reduce, reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, " + super().extra_repr()


class _WeightedLoss(_Loss):
    def __init__(self, weight: torch.Tensor | None = None, size_average=None, reduce=None,
                 reduction: str = "mean", *, impl: str = "scratch") -> None:
        super().__init__(size_average, reduce, reduction, impl=impl)
        self.register_buffer("weight", weight)
        self.weight: torch.Tensor | None


class MSELoss(_Loss):
    """Mean squared error ``reduce((x - t)^2)``; ``x`` and ``t`` of the same (broadcastable) shape."""

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.native:
            return TF.mse_loss(x, target, reduction=self.reduction)
        return LF.mse_loss(x, target, reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """``log_softmax`` + NLL over logits ``(N, C, *)``; targets are class ids ``(N, *)`` or
    class probabilities ``(N, C, *)``. Supports ``weight``, ``ignore_index`` and
    ``label_smoothing`` exactly as torch."""

    def __init__(self, weight: torch.Tensor | None = None, size_average=None, ignore_index: int = -100,
                 reduce=None, reduction: str = "mean", label_smoothing: float = 0.0,
                 *, impl: str = "scratch") -> None:
        super().__init__(weight, size_average, reduce, reduction, impl=impl)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f = TF.cross_entropy if self.native else LF.cross_entropy
        return f(x, target, weight=self.weight, ignore_index=self.ignore_index,
                 reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log likelihood of log-probabilities ``(N, C, *)`` at class ids ``(N, *)``."""

    def __init__(self, weight: torch.Tensor | None = None, size_average=None, ignore_index: int = -100,
                 reduce=None, reduction: str = "mean", *, impl: str = "scratch") -> None:
        super().__init__(weight, size_average, reduce, reduction, impl=impl)
        self.ignore_index = ignore_index

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f = TF.nll_loss if self.native else LF.nll_loss
        return f(x, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross entropy, computed stably from logits; ``pos_weight``
    (broadcast over the last dim) weighs the positive term."""

    def __init__(self, weight: torch.Tensor | None = None, size_average=None, reduce=None,
                 reduction: str = "mean", pos_weight: torch.Tensor | None = None,
                 *, impl: str = "scratch") -> None:
        super().__init__(size_average, reduce, reduction, impl=impl)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.weight: torch.Tensor | None
        self.pos_weight: torch.Tensor | None

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f = TF.binary_cross_entropy_with_logits if self.native else LF.binary_cross_entropy_with_logits
        return f(x, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction)
