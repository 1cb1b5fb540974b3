"""Convolution kernels: Conv1d/2d and ConvTranspose1d/2d by im2col + matmul, and padding.

Convolution as a matrix product (im2col). For an input ``x (N, C, H, W)`` and
a weight ``W (O, C/G, kh, kw)`` in ``G`` groups, zero-pad ``x`` to ``xp``, then
gather every receptive field into a column::

    cols[n, g, (c, i, j), (ho, wo)] = xp[n, g*Cg + c, ho*sh + i*dh, wo*sw + j*dw]
                                                      # (N, G, Cg*kh*kw, Ho*Wo)

(one ``as_strided`` view of ``xp``, copied once by ``reshape``; no Python loop
over positions). Then, per group, with ``Wg (Og, Cg*kh*kw)``::

    y[n, g] = Wg @ cols[n, g] + b                     # (N, G, Og, Ho*Wo)

Backward with ``gy = dL/dy`` in the same layout::

    dL/dWg    = sum_n gy[n, g] @ cols[n, g]^T         # (G, Og, Cg*kh*kw)
    dL/dcols  = Wg^T @ gy[n, g]                       # (N, G, Cg*kh*kw, Ho*Wo)
    dL/dx     = col2im(dL/dcols)                      # add every column entry back to the
                                                      # pixel it came from (padding dropped)
    dL/db     = sum over n, ho, wo of gy

A transposed convolution is the adjoint of a convolution: its forward is the
convolution's input gradient (``col2im(W^T @ x)``) and its input gradient is
the convolution's forward applied to ``gy``. 1-D ops run the 2-D code with
``H = 1``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as TF

from asrkit.nn.functional._autograd import LOWER, NONE, apply, kernel_function, workspace

Pad4 = tuple[int, int, int, int]          # (top, bottom, left, right)


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def same_padding(kernel: Sequence[int], dilation: Sequence[int]) -> list[tuple[int, int]]:
    """torch's ``padding="same"``: total ``d (k - 1)`` per dim, the extra one on the right."""
    out = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        out.append((total // 2, total - total // 2))
    return out


def conv_out_size(size: int, k: int, s: int, p_lo: int, p_hi: int, d: int) -> int:
    return (size + p_lo + p_hi - d * (k - 1) - 1) // s + 1


# The column matrix is as large as the input times kh*kw. Allocating it fresh on
# every call costs more than the copy itself (page faults on CPU), so the
# columns go to a reused per-thread ``workspace`` and the backward rebuilds
# them from the saved input instead of keeping them alive (as cuDNN / oneDNN
# do with their workspaces). Nothing returned or saved ever aliases it.

# ---------------------------------------------------------------- im2col / col2im

def _im2col(xp: torch.Tensor, groups: int, kernel: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int], out_hw: tuple[int, int]) -> torch.Tensor:
    """``xp (N, C, Hp, Wp)`` -> ``cols (N, G, Cg*kh*kw, Ho*Wo)`` in the workspace (one copy)."""
    xp = xp.contiguous()
    n, c, hp, wp = xp.shape
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    sn, sc, sy, sx = xp.stride()
    shape = (n, groups, c // groups, kh, kw, ho, wo)
    view = xp.as_strided(
        shape, (sn, sc * (c // groups), sc, dh * sy, dw * sx, sh * sy, sw * sx))  # (N, G, Cg, kh, kw, Ho, Wo)
    cols = workspace(view.numel(), xp.dtype, xp.device).view(shape)
    cols.copy_(view)
    return cols.view(n, groups, (c // groups) * kh * kw, ho * wo)     # (N, G, K, L)


def _tap_range(i: int, k_dil: int, s: int, lo: int, size: int, n_out: int) -> tuple[slice, slice] | None:
    """Output positions ``o`` whose tap ``i`` lands inside the unpadded input, and those
    input positions: ``x = o*s + i*d - lo`` must lie in ``[0, size)``."""
    off = i * k_dil - lo
    o_min = max(0, -(off // s))                                     # ceil(-off / s), at least 0
    o_max = min(n_out - 1, (size - 1 - off) // s)
    if o_max < o_min:
        return None
    x0 = o_min * s + off
    return slice(o_min, o_max + 1), slice(x0, x0 + (o_max - o_min) * s + 1, s)


def _col2im(cols: torch.Tensor, in_hw: tuple[int, int], kernel: tuple[int, int],
            stride: tuple[int, int], dilation: tuple[int, int], pad: Pad4,
            out_hw: tuple[int, int]) -> torch.Tensor:
    """Adjoint of :func:`_im2col`: ``cols (N, G, K, L)`` -> ``(N, C, H, W)``.

    Every column entry is added back to the input pixel it was copied from;
    entries that came from the zero padding are dropped. One strided add per
    kernel tap (``kh * kw`` of them), each covering all positions at once.
    """
    n, g, k, _ = cols.shape
    (kh, kw), (ho, wo) = kernel, out_hw
    c = g * (k // (kh * kw))
    c6 = cols.view(n, c, kh, kw, ho, wo)                               # (N, C, kh, kw, Ho, Wo)
    gx = torch.zeros(n, c, in_hw[0], in_hw[1], dtype=cols.dtype, device=cols.device)  # (N, C, H, W)
    for i in range(kh):
        rows = _tap_range(i, dilation[0], stride[0], pad[0], in_hw[0], ho)
        if rows is None:
            continue
        for j in range(kw):
            cs = _tap_range(j, dilation[1], stride[1], pad[2], in_hw[1], wo)
            if cs is None:
                continue
            gx[:, :, rows[1], cs[1]] += c6[:, :, i, j, rows[0], cs[0]]
    return gx


def _pad4(x: torch.Tensor, pad: Pad4) -> torch.Tensor:
    top, bottom, left, right = pad
    return TF.pad(x, (left, right, top, bottom)) if any(pad) else x


def _out_hw(in_hw, kernel, stride, pad: Pad4, dilation) -> tuple[int, int]:
    ho = conv_out_size(in_hw[0], kernel[0], stride[0], pad[0], pad[1], dilation[0])
    wo = conv_out_size(in_hw[1], kernel[1], stride[1], pad[2], pad[3], dilation[1])
    if ho <= 0 or wo <= 0:
        raise RuntimeError(f"convolution: input size {tuple(in_hw)} is too small for kernel "
                           f"{tuple(kernel)} with dilation {tuple(dilation)} and padding {pad}")
    return ho, wo


def _conv2d(x: torch.Tensor, weight: torch.Tensor, stride, pad: Pad4, dilation, groups) -> torch.Tensor:
    """``x (N, C, H, W)``, ``weight (O, Cg, kh, kw)`` -> ``y (N, O, Ho, Wo)``."""
    n = x.shape[0]
    o, cg, kh, kw = weight.shape
    ho, wo = _out_hw(x.shape[2:], (kh, kw), stride, pad, dilation)
    cols = _im2col(_pad4(x, pad), groups, (kh, kw), stride, dilation, (ho, wo))  # (N, G, K, L)
    wg = weight.reshape(groups, o // groups, cg * kh * kw)              # (G, Og, K)
    y = torch.matmul(wg, cols)                                          # (N, G, Og, L)
    return y.reshape(n, o, ho, wo)


def _conv2d_input_grad(gy: torch.Tensor, weight: torch.Tensor, in_hw: tuple[int, int],
                       stride, pad: Pad4, dilation, groups) -> torch.Tensor:
    """``gy (N, O, Ho, Wo)`` -> ``dL/dx (N, C, H, W)`` (also: transposed conv forward)."""
    n, o, ho, wo = gy.shape
    _, cg, kh, kw = weight.shape
    top, bottom, left, right = pad
    wg = weight.reshape(groups, o // groups, cg * kh * kw)              # (G, Og, K)
    g4 = gy.reshape(n, groups, o // groups, ho * wo)                    # (N, G, Og, L)
    gcols = workspace(n * groups * cg * kh * kw * ho * wo, gy.dtype, gy.device).view(
        n, groups, cg * kh * kw, ho * wo)
    torch.matmul(wg.transpose(1, 2), g4, out=gcols)                     # (N, G, K, L)
    return _col2im(gcols, in_hw, (kh, kw), stride, dilation, pad, (ho, wo))  # (N, C, H, W)


def _conv2d_weight_grad(gy: torch.Tensor, cols: torch.Tensor, wshape) -> torch.Tensor:
    """``gy (N, O, L)``-like and ``cols (N, G, K, L)`` -> ``dL/dW`` of shape ``wshape``."""
    n, o = gy.shape[:2]
    g, k = cols.shape[1:3]
    g4 = gy.reshape(n, g, o // g, -1)                                   # (N, G, Og, L)
    gw = torch.matmul(g4, cols.transpose(2, 3)).sum(0)                  # (G, Og, K)
    return gw.reshape(wshape)                                           # (O, Cg, kh, kw)


# ---------------------------------------------------------------- conv2d

def conv2d_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   stride: tuple[int, int], pad: Pad4, dilation: tuple[int, int],
                   groups: int) -> tuple[torch.Tensor, tuple]:
    """``x (N, C, H, W)``, ``weight (O, C/G, kh, kw)``, ``bias (O,)`` -> ``(N, O, Ho, Wo)``."""
    y = _conv2d(x, weight, stride, pad, dilation, groups)              # (N, O, Ho, Wo)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y, (x, weight, bias is not None, stride, pad, dilation, groups)


def conv2d_backward(gy: torch.Tensor, cache: tuple, needs: tuple = (True,) * 3) -> tuple:
    x, weight, has_bias, stride, pad, dilation, groups = cache
    gy = gy.contiguous()
    gw = gx = gb = None
    if needs[1]:
        # rebuild the columns (cheaper than keeping them) and correlate them with gy
        cols = _im2col(_pad4(x, pad), groups, tuple(weight.shape[2:]), stride, dilation,
                       tuple(gy.shape[2:]))                             # (N, G, K, L)
        gw = _conv2d_weight_grad(gy, cols, weight.shape)                # (O, Cg, kh, kw)
    if needs[0]:
        gx = _conv2d_input_grad(gy, weight, tuple(x.shape[2:]), stride, pad, dilation, groups)
    if has_bias and needs[2]:
        gb = gy.sum((0, 2, 3))                                          # (O,)
    return gx, gw, gb


# ---------------------------------------------------------------- conv1d (H = 1)

def conv1d_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   stride: int, pad: tuple[int, int], dilation: int,
                   groups: int) -> tuple[torch.Tensor, tuple]:
    """``x (N, C, T)``, ``weight (O, C/G, k)``, ``bias (O,)`` -> ``(N, O, To)``."""
    y, cache = conv2d_forward(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride),
                              (0, 0, pad[0], pad[1]), (1, dilation), groups)  # (N, O, 1, To)
    return y.squeeze(2), cache


def conv1d_backward(gy: torch.Tensor, cache: tuple, needs: tuple = (True,) * 3) -> tuple:
    gx, gw, gb = conv2d_backward(gy.unsqueeze(2), cache, needs)        # (N, C, 1, T), (O, Cg, 1, k)
    return (gx.squeeze(2) if gx is not None else None,
            gw.squeeze(2) if gw is not None else None, gb)


# ---------------------------------------------------------------- transposed conv 2d
# weight (C_in, C_out/G, kh, kw); the output is the input gradient of a conv
# whose weight is that tensor read as (O = C_in, Cg = C_out/G, kh, kw).

def conv_transpose2d_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                             stride: tuple[int, int], padding: tuple[int, int],
                             output_padding: tuple[int, int], dilation: tuple[int, int],
                             groups: int) -> tuple[torch.Tensor, tuple]:
    """``x (N, C_in, H, W)`` -> ``(N, C_out, Ho, Wo)``, ``Ho = (H-1) s - 2p + d (k-1) + op + 1``."""
    _, _, h, w = x.shape
    kh, kw = weight.shape[2:]
    out_hw = tuple(
        (size - 1) * s - 2 * p + d * (k - 1) + op + 1
        for size, s, p, d, k, op in zip((h, w), stride, padding, dilation, (kh, kw), output_padding))
    for op, st, d in zip(output_padding, stride, dilation):
        if op >= st and op >= d:
            raise RuntimeError(f"output padding {tuple(output_padding)} must be smaller than "
                               f"either stride {tuple(stride)} or dilation {tuple(dilation)}")
    # the adjoint conv pads p on both sides; output_padding only adds rows/cols at the end,
    # reached by the windows that the crop of p would otherwise drop (or by none: zeros)
    pad = (padding[0], padding[0], padding[1], padding[1])
    x = x.contiguous()
    y = _conv2d_input_grad(x, weight, out_hw, stride, pad, dilation, groups)  # (N, C_out, Ho, Wo)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y, (x, weight, bias is not None, stride, pad, dilation, groups)


def conv_transpose2d_backward(gy: torch.Tensor, cache: tuple, needs: tuple = (True,) * 3) -> tuple:
    x, weight, has_bias, stride, pad, dilation, groups = cache
    gy = gy.contiguous()
    gx = gw = gb = None
    if needs[1]:
        # dL/dW[c_in, c_out] = sum x[c_in] * cols(gy)[c_out]: the conv weight gradient, roles swapped
        cols = _im2col(_pad4(gy, pad), groups, tuple(weight.shape[2:]), stride, dilation,
                       tuple(x.shape[2:]))                              # (N, G, K, H*W)
        gw = _conv2d_weight_grad(x, cols, weight.shape)                 # (C_in, C_out/G, kh, kw)
    if needs[0]:
        # dL/dx = conv(gy, W): the forward of the conv this op is the adjoint of
        gx = _conv2d(gy, weight, stride, pad, dilation, groups)        # (N, C_in, >=H, >=W)
        gx = gx[:, :, :x.shape[2], :x.shape[3]]                         # (N, C_in, H, W)
    if has_bias and needs[2]:
        gb = gy.sum((0, 2, 3))
    return gx, gw, gb


def conv_transpose1d_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                             stride: int, padding: int, output_padding: int, dilation: int,
                             groups: int) -> tuple[torch.Tensor, tuple]:
    """``x (N, C_in, T)``, ``weight (C_in, C_out/G, k)`` -> ``(N, C_out, To)``."""
    y, cache = conv_transpose2d_forward(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride),
                                        (0, padding), (0, output_padding), (1, dilation), groups)
    return y.squeeze(2), cache


def conv_transpose1d_backward(gy: torch.Tensor, cache: tuple, needs: tuple = (True,) * 3) -> tuple:
    gx, gw, gb = conv_transpose2d_backward(gy.unsqueeze(2), cache, needs)
    return (gx.squeeze(2) if gx is not None else None,
            gw.squeeze(2) if gw is not None else None, gb)


# ---------------------------------------------------------------- padding (reflect/replicate/circular/zeros)
# Padding is a gather: out[..., i] = x[..., src(i)]; its gradient scatter-adds back.

def _pad_index(size: int, lo: int, hi: int, mode: str, device: torch.device) -> torch.Tensor:
    i = torch.arange(-lo, size + hi, device=device)                     # (size + lo + hi,)
    if mode == "replicate":
        return i.clamp(0, size - 1)
    if mode == "circular":
        return i % size
    if mode == "reflect":
        if lo >= size or hi >= size:
            raise RuntimeError(f"reflect padding ({lo}, {hi}) must be smaller than the input size {size}")
        period = 2 * (size - 1)
        j = i.abs() % period if period > 0 else torch.zeros_like(i)
        return torch.where(j >= size, period - j, j)
    raise ValueError(f"unknown padding mode {mode!r}")


def pad_forward(x: torch.Tensor, pads: tuple[int, ...], mode: str) -> tuple[torch.Tensor, tuple]:
    """``pads`` as ``torch.nn.functional.pad`` (last dim first: ``(left, right, top, bottom)``)."""
    out = x
    idxs = []
    for k in range(len(pads) // 2):
        dim = x.dim() - 1 - k
        lo, hi = pads[2 * k], pads[2 * k + 1]
        if mode == "zeros" or mode == "constant":
            idxs.append(None)
            continue
        idx = _pad_index(x.shape[dim], lo, hi, mode, x.device)
        out = out.index_select(dim, idx)                                # (..., size + lo + hi, ...)
        idxs.append((dim, idx))
    if mode in ("zeros", "constant"):
        out = TF.pad(x, pads)
    return out, (tuple(x.shape), pads, mode, idxs)


def pad_backward(gy: torch.Tensor, cache: tuple) -> tuple:
    shape, pads, mode, idxs = cache
    if mode in ("zeros", "constant"):
        sl = [slice(None)] * len(shape)
        for k in range(len(pads) // 2):
            dim = len(shape) - 1 - k
            sl[dim] = slice(pads[2 * k], pads[2 * k] + shape[dim])
        return (gy[tuple(sl)],)
    g = gy
    for dim, idx in reversed(idxs):
        size = list(g.shape)
        size[dim] = shape[dim]
        g = torch.zeros(size, dtype=g.dtype, device=g.device).index_add_(dim, idx, g)
    return (g,)


Conv1dFunction = kernel_function("Conv1dFunction", conv1d_forward, conv1d_backward, pass_needs=True)
Conv2dFunction = kernel_function("Conv2dFunction", conv2d_forward, conv2d_backward, pass_needs=True)
ConvTranspose1dFunction = kernel_function("ConvTranspose1dFunction", conv_transpose1d_forward,
                                          conv_transpose1d_backward, pass_needs=True)
ConvTranspose2dFunction = kernel_function("ConvTranspose2dFunction", conv_transpose2d_forward,
                                          conv_transpose2d_backward, pass_needs=True)
PadFunction = kernel_function("PadFunction", pad_forward, pad_backward)


# ---------------------------------------------------------------- public functionals

def _resolve_padding(padding, kernel, dilation, stride) -> list[tuple[int, int]]:
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * len(kernel)
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            return same_padding(kernel, dilation)
        raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
    pads = [padding] * len(kernel) if isinstance(padding, int) else list(padding)
    return [(p, p) for p in pads]


def _check_groups(c_in: int, weight: torch.Tensor, groups: int) -> None:
    if c_in != weight.shape[1] * groups:
        raise RuntimeError(f"expected input with {weight.shape[1] * groups} channels, got {c_in}")


def conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: int | Sequence[int] = 1, padding: int | str | Sequence[int] = 0,
           dilation: int | Sequence[int] = 1, groups: int = 1) -> torch.Tensor:
    """As ``torch.nn.functional.conv1d``: ``(N, C, T)`` (or unbatched ``(C, T)``)."""
    if x.dim() == 2:
        return conv1d(x.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    s, d = _pair(stride)[0], _pair(dilation)[0]
    (p,) = _resolve_padding(padding if isinstance(padding, (int, str)) else padding[0],
                            (weight.shape[2],), (d,), (s,))
    _check_groups(x.shape[1], weight, groups)
    return apply(Conv1dFunction, LOWER, x, weight, bias, s, p, d, groups)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: int | Sequence[int] = 1, padding: int | str | Sequence[int] = 0,
           dilation: int | Sequence[int] = 1, groups: int = 1) -> torch.Tensor:
    """As ``torch.nn.functional.conv2d``: ``(N, C, H, W)`` (or unbatched ``(C, H, W)``)."""
    if x.dim() == 3:
        return conv2d(x.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    s, d = _pair(stride), _pair(dilation)
    (ph, pw) = _resolve_padding(padding if isinstance(padding, str) else _pair(padding),
                                tuple(weight.shape[2:]), d, s)
    _check_groups(x.shape[1], weight, groups)
    return apply(Conv2dFunction, LOWER, x, weight, bias, s, (ph[0], ph[1], pw[0], pw[1]), d, groups)


def conv_transpose1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                     output_padding: int | Sequence[int] = 0, groups: int = 1,
                     dilation: int | Sequence[int] = 1) -> torch.Tensor:
    """As ``torch.nn.functional.conv_transpose1d``: ``(N, C_in, T)`` -> ``(N, C_out, To)``."""
    if x.dim() == 2:
        return conv_transpose1d(x.unsqueeze(0), weight, bias, stride, padding, output_padding,
                                groups, dilation).squeeze(0)
    if x.shape[1] != weight.shape[0]:
        raise RuntimeError(f"expected input with {weight.shape[0]} channels, got {x.shape[1]}")
    return apply(ConvTranspose1dFunction, LOWER, x, weight, bias, _pair(stride)[0], _pair(padding)[0],
                 _pair(output_padding)[0], _pair(dilation)[0], groups)


def conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                     output_padding: int | Sequence[int] = 0, groups: int = 1,
                     dilation: int | Sequence[int] = 1) -> torch.Tensor:
    """As ``torch.nn.functional.conv_transpose2d``: ``(N, C_in, H, W)`` -> ``(N, C_out, Ho, Wo)``."""
    if x.dim() == 3:
        return conv_transpose2d(x.unsqueeze(0), weight, bias, stride, padding, output_padding,
                                groups, dilation).squeeze(0)
    if x.shape[1] != weight.shape[0]:
        raise RuntimeError(f"expected input with {weight.shape[0]} channels, got {x.shape[1]}")
    return apply(ConvTranspose2dFunction, LOWER, x, weight, bias, _pair(stride), _pair(padding),
                 _pair(output_padding), _pair(dilation), groups)


def pad(x: torch.Tensor, pads: Sequence[int], mode: str = "zeros") -> torch.Tensor:
    """Pad the trailing dims (``pads`` ordered as ``torch.nn.functional.pad``) with
    ``mode`` in zeros / reflect / replicate / circular."""
    return apply(PadFunction, NONE, x, tuple(pads), mode)
