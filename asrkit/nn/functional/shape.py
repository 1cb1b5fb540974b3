"""Shape kernels: flatten. ``(N, d1, ..., dk, ...) -> (N, d1*...*dk, ...)``; the
gradient is the incoming gradient reshaped back."""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import NONE, apply, kernel_function


def flatten_forward(x: torch.Tensor, start_dim: int = 1, end_dim: int = -1) -> tuple[torch.Tensor, tuple]:
    nd = max(x.dim(), 1)
    s, e = start_dim % nd, end_dim % nd
    shape = x.shape
    if x.dim() == 0:
        return x.reshape(1).clone(), (shape,)
    # clone: an output that is a view of the input would forbid in-place ops downstream
    out = x.reshape(*shape[:s], -1, *shape[e + 1:]) if s <= e else x.reshape(shape)
    return out.clone(), (shape,)


def flatten_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (shape,) = cache
    return (grad_out.reshape(shape),)


FlattenFunction = kernel_function("FlattenFunction", flatten_forward, flatten_backward)


def flatten(x: torch.Tensor, start_dim: int = 1, end_dim: int = -1) -> torch.Tensor:
    return apply(FlattenFunction, NONE, x, start_dim, end_dim)
