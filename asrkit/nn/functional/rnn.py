"""Recurrent layers: forward and backpropagation through time (BPTT) by hand.

One kernel pair per cell type runs a whole layer in one direction:

* ``rnn_layer_forward / rnn_layer_backward``   (Elman RNN, tanh or relu)
* ``gru_layer_forward / gru_layer_backward``   (gates stacked r, z, n)
* ``lstm_layer_forward / lstm_layer_backward`` (gates stacked i, f, g, o; optional projection)

Conventions shared by the three:

* ``x`` is time-major ``(T, B, I)``. Sequences are sorted by length, longest
  first, and ``batch_sizes[t]`` is how many of them are still running at step
  ``t`` (exactly the ``batch_sizes`` of a ``PackedSequence``; ``None`` means all
  ``B`` at every step). At step ``t`` only rows ``[:batch_sizes[t]]`` are
  updated, so a finished sequence keeps its last state (that is its ``h_n``)
  and its outputs past its end stay zero.
* ``reverse=True`` runs the layer backwards in time. Each sequence is first
  reversed *within its own length* (``rev_index``), so the backward direction
  starts at each sequence's own last frame, exactly as torch's packed layers
  do; the output is reversed back the same way.
* The input projection ``x @ W_ih^T`` is one matmul over all ``T * B`` frames;
  only the recurrent ``h @ W_hh^T`` runs step by step. Every per-step result is
  written with ``out=`` into a preallocated ``(T, B, ...)`` buffer, and the
  backward writes the per-step gate gradients into one ``(T, B, G)`` buffer so
  that ``dW_ih``, ``dW_hh``, the biases and ``dx`` are again one matmul each
  after the time loop. Nothing in the backward indexes a tensor per step
  through autograd (that would cost O(T^2) memory traffic).
* Local derivatives of the nonlinearities are computed for all steps at once
  after the forward loop, so each backward step is a handful of fused ops.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from asrkit.nn.functional._autograd import LOWER, apply, load_cache, save_cache

__all__ = [
    "reverse_padded",
    "reverse_index",
    "rnn_layer_forward",
    "rnn_layer_backward",
    "gru_layer_forward",
    "gru_layer_backward",
    "lstm_layer_forward",
    "lstm_layer_backward",
    "RNNLayerFunction",
    "GRULayerFunction",
    "LSTMLayerFunction",
    "rnn_layer",
    "gru_layer",
    "lstm_layer",
    "packed_mask",
]


# ----------------------------------------------------------------------------
# helpers: per-sequence time reversal, batch sizes
# ----------------------------------------------------------------------------


def reverse_index(batch_sizes: Sequence[int], device: torch.device | str = "cpu") -> Tensor:
    """``(T, B)`` time indices that reverse each sequence within its own length.

    Row ``b`` runs for ``len_b = #{t : batch_sizes[t] > b}`` steps; entry
    ``[t, b]`` is ``len_b - 1 - t`` for ``t < len_b`` and ``t`` past the end.
    The map is its own inverse (and its own transpose), so the same gather
    reverses outputs back and carries gradients.
    """
    T, B = len(batch_sizes), int(batch_sizes[0])
    bs = torch.as_tensor(list(batch_sizes), dtype=torch.long)  # (T,)
    lengths = (bs[:, None] > torch.arange(B)[None, :]).sum(0)  # (B,)
    t = torch.arange(T)[:, None].expand(T, B)  # (T, B)
    idx = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B)
    return idx.to(device)


def reverse_padded(x: Tensor, rev_index: Optional[Tensor]) -> Tensor:
    """Reverse ``x (T, B, ...)`` in time, each sequence within its length.

    ``rev_index=None`` means all sequences are full length: a plain flip.
    """
    if rev_index is None:
        return x.flip(0)
    idx = rev_index.reshape(rev_index.shape + (1,) * (x.dim() - 2)).expand_as(x)
    return x.gather(0, idx)


def _sizes(batch_sizes: Optional[Sequence[int]], T: int, B: int) -> list[int]:
    return [B] * T if batch_sizes is None else [int(n) for n in batch_sizes]


def _final_state(Y: Tensor, sizes: list[int]) -> Tensor:
    """The state each sequence had at its own last step: ``(B, H)`` from ``Y (T, B, H)``."""
    T = len(sizes)
    if sizes[-1] == Y.shape[1]:
        return Y[T - 1].clone()
    out = torch.empty_like(Y[0])
    nxt = 0
    for t in range(T - 1, -1, -1):  # rows [sizes[t+1], sizes[t]) end at step t
        if sizes[t] > nxt:
            out[nxt : sizes[t]] = Y[t, nxt : sizes[t]]
            nxt = sizes[t]
    return out


def _shift_prev(h0: Tensor, Y: Tensor) -> Tensor:
    """``Hprev (T, B, H)``: the state each step started from (``h0`` then ``Y[:-1]``).

    For a row still running at step ``t`` it also ran at ``t - 1`` (sorted
    batches), so ``Y[t-1]`` is its previous state; rows not running get a zero
    gate gradient, so their entries never matter.
    """
    return torch.cat([h0.unsqueeze(0), Y[:-1]], 0)


def _input_projection(x: Tensor, w_ih: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``x (T, B, I) @ w_ih^T (I, G) + bias`` as one matmul over all frames -> ``(T, B, G)``."""
    T, B, I = x.shape
    x2 = x.reshape(T * B, I)
    if bias is None:
        out = torch.mm(x2, w_ih.t())
    else:
        out = torch.addmm(bias, x2, w_ih.t())
    return out.view(T, B, -1)


def _weight_grads(dG: Tensor, x: Tensor, hprev: Tensor, w_ih: Tensor, need_x: bool):
    """After BPTT: ``dx``, ``dW_ih``, ``dW_hh``, ``db`` from the gate gradients ``dG (T, B, G)``."""
    T, B, G = dG.shape
    dG2 = dG.view(T * B, G)  # (T*B, G)
    dx = torch.mm(dG2, w_ih).view(T, B, -1) if need_x else None  # (T, B, I)
    dw_ih = torch.mm(dG2.t(), x.reshape(T * B, -1))  # (G, I)
    dw_hh = torch.mm(dG2.t(), hprev.reshape(T * B, -1))  # (G, H)
    db = dG2.sum(0)  # (G,)
    return dx, dw_ih, dw_hh, db


# ----------------------------------------------------------------------------
# Elman RNN:  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
# ----------------------------------------------------------------------------


def rnn_layer_forward(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    nonlinearity: str = "tanh",
    batch_sizes: Optional[Sequence[int]] = None,
):
    """One direction of an Elman RNN layer.

    x (T, B, I), h0 (B, H), w_ih (H, I), w_hh (H, H), biases (H,).
    Returns ``(Y (T, B, H), h_n (B, H)), cache``.
    """
    T, B, _ = x.shape
    H = w_hh.shape[0]
    sizes = _sizes(batch_sizes, T, B)
    bias = None if b_ih is None else b_ih + b_hh
    XG = _input_projection(x, w_ih, bias)  # (T, B, H) pre-activations from the input
    Y = x.new_zeros(T, B, H) if sizes[-1] < B else x.new_empty(T, B, H)
    act = torch.tanh_ if nonlinearity == "tanh" else torch.relu_
    w_hhT = w_hh.t()
    h = h0
    for t in range(T):
        n = sizes[t]
        y = Y[t, :n]  # (n, H)
        torch.addmm(XG[t, :n], h[:n], w_hhT, out=y)  # pre-activation
        act(y)
        h = Y[t]
    # local derivative of the nonlinearity for all steps at once
    D = 1.0 - Y * Y if nonlinearity == "tanh" else (Y > 0).to(Y.dtype)  # (T, B, H)
    cache = (x, h0, w_ih, w_hh, b_ih is not None, sizes, D, _shift_prev(h0, Y))
    return (Y, _final_state(Y, sizes)), cache


def rnn_layer_backward(dY: Optional[Tensor], dh_n: Optional[Tensor], cache, need_x: bool = True):
    """BPTT for :func:`rnn_layer_forward`: returns ``dx, dh0, dW_ih, dW_hh, db_ih, db_hh``."""
    x, h0, w_ih, w_hh, has_bias, sizes, D, hprev = cache
    T, B, H = D.shape
    dh = torch.zeros_like(h0) if dh_n is None else dh_n.clone()  # (B, H) running grad of h
    dP = D.new_zeros(T, B, H) if sizes[-1] < B else D.new_empty(T, B, H)  # pre-activation grads
    for t in range(T - 1, -1, -1):
        n = sizes[t]
        dh_t = dh[:n]
        if dY is not None:
            dh_t += dY[t, :n]
        dp = dP[t, :n]
        torch.mul(dh_t, D[t, :n], out=dp)  # through the nonlinearity
        torch.mm(dp, w_hh, out=dh_t)  # into h_{t-1}
    dx, dw_ih, dw_hh, db = _weight_grads(dP, x, hprev, w_ih, need_x)
    return dx, dh, dw_ih, dw_hh, (db if has_bias else None), (db if has_bias else None)


# ----------------------------------------------------------------------------
# GRU (torch's formulation, gates stacked r, z, n):
#   r = s(W_ir x + b_ir + W_hr h + b_hr)
#   z = s(W_iz x + b_iz + W_hz h + b_hz)
#   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
#   h' = (1 - z) * n + z * h
# ----------------------------------------------------------------------------


def gru_layer_forward(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    batch_sizes: Optional[Sequence[int]] = None,
):
    """One direction of a GRU layer. x (T, B, I), h0 (B, H), w_ih (3H, I), w_hh (3H, H).

    Returns ``(Y (T, B, H), h_n (B, H)), cache``.
    """
    T, B, _ = x.shape
    H = w_hh.shape[1]
    sizes = _sizes(batch_sizes, T, B)
    XG = _input_projection(x, w_ih, b_ih)  # (T, B, 3H)
    varlen = sizes[-1] < B
    Y = x.new_zeros(T, B, H) if varlen else x.new_empty(T, B, H)
    GH = x.new_zeros(T, B, 3 * H) if varlen else x.new_empty(T, B, 3 * H)  # W_hh h + b_hh
    RZ = x.new_zeros(T, B, 2 * H) if varlen else x.new_empty(T, B, 2 * H)  # gates r, z
    N = x.new_zeros(T, B, H) if varlen else x.new_empty(T, B, H)  # candidate n
    w_hhT = w_hh.t()
    h = h0
    for t in range(T):
        n = sizes[t]
        hp = h[:n]
        gh = GH[t, :n]
        if b_hh is None:
            torch.mm(hp, w_hhT, out=gh)
        else:
            torch.addmm(b_hh, hp, w_hhT, out=gh)
        rz = RZ[t, :n]
        torch.add(XG[t, :n, : 2 * H], gh[:, : 2 * H], out=rz).sigmoid_()
        nn_ = N[t, :n]
        torch.addcmul(XG[t, :n, 2 * H :], rz[:, :H], gh[:, 2 * H :], out=nn_).tanh_()
        torch.lerp(nn_, hp, rz[:, H:], out=Y[t, :n])  # n + z * (h - n)
        h = Y[t]
    hprev = _shift_prev(h0, Y)  # (T, B, H)
    r, z = RZ[..., :H], RZ[..., H:]
    # local derivatives, all steps at once
    Dn = (1.0 - z) * (1.0 - N * N)  # dh -> d(n pre-activation)
    Dz = (hprev - N) * z * (1.0 - z)  # dh -> d(z pre-activation)
    Dr = GH[..., 2 * H :] * r * (1.0 - r)  # d(n pre) -> d(r pre)
    cache = (x, h0, w_ih, w_hh, b_ih is not None, sizes, z, r, Dn, Dz, Dr, hprev)
    return (Y, _final_state(Y, sizes)), cache


def gru_layer_backward(dY: Optional[Tensor], dh_n: Optional[Tensor], cache, need_x: bool = True):
    """BPTT for :func:`gru_layer_forward`: returns ``dx, dh0, dW_ih, dW_hh, db_ih, db_hh``."""
    x, h0, w_ih, w_hh, has_bias, sizes, z, r, Dn, Dz, Dr, hprev = cache
    T, B, H = Dn.shape
    varlen = sizes[-1] < B
    dh = torch.zeros_like(h0) if dh_n is None else dh_n.clone()  # (B, H)
    # gradients of the recurrent pre-activations W_hh h + b_hh: [dr, dz, dn * r]
    dGH = Dn.new_zeros(T, B, 3 * H) if varlen else Dn.new_empty(T, B, 3 * H)
    dNi = Dn.new_zeros(T, B, H) if varlen else Dn.new_empty(T, B, H)  # grad of n's input part
    tmp = torch.empty_like(h0)
    for t in range(T - 1, -1, -1):
        n = sizes[t]
        dh_t = dh[:n]
        if dY is not None:
            dh_t += dY[t, :n]
        g = dGH[t, :n]
        dn = dNi[t, :n]
        torch.mul(dh_t, Dn[t, :n], out=dn)  # d n_pre
        torch.mul(dh_t, Dz[t, :n], out=g[:, H : 2 * H])  # d z_pre
        torch.mul(dn, Dr[t, :n], out=g[:, :H])  # d r_pre
        torch.mul(dn, r[t, :n], out=g[:, 2 * H :])  # d (W_hn h + b_hn)
        zh = tmp[:n]
        torch.mul(dh_t, z[t, :n], out=zh)  # direct path h_{t-1} -> h_t
        torch.addmm(zh, g, w_hh, out=dh_t)
    dXG = torch.cat([dGH[..., : 2 * H], dNi], 2)  # (T, B, 3H)
    T_, B_, G = dXG.shape
    dx = torch.mm(dXG.view(T * B, G), w_ih).view(T, B, -1) if need_x else None
    dw_ih = torch.mm(dXG.view(T * B, G).t(), x.reshape(T * B, -1))
    dw_hh = torch.mm(dGH.view(T * B, G).t(), hprev.reshape(T * B, -1))
    db_ih = dXG.sum((0, 1)) if has_bias else None
    db_hh = dGH.sum((0, 1)) if has_bias else None
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


# ----------------------------------------------------------------------------
# LSTM (gates stacked i, f, g, o), optional projection h = W_hr (o * tanh(c)):
#   i, f, o = s(.)   g = tanh(.)   c' = f * c + i * g   h' = o * tanh(c')
# ----------------------------------------------------------------------------


def lstm_layer_forward(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    w_hr: Optional[Tensor] = None,
    batch_sizes: Optional[Sequence[int]] = None,
):
    """One direction of an LSTM layer.

    x (T, B, I), h0 (B, P), c0 (B, H), w_ih (4H, I), w_hh (4H, P), w_hr (P, H)
    or None (then P = H). Returns ``(Y (T, B, P), h_n (B, P), c_n (B, H)), cache``.
    """
    T, B, _ = x.shape
    H = c0.shape[-1]
    P = h0.shape[-1]
    sizes = _sizes(batch_sizes, T, B)
    varlen = sizes[-1] < B
    bias = None if b_ih is None else b_ih + b_hh
    XG = _input_projection(x, w_ih, bias)  # (T, B, 4H)
    new = x.new_zeros if varlen else x.new_empty
    G = new(T, B, 4 * H)  # activated gates i, f, g, o
    C = new(T, B, H)  # cell states
    TC = new(T, B, H)  # tanh(c)
    Y = x.new_zeros(T, B, P) if varlen else x.new_empty(T, B, P)  # outputs h
    R = new(T, B, H) if w_hr is not None else Y  # o * tanh(c) before the projection
    w_hhT = w_hh.t()
    w_hrT = w_hr.t() if w_hr is not None else None
    h, c = h0, c0
    for t in range(T):
        n = sizes[t]
        g = G[t, :n]
        torch.addmm(XG[t, :n], h[:n], w_hhT, out=g)  # (n, 4H) pre-activations
        g[:, : 2 * H].sigmoid_()  # i, f
        g[:, 2 * H : 3 * H].tanh_()  # g
        g[:, 3 * H :].sigmoid_()  # o
        ct = C[t, :n]
        torch.mul(g[:, H : 2 * H], c[:n], out=ct)  # f * c
        ct.addcmul_(g[:, :H], g[:, 2 * H : 3 * H])  # + i * g
        tc = TC[t, :n]
        torch.tanh(ct, out=tc)
        torch.mul(g[:, 3 * H :], tc, out=R[t, :n])  # o * tanh(c)
        if w_hr is not None:
            torch.mm(R[t, :n], w_hrT, out=Y[t, :n])  # (n, P)
        h, c = Y[t], C[t]
    h_n, c_n = _final_state(Y, sizes), _final_state(C, sizes)
    # local derivatives for all steps at once. With dc the cell-state grad and
    # dr the grad of o * tanh(c):
    #   d i_pre = dc * g * i(1-i)      d f_pre = dc * c_prev * f(1-f)
    #   d g_pre = dc * i * (1-g^2)     d o_pre = dr * tanh(c) * o(1-o)
    #   dc += dr * o * (1 - tanh(c)^2) dc_prev = dc * f
    cprev = _shift_prev(c0, C)  # (T, B, H)
    i_, f_, g_, o_ = G.view(T, B, 4, H).unbind(2)  # (T, B, H) views
    M = torch.empty(T, B, 4, H, dtype=G.dtype, device=G.device)  # (T, B, 4, H), written in place
    for k, (s, other) in enumerate(((i_, g_), (f_, cprev), (None, i_), (o_, TC))):
        m = M[:, :, k]
        if s is None:  # tanh gate g: 1 - g^2
            torch.mul(g_, g_, out=m).neg_().add_(1.0)
        else:  # sigmoid gates: s - s^2 = s (1 - s)
            torch.mul(s, s, out=m)
            torch.sub(s, m, out=m)
        m.mul_(other)
    Q = torch.mul(TC, TC).neg_().add_(1.0).mul_(o_)  # (T, B, H): o (1 - tanh(c)^2)
    F = f_  # forget gate (strided view of G)
    hprev = _shift_prev(h0, Y)  # (T, B, P)
    cache = (x, h0, c0, w_ih, w_hh, w_hr, b_ih is not None, sizes, M, Q, F, hprev, R if w_hr is not None else None)
    return (Y, h_n, c_n), cache


def lstm_layer_backward(
    dY: Optional[Tensor], dh_n: Optional[Tensor], dc_n: Optional[Tensor], cache, need_x: bool = True
):
    """BPTT for :func:`lstm_layer_forward`.

    Returns ``dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr``.
    """
    x, h0, c0, w_ih, w_hh, w_hr, has_bias, sizes, M, Q, F, hprev, R = cache
    T, B, _, H = M.shape
    varlen = sizes[-1] < B
    dh = torch.zeros_like(h0) if dh_n is None else dh_n.clone()  # (B, P) running grad of h
    dc = torch.zeros_like(c0) if dc_n is None else dc_n.clone()  # (B, H) running grad of c
    dG = M.new_zeros(T, B, 4, H) if varlen else M.new_empty(T, B, 4, H)  # gate pre-activation grads
    dHP = None
    if w_hr is not None:
        dHP = M.new_zeros(T, B, h0.shape[-1]) if varlen else M.new_empty(T, B, h0.shape[-1])
        dr_buf = torch.empty_like(c0)
    for t in range(T - 1, -1, -1):
        n = sizes[t]
        dh_t = dh[:n]
        if dY is not None:
            dh_t += dY[t, :n]
        if w_hr is not None:
            dHP[t, :n] = dh_t
            dr = torch.mm(dh_t, w_hr, out=dr_buf[:n])  # (n, H) grad of o * tanh(c)
        else:
            dr = dh_t
        dc_t = dc[:n]
        dc_t.addcmul_(dr, Q[t, :n])  # through h = o * tanh(c)
        g = dG[t, :n]  # (n, 4, H)
        torch.mul(M[t, :n, :3], dc_t.unsqueeze(1), out=g[:, :3])  # i, f, g
        torch.mul(M[t, :n, 3], dr, out=g[:, 3])  # o
        dc_t.mul_(F[t, :n])  # into c_{t-1}
        torch.mm(g.view(n, 4 * H), w_hh, out=dh_t)  # into h_{t-1}
    dG = dG.view(T, B, 4 * H)
    dx, dw_ih, dw_hh, db = _weight_grads(dG, x, hprev, w_ih, need_x)
    dw_hr = None
    if w_hr is not None:
        dw_hr = torch.mm(dHP.view(T * B, -1).t(), R.reshape(T * B, H))  # (P, H)
    db = db if has_bias else None
    return dx, dh, dc, dw_ih, dw_hh, db, db, dw_hr


# ----------------------------------------------------------------------------
# autograd Functions: one per layer and direction
# ----------------------------------------------------------------------------


def _rev(x: Optional[Tensor], reverse: bool, rev_index: Optional[Tensor]) -> Optional[Tensor]:
    if x is None or not reverse:
        return x
    return reverse_padded(x, rev_index)


class RNNLayerFunction(torch.autograd.Function):
    """Elman RNN layer, one direction: ``(x, h0, w_ih, w_hh, b_ih, b_hh) -> (Y, h_n)``."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, batch_sizes, reverse, rev_index):
        (Y, h_n), cache = rnn_layer_forward(_rev(x, reverse, rev_index), h0, w_ih, w_hh, b_ih, b_hh,
                                            nonlinearity, batch_sizes)
        save_cache(ctx, cache + (rev_index,))
        ctx.reverse = reverse
        return _rev(Y, reverse, rev_index), h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dY, dh_n):
        *cache, rev_index = load_cache(ctx)
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = rnn_layer_backward(
            _rev(dY, ctx.reverse, rev_index), dh_n, tuple(cache), ctx.needs_input_grad[0])
        return _rev(dx, ctx.reverse, rev_index), dh0, dw_ih, dw_hh, db_ih, db_hh, None, None, None, None


class GRULayerFunction(torch.autograd.Function):
    """GRU layer, one direction: ``(x, h0, w_ih, w_hh, b_ih, b_hh) -> (Y, h_n)``."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, rev_index):
        (Y, h_n), cache = gru_layer_forward(_rev(x, reverse, rev_index), h0, w_ih, w_hh, b_ih, b_hh, batch_sizes)
        save_cache(ctx, cache + (rev_index,))
        ctx.reverse = reverse
        return _rev(Y, reverse, rev_index), h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dY, dh_n):
        *cache, rev_index = load_cache(ctx)
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gru_layer_backward(
            _rev(dY, ctx.reverse, rev_index), dh_n, tuple(cache), ctx.needs_input_grad[0])
        return _rev(dx, ctx.reverse, rev_index), dh0, dw_ih, dw_hh, db_ih, db_hh, None, None, None


class LSTMLayerFunction(torch.autograd.Function):
    """LSTM layer, one direction: ``(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr) -> (Y, h_n, c_n)``."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, rev_index):
        (Y, h_n, c_n), cache = lstm_layer_forward(_rev(x, reverse, rev_index), h0, c0, w_ih, w_hh, b_ih, b_hh,
                                                  w_hr, batch_sizes)
        save_cache(ctx, cache + (rev_index,))
        ctx.reverse = reverse
        return _rev(Y, reverse, rev_index), h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dY, dh_n, dc_n):
        *cache, rev_index = load_cache(ctx)
        dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr = lstm_layer_backward(
            _rev(dY, ctx.reverse, rev_index), dh_n, dc_n, tuple(cache), ctx.needs_input_grad[0])
        return (_rev(dx, ctx.reverse, rev_index), dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, None, None, None)


# ----------------------------------------------------------------------------
# packing: PackedSequence data (sum_t bs_t, I) <-> sorted time-major padded (T, B, I)
# Row-major order of the (T, B) mask ``b < batch_sizes[t]`` is the packed order,
# so each direction is one boolean index (asrkit.nn.functional.shape.pack / unpack)
# and its gradient is the other one.
# ----------------------------------------------------------------------------


def packed_mask(batch_sizes: Tensor, device: torch.device | str) -> Tensor:
    """``(T, B)`` bool: True where sequence ``b`` is still running at step ``t``."""
    bs = batch_sizes.to(device)
    return torch.arange(int(batch_sizes[0]), device=device)[None, :] < bs[:, None]


# ----------------------------------------------------------------------------
# public functional API (autocast as torch: recurrent layers run in the lower dtype)
# ----------------------------------------------------------------------------


def rnn_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
              b_hh: Optional[Tensor], nonlinearity: str = "tanh",
              batch_sizes: Optional[Sequence[int]] = None, reverse: bool = False,
              rev_index: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """One Elman RNN layer in one direction: ``x (T, B, I) -> (Y (T, B, H), h_n (B, H))``."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    return apply(RNNLayerFunction, LOWER, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity,
                 batch_sizes, reverse, rev_index)


def gru_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
              b_hh: Optional[Tensor], batch_sizes: Optional[Sequence[int]] = None,
              reverse: bool = False, rev_index: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """One GRU layer in one direction: ``x (T, B, I) -> (Y (T, B, H), h_n (B, H))``."""
    return apply(GRULayerFunction, LOWER, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, rev_index)


def lstm_layer(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor,
               b_ih: Optional[Tensor], b_hh: Optional[Tensor], w_hr: Optional[Tensor] = None,
               batch_sizes: Optional[Sequence[int]] = None, reverse: bool = False,
               rev_index: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer in one direction: ``x (T, B, I) -> (Y (T, B, P), h_n (B, P), c_n (B, H))``."""
    return apply(LSTMLayerFunction, LOWER, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes,
                 reverse, rev_index)
