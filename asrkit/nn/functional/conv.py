"""Convolution kernels: Conv1d/2d and ConvTranspose1d/2d by im2col + matmul, and padding.

Convolution as a matrix product (im2col). For an input ``x (N, C, H, W)`` and
a weight ``W (O, C/G, kh, kw)`` in ``G`` groups, zero-pad ``x`` to ``xp``, then
gather every receptive field into a column::

    cols[n, g, (c, i, j), (ho, wo)] = xp[n, g*Cg + c, ho*sh + i*dh, wo*sw + j*dw]
                                                      # (N, G, Cg*kh*kw, Ho*Wo)

(one ``as_strided`` view of ``xp``, copied once into a reused workspace; no
Python loop over positions). Then, per group, with ``Wg (Og, Cg*kh*kw)``::

    y[n, g] = Wg @ cols[n, g] + b                     # (N, G, Og, Ho*Wo)

Backward with ``gy = dL/dy`` in the same layout::

    dL/dWg    = sum_n gy[n, g] @ cols[n, g]^T         # (G, Og, Cg*kh*kw)
    dL/dcols  = Wg^T @ gy[n, g]                       # (N, G, Cg*kh*kw, Ho*Wo)
    dL/dx     = col2im(dL/dcols)                      # add every column entry back to the
                                                      # pixel it came from (padding dropped)
    dL/db     = sum over n, ho, wo of gy

Every item ``n`` only meets its own columns, so on the CPU the three
products run over the batch a few items at a time, each chunk's columns
staying in the cache between im2col/col2im and the matrix product (see
"working in batch chunks" below); the maths is the same as for the whole
batch at once.

A transposed convolution is the adjoint of a convolution: its forward is the
convolution's input gradient (``col2im(W^T @ x)``) and its input gradient is
the convolution's forward applied to ``gy``. 1-D ops run the 2-D code with
``H = 1``.
"""
from __future__ import annotations

import functools
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


# ---------------------------------------------------------------- working in batch chunks
# The column matrix is the input times kh*kw: 115 MB for a (32, 32, 56, 56)
# input and a 3x3 kernel. Built for the whole batch at once it is written to
# main memory by im2col and read back from there by the matrix product, and
# allocating it fresh on every call costs page faults on top. So on the CPU
# each kernel walks the batch in chunks of a few items whose columns (a few
# MB) stay in the cache between the copy that writes them and the product
# that reads them, in a reused per-thread ``workspace``. The arithmetic is
# the same as for the whole batch: every item's columns only meet that
# item's output. The backward rebuilds the columns from the saved input
# (one cheap copy per chunk) instead of keeping them alive, as cuDNN and
# oneDNN do with their workspaces. Nothing returned or saved aliases a
# workspace. On a GPU, where a few large launches beat many small ones, the
# whole batch is one chunk.

_CHUNK_BYTES = 4 << 20                    # column bytes per chunk on the CPU


def _chunks(n: int, item_numel: int, t: torch.Tensor) -> list[slice]:
    """Split a batch of ``n`` items into about equal slices whose columns
    (``item_numel`` elements each) fill at most ``_CHUNK_BYTES`` (at least one item)."""
    if t.device.type != "cpu" or n == 0:
        return [slice(0, n)]
    per_chunk = max(1, _CHUNK_BYTES // max(1, item_numel * t.element_size()))
    n_chunks = -(-n // per_chunk)                                   # ceil(n / per_chunk)
    size = -(-n // n_chunks)                                        # balanced chunk size
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


# ---------------------------------------------------------------- im2col / col2im
# The columns of a chunk of n items are laid out item-major, ``(n, G, K, L)``
# (``K = Cg*kh*kw`` rows, ``L = Ho*Wo`` positions per item), so the product
# ``Wg (Og, K) @ cols[i, g] (K, L)`` writes each item's output straight into
# its own ``(Og, L)`` block of ``y (N, O, Ho, Wo)`` and the backward reads
# ``gy`` in place: no permuting copy of the outputs or their gradients. This
# path serves the large maps (few channels per position: in the face ResNet
# the stem, the 32x32 and 16x16 stages and the 1x1 shortcut onto 8x8), where
# ``L`` is long enough (64-1024) for a product per item to run as fast as one
# over the whole chunk; small maps with many channels take the channels-last
# path below.

def _im2col(xp: torch.Tensor, groups: int, kernel: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int], out_hw: tuple[int, int]) -> torch.Tensor:
    """``xp (n, C, Hp, Wp)`` (padded) -> ``cols (n, G, Cg*kh*kw, Ho*Wo)`` in the workspace (one copy);
    a 1x1 kernel that visits every pixel reads ``xp`` itself: its columns are the input."""
    n, c = xp.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    cg = c // groups
    if (kh, kw, sh, sw) == (1, 1, 1, 1) and tuple(xp.shape[2:]) == (ho, wo) and xp.is_contiguous():
        return xp.view(n, groups, cg, ho * wo)                      # (n, G, K, L), no copy
    sn, sc, sy, sx = xp.stride()
    view = xp.as_strided(                                           # no copy: a window view
        (n, groups, cg, kh, kw, ho, wo), (sn, sc * cg, sc, dh * sy, dw * sx, sh * sy, sw * sx),
        xp.storage_offset())                                        # (n, G, Cg, kh, kw, Ho, Wo)
    cols = workspace(view.numel(), xp.dtype, xp.device).view(view.shape)
    cols.copy_(view)
    return cols.view(n, groups, cg * kh * kw, ho * wo)              # (n, G, K, L)


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


def _col2im_taps(in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                 dilation: tuple[int, int], pad: Pad4, out_hw: tuple[int, int]
                 ) -> tuple[list[tuple[int, int, slice, slice, slice, slice]], bool]:
    """col2im, the adjoint of :func:`_im2col`, planned once for a whole call.

    Every column entry goes back (is added) to the input pixel it was copied
    from; entries that came from the zero padding are dropped. For each kernel
    tap ``(i, j)`` that lands inside the input this is one strided add
    covering all positions of all items at once::

        gx[:, :, rows_in, cols_in] += cols[:, :, i, j, rows_out, cols_out]

    Returns those taps ``(i, j, rows_in, cols_in, rows_out, cols_out)`` and
    whether the first tap reaches every pixel (the centre tap of a stride-1
    "same" convolution): it is then copied instead of added onto zeros. Run
    with :func:`_col2im`.
    """
    (h, w), (kh, kw), (ho, wo) = in_hw, kernel, out_hw
    taps, covers_all = [], False
    for i in range(kh):
        rows = _tap_range(i, dilation[0], stride[0], pad[0], h, ho)
        for j in range(kw):
            cs = _tap_range(j, dilation[1], stride[1], pad[2], w, wo)
            if rows is None or cs is None:
                continue
            tap = (i, j, rows[1], cs[1], rows[0], cs[0])
            if not covers_all and (rows[1].indices(h), cs[1].indices(w)) == ((0, h, 1), (0, w, 1)):
                taps.insert(0, tap)
                covers_all = True
            else:
                taps.append(tap)
    return taps, covers_all


def _col2im(plan: tuple[list[tuple[int, int, slice, slice, slice, slice]], bool], cols: torch.Tensor,
            gx: torch.Tensor, kernel: tuple[int, int], out_hw: tuple[int, int]) -> None:
    """Write ``gx (n, C, H, W)`` (a chunk's slice) from its columns ``cols (n, G, K, L)`` by the
    taps of :func:`_col2im_taps`."""
    taps, covers_all = plan
    n, c = gx.shape[:2]
    c6 = cols.view(n, c, kernel[0], kernel[1], out_hw[0], out_hw[1])   # (n, C, kh, kw, Ho, Wo)
    if not covers_all:
        gx.zero_()
    for t, (i, j, rows_in, cols_in, rows_out, cols_out) in enumerate(taps):
        pixels = gx[:, :, rows_in, cols_in]                             # (n, C, rows, cols)
        entries = c6[:, :, i, j, rows_out, cols_out]                    # (n, C, rows, cols)
        if t == 0 and covers_all:
            pixels.copy_(entries)
        else:
            pixels.add_(entries)


def _pad4(x: torch.Tensor, pad: Pad4) -> torch.Tensor:
    """``x (n, C, H, W)`` zero-padded to ``(n, C, H + top + bottom, W + left + right)`` in
    workspace slot 2 (one copy of ``x``, only the padding frame zeroed); ``x`` itself when
    there is no padding."""
    if not any(pad):
        return x
    top, bottom, left, right = pad
    n, c, h, w = x.shape
    xp = workspace(n * c * (h + top + bottom) * (w + left + right), x.dtype, x.device, slot=2)
    xp = xp.view(n, c, h + top + bottom, w + left + right)
    _zero_border(xp, (top, top + h), (left, left + w))
    xp[:, :, top:top + h, left:left + w].copy_(x)
    return xp


def _zero_border(xp: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> None:
    """Zero ``xp (n, C, Hp, Wp)`` outside ``[rows) x [cols)``: the padding frame only, the
    interior is about to be written."""
    hp, wp = xp.shape[2:]
    if rows[0] > 0:
        xp[:, :, :rows[0]].zero_()
    if rows[1] < hp:
        xp[:, :, rows[1]:].zero_()
    if cols[0] > 0:
        xp[:, :, rows[0]:rows[1], :cols[0]].zero_()
    if cols[1] < wp:
        xp[:, :, rows[0]:rows[1], cols[1]:].zero_()


def _out_hw(in_hw, kernel, stride, pad: Pad4, dilation) -> tuple[int, int]:
    ho = conv_out_size(in_hw[0], kernel[0], stride[0], pad[0], pad[1], dilation[0])
    wo = conv_out_size(in_hw[1], kernel[1], stride[1], pad[2], pad[3], dilation[1])
    if ho <= 0 or wo <= 0:
        raise RuntimeError(f"convolution: input size {tuple(in_hw)} is too small for kernel "
                           f"{tuple(kernel)} with dilation {tuple(dilation)} and padding {pad}")
    return ho, wo


# ---------------------------------------------------------------- channels-last path
# With few positions per row (the 8x8 and 4x4 stages of a CNN) the window
# copies above move runs of ``Wo`` (4, 8) elements at a time, far below what a
# copy loop needs to be fast. When the channels far outnumber the row's
# positions (and groups = 1), the columns are built from a channels-last copy of the
# input instead, ``xh (n, H, W, C)``: every window entry is then a run of
# ``C`` contiguous channels, and the same maths reads
#
#     cols[(n, ho, wo), (i, j, c)] = x[n, ho*sh + i*dh - top, wo*sw + j*dw - left, c]   (n*L, K)
#     y    = cols @ W'^T                     W' = W as (O, kh, kw, C)        (n*L, O)
#     dL/dW' = gy^T @ cols,   dL/dcols = gy @ W'                             (O, K), (n*L, K)
#
# Border classes. On a 4x4 map a 3x3 "same" kernel has 100 of its 144
# position-tap pairs inside the image; the rest read the zero padding, and a
# product over padded columns spends 31% of its multiply-adds on those zeros
# (16% on 8x8, 8% on 16x16). So the output positions are split into classes
# that use the same taps: per dim, the first and last few positions (whose
# windows hang over the border) each form a run of their own, the interior
# one run (:func:`_tap_runs`); a class is a rectangle of rows x columns, and
# its columns hold only its in-range taps, ``K_c = ti*tj*C``. Every tap of a
# class lands inside the image, so the columns are a window view of the
# *unpadded* channels-last input (no padding copy), and the maths above runs
# per class with ``W'_c = W'[:, i0:i1, j0:j1, :]``:
#
#     y[:, :, class]          = cols_c @ W'_c^T
#     dL/dW'[:, i0:i1, j0:j1] += gy_c^T @ cols_c
#     dL/dcols_c              = gy_c @ W'_c      (then added back to the pixels, tap by tap)
#
# Positions whose window misses the image altogether (padding wider than the
# kernel's reach) are in no class: their output is the bias alone.

def _use_channels_last(cg: int, groups: int, wo: int, kernel: tuple[int, int]) -> bool:
    """Channels-last columns when a window row's channels are at least 8x its positions, 32x for
    a 1x1 kernel (measured on the face ResNet's layers: 3x3 kernels over 64-256 channels at 8x8
    and 4x4 gain, 64 at 16x16 and 32 at 32x32 run faster item-major; so does the 1x1 shortcut
    onto 8x8, not the one onto 4x4)."""
    return groups == 1 and cg >= max(16, (32 if tuple(kernel) == (1, 1) else 8) * wo)


Run = tuple[int, int, int, int]                   # (o0, o1, t0, t1): outputs [o0, o1) use taps [t0, t1)


@functools.lru_cache(maxsize=256)
def _tap_runs(size: int, k: int, s: int, lo: int, d: int, n_out: int) -> tuple[Run, ...]:
    """Output positions ``[o0, o1)`` grouped into runs whose in-range taps are the same
    ``[t0, t1)`` (tap ``t`` of output ``o`` reads input ``o*s + t*d - lo``, in range when in
    ``[0, size)``); ``t0 == t1`` for positions that read padding only."""
    runs: list[list[int]] = []
    for o in range(n_out):
        t0 = max(0, -((o * s - lo) // d))                               # ceil((lo - o*s) / d)
        t1 = min(k, (size - 1 + lo - o * s) // d + 1)
        if t1 <= t0:
            t0 = t1 = 0
        if runs and runs[-1][2:] == [t0, t1]:
            runs[-1][1] = o + 1
        else:
            runs.append([o, o + 1, t0, t1])
    return tuple(tuple(r) for r in runs)


def _classes(in_hw, kernel, stride, pad: Pad4, dilation, out_hw) -> tuple[list[tuple[Run, Run]], bool]:
    """The border classes (row run, column run) with at least one tap, and whether they
    cover every output position."""
    rows = _tap_runs(in_hw[0], kernel[0], stride[0], pad[0], dilation[0], out_hw[0])
    cols = _tap_runs(in_hw[1], kernel[1], stride[1], pad[2], dilation[1], out_hw[1])
    classes = [(r, c) for r in rows if r[3] > r[2] for c in cols if c[3] > c[2]]
    covers = all(r[3] > r[2] for r in rows) and all(c[3] > c[2] for c in cols)
    return classes, covers


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """``x (n, C, H, W)`` -> a channels-last copy ``(n, H, W, C)`` in workspace slot 2."""
    n, c, h, w = x.shape
    xh = workspace(x.numel(), x.dtype, x.device, slot=2).view(n, h, w, c)
    xh.copy_(x.permute(0, 2, 3, 1))
    return xh


def _im2col_class(xh: torch.Tensor, rows: Run, cols: Run, stride, dilation, pad: Pad4) -> torch.Tensor:
    """``xh (n, H, W, C)`` -> one class's columns ``(n*r*q, ti*tj*C)`` in workspace slot 0 (one
    copy of a window view; every tap of the class lies inside ``xh``)."""
    n, _, _, c = xh.shape
    sn, sy, sx, sc = xh.stride()
    (o0, o1, i0, i1), (p0, p1, j0, j1) = rows, cols
    y0 = o0 * stride[0] + i0 * dilation[0] - pad[0]                    # first window's top-left
    x0 = p0 * stride[1] + j0 * dilation[1] - pad[2]
    view = xh.as_strided((n, o1 - o0, p1 - p0, i1 - i0, j1 - j0, c),
                         (sn, stride[0] * sy, stride[1] * sx, dilation[0] * sy, dilation[1] * sx, sc),
                         xh.storage_offset() + y0 * sy + x0 * sx)       # (n, r, q, ti, tj, C)
    out = workspace(view.numel(), xh.dtype, xh.device).view(view.shape)
    out.copy_(view)
    return out.view(n * (o1 - o0) * (p1 - p0), -1)                      # (n*r*q, K_c)


def _w4(weight: torch.Tensor) -> torch.Tensor:
    """``weight (O, C, kh, kw)`` -> ``W' (O, kh, kw, C)``, contiguous (a view when it already is
    stored that way, as the flipped weight of the input gradient)."""
    return weight.permute(0, 2, 3, 1).contiguous()


def _tap_matrix(w4: torch.Tensor, rows: Run, cols: Run) -> torch.Tensor:
    """``W'_c = w4[:, i0:i1, j0:j1, :]`` as an ``(O, ti*tj*C)`` matrix: a view when the class
    uses whole kernel rows, else a copy (small: the weight, not the columns)."""
    sub = w4[:, rows[2]:rows[3], cols[2]:cols[3], :]                    # (O, ti, tj, C)
    return sub.reshape(sub.shape[0], -1)


def _rows_of(t: torch.Tensor, b: slice, rows: Run, cols: Run, slot: int) -> torch.Tensor:
    """A class's block ``t[b, o0:o1, p0:p1, :]`` of a channels-last ``t (N, Ho, Wo, D)`` as a
    matrix ``(n*r*q, D)``: a view when the block is contiguous, else a copy in ``slot``."""
    blk = t[b, rows[0]:rows[1], cols[0]:cols[1]]                       # (n, r, q, D)
    if blk.is_contiguous():
        return blk.view(-1, t.shape[3])
    out = workspace(blk.numel(), t.dtype, t.device, slot=slot).view(blk.shape)
    out.copy_(blk)
    return out.view(-1, t.shape[3])


def _fresh_nchw(t: torch.Tensor) -> torch.Tensor:
    """A channels-last workspace tensor ``(a, H, W, C)`` copied out as a new ``(a, C, H, W)``
    (never a view of the workspace, even where the permuted view would be contiguous)."""
    out = torch.empty(t.shape[0], t.shape[3], t.shape[1], t.shape[2], dtype=t.dtype, device=t.device)
    out.copy_(t.permute(0, 3, 1, 2))
    return out


def _conv2d_nhwc(x, weight, stride, pad: Pad4, dilation, bias, out_hw) -> torch.Tensor:
    """:func:`_conv2d` by channels-last columns (groups = 1), class by class."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho, wo = out_hw
    w4 = _w4(weight)                                                    # (O, kh, kw, C)
    classes, covers = _classes((h, w), (kh, kw), stride, pad, dilation, out_hw)
    xh = _nhwc(x)                                                       # (N, H, W, C)
    yh = workspace(n * ho * wo * o, x.dtype, x.device, slot=3).view(n, ho, wo, o)
    if not covers:
        yh.zero_()                                                      # positions in no class
    for rows, cols in classes:
        wk = _tap_matrix(w4, rows, cols)                                # (O, K_c)
        r, q = rows[1] - rows[0], cols[1] - cols[0]
        for b in _chunks(n, wk.shape[1] * r * q, x):
            m = b.stop - b.start
            cc = _im2col_class(xh[b], rows, cols, stride, dilation, pad)  # (n*r*q, K_c)
            blk = yh[b, rows[0]:rows[1], cols[0]:cols[1]]               # (n, r, q, O)
            if blk.is_contiguous():                                     # the product writes y itself
                torch.matmul(cc, wk.t(), out=blk.view(m * r * q, o))
            else:
                out = workspace(m * r * q * o, x.dtype, x.device, slot=1).view(m * r * q, o)
                torch.matmul(cc, wk.t(), out=out)                       # (n*r*q, O)
                blk.copy_(out.view(m, r, q, o))
    y = _fresh_nchw(yh)                                                 # (N, O, Ho, Wo)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)                                  # y is fresh: in place
    return y


def _conv2d_grads_nhwc(gy, x, weight, in_hw, stride, pad: Pad4, dilation, need_x, need_w, need_b):
    """:func:`_conv2d_grads` by channels-last columns (groups = 1), class by class."""
    n, o, ho, wo = gy.shape
    _, c, kh, kw = weight.shape
    h, w = in_hw
    classes, _ = _classes(in_hw, (kh, kw), stride, pad, dilation, (ho, wo))
    gyh = workspace(gy.numel(), gy.dtype, gy.device, slot=3).view(n, ho, wo, o)
    gyh.copy_(gy.permute(0, 2, 3, 1))                                   # (N, Ho, Wo, O)
    w4 = _w4(weight) if need_x else None                                # (O, kh, kw, C)
    gx = gw = gb = gxh = xh = None
    if need_x:                                                          # (N, H, W, C), every tap adds
        gxh = workspace(n * h * w * c, gy.dtype, gy.device, slot=4).view(n, h, w, c).zero_()
    if need_w:
        gw = workspace(o * kh * kw * c, gy.dtype, gy.device, slot=6).view(o, kh, kw, c).zero_()
        xh = _nhwc(x)                                                   # (N, H, W, C)
    for rows, cols in classes:
        (o0, o1, i0, i1), (p0, p1, j0, j1) = rows, cols
        r, q, ti, tj = o1 - o0, p1 - p0, i1 - i0, j1 - j0
        kc = ti * tj * c
        wk = _tap_matrix(w4, rows, cols) if need_x else None           # (O, K_c)
        for b in _chunks(n, kc * r * q, gy):
            m = b.stop - b.start
            g = _rows_of(gyh, b, rows, cols, slot=1)                    # (n*r*q, O)
            if need_x:
                gcols = workspace(m * r * q * kc, gy.dtype, gy.device).view(m * r * q, kc)
                torch.matmul(g, wk, out=gcols)                          # (n*r*q, K_c)
                c6 = gcols.view(m, r, q, ti, tj, c)
                for i in range(i0, i1):                                 # one strided add per tap
                    y0 = o0 * stride[0] + i * dilation[0] - pad[0]
                    for j in range(j0, j1):
                        x0 = p0 * stride[1] + j * dilation[1] - pad[2]
                        gxh[b, y0:y0 + (r - 1) * stride[0] + 1:stride[0],
                            x0:x0 + (q - 1) * stride[1] + 1:stride[1]] += c6[:, :, :, i - i0, j - j0]
            if need_w:
                # this chunk's columns (gcols is used up by now)
                cc = _im2col_class(xh[b], rows, cols, stride, dilation, pad)  # (n*r*q, K_c)
                if ti == kh and tj == kw:
                    gw.view(o, kc).addmm_(g.t(), cc)                    # (O, K)
                else:
                    part = workspace(o * kc, gy.dtype, gy.device, slot=5).view(o, kc)
                    torch.matmul(g.t(), cc, out=part)                   # (O, K_c)
                    gw[:, i0:i1, j0:j1, :] += part.view(o, ti, tj, c)
    if need_x:
        gx = _fresh_nchw(gxh)                                           # (N, C, H, W)
    if need_b:
        gb = gy.sum((0, 2, 3))                                          # (O,)
    if need_w:
        gw = _fresh_nchw(gw)                                            # (O, C, kh, kw)
    return gx, gw, gb


# ---------------------------------------------------------------- the three products

def _conv2d(x: torch.Tensor, weight: torch.Tensor, stride, pad: Pad4, dilation, groups,
            bias: torch.Tensor | None = None, out_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """``x (N, C, H, W)``, ``weight (O, Cg, kh, kw)``, ``bias (O,)`` -> ``y (N, O, Ho, Wo)``.

    ``out_hw`` keeps only the first ``Ho x Wo`` output positions (default: all).
    """
    n = x.shape[0]
    o, cg, kh, kw = weight.shape
    ho, wo = out_hw or _out_hw(x.shape[2:], (kh, kw), stride, pad, dilation)
    if _use_channels_last(cg, groups, wo, (kh, kw)):
        return _conv2d_nhwc(x, weight, stride, pad, dilation, bias, (ho, wo))
    wg = weight.reshape(groups, o // groups, cg * kh * kw)              # (G, Og, K)
    y = torch.empty(n, o, ho, wo, dtype=x.dtype, device=x.device)      # (N, O, Ho, Wo)
    y4 = y.view(n, groups, o // groups, ho * wo)                        # (N, G, Og, L)
    for b in _chunks(n, groups * cg * kh * kw * ho * wo, x):
        cols = _im2col(_pad4(x[b], pad), groups, (kh, kw), stride, dilation, (ho, wo))  # (n, G, K, L)
        torch.matmul(wg, cols, out=y4[b])                               # (n, G, Og, L): y itself
        if bias is not None:
            y[b] += bias.reshape(1, -1, 1, 1)                           # (n, O, Ho, Wo)
    return y


def _full_pad(in_hw, kernel, stride, pad: Pad4, dilation, out_hw) -> Pad4 | None:
    """The padding of gy that makes a stride-1 conv of gy (with the flipped kernel) give
    exactly ``in_hw``: ``d (k - 1) - p`` per side; None where that does not apply (a
    stride, a padding wider than the kernel's reach, or an output that is not ``in_hw``)."""
    if tuple(stride) != (1, 1):
        return None
    reach = (dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1))
    fpad = (reach[0] - pad[0], reach[0] - pad[1], reach[1] - pad[2], reach[1] - pad[3])
    if min(fpad) < 0:
        return None
    if (out_hw[0] + fpad[0] + fpad[1] - reach[0], out_hw[1] + fpad[2] + fpad[3] - reach[1]) != tuple(in_hw):
        return None
    return fpad


def _conv2d_grads(gy: torch.Tensor, x: torch.Tensor | None, weight: torch.Tensor,
                  in_hw: tuple[int, int], stride, pad: Pad4, dilation, groups,
                  need_x: bool = True, need_w: bool = True, need_b: bool = False
                  ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients of ``y = conv(x, W) + b`` from ``gy (N, O, Ho, Wo)``, one batch chunk at a time
    (each chunk of ``gy`` is read once, for all of them): ``dL/dx (N, C, H, W)`` (the
    transposed conv's forward too) if ``need_x``, ``dL/dW (O, Cg, kh, kw)`` (needs ``x``)
    if ``need_w``, ``dL/db (O,)`` if ``need_b``."""
    gy = gy.contiguous()
    n, o, ho, wo = gy.shape
    _, cg, kh, kw = weight.shape
    k = cg * kh * kw
    og = o // groups
    if need_x and groups == 1 and _full_pad(in_hw, (kh, kw), stride, pad, dilation, (ho, wo)) is not None:
        # stride 1: dL/dx is the "full" correlation of gy with W flipped and transposed,
        # one more forward conv (its columns are built from gy's O channels) in place of the
        # column product and the kh*kw strided adds of col2im (~5% of a 32x32 layer's backward)
        fpad = _full_pad(in_hw, (kh, kw), stride, pad, dilation, (ho, wo))
        # W flipped and transposed, (C, O, kh, kw), stored channels-last (C, kh, kw, O) as the
        # channels-last columns read it: the kh*kw taps in reverse order, one gather of the
        # weight (torch.flip is ~10x slower on a 256x256x3x3 weight)
        rev = torch.arange(kh * kw - 1, -1, -1, device=weight.device)
        wf = (weight.reshape(o, cg * kh * kw).t().contiguous()         # (C*kh*kw, O)
              .view(cg, kh * kw, o).index_select(1, rev)
              .view(cg, kh, kw, o).permute(0, 3, 1, 2))                # (C, O, kh, kw)
        gx = _conv2d(gy, wf, (1, 1), fpad, dilation, 1)                 # (N, C, H, W)
        _, gw, gb = _conv2d_grads(gy, x, weight, in_hw, stride, pad, dilation, groups, False, need_w, need_b)
        return gx, gw, gb
    if _use_channels_last(cg, groups, wo, (kh, kw)):
        return _conv2d_grads_nhwc(gy, x, weight, in_hw, stride, pad, dilation, need_x, need_w, need_b)
    wgt = weight.reshape(groups, og, k).transpose(1, 2)                 # (G, K, Og)
    g4 = gy.view(n, groups, og, ho * wo)                                # (N, G, Og, L)
    chunks = _chunks(n, groups * k * ho * wo, gy)
    gx = gw = gb = None
    if need_x:
        gx = torch.empty(n, groups * cg, in_hw[0], in_hw[1], dtype=gy.dtype, device=gy.device)
        plan = _col2im_taps(in_hw, (kh, kw), stride, dilation, pad, (ho, wo))
    if need_w:
        gw = torch.zeros(groups, og, k, dtype=gy.dtype, device=gy.device)   # (G, Og, K)
    if need_b:
        gb = torch.zeros(groups, og, dtype=gy.dtype, device=gy.device)    # (G, Og)
    for b in chunks:
        m = b.stop - b.start
        g = g4[b]                                                       # (n, G, Og, L), gy in place
        if need_x:
            # dL/dcols = W^T gy, then every column entry goes back to its pixel
            gcols = workspace(m * groups * k * ho * wo, gy.dtype, gy.device).view(m, groups, k, ho * wo)
            torch.matmul(wgt, g, out=gcols)                             # (n, G, K, L)
            _col2im(plan, gcols, gx[b], (kh, kw), (ho, wo))             # gx[b] (n, C, H, W)
        if need_w:
            # rebuild this chunk's columns (cheaper than keeping them) and correlate with gy,
            # summed over the chunk's items; they take the same workspace, gcols is used up
            cols = _im2col(_pad4(x[b], pad), groups, (kh, kw), stride, dilation, (ho, wo))  # (n, G, K, L)
            part = workspace(m * o * k, gy.dtype, gy.device, slot=1).view(m, groups, og, k)
            torch.matmul(g, cols.transpose(2, 3), out=part)             # (n, G, Og, K), per item
            gw += part.sum(0)                                           # (G, Og, K)
        if need_b:
            gb += g.sum((0, 3))                                         # (G, Og): over items, positions
    return (gx, gw.reshape(weight.shape) if gw is not None else None,  # (O, Cg, kh, kw)
            gb.reshape(o) if gb is not None else None)                  # (O,)


# ---------------------------------------------------------------- conv2d

def conv2d_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   stride: tuple[int, int], pad: Pad4, dilation: tuple[int, int],
                   groups: int) -> tuple[torch.Tensor, tuple]:
    """``x (N, C, H, W)``, ``weight (O, C/G, kh, kw)``, ``bias (O,)`` -> ``(N, O, Ho, Wo)``."""
    y = _conv2d(x, weight, stride, pad, dilation, groups, bias)        # (N, O, Ho, Wo)
    return y, (x, weight, bias is not None, stride, pad, dilation, groups)


def conv2d_backward(gy: torch.Tensor, cache: tuple, needs: tuple = (True,) * 3) -> tuple:
    x, weight, has_bias, stride, pad, dilation, groups = cache
    gy = gy.contiguous()
    return _conv2d_grads(gy, x, weight, tuple(x.shape[2:]), stride, pad, dilation, groups,
                         need_x=needs[0], need_w=needs[1],
                         need_b=has_bias and needs[2])                  # (N, C, H, W), (O, Cg, kh, kw), (O,)


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
    y, _, _ = _conv2d_grads(x, None, weight, out_hw, stride, pad, dilation, groups,
                            need_w=False)                               # (N, C_out, Ho, Wo)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)                                  # y is fresh: add in place
    return y, (x, weight, bias is not None, stride, pad, dilation, groups)


def conv_transpose2d_backward(gy: torch.Tensor, cache: tuple, needs: tuple = (True,) * 3) -> tuple:
    x, weight, has_bias, stride, pad, dilation, groups = cache
    gy = gy.contiguous()
    gx = gw = gb = None
    if needs[1]:
        # dL/dW[c_in, c_out] = sum x[c_in] * cols(gy)[c_out]: the conv weight gradient, roles swapped
        _, gw, _ = _conv2d_grads(x, gy, weight, tuple(gy.shape[2:]), stride, pad, dilation,
                                 groups, need_x=False)                  # (C_in, C_out/G, kh, kw)
    if needs[0]:
        # dL/dx = conv(gy, W): the forward of the conv this op is the adjoint of, its first
        # H x W outputs (output_padding rows/cols of y have no input position behind them)
        gx = _conv2d(gy, weight, stride, pad, dilation, groups,
                     out_hw=tuple(x.shape[2:]))                         # (N, C_in, H, W)
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
