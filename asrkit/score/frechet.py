"""Fréchet distance between two sets of feature vectors, and mode coverage.

The Fréchet (2-Wasserstein) distance between the Gaussians fitted to two
feature sets (FID, Heusel et al. 2017, when the features are Inception's)::

    d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))

``tr((S_1 S_2)^(1/2))`` is computed symmetrically, with eigendecompositions
only (no scipy): ``R = S_1^(1/2)`` from ``eigh(S_1)``, then ``tr((S_1
S_2)^(1/2)) = sum sqrt(eig(R S_2 R))`` (``R S_2 R`` is symmetric PSD and
similar to ``S_1 S_2``). Small negative eigenvalues of rounding are clipped
to 0. Everything runs in float64.

The gan recipe's features are the embedding of a classifier trained on the
real training images (``asrkit train face``); :func:`mode_coverage` counts the
classes that classifier finds among generated images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Gaussian", "fit_gaussian", "frechet_distance", "mode_coverage", "sqrtm_psd"]


@dataclass
class Gaussian:
    """``mean (D,)`` and ``cov (D, D)`` (float64) of ``count`` feature vectors."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int


def fit_gaussian(features: torch.Tensor) -> Gaussian:
    """The mean and the unbiased covariance of ``features (N, D)``, N >= 2."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got shape {tuple(features.shape)}")
    x = features.detach().to(torch.float64)
    mean = x.mean(0)                                      # (D,)
    xc = x - mean                                         # (N, D)
    cov = xc.t() @ xc / (x.shape[0] - 1)                  # (D, D)
    return Gaussian(mean, cov, int(x.shape[0]))


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite ``a (D, D)`` (eigh;
    negative rounding eigenvalues clipped to 0)."""
    a = (a + a.t()) / 2
    w, v = torch.linalg.eigh(a)                           # (D,), (D, D)
    return (v * w.clamp_min(0).sqrt()) @ v.t()


def frechet_distance(a: Gaussian, b: Gaussian) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` (>= 0)."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"the two feature sets differ in dimension ({a.mean.numel()} vs {b.mean.numel()})")
    r = sqrtm_psd(a.cov)                                  # S_a^(1/2)
    m = r @ b.cov @ r                                     # similar to S_a S_b
    m = (m + m.t()) / 2
    tr_sqrt = torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum()
    diff = a.mean - b.mean
    d = float(diff @ diff + torch.trace(a.cov) + torch.trace(b.cov) - 2 * tr_sqrt)
    return max(d, 0.0)


def mode_coverage(probs: torch.Tensor, confidence: float = 0.5) -> tuple[float, torch.Tensor]:
    """``(share of classes found, counts (K,))`` for classifier probabilities ``probs (N, K)``
    of N generated images: a class is found when at least one image is given to it with
    probability >= ``confidence``; ``counts`` are the confident images per class."""
    if probs.dim() != 2 or probs.shape[1] < 1:
        raise ValueError(f"probs must be (N, K), got shape {tuple(probs.shape)}")
    p, k = probs.max(1)                                   # (N,), (N,)
    counts = torch.bincount(k[p >= confidence], minlength=probs.shape[1])
    return float((counts > 0).double().mean()), counts
