"""Pooling kernels: max and average pooling over 1-D and 2-D windows.

The input is padded (``-inf`` for max, ``0`` for average) and every window is
gathered with one ``as_strided`` view ``(N, C, Ho, Wo, kh*kw)``:

* max:  ``y = max over the window``; the gradient goes to the arg-max of each
  window only: ``dL/dx[argmax] += g`` (a ``scatter_add``, since windows may
  overlap).
* avg:  ``y = sum over the window / divisor``; every element of the window
  gets ``g / divisor`` (added back per kernel tap).

Adaptive average pooling (torch's ``adaptive_avg_pool2d``) splits each
spatial axis of length ``H`` into ``Ho`` bins ``[floor(i H / Ho), ceil((i + 1)
H / Ho))``, possibly overlapping, and averages each. Along one axis that is
a matrix ``A (Ho, H)`` with ``1 / len(bin)`` on each bin's entries, so

    y = A_h x A_w^T                 (N, C, Ho, Wo)
    dL/dx = A_h^T g A_w             (N, C, H, W)

Global average pooling (``Ho = Wo = 1``) is its common case: the mean over
``H x W``, and every pixel gets ``g / (H W)``.

``divisor`` is torch's: the window size counting the padding
(``count_include_pad=True``) but not the part past the padded border that
``ceil_mode`` may add, or only the real input elements
(``count_include_pad=False``), or ``divisor_override``. 1-D pooling runs the
2-D code with ``H = 1``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as TF

from asrkit.nn.functional._autograd import NONE, apply, kernel_function


def pool_out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling output length (a window must start inside the input or left padding)."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _windows(xp: torch.Tensor, kernel, stride, dilation, out_hw) -> torch.Tensor:
    """``xp (N, C, Hp, Wp)`` -> view ``(N, C, Ho, Wo, kh, kw)``."""
    n, c = xp.shape[:2]
    sn, sc, sy, sx = xp.stride()
    return xp.as_strided((n, c, out_hw[0], out_hw[1], kernel[0], kernel[1]),
                         (sn, sc, stride[0] * sy, stride[1] * sx, dilation[0] * sy, dilation[1] * sx))


def _geometry(hw, kernel, stride, padding, dilation, ceil_mode):
    out_hw = tuple(pool_out_size(hw[i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode)
                   for i in range(2))
    # right/bottom padding needed so every window (ceil_mode may add one) fits
    extra = tuple(max(padding[i], (out_hw[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
                      - hw[i] - padding[i]) for i in range(2))
    return out_hw, extra


def _check(hw, kernel, stride, padding, dilation) -> None:
    for i in range(2):
        if padding[i] * 2 > kernel[i]:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={padding[i]}, kernel_size={kernel[i]}")
        if stride[i] <= 0 or kernel[i] <= 0 or dilation[i] <= 0:
            raise RuntimeError("kernel_size, stride and dilation must be positive")


# ---------------------------------------------------------------- max pool 2d

def max_pool2d_forward(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                       padding: tuple[int, int], dilation: tuple[int, int],
                       ceil_mode: bool) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple]:
    """``x (N, C, H, W)`` -> ``(y (N, C, Ho, Wo), indices (N, C, Ho, Wo))``; indices are
    flat positions ``h * W + w`` in the unpadded input, as torch returns them."""
    n, c, h, w = x.shape
    _check((h, w), kernel, stride, padding, dilation)
    out_hw, extra = _geometry((h, w), kernel, stride, padding, dilation, ceil_mode)
    xp = TF.pad(x, (padding[1], extra[1], padding[0], extra[0]), value=-math.inf)  # (N, C, Hp, Wp)
    win = _windows(xp, kernel, stride, dilation, out_hw)                 # (N, C, Ho, Wo, kh, kw)
    flat = win.reshape(n, c, out_hw[0], out_hw[1], -1)                   # (N, C, Ho, Wo, kh*kw)
    y, arg = flat.max(dim=-1)                                            # (N, C, Ho, Wo)
    # window-local arg-max -> input coordinates
    ki, kj = arg // kernel[1], arg % kernel[1]
    oh = torch.arange(out_hw[0], device=x.device).view(-1, 1)
    ow = torch.arange(out_hw[1], device=x.device).view(1, -1)
    row = oh * stride[0] - padding[0] + ki * dilation[0]                 # (N, C, Ho, Wo)
    col = ow * stride[1] - padding[1] + kj * dilation[1]
    indices = row * w + col                                              # (N, C, Ho, Wo)
    return (y, indices), (indices, (n, c, h, w))


def max_pool2d_backward(gy: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    indices, shape = cache
    n, c, h, w = shape
    gx = torch.zeros(n, c, h * w, dtype=gy.dtype, device=gy.device)       # (N, C, H*W)
    gx.scatter_add_(2, indices.reshape(n, c, -1), gy.reshape(n, c, -1))
    return (gx.view(n, c, h, w),)


# ---------------------------------------------------------------- avg pool 2d

def _divisor_1d(size: int, k: int, s: int, p: int, n_out: int, include_pad: bool,
                device: torch.device) -> torch.Tensor:
    start = torch.arange(n_out, device=device) * s - p                   # (n_out,)
    end = torch.clamp(start + k, max=size + p)
    if include_pad:
        return end - start
    return torch.clamp(end, max=size) - torch.clamp(start, min=0)


def avg_pool2d_forward(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                       padding: tuple[int, int], ceil_mode: bool, count_include_pad: bool,
                       divisor_override: int | None) -> tuple[torch.Tensor, tuple]:
    """``x (N, C, H, W)`` -> ``(N, C, Ho, Wo)``: window sums over the divisor."""
    n, c, h, w = x.shape
    _check((h, w), kernel, stride, padding, (1, 1))
    out_hw, extra = _geometry((h, w), kernel, stride, padding, (1, 1), ceil_mode)
    xp = TF.pad(x, (padding[1], extra[1], padding[0], extra[0]))          # (N, C, Hp, Wp)
    win = _windows(xp, kernel, stride, (1, 1), out_hw)                   # (N, C, Ho, Wo, kh, kw)
    if divisor_override:
        div = torch.full(out_hw, float(divisor_override), dtype=x.dtype, device=x.device)
    else:
        dh = _divisor_1d(h, kernel[0], stride[0], padding[0], out_hw[0], count_include_pad, x.device)
        dw = _divisor_1d(w, kernel[1], stride[1], padding[1], out_hw[1], count_include_pad, x.device)
        div = (dh.view(-1, 1) * dw.view(1, -1)).to(x.dtype)             # (Ho, Wo)
    y = win.sum(dim=(-2, -1)) / div                                      # (N, C, Ho, Wo)
    return y, (div, (n, c, h, w), kernel, stride, padding, extra, out_hw)


def avg_pool2d_backward(gy: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    div, (n, c, h, w), kernel, stride, padding, extra, out_hw = cache
    gs = gy / div                                                        # (N, C, Ho, Wo)
    hp, wp = h + padding[0] + extra[0], w + padding[1] + extra[1]
    gxp = torch.zeros(n, c, hp, wp, dtype=gy.dtype, device=gy.device)    # (N, C, Hp, Wp)
    ho, wo = out_hw
    for i in range(kernel[0]):          # one strided add per kernel tap, all windows at once
        for j in range(kernel[1]):
            gxp[:, :, i:i + (ho - 1) * stride[0] + 1:stride[0],
                j:j + (wo - 1) * stride[1] + 1:stride[1]] += gs
    return (gxp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w],)


# ---------------------------------------------------------------- adaptive avg pool 2d

def _bin_matrix(size: int, out: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``A (out, size)``: row ``i`` averages the input bin ``[floor(i size / out), ceil((i+1) size / out))``."""
    i = torch.arange(out, device=device)
    start = (i * size) // out                                            # (out,)
    end = -((-(i + 1) * size) // out)                                    # ceil((i + 1) size / out)
    pos = torch.arange(size, device=device).view(1, -1)                  # (1, size)
    inside = (pos >= start.view(-1, 1)) & (pos < end.view(-1, 1))       # (out, size)
    return inside.to(dtype) / (end - start).view(-1, 1).to(dtype)


def adaptive_avg_pool2d_forward(x: torch.Tensor, out_hw: tuple[int, int]) -> tuple[torch.Tensor, tuple]:
    """``x (N, C, H, W)`` -> ``(N, C, Ho, Wo)``: the mean of each adaptive bin."""
    n, c, h, w = x.shape
    if out_hw == (1, 1):                                                 # global average pooling
        return x.mean(dim=(2, 3), keepdim=True), ((n, c, h, w), out_hw, None, None)
    ah = _bin_matrix(h, out_hw[0], x.dtype, x.device)                    # (Ho, H)
    aw = _bin_matrix(w, out_hw[1], x.dtype, x.device)                    # (Wo, W)
    y = torch.matmul(torch.matmul(ah, x), aw.t())                        # (N, C, Ho, Wo)
    return y, ((n, c, h, w), out_hw, ah, aw)


def adaptive_avg_pool2d_backward(gy: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (n, c, h, w), out_hw, ah, aw = cache
    if ah is None:                                                       # every pixel gets g / (H W)
        return (gy.expand(n, c, h, w) / (h * w),)
    return (torch.matmul(torch.matmul(ah.t(), gy), aw),)                 # (N, C, H, W)


MaxPool2dFunction = kernel_function("MaxPool2dFunction", max_pool2d_forward, max_pool2d_backward)
AvgPool2dFunction = kernel_function("AvgPool2dFunction", avg_pool2d_forward, avg_pool2d_backward)
AdaptiveAvgPool2dFunction = kernel_function("AdaptiveAvgPool2dFunction", adaptive_avg_pool2d_forward,
                                            adaptive_avg_pool2d_backward)


# ---------------------------------------------------------------- public functionals

def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _single(v: int | Sequence[int]) -> int:
    return v if isinstance(v, int) else tuple(v)[0]


def _batched(x: torch.Tensor, spatial: int) -> tuple[torch.Tensor, bool]:
    if x.dim() == spatial + 1:
        return x.unsqueeze(0), True
    if x.dim() != spatial + 2:
        raise ValueError(f"expected {spatial + 1}D or {spatial + 2}D input, got {x.dim()}D")
    return x, False


def max_pool2d(x: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """As ``torch.nn.functional.max_pool2d``: ``(N, C, H, W)`` or ``(C, H, W)``."""
    x4, unb = _batched(x, 2)
    k = _pair(kernel_size)
    s = _pair(stride) if stride not in (None, ()) else k
    y, idx = apply(MaxPool2dFunction, NONE, x4, k, s, _pair(padding), _pair(dilation), bool(ceil_mode))
    if unb:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def max_pool1d(x: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """As ``torch.nn.functional.max_pool1d``: ``(N, C, T)`` or ``(C, T)``."""
    x3, unb = _batched(x, 1)
    k = _single(kernel_size)
    s = _single(stride) if stride not in (None, ()) else k
    y, idx = apply(MaxPool2dFunction, NONE, x3.unsqueeze(2), (1, k), (1, s), (0, _single(padding)),
                   (1, _single(dilation)), bool(ceil_mode))
    y, idx = y.squeeze(2), idx.squeeze(2)          # with H = 1 the flat index is the time index
    if unb:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def avg_pool2d(x: torch.Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> torch.Tensor:
    """As ``torch.nn.functional.avg_pool2d``."""
    x4, unb = _batched(x, 2)
    k = _pair(kernel_size)
    s = _pair(stride) if stride not in (None, ()) else k
    y = apply(AvgPool2dFunction, NONE, x4, k, s, _pair(padding), bool(ceil_mode),
              bool(count_include_pad), divisor_override)
    return y.squeeze(0) if unb else y


def avg_pool1d(x: torch.Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> torch.Tensor:
    """As ``torch.nn.functional.avg_pool1d``."""
    x3, unb = _batched(x, 1)
    k = _single(kernel_size)
    s = _single(stride) if stride not in (None, ()) else k
    y = apply(AvgPool2dFunction, NONE, x3.unsqueeze(2), (1, k), (1, s), (0, _single(padding)),
              bool(ceil_mode), bool(count_include_pad), None).squeeze(2)
    return y.squeeze(0) if unb else y


def adaptive_output_size(x: torch.Tensor, output_size) -> tuple[int, int]:
    """torch's ``output_size`` of adaptive pooling (an int, or a pair whose None keeps that axis)."""
    pair = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(pair) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    out = tuple(x.shape[-2 + i] if v is None else int(v) for i, v in enumerate(pair))
    if min(out) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size!r}")
    return out[0], out[1]


def adaptive_avg_pool2d(x: torch.Tensor, output_size) -> torch.Tensor:
    """As ``torch.nn.functional.adaptive_avg_pool2d``: ``(N, C, H, W)`` or ``(C, H, W)``."""
    x4, unb = _batched(x, 2)
    y = apply(AdaptiveAvgPool2dFunction, NONE, x4, adaptive_output_size(x4, output_size))
    return y.squeeze(0) if unb else y
