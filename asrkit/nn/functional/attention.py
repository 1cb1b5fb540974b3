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
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from asrkit.nn.functional._autograd import LOWER, apply, load_cache, save_cache

__all__ = [
    "attention_forward",
    "attention_backward",
    "AttentionFunction",
    "attention",
    "scaled_dot_product_attention",
    "additive_mask",
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


class AttentionFunction(torch.autograd.Function):
    """``(q, k, v, mask, dropout_p, scale) -> (out, weights)``; both outputs differentiable."""

    @staticmethod
    def forward(ctx, q, k, v, mask, dropout_p, scale):
        ctx.set_materialize_grads(False)
        (out, weights), cache = attention_forward(q, k, v, mask, dropout_p, scale)
        save_cache(ctx, cache)
        return out, weights

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_weights):
        if grad_out is None and grad_weights is None:
            return None, None, None, None, None, None
        dq, dk, dv, dmask = attention_backward(grad_out, grad_weights, load_cache(ctx), tuple(ctx.needs_input_grad[:4]))
        return dq, dk, dv, dmask, None, None


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
