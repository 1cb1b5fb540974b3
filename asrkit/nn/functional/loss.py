"""Loss kernels: MSE, cross entropy (class indices or probabilities, weights,
ignore_index, label smoothing), NLL, binary cross entropy with logits.

``reduction`` is ``"mean"``, ``"sum"`` or ``"none"`` as in torch; the
backward multiplies by the incoming gradient (a scalar, or per element for
``"none"``).
"""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import FP32, apply, kernel_function
from asrkit.nn.functional.activation import log_softmax_backward, log_softmax_forward

_REDUCTIONS = ("mean", "sum", "none")


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """torch's mapping of the deprecated ``size_average`` / ``reduce`` arguments."""
    if size_average is None and reduce is None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{reduction} is not a valid value for reduction")
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        return "mean"
    return "sum" if reduce else "none"


def _reduce(loss: torch.Tensor, reduction: str, denom: torch.Tensor | float) -> torch.Tensor:
    if reduction == "none":
        return loss
    total = loss.sum()
    return total / denom if reduction == "mean" else total


# ---------------------------------------------------------------- MSE
# L = reduce((x - t)^2);  dL/dx = 2 (x - t) g / n (mean),  dL/dt = -dL/dx


def mse_forward(x: torch.Tensor, t: torch.Tensor, reduction: str) -> tuple[torch.Tensor, tuple]:
    diff = x - t                                                  # broadcast shape
    loss = _reduce(diff * diff, reduction, diff.numel())
    return loss, (diff, reduction, x.shape, t.shape)


def _unbroadcast(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    while g.dim() > len(shape):
        g = g.sum(0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g


def mse_backward(gy: torch.Tensor, cache: tuple) -> tuple:
    diff, reduction, xs, ts = cache
    scale = 2.0 / diff.numel() if reduction == "mean" else 2.0
    gd = diff * (gy * scale)                                      # broadcast shape
    return _unbroadcast(gd, xs), _unbroadcast(-gd, ts)


# ---------------------------------------------------------------- cross entropy
# logp = log_softmax(x, dim=1). With per-element coefficients Q (N, C, *),
#     loss_i = -sum_c Q_ic logp_ic,   mean: sum_i loss_i / D
# class targets y:     Q_ic = w_c (1 - eps) [c = y_i] + w_c eps / C  (0 where y_i is ignored),
#                      D = sum over kept i of w_{y_i}
# probability targets: Q_ic = w_c ((1 - eps) t_ic + eps / C),  D = N * prod(*)
# dL/dlogp = -Q g / D, then back through log_softmax; dL/dt (probabilities) = -w (1-eps) logp g / D.


def cross_entropy_forward(x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                          ignore_index: int, reduction: str,
                          label_smoothing: float) -> tuple[torch.Tensor, tuple]:
    """``x (N, C, *)`` or ``(C,)``; ``target (N, *)`` class ids or ``(N, C, *)`` probabilities."""
    unbatched = x.dim() == 1
    if unbatched:
        x, target = x.unsqueeze(0), target.unsqueeze(0)
    c = x.shape[1]
    logp, lcache = log_softmax_forward(x, 1)                      # (N, C, *)
    eps = label_smoothing
    if not target.is_floating_point():
        return _class_cross_entropy(x, logp, target, weight, ignore_index, reduction, eps, unbatched)
    wshape = [1, c] + [1] * (x.dim() - 2)
    w = weight.to(x.dtype).view(wshape) if weight is not None else None  # (1, C, 1..)
    q = target * (1.0 - eps) + eps / c if eps > 0 else target     # (N, C, *)
    if w is not None:
        q = q * w
    denom = x.numel() / c
    per = -(q * logp).sum(1)                                      # (N, *)
    loss = _reduce(per, reduction, denom)
    if unbatched and reduction == "none":
        loss = loss.squeeze(0)
    return loss, (q, logp, lcache[1], denom, reduction, unbatched, w, eps, True)


# Class targets without the dense Q: with S_i = sum_c Q_ic = keep_i ((1 - eps) w_{y_i} + eps/C sum_c w_c),
#     loss_i = -keep_i ((1 - eps) w_{y_i} logp_{i,y_i} + eps/C sum_c w_c logp_ic),
#     dL/dx = g (exp(logp) S - Q)   (log_softmax's backward of -Q g, Q applied as a scatter)


def _class_cross_entropy(x, logp, target, weight, ignore_index, reduction, eps, unbatched):
    c = x.shape[1]
    keep = target != ignore_index                                 # (N, *)
    safe = torch.where(keep, target, torch.zeros_like(target)).unsqueeze(1)  # (N, 1, *)
    keepf = keep.to(x.dtype)
    wy = weight.to(x.dtype)[safe.squeeze(1)] * keepf if weight is not None else keepf  # (N, *)
    denom = wy.sum()                                              # scalar
    per = -(1.0 - eps) * wy * logp.gather(1, safe).squeeze(1)     # (N, *)
    s = (1.0 - eps) * wy                                          # S_i
    if eps > 0:
        wshape = [1, c] + [1] * (x.dim() - 2)
        wc = weight.to(x.dtype).view(wshape) if weight is not None else None
        smooth = (logp * wc).sum(1) if wc is not None else logp.sum(1)  # sum_c w_c logp_ic
        per = per - (eps / c) * keepf * smooth
        s = s + (eps / c) * keepf * (float(wc.sum()) if wc is not None else float(c))
    loss = _reduce(per, reduction, denom)
    if unbatched and reduction == "none":
        loss = loss.squeeze(0)
    return loss, (None, logp, 1, denom, reduction, unbatched, weight, eps, False, safe, wy, s, keepf)


def cross_entropy_backward(gy: torch.Tensor, cache: tuple) -> tuple:
    q, logp, dim, denom, reduction, unbatched, w, eps, prob_target, *class_cache = cache
    if reduction == "none":
        g = (gy.unsqueeze(0) if unbatched else gy).unsqueeze(1)   # (N, 1, *)
    elif reduction == "mean":
        g = gy / denom
    else:
        g = gy
    if not prob_target:
        return _class_cross_entropy_backward(g, logp, class_cache, w, eps, unbatched), None
    (gx,) = log_softmax_backward(-q * g, (logp, 1))               # (N, C, *)
    gt = None
    if prob_target:
        gt = -logp * g * (1.0 - eps)
        if w is not None:
            gt = gt * w
        gt = gt.squeeze(0) if unbatched else gt
    return (gx.squeeze(0) if unbatched else gx), gt


def _class_cross_entropy_backward(g, logp, cache, weight, eps, unbatched):
    safe, wy, s, keepf = cache
    if torch.is_tensor(g) and g.dim() > 0:                        # reduction "none": (N, 1, *)
        g = g.squeeze(1)
    gx = torch.exp(logp).mul_((s * g).unsqueeze(1))               # g S softmax
    gx.scatter_add_(1, safe, (-(1.0 - eps) * wy * g).unsqueeze(1))
    if eps > 0:
        c = logp.shape[1]
        wshape = [1, c] + [1] * (logp.dim() - 2)
        wc = weight.to(logp.dtype).view(wshape) if weight is not None else 1.0
        gx.sub_((eps / c) * (keepf * g).unsqueeze(1) * wc)
    return gx.squeeze(0) if unbatched else gx


# ---------------------------------------------------------------- NLL
# loss_i = -w_{y_i} x_{i, y_i} (0 if ignored);  mean divides by sum of kept w_{y_i}
# dL/dx_{i, y_i} = -w_{y_i} g / D, zero elsewhere


def nll_forward(x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                ignore_index: int, reduction: str) -> tuple[torch.Tensor, tuple]:
    """``x (N, C, *)`` log-probabilities (or ``(C,)``), ``target (N, *)`` class ids."""
    unbatched = x.dim() == 1
    if unbatched:
        x, target = x.unsqueeze(0), target.unsqueeze(0)
    keep = target != ignore_index                                 # (N, *)
    safe = torch.where(keep, target, torch.zeros_like(target))
    wy = weight.to(x.dtype)[safe] if weight is not None else torch.ones(
        safe.shape, dtype=x.dtype, device=x.device)               # (N, *)
    wy = wy * keep.to(x.dtype)
    picked = x.gather(1, safe.unsqueeze(1)).squeeze(1)            # (N, *)
    per = -wy * picked
    denom = wy.sum()
    loss = _reduce(per, reduction, denom)
    if unbatched and reduction == "none":
        loss = loss.squeeze(0)
    return loss, (safe, wy, denom, reduction, unbatched, x.shape)


def nll_backward(gy: torch.Tensor, cache: tuple) -> tuple:
    safe, wy, denom, reduction, unbatched, shape = cache
    if reduction == "none":
        g = gy.unsqueeze(0) if unbatched else gy                  # (N, *)
    elif reduction == "mean":
        g = gy / denom
    else:
        g = gy
    gx = torch.zeros(shape, dtype=wy.dtype, device=wy.device)     # (N, C, *)
    gx.scatter_(1, safe.unsqueeze(1), (-wy * g).unsqueeze(1))
    return (gx.squeeze(0) if unbatched else gx),


# ---------------------------------------------------------------- BCE with logits
# l = 1 + (pw - 1) t;  L = w [(1 - t) x + l softplus(-x)],  softplus(-x) = log(1 + e^-|x|) + max(-x, 0)
# dL/dx = w [(1 - t) - l sigmoid(-x)];  dL/dt = w [-x + (pw - 1) softplus(-x)]


def bce_with_logits_forward(x: torch.Tensor, t: torch.Tensor, weight: torch.Tensor | None,
                            pos_weight: torch.Tensor | None,
                            reduction: str) -> tuple[torch.Tensor, tuple]:
    sp = torch.log1p(torch.exp(-x.abs())) + torch.clamp_min(-x, 0)  # softplus(-x)
    lw = 1.0 + (pos_weight - 1.0) * t if pos_weight is not None else None
    per = (1.0 - t) * x + (lw * sp if lw is not None else sp)
    if weight is not None:
        per = per * weight
    loss = _reduce(per, reduction, per.numel())
    return loss, (x, t, sp, lw, weight, pos_weight, reduction, per.shape)


def bce_with_logits_backward(gy: torch.Tensor, cache: tuple) -> tuple:
    x, t, sp, lw, weight, pos_weight, reduction, shape = cache
    n = 1
    for s in shape:
        n *= s
    g = gy / n if reduction == "mean" else gy
    sig_neg = 1.0 / (1.0 + torch.exp(x))                          # sigmoid(-x)
    gx = (1.0 - t) - (lw * sig_neg if lw is not None else sig_neg)
    gt = -x + ((pos_weight - 1.0) * sp if pos_weight is not None else 0.0)
    if weight is not None:
        gx, gt = gx * weight, gt * weight
    gx, gt = gx * g, gt * g
    return _unbroadcast(gx, x.shape), _unbroadcast(gt, t.shape)


MSELossFunction = kernel_function("MSELossFunction", mse_forward, mse_backward)
CrossEntropyFunction = kernel_function("CrossEntropyFunction", cross_entropy_forward, cross_entropy_backward)
NLLLossFunction = kernel_function("NLLLossFunction", nll_forward, nll_backward)
BCEWithLogitsFunction = kernel_function("BCEWithLogitsFunction", bce_with_logits_forward,
                                        bce_with_logits_backward)


def mse_loss(x: torch.Tensor, target: torch.Tensor, size_average=None, reduce=None,
             reduction: str = "mean") -> torch.Tensor:
    """As ``torch.nn.functional.mse_loss``."""
    return apply(MSELossFunction, FP32, x, target, legacy_reduction(size_average, reduce, reduction))


def cross_entropy(x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                  size_average=None, ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """As ``torch.nn.functional.cross_entropy`` (class indices or class probabilities)."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    return apply(CrossEntropyFunction, FP32, x, target, weight, ignore_index,
                 legacy_reduction(size_average, reduce, reduction), float(label_smoothing))


def nll_loss(x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
             size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean") -> torch.Tensor:
    """As ``torch.nn.functional.nll_loss``."""
    return apply(NLLLossFunction, FP32, x, target, weight, ignore_index,
                 legacy_reduction(size_average, reduce, reduction))


def binary_cross_entropy_with_logits(x: torch.Tensor, target: torch.Tensor,
                                     weight: torch.Tensor | None = None, size_average=None,
                                     reduce=None, reduction: str = "mean",
                                     pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """As ``torch.nn.functional.binary_cross_entropy_with_logits``."""
    if target.shape != x.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({x.shape})")
    return apply(BCEWithLogitsFunction, FP32, x, target, weight, pos_weight,
                 legacy_reduction(size_average, reduce, reduction))
