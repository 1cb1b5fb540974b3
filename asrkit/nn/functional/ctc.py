"""Connectionist Temporal Classification (CTC) loss, forward-backward in log space.

Shapes: ``log_probs (T, B, C)``, ``targets (B, U)`` padded or ``(sum U_b,)``
concatenated, ``input_lengths (B,)``, ``target_lengths (B,)``.

The extended label sequence of utterance ``b`` puts a blank around every
label: ``l' = (blank, l_1, blank, l_2, ..., l_U, blank)``, ``S_b = 2 U_b + 1``
states. With ``y_t(s) = log_probs[t, b, l'_s]``:

    alpha_0(0) = y_0(0),  alpha_0(1) = y_0(1)
    alpha_t(s) = y_t(s) + lse(alpha_{t-1}(s), alpha_{t-1}(s-1), [alpha_{t-1}(s-2)])
    beta_{T-1}(S-1) = y_{T-1}(S-1),  beta_{T-1}(S-2) = y_{T-1}(S-2)
    beta_t(s)  = y_t(s) + lse(beta_{t+1}(s), beta_{t+1}(s+1), [beta_{t+1}(s+2)])
    nll = -lse(alpha_{T-1}(S-1), alpha_{T-1}(S-2))

where the bracketed skip is allowed only into a label that differs from the
label two states back (``l'_s != blank`` and ``l'_s != l'_{s-2}``). Both
recursions run over time with the whole batch at once: padding columns of
``-inf`` on the state axis make the shifts plain slices, and the per-utterance
ends (``T_b``, ``S_b``) are handled by masks, not by per-utterance loops.

Gradient. ``alpha_t(s) + beta_t(s) - y_t(s) + nll`` is the log posterior of
being in state ``s`` at frame ``t``; summing those posteriors per class gives
the occupancy ``gamma_t(c)``. torch's ``ctc_loss`` returns, as the gradient
w.r.t. ``log_probs``,

    grad[t, b, c] = exp(log_probs[t, b, c]) - gamma_t(c)      (t < T_b, else 0)

which is the exact gradient w.r.t. the *logits* when ``log_probs =
log_softmax(logits)`` (the softmax Jacobian maps it onto itself because
``sum_c gamma_t(c) = 1``). :func:`ctc_loss` returns the same numbers as torch,
so it is interchangeable with ``F.ctc_loss`` after a ``log_softmax``;
:func:`ctc_loss_from_logits` is the fused path that takes the logits and does
the ``log_softmax`` inside, with the same backward.

An impossible alignment (``T_b`` too short for the labels and their repeats)
has ``nll = inf``; its gradient is NaN as in torch, or the loss and gradient
are zeroed with ``zero_infinity=True``. Reductions as torch: ``"mean"``
divides each loss by its target length (at least 1) and then averages over
the batch; ``"sum"`` sums; ``"none"`` returns ``(B,)``.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

from asrkit.nn.functional._autograd import FP32, apply, kernel_function

__all__ = [
    "ctc_alpha_beta",
    "ctc_loss_forward",
    "ctc_loss_backward",
    "ctc_logits_forward",
    "ctc_logits_backward",
    "CTCLossFunction",
    "CTCLogitsFunction",
    "ctc_loss",
    "ctc_loss_from_logits",
]

_REDUCTIONS = ("none", "mean", "sum")


def _extended_targets(targets: Tensor, target_lengths: Tensor, blank: int, B: int):
    """``(B, S)`` extended labels (blank-interleaved), ``(B, S)`` additive skip mask, ``S``."""
    device = target_lengths.device
    U = int(target_lengths.max()) if B > 0 else 0
    if targets.dim() == 1:  # concatenated -> padded (B, U)
        padded = torch.full((B, max(U, 1)), blank, dtype=torch.long, device=device)
        if U > 0:
            offs = torch.cumsum(target_lengths, 0) - target_lengths  # (B,)
            pos = torch.arange(U, device=device)  # (U,)
            valid = pos[None, :] < target_lengths[:, None]  # (B, U)
            idx = (offs[:, None] + pos[None, :]).clamp(max=max(targets.numel() - 1, 0))
            padded[:, :U] = torch.where(valid, targets.long()[idx], padded[:, :U])
        tg = padded[:, :U]
    else:
        tg = targets.long()[:, :U]
        valid = torch.arange(U, device=device)[None, :] < target_lengths[:, None]
        tg = torch.where(valid, tg, torch.full_like(tg, blank))  # padding -> blank
    S = 2 * U + 1
    ext = torch.full((B, S), blank, dtype=torch.long, device=device)  # (B, S)
    ext[:, 1::2] = tg
    skip = torch.zeros(B, S, dtype=torch.bool, device=device)
    if S > 2:
        skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return ext, skip, S


def ctc_alpha_beta(log_probs: Tensor, ext: Tensor, skip: Tensor, input_lengths: Tensor,
                   target_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Log-space forward and backward variables for a batch.

    log_probs (T, B, C), ext (B, S) extended labels, skip (B, S) bool.
    Returns ``alpha (T, B, S)``, ``beta (T, B, S)``, ``nll (B,)`` and the
    emissions ``y (T, B, S)``. Entries past an utterance's ``T_b`` or ``S_b``
    are not meaningful (they are never used).
    """
    T, B, C = log_probs.shape
    S = ext.shape[1]
    dt, dev = log_probs.dtype, log_probs.device
    ninf = float("-inf")
    y = log_probs.gather(2, ext.unsqueeze(0).expand(T, B, S))  # (T, B, S) emissions
    zero = torch.zeros((), dtype=dt, device=dev)
    skip_add = torch.where(skip, zero, torch.full((), ninf, dtype=dt, device=dev))  # (B, S) 0 / -inf
    # alpha with two -inf columns in front: A[:, :, 2 + s] = alpha(s)
    A = torch.full((T, B, S + 2), ninf, dtype=dt, device=dev)  # (T, B, S + 2)
    k = min(S, 2)
    A[0, :, 2 : 2 + k] = y[0, :, :k]  # start in the first blank or the first label
    tmp = torch.empty(B, S, dtype=dt, device=dev)
    skp = torch.empty(B, S, dtype=dt, device=dev)
    for t in range(1, T):
        prev = A[t - 1]
        torch.logaddexp(prev[:, 2:], prev[:, 1:-1], out=tmp)  # stay, advance by one
        torch.add(prev[:, :-2], skip_add, out=skp)  # skip a blank
        torch.logaddexp(tmp, skp, out=tmp)
        torch.add(tmp, y[t], out=A[t, :, 2:])
    alpha = A[:, :, 2:]  # (T, B, S)
    # nll from alpha at each utterance's last frame and last two states
    ar = torch.arange(B, device=dev)
    last_t = (input_lengths - 1).clamp(min=0)
    S_b = 2 * target_lengths + 1
    end = A[last_t, ar]  # (B, S + 2)
    nll = -torch.logaddexp(end.gather(1, (S_b + 1)[:, None]), end.gather(1, S_b[:, None])).squeeze(1)
    nll = torch.where(input_lengths > 0, nll, torch.where(target_lengths == 0, zero, -zero.new_tensor(ninf)))
    # beta with two -inf columns at the end: Bt[:, :, s] = beta(s)
    skip_next = torch.full((B, S), ninf, dtype=dt, device=dev)  # skip from s into s + 2
    if S > 2:
        skip_next[:, :-2] = skip_add[:, 2:]
    E = torch.full((B, S + 2), ninf, dtype=dt, device=dev)  # "beta_{T_b}": 0 at the final blank
    E.scatter_(1, (S_b - 1)[:, None], 0.0)
    Bt = torch.full((T, B, S + 2), ninf, dtype=dt, device=dev)  # (T, B, S + 2)
    varlen = bool((input_lengths != T).any())
    tpos = torch.arange(T + 1, device=dev)
    ended = (tpos[:, None] >= input_lengths[None, :]).unsqueeze(-1)  # (T + 1, B, 1): t >= T_b
    nxt = E
    for t in range(T - 1, -1, -1):
        if t + 1 < T:
            nxt = Bt[t + 1]
            if varlen:
                nxt = torch.where(ended[t + 1], E, nxt)
        torch.logaddexp(nxt[:, :S], nxt[:, 1 : S + 1], out=tmp)  # stay, advance by one
        torch.add(nxt[:, 2:], skip_next, out=skp)  # skip a blank
        torch.logaddexp(tmp, skp, out=tmp)
        torch.add(tmp, y[t], out=Bt[t, :, :S])
    beta = Bt[:, :, :S]  # (T, B, S)
    return alpha, beta, nll, y


def _reduce(nll: Tensor, target_lengths: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return nll
    if reduction == "sum":
        return nll.sum()
    return (nll / target_lengths.clamp(min=1).to(nll.dtype)).mean()


def ctc_loss_forward(log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor,
                     blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
    """CTC negative log likelihood. log_probs (T, B, C) -> loss ``()`` or ``(B,)`` with ``"none"``."""
    T, B, C = log_probs.shape
    ext, skip, S = _extended_targets(targets, target_lengths, blank, B)
    alpha, beta, nll, y = ctc_alpha_beta(log_probs, ext, skip, input_lengths, target_lengths)
    inf = torch.isinf(nll)
    if zero_infinity:
        nll = torch.where(inf, torch.zeros_like(nll), nll)
    loss = _reduce(nll, target_lengths, reduction)
    cache = (log_probs, alpha, beta, y, nll, ext, input_lengths, target_lengths, inf,
             reduction, zero_infinity)
    return loss, cache


def ctc_loss_backward(grad_out: Tensor, cache) -> tuple[Tensor]:
    """torch's CTC gradient: ``exp(log_probs) - gamma`` per frame, scaled per utterance."""
    log_probs, alpha, beta, y, nll, ext, input_lengths, target_lengths, inf, reduction, zero_inf = cache
    T, B, C = log_probs.shape
    S = ext.shape[1]
    # per-utterance scale of the incoming gradient
    if reduction == "none":
        gr = grad_out.expand(B)
    elif reduction == "sum":
        gr = grad_out.expand(B)
    else:
        gr = grad_out / (target_lengths.clamp(min=1).to(log_probs.dtype) * B)  # (B,)
    # state posteriors: exp(alpha + beta - y + nll), (T, B, S); NaN where nll is inf
    post = torch.exp(alpha + beta - y + nll[None, :, None])
    gamma = torch.zeros_like(log_probs).scatter_add_(2, ext.unsqueeze(0).expand(T, B, S), post)  # (T, B, C)
    grad = (torch.exp(log_probs) - gamma) * gr[None, :, None]
    if not zero_inf and bool(inf.any()):  # as torch: every class of an impossible utterance is NaN
        grad = grad + torch.where(inf, float("nan"), 0.0).to(grad.dtype)[None, :, None]
    dead = torch.arange(T, device=log_probs.device)[:, None] >= input_lengths[None, :]  # (T, B)
    if zero_inf:
        dead = dead | inf[None, :]
    grad = torch.where(dead.unsqueeze(-1), torch.zeros((), dtype=grad.dtype, device=grad.device), grad)
    return (grad,)


def ctc_logits_forward(logits: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor,
                       blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
    """Fused ``log_softmax`` + CTC: logits (T, B, C) -> loss."""
    m = logits.amax(-1, keepdim=True)  # (T, B, 1)
    log_probs = logits - (m + torch.log(torch.exp(logits - m).sum(-1, keepdim=True)))  # (T, B, C)
    return ctc_loss_forward(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity)


def ctc_logits_backward(grad_out: Tensor, cache) -> tuple[Tensor]:
    """Gradient w.r.t. the logits: ``softmax(logits) - gamma`` per frame (the same formula)."""
    return ctc_loss_backward(grad_out, cache)


CTCLossFunction = kernel_function("CTCLossFunction", ctc_loss_forward, ctc_loss_backward)
CTCLogitsFunction = kernel_function("CTCLogitsFunction", ctc_logits_forward, ctc_logits_backward)


def _as_lengths(x: Union[Tensor, Sequence[int]], device: torch.device, name: str) -> Tensor:
    t = torch.as_tensor(x, dtype=torch.long, device=device) if not isinstance(x, Tensor) else x.to(device).long()
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D (B,), got shape {tuple(t.shape)}")
    return t


def _prep(log_probs, targets, input_lengths, target_lengths, blank, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    unbatched = log_probs.dim() == 2
    if unbatched:
        log_probs = log_probs.unsqueeze(1)
        targets = targets.unsqueeze(0) if targets.dim() == 1 else targets
        input_lengths = torch.as_tensor(input_lengths).reshape(1)
        target_lengths = torch.as_tensor(target_lengths).reshape(1)
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (T, B, C) or (T, C), got shape {tuple(log_probs.shape)}")
    T, B, C = log_probs.shape
    if not 0 <= blank < C:
        raise ValueError(f"blank must be in label range [0, {C}), got {blank}")
    dev = log_probs.device
    il = _as_lengths(input_lengths, dev, "input_lengths")
    tl = _as_lengths(target_lengths, dev, "target_lengths")
    if il.numel() != B or tl.numel() != B:
        raise ValueError(f"input_lengths and target_lengths must have {B} entries")
    if B and int(il.max()) > T:
        raise ValueError(f"input_lengths must be at most T={T}, got {int(il.max())}")
    if B and int(il.min()) < 0 or B and int(tl.min()) < 0:
        raise ValueError("lengths must be non-negative")
    targets = targets.to(dev)
    if targets.dim() == 1 and targets.numel() < int(tl.sum()):
        raise ValueError("concatenated targets are shorter than sum(target_lengths)")
    if targets.dim() == 2 and B and targets.shape[1] < int(tl.max()):
        raise ValueError(f"targets (B, U) has U={targets.shape[1]} < max(target_lengths)={int(tl.max())}")
    return log_probs, targets, il, tl, unbatched


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """As ``torch.nn.functional.ctc_loss``: log_probs (T, B, C) -> loss (same values and gradients)."""
    log_probs, targets, il, tl, unbatched = _prep(log_probs, targets, input_lengths, target_lengths, blank,
                                                  reduction)
    loss = apply(CTCLossFunction, FP32, log_probs, targets, il, tl, int(blank), reduction, bool(zero_infinity))
    return loss.squeeze(0) if unbatched and reduction == "none" else loss


def ctc_loss_from_logits(logits: Tensor, targets: Tensor, input_lengths, target_lengths, blank: int = 0,
                         reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """Fused ``log_softmax(logits, -1)`` + :func:`ctc_loss`: logits (T, B, C) -> loss."""
    logits, targets, il, tl, unbatched = _prep(logits, targets, input_lengths, target_lengths, blank, reduction)
    loss = apply(CTCLogitsFunction, FP32, logits, targets, il, tl, int(blank), reduction, bool(zero_infinity))
    return loss.squeeze(0) if unbatched and reduction == "none" else loss
