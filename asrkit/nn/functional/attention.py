"""Scaled dot-product attention with a hand-written backward.

Shapes: ``q (*, L, E)``, ``k (*, S, E)``, ``v (*, S, Ev)``, an additive float
mask broadcastable to ``(*, L, S)``; ``*`` is any batch shape (``(N, H)`` for
multi-head attention). Forward::

    A = q k^T * scale + mask          (*, L, S)   scores
    P = softmax(A, -1)                (*, L, S)   attention weights
    Pd = P * m / (1 - p)              dropout (m ~ Bernoulli(1 - p)), training only
    out = Pd v                        (*, L, Ev)

Backward, with ``G = dL/dout`` (and ``W = dL/dPd`` if the weights are used)::

    dv = Pd^T G                       (*, S, Ev)
    dPd = G v^T + W                   (*, L, S)
    dP = dPd * m / (1 - p)
    dA = P * (dP - sum_j dP_j P_j)    softmax Jacobian, row by row
    dq = dA k * scale,  dk = dA^T q * scale,  dmask = dA summed to the mask's shape

A row whose keys are all masked has no defined softmax and comes out NaN, as
in torch's reference (math) attention.

Relative-position scores (Transformer-XL, the Conformer's self-attention), with
``q (B, T, E)`` split into ``H`` heads of ``Dh``, ``pos (2T-1, E)`` the
projected table of distances ``T-1 .. -(T-1)`` and learned ``u, v (H, Dh)``::

    q_u = q + u                                   (B, H, T, Dh)  content query
    BD = (q + v) pos^T                            (B, H, T, 2T-1) query i against every distance
    S[i, j] = BD[i, T-1-i+j] * scale + mask       (B, H, T, T)   distance i - j ("relative shift")

``S`` then enters :func:`attention` as its additive mask. The shift is a
strided view of ``BD`` (row ``i`` starts ``2T-2`` elements after row ``i-1``,
no index tensor); backward writes ``dS * scale`` through the same view into a
zero ``dBD`` (the rows do not overlap), then::

    d(q+v) = dBD pos                 dpos = sum_b dBD^T (q + v)
    dq = dq_u + d(q+v),  du = sum_{b,t} dq_u,  dv = sum_{b,t} d(q+v)
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from asrkit.nn.functional._autograd import LOWER, apply, kernel_function

__all__ = [
    "attention_forward",
    "attention_backward",
    "AttentionFunction",
    "attention",
    "scaled_dot_product_attention",
    "additive_mask",
    "rel_position_scores_forward",
    "rel_position_scores_backward",
    "RelPositionScoresFunction",
    "rel_position_scores",
]


def attention_forward(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], dropout_p: float,
                      scale: float):
    """Returns ``(out (*, L, Ev), weights Pd (*, L, S)), cache``."""
    batch = q.shape[:-2]
    L, E = q.shape[-2:]
    S, Ev = k.shape[-2], v.shape[-1]
    q3 = q.reshape(-1, L, E)  # (Z, L, E)
    k3 = k.reshape(-1, S, E)  # (Z, S, E)
    v3 = v.reshape(-1, S, Ev)  # (Z, S, Ev)
    A = torch.bmm(q3, k3.transpose(1, 2))  # (Z, L, S)
    A.mul_(scale)
    if mask is not None:
        A.view(*batch, L, S).add_(mask)
    # softmax in place: A becomes P
    A.sub_(A.amax(-1, keepdim=True)).exp_()
    P = A.div_(A.sum(-1, keepdim=True))  # (Z, L, S)
    if dropout_p > 0.0:
        keep = torch.empty_like(P).bernoulli_(1.0 - dropout_p).div_(1.0 - dropout_p)  # (Z, L, S) m / (1 - p)
        Pd = P * keep
    else:
        keep, Pd = None, P
    out = torch.bmm(Pd, v3)  # (Z, L, Ev)
    cache = (q3, k3, v3, P, Pd, keep, scale, batch, mask.shape if mask is not None else None)
    return (out.view(*batch, L, Ev), Pd.view(*batch, L, S)), cache


def _sum_to(g: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to ``shape``."""
    while g.dim() > len(shape):
        g = g.sum(0)
    dims = [i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1]
    return g.sum(dims, keepdim=True) if dims else g


def attention_backward(grad_out: Optional[Tensor], grad_weights: Optional[Tensor], cache,
                       needs: tuple = (True,) * 4):
    """Returns ``dq, dk, dv, dmask`` (``None`` where not needed)."""
    q3, k3, v3, P, Pd, keep, scale, batch, mask_shape = cache
    Z, L, E = q3.shape
    S, Ev = k3.shape[1], v3.shape[2]
    if grad_out is not None:
        G = grad_out.reshape(Z, L, Ev)
        dv = torch.bmm(Pd.transpose(1, 2), G) if needs[2] else None  # (Z, S, Ev)
        dP = torch.bmm(G, v3.transpose(1, 2))  # (Z, L, S)
        if grad_weights is not None:
            dP.add_(grad_weights.reshape(Z, L, S))
    else:
        dv = torch.zeros_like(v3) if needs[2] else None
        dP = grad_weights.reshape(Z, L, S).clone()
    if keep is not None:
        dP.mul_(keep)
    # softmax backward: dA = P * (dP - rowsum(dP * P)), in place on dP
    dP.mul_(P)
    rows = dP.sum(-1, keepdim=True)  # (Z, L, 1)
    dA = dP.addcmul_(P, rows, value=-1.0)  # (Z, L, S)
    dq = torch.bmm(dA, k3).mul_(scale).view(*batch, L, E) if needs[0] else None
    dk = torch.bmm(dA.transpose(1, 2), q3).mul_(scale).view(*batch, S, E) if needs[1] else None
    dmask = None
    if mask_shape is not None and needs[3]:
        dmask = _sum_to(dA.view(*batch, L, S), mask_shape)
    if dv is not None:
        dv = dv.view(*batch, S, Ev)
    return dq, dk, dv, dmask


AttentionFunction = kernel_function("AttentionFunction", attention_forward, attention_backward, pass_needs=True,
                                    all_grads=True)
AttentionFunction.__doc__ = "``(q, k, v, mask, dropout_p, scale) -> (out, weights)``; both outputs differentiable."


def _rel_shift(bd: Tensor, T: int) -> Tensor:
    """``bd (B, H, T, 2T-1)`` contiguous -> the view ``(B, H, T, T)`` with ``[.., i, j] = bd[.., i, T-1-i+j]``."""
    B, H = bd.shape[:2]
    W = 2 * T - 1
    return bd.as_strided((B, H, T, T), (H * T * W, T * W, W - 1, 1), bd.storage_offset() + T - 1)


def rel_position_scores_forward(q: Tensor, pos: Tensor, pos_bias_u: Tensor, pos_bias_v: Tensor,
                                mask: Optional[Tensor], num_heads: int, scale: float):
    """``q (B, T, E)``, ``pos (2T-1, E)``, ``pos_bias_u/v (H, Dh)``, additive ``mask``
    broadcastable to ``(B, H, T, T)`` or None.

    Returns ``(q_u (B, H, T, Dh), scores (B, H, T, T)), cache``.
    """
    B, T, E = q.shape
    H = num_heads
    Dh = E // H
    if pos.shape != (2 * T - 1, E):
        raise ValueError(f"pos must be {(2 * T - 1, E)} for {T} frames, got {tuple(pos.shape)}")
    q4 = q.reshape(B, T, H, Dh)  # (B, T, H, Dh)
    q_u = (q4 + pos_bias_u).transpose(1, 2).contiguous()  # (B, H, T, Dh)
    q_v = (q4 + pos_bias_v).transpose(1, 2).contiguous()  # (B, H, T, Dh)
    p = pos.reshape(2 * T - 1, H, Dh).permute(1, 2, 0)  # (H, Dh, 2T-1)
    bd = torch.matmul(q_v, p)  # (B, H, T, 2T-1)
    scores = _rel_shift(bd, T).mul(scale)  # (B, H, T, T), a new tensor
    if mask is not None:
        scores.add_(mask)
    cache = (q_v, pos, scale, H, mask.shape if mask is not None else None)
    return (q_u, scores), cache


def rel_position_scores_backward(grad_qu: Optional[Tensor], grad_scores: Optional[Tensor], cache,
                                 needs: tuple = (True,) * 5):
    """Returns ``dq (B, T, E), dpos (2T-1, E), du (H, Dh), dv (H, Dh), dmask`` (``None`` where not needed)."""
    q_v, pos, scale, H, mask_shape = cache
    B, _, T, Dh = q_v.shape
    E, W = H * Dh, 2 * T - 1
    dq4 = None  # (B, H, T, Dh) gradient of q, head-major
    dpos = du = dv = dmask = None
    if grad_scores is not None:
        dbd = grad_scores.new_zeros(B, H, T, W)  # (B, H, T, 2T-1)
        _rel_shift(dbd, T).copy_(grad_scores)
        dbd.mul_(scale)
        p = pos.reshape(W, H, Dh).permute(1, 0, 2)  # (H, 2T-1, Dh)
        dq4 = torch.matmul(dbd, p)  # (B, H, T, Dh): d(q + v)
        if needs[3]:
            dv = dq4.sum((0, 2))  # (H, Dh)
        if needs[1]:
            qv = q_v.permute(1, 3, 0, 2).reshape(H, Dh, B * T)  # (H, Dh, B*T)
            dp = torch.bmm(qv, dbd.permute(1, 0, 2, 3).reshape(H, B * T, W))  # (H, Dh, 2T-1)
            dpos = dp.permute(2, 0, 1).reshape(W, E)  # (2T-1, E)
        if mask_shape is not None and needs[4]:
            dmask = _sum_to(grad_scores, mask_shape)
    if grad_qu is not None:
        if needs[2]:
            du = grad_qu.sum((0, 2))  # (H, Dh)
        dq4 = grad_qu if dq4 is None else dq4.add_(grad_qu)
    dq = None
    if needs[0]:
        dq = dq4.transpose(1, 2).reshape(B, T, E) if dq4 is not None else q_v.new_zeros(B, T, E)
    return dq, dpos, du, dv, dmask


RelPositionScoresFunction = kernel_function("RelPositionScoresFunction", rel_position_scores_forward,
                                            rel_position_scores_backward, pass_needs=True, all_grads=True)
RelPositionScoresFunction.__doc__ = ("``(q, pos, pos_bias_u, pos_bias_v, mask, num_heads, scale) -> (q_u, scores)``; "
                                     "both outputs differentiable.")


def rel_position_scores(q: Tensor, pos: Tensor, pos_bias_u: Tensor, pos_bias_v: Tensor,
                        mask: Optional[Tensor], num_heads: int, scale: float) -> tuple[Tensor, Tensor]:
    """Scratch relative-position scores: ``(q_u (B, H, T, Dh), scores (B, H, T, T))``.

    ``scores`` (the position term, scaled, plus ``mask``) is the additive mask
    to hand to :func:`attention` together with ``q_u``.
    """
    return apply(RelPositionScoresFunction, LOWER, q, pos, pos_bias_u, pos_bias_v, mask, int(num_heads),
                 float(scale))


def additive_mask(mask: Optional[Tensor], dtype: torch.dtype, masked_value: bool = True) -> Optional[Tensor]:
    """A bool mask -> float ``0 / -inf`` (``masked_value`` marks the excluded entries); floats pass through."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        excluded = mask if masked_value else ~mask
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(excluded, float("-inf"))
    if not mask.is_floating_point():
        raise TypeError(f"attention masks must be bool or float, got {mask.dtype}")
    return mask.to(dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None, dropout_p: float = 0.0,
              scale: Optional[float] = None) -> tuple[Tensor, Tensor]:
    """Scratch attention returning ``(out (*, L, Ev), weights (*, L, S))``.

    ``mask`` is additive (float); ``scale`` defaults to ``1 / sqrt(E)``.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    return apply(AttentionFunction, LOWER, q, k, v, mask, float(dropout_p), float(scale))


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: Optional[float] = None) -> Tensor:
    """As ``torch.nn.functional.scaled_dot_product_attention``: ``(*, L, E) -> (*, L, Ev)``.

    torch's convention here: a **bool** ``attn_mask`` is True where attention
    is *allowed*; a float mask is added to the scores. ``is_causal`` masks
    keys after the query position (and excludes ``attn_mask``, as torch).
    """
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise ValueError("is_causal and attn_mask cannot both be given")
        attn_mask = torch.ones(L, S, dtype=torch.bool, device=query.device).tril()
    mask = additive_mask(attn_mask, query.dtype, masked_value=False)
    return attention(query, key, value, mask, dropout_p, scale)[0]
