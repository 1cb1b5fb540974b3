"""Margin kernels for face embeddings: L2 normalization and cosine-margin logits.

**L2 normalization** (``torch.nn.functional.normalize`` with ``p=2``) along
``dim``, with ``n = max(||x||, eps)``::

    y = x / n
    dL/dx = (g - y * sum(g y)) / n        where ||x|| > eps
    dL/dx = g / eps                       where ||x|| <= eps (n is the constant eps)

**Cosine-margin logits** (ArcFace, Deng et al. 2019; CosFace, Wang et al.
2018; the combined form of InsightFace). With the embeddings ``x (N, D)``,
the class centres ``W (C, D)`` and the targets ``t (N,)``::

    cos = clamp(x/|x| @ (W/|W|)^T, -1, 1)                        (N, C)
    logit[n, c] = s * cos[n, c]                                  c != t[n]
    logit[n, t] = s * (phi(cos[n, t]) - m_cos)
    phi(c)      = cos(acos(c) + m_arc) = c cos(m) - sqrt(1 - c^2) sin(m)

``m_arc`` is ArcFace's additive angular margin, ``m_cos`` CosFace's additive
cosine margin (either may be 0). Past ``acos(c) + m > pi`` the angle would
wrap around and ``phi`` grow again; there (``c <= cos(pi - m)``) ArcFace uses
``c - sin(pi - m) m`` instead, which keeps the logit falling with the angle.
Backward, with ``G = s dL/dlogit``::

    dphi/dc = cos(m) + sin(m) c / sqrt(1 - c^2)      (1 on the fallback branch)
    dL/dcos = G, its target entries times dphi/dc
    dL/dxn = dL/dcos @ Wn,  dL/dWn = dL/dcos^T @ xn  (then through the two normalizations)

A row whose target is negative (``ignore``) gets no margin. Entries clamped
at +-1 pass no gradient, as torch's clamp.
"""
from __future__ import annotations

import math

import torch

from asrkit.nn.functional._autograd import FP32, apply, kernel_function

EPS = 1e-12           #: torch.nn.functional.normalize's default eps
_SIN_EPS = 1e-6       #: sqrt(1 - c^2) is kept above this in the backward (c = +-1 would divide by 0)


# ---------------------------------------------------------------- l2 normalize

def _normalize(x: torch.Tensor, dim: int, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, n, norm)``: ``y = x / n`` with ``n = max(||x||, eps)`` kept along ``dim``."""
    norm = torch.linalg.vector_norm(x, 2, dim=dim, keepdim=True)     # (.., 1, ..)
    n = norm.clamp_min(eps)
    return x / n, n, norm


def _normalize_grad(g: torch.Tensor, y: torch.Tensor, n: torch.Tensor, norm: torch.Tensor, dim: int,
                    eps: float) -> torch.Tensor:
    """``dL/dx`` of ``y = x / max(||x||, eps)`` from ``g = dL/dy``."""
    proj = (g * y).sum(dim, keepdim=True)                                # (.., 1, ..)
    return torch.where(norm > eps, g - y * proj, g) / n


def normalize_forward(x: torch.Tensor, dim: int, eps: float) -> tuple[torch.Tensor, tuple]:
    """``x (*)`` -> ``x / max(||x||_2, eps)`` along ``dim``."""
    y, n, norm = _normalize(x, dim, eps)
    return y, (y, n, norm, dim, eps)


def normalize_backward(g: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    y, n, norm, dim, eps = cache
    return (_normalize_grad(g, y, n, norm, dim, eps),)


# ---------------------------------------------------------------- cosine-margin logits

def _arc_threshold(m_arc: float) -> tuple[float, float]:
    """``(cos(pi - m), sin(pi - m) m)``: below the first, ``phi(c) = c - the second``."""
    return math.cos(math.pi - m_arc), math.sin(math.pi - m_arc) * m_arc


def cosine_margin_forward(x: torch.Tensor, weight: torch.Tensor, target: torch.Tensor | None, scale: float,
                          m_arc: float, m_cos: float) -> tuple[torch.Tensor, tuple]:
    """``x (N, D)``, ``weight (C, D)``, ``target (N,)`` int64 or None -> logits ``(N, C)``."""
    xn, nx, normx = _normalize(x, 1, EPS)                                # (N, D)
    wn, nw, normw = _normalize(weight, 1, EPS)                           # (C, D)
    raw = xn @ wn.t()                                                    # (N, C)
    cos = raw.clamp(-1.0, 1.0)
    logits = cos.clone()
    rows = cols = dphi = None
    if target is not None and (m_arc or m_cos):
        rows = torch.nonzero(target >= 0).flatten()                      # (K,) rows with a target
        cols = target[rows]                                              # (K,)
        c = cos[rows, cols]                                              # (K,)
        if m_arc:
            sin = (1.0 - c * c).clamp_min(0.0).sqrt()                    # (K,)
            th, mm = _arc_threshold(m_arc)
            main = c > th
            phi = torch.where(main, c * math.cos(m_arc) - sin * math.sin(m_arc), c - mm)
            dphi = torch.where(main, math.cos(m_arc) + math.sin(m_arc) * c / sin.clamp_min(_SIN_EPS),
                               torch.ones_like(c))                       # (K,)
        else:
            phi, dphi = c, torch.ones_like(c)
        logits[rows, cols] = phi - m_cos
    logits = logits * scale                                              # (N, C)
    inside = (raw >= -1.0) & (raw <= 1.0)                                # the clamp passes gradient here
    return logits, (xn, nx, normx, wn, nw, normw, inside, rows, cols, dphi, scale)


def cosine_margin_backward(g: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    xn, nx, normx, wn, nw, normw, inside, rows, cols, dphi, scale = cache
    gcos = g * scale                                                     # (N, C)
    if rows is not None:
        gcos[rows, cols] = gcos[rows, cols] * dphi
    gcos = gcos * inside
    gxn = gcos @ wn                                                      # (N, D)
    gwn = gcos.t() @ xn                                                  # (C, D)
    return _normalize_grad(gxn, xn, nx, normx, 1, EPS), _normalize_grad(gwn, wn, nw, normw, 1, EPS)


NormalizeFunction = kernel_function("NormalizeFunction", normalize_forward, normalize_backward)
CosineMarginFunction = kernel_function("CosineMarginFunction", cosine_margin_forward, cosine_margin_backward)


# ---------------------------------------------------------------- public functionals

def normalize(x: torch.Tensor, dim: int = 1, eps: float = EPS) -> torch.Tensor:
    """As ``torch.nn.functional.normalize(x, p=2, dim=dim, eps=eps)``."""
    return apply(NormalizeFunction, FP32, x, int(dim) % x.dim(), float(eps))


def cosine_margin_logits(x: torch.Tensor, weight: torch.Tensor, target: torch.Tensor | None = None,
                         scale: float = 30.0, m_arc: float = 0.0, m_cos: float = 0.0) -> torch.Tensor:
    """Scaled cosine logits ``(N, C)`` of embeddings ``x (N, D)`` against class centres
    ``weight (C, D)``, with ArcFace's angular margin ``m_arc`` and/or CosFace's cosine
    margin ``m_cos`` on each row's ``target`` class (no margin without targets)."""
    if target is not None:
        target = target.to(torch.int64)
    return apply(CosineMarginFunction, FP32, x, weight, target, float(scale), float(m_arc), float(m_cos))


def cosine_margin_logits_reference(x: torch.Tensor, weight: torch.Tensor, target: torch.Tensor | None = None,
                                   scale: float = 30.0, m_arc: float = 0.0, m_cos: float = 0.0) -> torch.Tensor:
    """The same logits from torch ops, differentiated by torch's autograd (the ``native`` path)."""
    import torch.nn.functional as TF

    cos = (TF.normalize(x, dim=1) @ TF.normalize(weight, dim=1).t()).clamp(-1.0, 1.0)  # (N, C)
    if target is None or not (m_arc or m_cos):
        return cos * scale
    target = target.to(torch.int64)
    keep = target >= 0
    onehot = torch.zeros_like(cos, dtype=torch.bool)
    onehot[keep.nonzero().flatten(), target[keep]] = True
    phi = cos
    if m_arc:
        sin = (1.0 - cos * cos).clamp_min(_SIN_EPS ** 2).sqrt()
        th, mm = _arc_threshold(m_arc)
        phi = torch.where(cos > th, cos * math.cos(m_arc) - sin * math.sin(m_arc), cos - mm)
    return torch.where(onehot, phi - m_cos, cos) * scale
