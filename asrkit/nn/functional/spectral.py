"""Spectral normalization kernels (Miyato et al. 2018): ``W / sigma(W)`` with the
largest singular value ``sigma`` estimated by power iteration, as
``torch.nn.utils.spectral_norm``.

The weight ``W`` (any shape) is seen as a matrix ``W_mat (h, w)``: dim ``dim``
moved to the front (0 for Linear / Conv, 1 for ConvTranspose), the rest
flattened. ``u (h,)`` and ``v (w,)`` are the running singular vector estimates
(buffers); in training each forward first refines them (no gradient flows
through them)::

    v = normalize(W_mat^T u);  u = normalize(W_mat v)     (n times; normalize(x) = x / max(|x|, eps))
    sigma = u^T W_mat v;  out = W / sigma

Backward, with ``u, v`` constants: ``d sigma / d W_mat = u v^T``, so for
``G = dL/d out``::

    dL/dW = G / sigma - (<G, W> / sigma^2) u v^T
"""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import NONE, apply, kernel_function


def weight_matrix(weight: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``weight`` as the ``(h, w)`` matrix whose spectral norm is taken: ``dim`` first, the rest flattened."""
    if dim != 0:
        weight = weight.movedim(dim, 0)
    return weight.reshape(weight.shape[0], -1)


def normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``x / max(|x|, eps)`` of a vector (``torch.nn.functional.normalize(x, dim=0)``)."""
    return x / torch.linalg.vector_norm(x).clamp_min(eps)


@torch.no_grad()
def power_iteration(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n: int = 1, dim: int = 0,
                    eps: float = 1e-12) -> None:
    """``n`` power-iteration steps refining the buffers ``u (h,)`` and ``v (w,)`` in place."""
    w_mat = weight_matrix(weight.detach(), dim)          # (h, w)
    for _ in range(n):
        v.copy_(normalize(w_mat.t() @ u, eps))           # (w,)
        u.copy_(normalize(w_mat @ v, eps))               # (h,)


def spectral_normalize_forward(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                               dim: int = 0) -> tuple[torch.Tensor, tuple]:
    w_mat = weight_matrix(weight, dim)                   # (h, w)
    sigma = torch.dot(u, w_mat @ v)                      # ()
    return weight / sigma, (weight, u, v, sigma, dim)


def spectral_normalize_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, None, None]:
    weight, u, v, sigma, dim = cache
    inner = (grad_out * weight).sum()                    # <G, W>
    uv = torch.outer(u, v)                               # (h, w) = d sigma / d W_mat
    shape = list(weight.shape)
    if dim != 0:
        shape.insert(0, shape.pop(dim))
    uv = uv.reshape(shape)
    if dim != 0:
        uv = uv.movedim(0, dim)                          # back to the weight's layout
    return grad_out / sigma - (inner / (sigma * sigma)) * uv, None, None


SpectralNormFunction = kernel_function("SpectralNormFunction", spectral_normalize_forward,
                                       spectral_normalize_backward)


def spectral_normalize(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``weight / (u^T W_mat v)`` with ``u, v`` held constant (see the module docstring)."""
    return apply(SpectralNormFunction, NONE, weight, u, v, int(dim))
