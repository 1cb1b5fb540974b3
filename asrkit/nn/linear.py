"""Linear and Flatten layers (torch.nn signatures, parameter names and init)."""
from __future__ import annotations

import torch
import torch.nn.functional as TF

from asrkit.nn import init
from asrkit.nn.functional import linear as L
from asrkit.nn.functional import shape as S
from asrkit.nn.module import Module


class Linear(Module):
    """``y = x W^T + b``: ``x (*, in_features) -> y (*, out_features)``.

    Parameters ``weight (out_features, in_features)`` and ``bias (out_features,)``,
    initialized as ``torch.nn.Linear`` (kaiming_uniform with ``a = sqrt(5)``,
    bias U(-1/sqrt(in), 1/sqrt(in))).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        fk = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.weight = torch.nn.Parameter(torch.empty((out_features, in_features), **fk))
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(out_features, **fk))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        if self.bias is not None:
            init.bias_uniform_(self.bias, self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:
            return TF.linear(x, self.weight, self.bias)
        return L.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, " + super().extra_repr())


class Flatten(Module):
    """Flattens dims ``start_dim..end_dim`` into one: ``(N, C, H, W) -> (N, C*H*W)`` by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:
            return x.flatten(self.start_dim, self.end_dim)
        return S.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}, " + super().extra_repr()
