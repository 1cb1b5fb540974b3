"""Adaptive softmax kernels (Grave et al. 2017, "Efficient softmax approximation for GPUs"):
the target log-probabilities and the full log-distribution of ``torch.nn.AdaptiveLogSoftmaxWithLoss``.

Classes ``0 .. C-1`` (sorted by falling frequency) are cut by ``cutoffs = (c_0, c_1, .., c_k = C)``.
The head predicts the shortlist ``0 .. c_0 - 1`` and one logit per cluster; cluster ``i``
(classes ``c_i .. c_{i+1} - 1``) has its own two-layer tail without bias, of width
``d_i = d // div^(i+1)``::

    head      h = x Wh^T + bh                 (N, H),  H = c_0 + k
              hl = log_softmax(h)
    tail i    z_i = x A_i^T                   (N, d_i),  A_i (d_i, d)
              tl_i = log_softmax(z_i B_i^T)   (N, o_i),  B_i (o_i, d_i),  o_i = c_{i+1} - c_i
    log P(y | x) = hl[y]                            y < c_0
                 = hl[c_0 + i] + tl_i[y - c_i]      c_i <= y < c_{i+1}

``adaptive_log_softmax`` (training): ``output (N,) = log P(target)``, ``loss = mean(-output)``.
Tail ``i`` runs only on the rows whose target is in cluster ``i`` (that is the saving: most
tokens are in the shortlist). With ``g = dL/doutput - dL/dloss / N`` (N,), ``j`` the head
column of each row (its class, or ``c_0 + i`` for cluster ``i``) and ``r`` the rows of cluster
``i`` (the class-target cross-entropy backward, twice)::

    dL/dh    = g (onehot(j) - softmax(h))                       (N, H)
    dL/dt_i  = g_r (onehot(y_r - c_i) - softmax(t_i))           (n_i, o_i)
    dL/dWh = dh^T x,  dL/dbh = sum_n dh,  dL/dB_i = dt_i^T z_i,  dz_i = dt_i B_i,
    dL/dA_i = dz_i^T x_r,  dL/dx = dh Wh + (dz_i A_i added back at rows r)

A cluster no target falls in gets zero gradients for its tail (torch leaves them ``None``):
every parameter has a gradient on every step, as DistributedDataParallel needs.

``adaptive_log_prob`` (scoring): the full ``(N, C)`` log-distribution. Backward of ``G (N, C)``:
the head's log-probs get ``G`` on the shortlist and the sum of ``G`` over cluster ``i`` at
column ``c_0 + i``; cluster ``i``'s log-probs get ``G[:, c_i:c_{i+1}]``; each goes back
through its log_softmax (``g - softmax sum g``) and its linears.

``cutoffs`` here is the module's ``cutoffs``: the user's cutoffs followed by ``C``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from asrkit.nn.functional._autograd import FP32, apply, kernel_function
from asrkit.nn.functional.activation import log_softmax_backward, log_softmax_forward

__all__ = [
    "adaptive_log_softmax_forward", "adaptive_log_softmax_backward", "AdaptiveLogSoftmaxFunction",
    "adaptive_log_softmax", "adaptive_log_prob_forward", "adaptive_log_prob_backward",
    "AdaptiveLogProbFunction", "adaptive_log_prob", "adaptive_predict",
]


def _head_log_probs(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    h = torch.addmm(bias, x, weight.t()) if bias is not None else x @ weight.t()  # (N, H)
    return log_softmax_forward(h, 1)[0]                                          # (N, H)


def _check_target(target: torch.Tensor, n_classes: int) -> None:
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n_classes):
        raise RuntimeError(f"Target values should be in [0, {n_classes - 1}], but values in range "
                           f"[{int(target.min())}, {int(target.max())}] were found. ")


def _class_ce_grad(logp: torch.Tensor, index: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``g (onehot(index) - softmax)``: the gradient of ``g * logp[index]`` w.r.t. the logits;
    ``logp (n, m)``, ``index (n, 1)``, ``g (n,)`` -> ``(n, m)``."""
    out = torch.exp(logp).mul_(-g[:, None])                  # -g softmax
    return out.scatter_add_(1, index, g[:, None])            # + g at the index


# ---------------------------------------------------------------- output at the targets, and the loss


def adaptive_log_softmax_forward(x: torch.Tensor, target: torch.Tensor, head_weight: torch.Tensor,
                                 head_bias: Optional[torch.Tensor], cutoffs: tuple[int, ...],
                                 *tail_weights: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple]:
    """``x (N, d)``, ``target (N,)`` class ids, ``head_weight (H, d)``, ``head_bias (H,)`` or None,
    ``cutoffs (c_0, .., C)``, ``tail_weights`` ``A_0, B_0, .., A_{k-1}, B_{k-1}`` ->
    ``((output (N,), loss ()), cache)``."""
    s, k = cutoffs[0], len(cutoffs) - 1
    _check_target(target, cutoffs[-1])
    hl = _head_log_probs(x, head_weight, head_bias)                # (N, H)
    col = target.clone()                                           # (N,) head column: class or cluster
    clusters: list = []                                            # rows, rel, z, tl per cluster (None: empty)
    tail_out = []
    for i in range(k):
        lo, hi = cutoffs[i], cutoffs[i + 1]
        rows = ((target >= lo) & (target < hi)).nonzero()[:, 0]   # (n_i,)
        if rows.numel() == 0:
            clusters += [None, None, None, None]
            continue
        col.index_fill_(0, rows, s + i)
        a, b = tail_weights[2 * i], tail_weights[2 * i + 1]
        z = x.index_select(0, rows) @ a.t()                        # (n_i, d_i)
        tl = log_softmax_forward(z @ b.t(), 1)[0]                  # (n_i, o_i)
        rel = (target.index_select(0, rows) - lo)[:, None]         # (n_i, 1)
        tail_out.append((rows, tl.gather(1, rel)[:, 0]))           # (n_i,)
        clusters += [rows, rel, z, tl]
    col = col[:, None]                                             # (N, 1)
    out = hl.gather(1, col)[:, 0]                                  # (N,)
    for rows, lp in tail_out:
        out.index_add_(0, rows, lp)
    loss = -out.mean()                                             # ()
    return (out, loss), (x, col, hl, head_weight, head_bias is not None, cutoffs, *tail_weights, *clusters)


def adaptive_log_softmax_backward(g_out: Optional[torch.Tensor], g_loss: Optional[torch.Tensor], cache: tuple,
                                  needs: tuple = ()) -> tuple:
    x, col, hl, head_weight, has_bias, cutoffs, *rest = cache
    k = len(cutoffs) - 1
    tails, clusters = rest[:2 * k], rest[2 * k:]
    needs = tuple(needs) or (True,) * (5 + 2 * k)
    n = x.shape[0]
    g = torch.zeros(n, dtype=x.dtype, device=x.device) if g_out is None else g_out.to(x.dtype)  # (N,)
    if g_loss is not None:
        g = g - g_loss / n                                         # loss = -sum(output) / N
    gh = _class_ce_grad(hl, col, g)                                # (N, H)
    gx = gh @ head_weight if needs[0] else None                    # (N, d)
    ghw = gh.t() @ x if needs[2] else None                         # (H, d)
    ghb = gh.sum(0) if has_bias and needs[3] else None             # (H,)
    gtails: list[Optional[torch.Tensor]] = []
    for i in range(k):
        a, b = tails[2 * i], tails[2 * i + 1]
        rows, rel, z, tl = clusters[4 * i:4 * i + 4]
        if rows is None:                                           # no target here: zero gradients
            gtails += [torch.zeros_like(a), torch.zeros_like(b)]
            continue
        gt = _class_ce_grad(tl, rel, g.index_select(0, rows))      # (n_i, o_i)
        gz = gt @ b                                                # (n_i, d_i)
        gtails.append(gz.t() @ x.index_select(0, rows) if needs[5 + 2 * i] else None)  # (d_i, d)
        gtails.append(gt.t() @ z if needs[6 + 2 * i] else None)   # (o_i, d_i)
        if gx is not None:
            gx.index_add_(0, rows, gz @ a)                         # (n_i, d) back at the rows
    return (gx, None, ghw, ghb, None, *gtails)


AdaptiveLogSoftmaxFunction = kernel_function("AdaptiveLogSoftmaxFunction", adaptive_log_softmax_forward,
                                             adaptive_log_softmax_backward, pass_needs=True, all_grads=True)


def adaptive_log_softmax(x: torch.Tensor, target: torch.Tensor, head_weight: torch.Tensor,
                         head_bias: Optional[torch.Tensor], cutoffs: Sequence[int],
                         tail_weights: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (N, d)``, ``target (N,)`` -> ``(output (N,) log P(target), loss () = mean(-output))``.

    ``cutoffs``: the cluster bounds ending with the class count; ``tail_weights``: each
    cluster's two weights in order. Runs in float32 under autocast, as torch's losses."""
    return apply(AdaptiveLogSoftmaxFunction, FP32, x, target, head_weight, head_bias, tuple(cutoffs),
                 *tail_weights)


# ---------------------------------------------------------------- the full log-distribution


def adaptive_log_prob_forward(x: torch.Tensor, head_weight: torch.Tensor, head_bias: Optional[torch.Tensor],
                              cutoffs: tuple[int, ...], *tail_weights: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """``x (N, d)`` -> ``(log-probs (N, C), cache)``; the other arguments as the forward above."""
    s, k = cutoffs[0], len(cutoffs) - 1
    hl = _head_log_probs(x, head_weight, head_bias)                # (N, H)
    out = x.new_empty(x.shape[0], cutoffs[-1])                     # (N, C)
    out[:, :s] = hl[:, :s]
    zs = []
    for i in range(k):
        a, b = tail_weights[2 * i], tail_weights[2 * i + 1]
        z = x @ a.t()                                              # (N, d_i)
        tl = log_softmax_forward(z @ b.t(), 1)[0]                  # (N, o_i)
        torch.add(tl, hl[:, s + i:s + i + 1], out=out[:, cutoffs[i]:cutoffs[i + 1]])
        zs.append(z)
    return out, (x, hl, out, head_weight, head_bias is not None, cutoffs, *tail_weights, *zs)


def adaptive_log_prob_backward(grad_out: torch.Tensor, cache: tuple, needs: tuple = ()) -> tuple:
    x, hl, out, head_weight, has_bias, cutoffs, *rest = cache
    s, k = cutoffs[0], len(cutoffs) - 1
    tails, zs = rest[:2 * k], rest[2 * k:]
    needs = tuple(needs) or (True,) * (4 + 2 * k)
    ghl = torch.empty_like(hl)                                     # (N, H) dL/dhl
    ghl[:, :s] = grad_out[:, :s]
    gx = torch.zeros_like(x) if needs[0] else None                 # (N, d)
    gtails: list[Optional[torch.Tensor]] = []
    for i in range(k):
        a, b = tails[2 * i], tails[2 * i + 1]
        lo, hi = cutoffs[i], cutoffs[i + 1]
        gc = grad_out[:, lo:hi]                                    # (N, o_i) dL/dtl_i
        ghl[:, s + i] = gc.sum(1)
        tl = out[:, lo:hi] - hl[:, s + i:s + i + 1]                # (N, o_i) the tail's own log-probs
        (gt,) = log_softmax_backward(gc, (tl, 1))                  # (N, o_i)
        gz = gt @ b                                                # (N, d_i)
        gtails.append(gz.t() @ x if needs[4 + 2 * i] else None)   # (d_i, d)
        gtails.append(gt.t() @ zs[i] if needs[5 + 2 * i] else None)  # (o_i, d_i)
        if gx is not None:
            gx.addmm_(gz, a)                                       # (N, d)
    (gh,) = log_softmax_backward(ghl, (hl, 1))                     # (N, H)
    if gx is not None:
        gx.addmm_(gh, head_weight)
    ghw = gh.t() @ x if needs[1] else None                         # (H, d)
    ghb = gh.sum(0) if has_bias and needs[2] else None             # (H,)
    return (gx, ghw, ghb, None, *gtails)


AdaptiveLogProbFunction = kernel_function("AdaptiveLogProbFunction", adaptive_log_prob_forward,
                                          adaptive_log_prob_backward, pass_needs=True)


def adaptive_log_prob(x: torch.Tensor, head_weight: torch.Tensor, head_bias: Optional[torch.Tensor],
                      cutoffs: Sequence[int], tail_weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """``x (N, d)`` -> ``(N, C)`` log-probabilities of every class (float32 under autocast)."""
    return apply(AdaptiveLogProbFunction, FP32, x, head_weight, head_bias, tuple(cutoffs), *tail_weights)


@torch.no_grad()
def adaptive_predict(x: torch.Tensor, head_weight: torch.Tensor, head_bias: Optional[torch.Tensor],
                     cutoffs: Sequence[int], tail_weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """``x (N, d)`` -> ``(N,)`` the most likely class. A row whose best head entry is a
    shortlist class needs no tail (no cluster's class can beat it); the others get the full
    distribution, as torch's ``predict``."""
    cutoffs = tuple(cutoffs)
    h = torch.addmm(head_bias, x, head_weight.t()) if head_bias is not None else x @ head_weight.t()  # (N, H)
    best = h.argmax(1)                                             # (N,)
    rows = (best >= cutoffs[0]).nonzero()[:, 0]                    # rows whose best is a cluster
    if rows.numel():
        full = adaptive_log_prob_forward(x.index_select(0, rows), head_weight, head_bias, cutoffs,
                                         *tail_weights)[0]        # (n, C)
        best.index_copy_(0, rows, full.argmax(1))
    return best
