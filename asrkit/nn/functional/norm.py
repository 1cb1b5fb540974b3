"""Normalization kernels: layer norm, batch norm and per-utterance normalization.

Both normalize ``xhat = (x - mu) * r`` with ``r = 1 / sqrt(var + eps)`` (biased
variance) and apply ``y = xhat * w + b``. With ``g = dL/dy`` and ``n`` the
number of elements each statistic is taken over, the input gradient is

    dL/dx = w r (g - mean(g) - xhat * mean(g xhat))

(the two means are over the same elements as ``mu``), ``dL/dw = sum(g xhat)``
and ``dL/db = sum(g)`` over everything but the parameter's axis. The
per-utterance normalization (no parameters) takes its statistics over each
utterance's own frames, so the same formula holds on the valid frames and the
padded frames get (and give) zero. Inputs in
fp16/bf16 (autocast) are accumulated in float32 and returned in their dtype.
"""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import FP32_CUDA, NONE, acc_dtype, apply, kernel_function, workspace

# ---------------------------------------------------------------- layer norm
# x (*, D1..Dk) normalized over the last k dims (normalized_shape); w, b (D1..Dk)


def layer_norm_forward(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    normalized_shape: tuple[int, ...],
    eps: float = 1e-5,
) -> tuple[torch.Tensor, tuple]:
    k = len(normalized_shape)
    if tuple(x.shape[x.dim() - k:]) != tuple(normalized_shape):
        raise RuntimeError(
            f"layer_norm: expected input with shape [*, {', '.join(map(str, normalized_shape))}], "
            f"but got input of size {list(x.shape)}")
    dt = acc_dtype(x)
    d = 1
    for s in normalized_shape:
        d *= s
    x2 = x.reshape(-1, d).to(dt)                                  # (M, D)
    var, mu = torch.var_mean(x2, dim=1, unbiased=False, keepdim=True)  # (M, 1)
    rstd = torch.rsqrt(var + eps)                                 # (M, 1)
    xhat = (x2 - mu) * rstd                                       # (M, D)
    y = xhat
    if weight is not None:
        y = y * weight.reshape(1, d).to(dt)                       # (M, D)
    if bias is not None:
        y = y + bias.reshape(1, d).to(dt)                         # (M, D)
    y = y.reshape(x.shape).to(x.dtype)                            # (*, D1..Dk)
    return y, (xhat, rstd, weight, bias is not None, x.shape, x.dtype)


def layer_norm_backward(grad_out: torch.Tensor, cache: tuple) -> tuple:
    xhat, rstd, weight, has_bias, shape, xdtype = cache
    d = xhat.shape[1]
    g = grad_out.reshape(-1, d).to(xhat.dtype)                    # (M, D)
    gw = (g * xhat).sum(0).reshape(weight.shape).to(weight.dtype) if weight is not None else None
    gb = g.sum(0).reshape(weight.shape if weight is not None else shape[-1:]) if has_bias else None
    gxhat = g * weight.reshape(1, d).to(xhat.dtype) if weight is not None else g   # (M, D)
    gx = rstd * (gxhat - gxhat.mean(1, keepdim=True)
                 - xhat * (gxhat * xhat).mean(1, keepdim=True))   # (M, D)
    return gx.reshape(shape).to(xdtype), gw, gb


LayerNormFunction = kernel_function("LayerNormFunction", layer_norm_forward, layer_norm_backward)


def layer_norm(
    x: torch.Tensor,
    normalized_shape: int | tuple[int, ...] | list[int] | torch.Size,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """As ``torch.nn.functional.layer_norm``."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    out = apply(LayerNormFunction, FP32_CUDA, x, weight, bias, tuple(normalized_shape), float(eps))
    return out


# ---------------------------------------------------------------- batch norm
# x (N, C, *) normalized per channel over N and the trailing dims; w, b (C,)


def _as_ncl(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], t.shape[1], -1)                  # (N, C, L), L = prod(spatial)


def batch_norm_forward(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[torch.Tensor, tuple]:
    dt = acc_dtype(x)
    x3 = _as_ncl(x).to(dt)                                        # (N, C, L)
    n = x3.shape[0] * x3.shape[2]                                 # values per channel
    centred = None
    if training:
        if n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
        mu = x3.sum((0, 2)) / n                                   # (C,)
        # two-pass variance. The centred copy x - mu is what the backward needs (it replaces x
        # in the cache, so it costs no extra memory and saves the backward a pass); inputs in
        # fp16/bf16 keep x instead (a float32 copy would double what is kept)
        if dt == x.dtype:
            xc = centred = torch.sub(x3, mu.view(1, -1, 1))       # (N, C, L)
        else:
            xc = torch.sub(x3, mu.view(1, -1, 1), out=workspace(x3.numel(), dt, x.device).view(x3.shape))
        sq = workspace(x3.numel(), dt, x.device, slot=1).view(x3.shape)
        var = torch.mul(xc, xc, out=sq).sum((0, 2)) / n           # (C,) biased
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mu.to(running_mean.dtype), alpha=momentum)
        if running_var is not None:                               # unbiased, as torch
            running_var.mul_(1 - momentum).add_((var * (n / (n - 1))).to(running_var.dtype),
                                                alpha=momentum)
    else:
        mu, var = running_mean.to(dt), running_var.to(dt)         # (C,)
    rstd = torch.rsqrt(var + eps)                                 # (C,)
    scale = weight.to(dt) * rstd if weight is not None else rstd  # (C,)
    if centred is not None:
        # y = xhat * w + b = (x - mu) * scale + b, one pass
        shift = bias.to(dt) if bias is not None else torch.zeros_like(mu)
        y = torch.addcmul(shift.view(1, -1, 1), centred, scale.view(1, -1, 1))  # (N, C, L)
        saved = centred
    else:
        # y = x * scale + shift, shift = b - mu * scale, one pass
        shift = -mu * scale
        if bias is not None:
            shift = shift + bias.to(dt)
        y = torch.addcmul(shift.view(1, -1, 1), x3, scale.view(1, -1, 1))  # (N, C, L)
        saved = x
    return y.reshape(x.shape).to(x.dtype), (saved, mu, rstd, weight, bias is not None, training,
                                            centred is not None, x.shape, x.dtype)


def batch_norm_backward(grad_out: torch.Tensor, cache: tuple, needs: tuple = (True,) * 3) -> tuple:
    saved, mu, rstd, weight, has_bias, training, is_centred, shape, xdtype = cache
    dt = mu.dtype
    g3 = _as_ncl(grad_out).to(dt)                                 # (N, C, L)
    n = g3.shape[0] * g3.shape[2]
    need_x, need_w, need_b = needs[0], weight is not None and needs[1], has_bias and needs[2]
    k = weight.to(dt) * rstd if weight is not None else rstd      # (C,) w r
    sum_g = g3.sum((0, 2)) if (training and need_x) or need_b else None   # (C,)
    xc = sum_gxhat = None
    if (training and need_x) or need_w:
        if is_centred:
            xc = _as_ncl(saved)                                   # (N, C, L) x - mu, from the forward
        else:
            xc = workspace(g3.numel(), dt, g3.device).view(g3.shape)
            torch.sub(_as_ncl(saved).to(dt), mu.view(1, -1, 1), out=xc)   # (N, C, L) x - mu
        tmp = workspace(g3.numel(), dt, g3.device, slot=1).view(g3.shape)
        sum_gxhat = torch.mul(g3, xc, out=tmp).sum((0, 2)) * rstd # (C,) sum(g * xhat)
    gx = None
    if need_x:
        if training:
            # dx = w r (g - sum_g/n - xhat sum_gxhat/n) = k g + c1 (x - mu) + c0
            c1 = -k * rstd * sum_gxhat / n
            c0 = -k * sum_g / n
            gx = torch.addcmul(c0.view(1, -1, 1), g3, k.view(1, -1, 1))   # (N, C, L)
            gx.addcmul_(xc, c1.view(1, -1, 1))
        else:
            gx = g3 * k.view(1, -1, 1)                            # (N, C, L)
        gx = gx.reshape(shape).to(xdtype)
    gw = sum_gxhat.to(weight.dtype) if need_w else None
    gb = sum_g.to(weight.dtype if weight is not None else dt) if need_b else None
    return gx, gw, gb


BatchNormFunction = kernel_function("BatchNormFunction", batch_norm_forward, batch_norm_backward,
                                    pass_needs=True)


def batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """As ``torch.nn.functional.batch_norm`` (running stats updated in place when training)."""
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: running_mean and running_var are needed when not training")
    return apply(BatchNormFunction, NONE, x, weight, bias, running_mean, running_var,
                 bool(training), float(momentum), float(eps))


# ---------------------------------------------------------------- utterance norm
# x (B, T, D), lengths (B,): per utterance b and dim d, over b's own frames t < T_b
#   mu = sum_t x / T_b,  var = sum_t (x - mu)^2 / T_b,  y = (x - mu) r,  r = 1 / sqrt(var + eps)
#   y = 0 on padded frames;  dL/dx = r (g - mean_t g - y mean_t(g y)) on valid frames, 0 on padded


def utterance_norm_forward(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, tuple]:
    B, T, _ = x.shape
    dt = acc_dtype(x)
    keep = (torch.arange(T, device=x.device)[None, :] < lengths.to(x.device)[:, None]).to(dt)  # (B, T)
    keep = keep.unsqueeze(-1)                                     # (B, T, 1)
    n = keep.sum(1, keepdim=True).clamp_min(1.0)                  # (B, 1, 1) frames per utterance
    x3 = x.to(dt)
    mu = (x3 * keep).sum(1, keepdim=True) / n                     # (B, 1, D)
    xc = (x3 - mu).mul_(keep)                                     # (B, T, D) zero past each length
    var = (xc * xc).sum(1, keepdim=True) / n                      # (B, 1, D) biased
    rstd = torch.rsqrt(var + eps)                                 # (B, 1, D)
    y = xc.mul_(rstd)                                             # (B, T, D) normalized, y = xhat
    return y.to(x.dtype), (y, rstd, keep, n, x.dtype)


def utterance_norm_backward(grad_out: torch.Tensor, cache: tuple) -> tuple:
    y, rstd, keep, n, xdtype = cache
    g = grad_out.to(y.dtype) * keep                               # (B, T, D) valid frames only
    mean_g = g.sum(1, keepdim=True) / n                           # (B, 1, D)
    mean_gy = (g * y).sum(1, keepdim=True) / n                    # (B, 1, D)
    gx = (g - mean_g).sub_(y * mean_gy).mul_(keep).mul_(rstd)     # (B, T, D)
    return gx.to(xdtype), None


UtteranceNormFunction = kernel_function("UtteranceNormFunction", utterance_norm_forward, utterance_norm_backward)


def utterance_norm(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``x (B, T, D), lengths (B,) -> (B, T, D)``: mean 0, variance 1 per utterance and dim over
    its own frames; frames past each length come out zero."""
    return apply(UtteranceNormFunction, FP32_CUDA, x, lengths, float(eps))
