"""Shape, masking and indexing kernels: the glue between layers, with their gradients.

* flatten: ``(N, d1, ..., dk, ...) -> (N, d1*...*dk, ...)``; the gradient is the
  incoming gradient reshaped back.
* masked_fill: ``x (*)`` with the entries where the bool ``mask`` (broadcastable
  to ``x``) is True set to ``value``; those entries get no gradient.
* index_select: ``x`` with ``dim`` indexed by ``index (K,)``; the gradient adds
  each row of the incoming gradient back at the row it came from (a plain
  un-permutation when ``index`` is a permutation, e.g. sorting a batch by length).
* pack / unpack: the rows of ``x (*M, ...)`` where the bool ``mask (*M)`` is True,
  in row-major order, as ``(N, ...)``, and back (zeros elsewhere). With the
  ``(T, B)`` mask ``b < batch_sizes[t]`` that is exactly a ``PackedSequence``'s
  data; with a ``(B, T)`` padding mask it gathers the valid frames of a batch.
  Each one's gradient is the other.
"""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import NONE, apply, kernel_function

__all__ = [
    "flatten_forward", "flatten_backward", "FlattenFunction", "flatten",
    "masked_fill_forward", "masked_fill_backward", "MaskedFillFunction", "masked_fill",
    "index_select_forward", "index_select_backward", "IndexSelectFunction", "index_select",
    "pack_forward", "pack_backward", "PackFunction", "pack",
    "unpack_forward", "unpack_backward", "UnpackFunction", "unpack",
]


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


# ---------------------------------------------------------------- masked_fill
# y = where(mask, value, x);  dL/dx = where(mask, 0, g)


def masked_fill_forward(x: torch.Tensor, mask: torch.Tensor, value: float = 0.0) -> tuple[torch.Tensor, tuple]:
    if mask.dtype != torch.bool:
        raise TypeError(f"masked_fill: the mask must be bool, got {mask.dtype}")
    return x.masked_fill(mask, value), (mask,)            # (*) as x


def masked_fill_backward(grad_out: torch.Tensor, cache: tuple) -> tuple:
    (mask,) = cache
    return (grad_out.masked_fill(mask, 0.0),)


MaskedFillFunction = kernel_function("MaskedFillFunction", masked_fill_forward, masked_fill_backward)


def masked_fill(x: torch.Tensor, mask: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """As ``x.masked_fill(mask, value)``: ``mask`` bool, broadcastable to ``x``."""
    return apply(MaskedFillFunction, NONE, x, mask, float(value))


# ---------------------------------------------------------------- index_select
# y = x[..., index, ...] along dim;  dL/dx = zeros.index_add(dim, index, g)


def index_select_forward(x: torch.Tensor, dim: int, index: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    return x.index_select(dim, index), (index, dim, x.shape)


def index_select_backward(grad_out: torch.Tensor, cache: tuple) -> tuple:
    index, dim, shape = cache
    return (grad_out.new_zeros(shape).index_add_(dim, index, grad_out),)


IndexSelectFunction = kernel_function("IndexSelectFunction", index_select_forward, index_select_backward)


def index_select(x: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """As ``torch.index_select(x, dim, index)``."""
    return apply(IndexSelectFunction, NONE, x, int(dim), index)


# ---------------------------------------------------------------- pack / unpack
# pack: y = x[mask] (N, ...);  dL/dx = zeros with g written at mask
# unpack: y = zeros (*M, ...) with data written at mask;  dL/ddata = g[mask]


def pack_forward(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    return x[mask], (mask,)                               # (N, ...)


def unpack_forward(data: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    out = data.new_zeros(mask.shape + data.shape[1:])     # (*M, ...)
    out[mask] = data
    return out, (mask,)


def pack_backward(grad_out: torch.Tensor, cache: tuple) -> tuple:
    (mask,) = cache
    return (unpack_forward(grad_out, mask)[0],)           # (*M, ...): g written at mask


def unpack_backward(grad_out: torch.Tensor, cache: tuple) -> tuple:
    (mask,) = cache
    return (pack_forward(grad_out, mask)[0],)             # (N, ...): g[mask]


PackFunction = kernel_function("PackFunction", pack_forward, pack_backward)
UnpackFunction = kernel_function("UnpackFunction", unpack_forward, unpack_backward)


def pack(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x (*M, ...)``, bool ``mask (*M)`` -> ``x[mask] (N, ...)``."""
    return apply(PackFunction, NONE, x, mask)


def unpack(data: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``data (N, ...)``, bool ``mask (*M)`` with ``N`` True entries -> ``(*M, ...)``, zeros where False."""
    return apply(UnpackFunction, NONE, data, mask)
