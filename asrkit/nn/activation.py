"""Activation layers: Identity, Sigmoid, Tanh, ReLU, LeakyReLU, GELU, SiLU, GLU, Softmax, LogSoftmax, MaskedSoftmax.

Constructor arguments as ``torch.nn``; ``impl="scratch"`` runs
:mod:`asrkit.nn.functional.activation`, ``impl="native"`` torch's kernel.
Element-wise layers map ``(*) -> (*)``.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as TF

from asrkit.nn.functional import activation as A
from asrkit.nn.module import Module


class Identity(Module):
    """Returns its input; takes and ignores any arguments, like ``torch.nn.Identity``."""

    def __init__(self, *args: Any, impl: str = "scratch", **kwargs: Any) -> None:
        super().__init__(impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Sigmoid(Module):
    def __init__(self, *, impl: str = "scratch") -> None:
        super().__init__(impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) if self.native else A.sigmoid(x)


class Tanh(Module):
    def __init__(self, *, impl: str = "scratch") -> None:
        super().__init__(impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) if self.native else A.tanh(x)


class ReLU(Module):
    """``max(x, 0)``. ``inplace`` is honoured by the native path; scratch returns a new tensor."""

    def __init__(self, inplace: bool = False, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TF.relu(x, inplace=self.inplace) if self.native else A.relu(x)

    def extra_repr(self) -> str:
        return ("inplace=True, " if self.inplace else "") + super().extra_repr()


class LeakyReLU(Module):
    """``x`` where ``x > 0``, else ``negative_slope * x``. ``inplace`` is honoured by the native
    path; scratch returns a new tensor."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:
            return TF.leaky_relu(x, self.negative_slope, inplace=self.inplace)
        return A.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return (f"negative_slope={self.negative_slope}, " + ("inplace=True, " if self.inplace else "")
                + super().extra_repr())


class GELU(Module):
    """``x Phi(x)``; ``approximate="tanh"`` uses the tanh approximation."""

    def __init__(self, approximate: str = "none", *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:
            return TF.gelu(x, approximate=self.approximate)
        return A.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}, " + super().extra_repr()


class SiLU(Module):
    """``x sigmoid(x)`` (swish)."""

    def __init__(self, inplace: bool = False, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TF.silu(x, inplace=self.inplace) if self.native else A.silu(x)


class GLU(Module):
    """Gated linear unit over ``dim``, as ``torch.nn.GLU``: ``a * sigmoid(b)`` with ``a, b``
    the two halves of the input along ``dim``: ``(*, 2n, *) -> (*, n, *)``."""

    def __init__(self, dim: int = -1, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TF.glu(x, self.dim) if self.native else A.glu(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, " + super().extra_repr()


class Softmax(Module):
    """Softmax over ``dim`` (``None``: torch's legacy implicit choice)."""

    def __init__(self, dim: int | None = None, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = A.softmax_dim(x.dim()) if self.dim is None else self.dim
        return TF.softmax(x, dim) if self.native else A.softmax(x, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, " + super().extra_repr()


class LogSoftmax(Module):
    """``log softmax`` over ``dim``, computed stably (``x - logsumexp(x)``)."""

    def __init__(self, dim: int | None = None, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = A.softmax_dim(x.dim()) if self.dim is None else self.dim
        return TF.log_softmax(x, dim) if self.native else A.log_softmax(x, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, " + super().extra_repr()


class MaskedSoftmax(Module):
    """Softmax over ``dim`` that gives masked entries weight 0: ``forward(x (*), mask)`` with a
    bool ``mask`` broadcastable to ``x``, True = excluded (e.g. padded frames of an attention).

    Scratch runs :func:`asrkit.nn.functional.activation.masked_softmax` (a row with every entry
    masked gives zeros); native is ``torch.softmax(x.masked_fill(mask, -inf))`` (NaN for such a
    row), so callers keep at least one entry per row unmasked.
    """

    def __init__(self, dim: int = -1, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.native:
            return torch.softmax(x if mask is None else x.masked_fill(mask, float("-inf")), self.dim)
        return A.masked_softmax(x, mask, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, " + super().extra_repr()
