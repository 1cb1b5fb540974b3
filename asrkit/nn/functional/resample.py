"""Resampling by an integer factor ``k`` (the 11-785 course's Upsample/Downsample).

Along the last axis (1-D) or the last two axes (2-D):

* **upsample** (zero insertion): ``W_out = (W - 1) k + 1`` and
  ``y[..., i k] = x[..., i]``, zeros in between. ``dL/dx = g[..., ::k]``.
* **downsample** (decimation): ``W_out = ceil(W / k)`` and ``y = x[..., ::k]``.
  ``dL/dx`` is ``g`` put back at every ``k``-th position, zeros elsewhere.

Hand example, ``k = 2``: upsample ``[1, 2, 3] -> [1, 0, 2, 0, 3]``; downsample
``[1, 0, 2, 0, 3] -> [1, 2, 3]`` and ``[1, 2, 3, 4] -> [1, 3]``.
torch has no single layer for these; they are what a strided convolution
(downsample after a stride-1 conv) and a transposed convolution (upsample
before a stride-1 conv) do to the time/space axes.
"""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import NONE, apply, kernel_function


def _check_factor(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"resampling factor must be a positive integer, got {k!r}")


def upsample_forward(x: torch.Tensor, k: int, dims: int) -> tuple[torch.Tensor, tuple]:
    """``x (..., [H,] W)`` -> ``(..., [(H-1)k+1,] (W-1)k+1)``."""
    shape = list(x.shape)
    for d in range(1, dims + 1):
        shape[-d] = (shape[-d] - 1) * k + 1
    y = x.new_zeros(shape)
    sl = (Ellipsis,) + (slice(None, None, k),) * dims
    y[sl] = x
    return y, (k, dims)


def upsample_backward(gy: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    k, dims = cache
    return (gy[(Ellipsis,) + (slice(None, None, k),) * dims].contiguous(),)


def downsample_forward(x: torch.Tensor, k: int, dims: int) -> tuple[torch.Tensor, tuple]:
    """``x (..., [H,] W)`` -> ``(..., [ceil(H/k),] ceil(W/k))``."""
    y = x[(Ellipsis,) + (slice(None, None, k),) * dims].contiguous()
    return y, (k, dims, tuple(x.shape))


def downsample_backward(gy: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    k, dims, shape = cache
    gx = gy.new_zeros(shape)
    gx[(Ellipsis,) + (slice(None, None, k),) * dims] = gy
    return (gx,)


UpsampleFunction = kernel_function("UpsampleFunction", upsample_forward, upsample_backward)
DownsampleFunction = kernel_function("DownsampleFunction", downsample_forward, downsample_backward)


def upsample(x: torch.Tensor, factor: int, dims: int = 1) -> torch.Tensor:
    """Zero-insertion upsampling of the last ``dims`` axes by ``factor``."""
    _check_factor(factor)
    return apply(UpsampleFunction, NONE, x, factor, dims)


def downsample(x: torch.Tensor, factor: int, dims: int = 1) -> torch.Tensor:
    """Keep every ``factor``-th element of the last ``dims`` axes."""
    _check_factor(factor)
    return apply(DownsampleFunction, NONE, x, factor, dims)
