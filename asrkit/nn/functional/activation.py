"""Activation kernels: sigmoid, tanh, relu, leaky_relu, gelu (erf / tanh), silu, glu, softmax, log_softmax,
masked_softmax.

Each ``<op>_forward`` returns ``(out, cache)``; each ``<op>_backward(grad_out,
cache)`` returns the gradient of the input. Element-wise ops keep the shape of
their input everywhere: ``(*) -> (*)``; glu halves one dim: ``(*, 2n, *) -> (*, n, *)``.
"""
from __future__ import annotations

import math

import torch

from asrkit.nn.functional._autograd import FP32_CUDA, NONE, apply, kernel_function

# ---------------------------------------------------------------- sigmoid
# s = 1 / (1 + e^-x);  ds/dx = s (1 - s)


def sigmoid_forward(x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    out = 1.0 / (1.0 + torch.exp(-x))
    return out, (out,)


def sigmoid_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (s,) = cache
    return (grad_out * s * (1.0 - s),)


# ---------------------------------------------------------------- tanh
# t = (e^x - e^-x) / (e^x + e^-x) = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|});  dt/dx = 1 - t^2
# (the |x| form never overflows; expm1 keeps small |x| exact)


def tanh_forward(x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    e = torch.exp(-2.0 * x.abs())
    out = torch.sign(x) * (-torch.expm1(-2.0 * x.abs())) / (1.0 + e)
    return out, (out,)


def tanh_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (t,) = cache
    return (grad_out * (1.0 - t * t),)


# ---------------------------------------------------------------- relu
# r = max(x, 0);  dr/dx = 1 where x > 0 else 0 (torch's choice at 0 as well)


def relu_forward(x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    out = torch.clamp_min(x, 0.0)
    return out, (out,)


def relu_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (out,) = cache
    # the 0/1 mask is written straight into the gradient's own (fresh) buffer as floats and
    # multiplied in place: two passes, no bool tensor and no second large allocation (a bool
    # mask then .to(dtype) then a product cost ~5x more on the CPU)
    gx = torch.gt(out, 0, out=torch.empty_like(out, dtype=grad_out.dtype))
    return (gx.mul_(grad_out),)


# ---------------------------------------------------------------- leaky_relu
# y = x where x > 0 else a x;  dy/dx = 1 where x > 0 else a (torch's choice at 0: a)


def leaky_relu_forward(x: torch.Tensor, negative_slope: float = 0.01) -> tuple[torch.Tensor, tuple]:
    # the slope per element, written straight into a float tensor (a bool mask and torch.where
    # cost ~10x more on the CPU): 1 where x > 0, else a
    slope = torch.gt(x, 0, out=torch.empty_like(x)).mul_(1.0 - negative_slope).add_(negative_slope)
    return x * slope, (slope,)


def leaky_relu_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (slope,) = cache
    return (grad_out * slope,)


# ---------------------------------------------------------------- gelu
# erf:  g = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
#       dg/dx = Phi(x) + x phi(x),  phi(x) = e^{-x^2/2} / sqrt(2 pi)
# tanh: g = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
#       dg/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu_forward(x: torch.Tensor, approximate: str = "none") -> tuple[torch.Tensor, tuple]:
    if approximate == "tanh":
        t = torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
        return 0.5 * x * (1.0 + t), (x, t, approximate)
    if approximate != "none":
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    cdf = 0.5 * (1.0 + torch.erf(x * _INV_SQRT_2))
    return x * cdf, (x, cdf, approximate)


def gelu_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    x, aux, approximate = cache
    if approximate == "tanh":
        t = aux
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
        return (grad_out * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du),)
    pdf = torch.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return (grad_out * (aux + x * pdf),)


# ---------------------------------------------------------------- silu
# y = x s(x);  dy/dx = s + x s (1 - s) = s (1 + x (1 - s))


def silu_forward(x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    s = 1.0 / (1.0 + torch.exp(-x))
    return x * s, (x, s)


def silu_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    x, s = cache
    return (grad_out * s * (1.0 + x * (1.0 - s)),)


# ---------------------------------------------------------------- glu
# x = [a, b] (the two halves along dim);  y = a s(b)
# dL/da = g s(b);  dL/db = g a s(b) (1 - s(b))


def glu_forward(x: torch.Tensor, dim: int = -1) -> tuple[torch.Tensor, tuple]:
    if x.dim() == 0 or x.shape[dim] % 2:
        raise RuntimeError(f"glu: Halving dimension must be even, but dimension {dim % max(x.dim(), 1)} "
                           f"is size {x.shape[dim] if x.dim() else 0}")
    a, b = x.chunk(2, dim)                                # (*, n, *) each, views of x
    (s,) = sigmoid_forward(b)[1]                          # s(b)
    return a * s, (a, s, dim)


def glu_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    a, s, dim = cache
    gs = grad_out * s                                     # dL/da
    gb = gs * a * (1.0 - s)                               # dL/db
    return (torch.cat([gs, gb], dim),)                    # (*, 2n, *)


# ---------------------------------------------------------------- softmax
# y_i = e^{x_i - m} / sum_j e^{x_j - m}  (m = max for stability)
# dL/dx_i = y_i (g_i - sum_j g_j y_j)


def softmax_forward(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, tuple]:
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    out = e / e.sum(dim=dim, keepdim=True)
    return out, (out, dim)


def softmax_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    y, dim = cache
    return (y * (grad_out - (grad_out * y).sum(dim=dim, keepdim=True)),)


# ---------------------------------------------------------------- log_softmax
# z_i = x_i - m - log sum_j e^{x_j - m};  dL/dx_i = g_i - softmax_i sum_j g_j


def log_softmax_forward(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, tuple]:
    out = x - x.amax(dim=dim, keepdim=True)                      # shifted, then shifted - log-sum-exp
    out.sub_(torch.exp(out).sum(dim=dim, keepdim=True).log_())
    return out, (out, dim)


def log_softmax_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    z, dim = cache
    return (grad_out - torch.exp(z) * grad_out.sum(dim=dim, keepdim=True),)


# ---------------------------------------------------------------- masked_softmax
# softmax over the entries where the bool mask is False (mask True = excluded, e.g. padded frames):
# y_i = e^{x_i - m} / sum_{j unmasked} e^{x_j - m} for unmasked i, y_i = 0 for masked i
# (m = max over the unmasked entries; a row with every entry masked gives all zeros, not NaN).
# dL/dx_i = y_i (g_i - sum_j g_j y_j): zero at masked entries since y_i = 0 there.


def masked_softmax_forward(x: torch.Tensor, mask: torch.Tensor, dim: int) -> tuple[torch.Tensor, tuple]:
    if mask.dtype != torch.bool:
        raise TypeError(f"masked_softmax: the mask must be bool, got {mask.dtype}")
    xm = x.masked_fill(mask, float("-inf"))                      # (*) masked entries -> -inf
    m = xm.amax(dim=dim, keepdim=True)
    m = m.masked_fill(torch.isinf(m), 0.0)                       # rows with nothing unmasked
    e = torch.exp(xm - m)                                        # (*) 0 at masked entries
    s = e.sum(dim=dim, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)
    out = e / s
    return out, (out, dim)


def masked_softmax_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    y, dim = cache
    return (y * (grad_out - (grad_out * y).sum(dim=dim, keepdim=True)),)


SigmoidFunction = kernel_function("SigmoidFunction", sigmoid_forward, sigmoid_backward)
TanhFunction = kernel_function("TanhFunction", tanh_forward, tanh_backward)
ReLUFunction = kernel_function("ReLUFunction", relu_forward, relu_backward)
LeakyReLUFunction = kernel_function("LeakyReLUFunction", leaky_relu_forward, leaky_relu_backward)
GELUFunction = kernel_function("GELUFunction", gelu_forward, gelu_backward)
SiLUFunction = kernel_function("SiLUFunction", silu_forward, silu_backward)
GLUFunction = kernel_function("GLUFunction", glu_forward, glu_backward)
SoftmaxFunction = kernel_function("SoftmaxFunction", softmax_forward, softmax_backward)
LogSoftmaxFunction = kernel_function("LogSoftmaxFunction", log_softmax_forward, log_softmax_backward)
MaskedSoftmaxFunction = kernel_function("MaskedSoftmaxFunction", masked_softmax_forward, masked_softmax_backward)


def softmax_dim(ndim: int) -> int:
    """torch's implicit softmax dim when ``dim=None`` (legacy rule: 0 for 0-, 1-, 3-D input, else 1)."""
    return 0 if ndim in (0, 1, 3) else 1


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    return apply(SigmoidFunction, NONE, x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    return apply(TanhFunction, NONE, x)


def relu(x: torch.Tensor) -> torch.Tensor:
    return apply(ReLUFunction, NONE, x)


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    return apply(LeakyReLUFunction, NONE, x, float(negative_slope))


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    return apply(GELUFunction, NONE, x, approximate)


def silu(x: torch.Tensor) -> torch.Tensor:
    return apply(SiLUFunction, NONE, x)


def glu(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """As ``torch.nn.functional.glu``: first half times the sigmoid of the second half along ``dim``."""
    return apply(GLUFunction, NONE, x, int(dim))


def softmax(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    dim = softmax_dim(x.dim()) if dim is None else dim
    return apply(SoftmaxFunction, FP32_CUDA, x, dim)


def log_softmax(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    dim = softmax_dim(x.dim()) if dim is None else dim
    return apply(LogSoftmaxFunction, FP32_CUDA, x, dim)


def masked_softmax(x: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` of the entries where the bool ``mask`` (broadcastable to ``x``) is
    False; masked entries get weight 0, a fully masked row all zeros. ``mask=None``: plain softmax."""
    if mask is None:
        return softmax(x, dim)
    return apply(MaskedSoftmaxFunction, FP32_CUDA, x, mask, int(dim))
