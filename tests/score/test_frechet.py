"""Fréchet distance (eigh-based, no scipy) against closed forms and a numpy reference; mode coverage."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from asrkit.score.frechet import Gaussian, fit_gaussian, frechet_distance, mode_coverage, sqrtm_psd


def _g(mean, cov):
    return Gaussian(torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(cov, dtype=torch.float64), 100)


def _numpy_reference(a: Gaussian, b: Gaussian) -> float:
    """tr((S_a S_b)^(1/2)) from the eigenvalues of the (non-symmetric) product: sqrt of each, summed."""
    ev = np.linalg.eigvals(a.cov.numpy() @ b.cov.numpy())
    tr = np.sqrt(np.clip(ev.real, 0, None)).sum()
    d = a.mean.numpy() - b.mean.numpy()
    return float(d @ d + np.trace(a.cov.numpy()) + np.trace(b.cov.numpy()) - 2 * tr)


def test_closed_forms():
    a = _g([0.0, 0.0], np.eye(2))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, _g([3.0, 4.0], np.eye(2))) == pytest.approx(25.0)
    # diagonal covariances: sum (sqrt(s1) - sqrt(s2))^2
    b = _g([0.0, 0.0], np.diag([4.0, 9.0]))
    assert frechet_distance(a, b) == pytest.approx((2 - 1) ** 2 + (3 - 1) ** 2)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a))


def test_matches_the_eigenvalues_of_the_product_on_random_covariances():
    rng = np.random.default_rng(0)
    for d in (3, 16, 64):
        xa, xb = rng.normal(size=(500, d)), rng.normal(size=(400, d)) @ rng.normal(size=(d, d)) * 0.5 + 1
        a, b = fit_gaussian(torch.from_numpy(xa)), fit_gaussian(torch.from_numpy(xb))
        assert frechet_distance(a, b) == pytest.approx(_numpy_reference(a, b), rel=1e-6, abs=1e-6)
        torch.testing.assert_close(a.cov, torch.from_numpy(np.cov(xa, rowvar=False)))


def test_rank_deficient_covariances_stay_finite_and_non_negative():
    x = torch.randn(10, 32, dtype=torch.float64)  # 10 samples in 32 dims: rank 9
    g = fit_gaussian(x)
    assert frechet_distance(g, g) == pytest.approx(0.0, abs=1e-6)
    r = sqrtm_psd(g.cov)
    torch.testing.assert_close(r @ r, g.cov, atol=1e-8, rtol=1e-6)
    assert frechet_distance(g, fit_gaussian(torch.randn(12, 32))) > 0


def test_fit_and_distance_refuse_bad_shapes():
    with pytest.raises(ValueError, match="N >= 2"):
        fit_gaussian(torch.randn(1, 4))
    with pytest.raises(ValueError, match="dimension"):
        frechet_distance(fit_gaussian(torch.randn(5, 3)), fit_gaussian(torch.randn(5, 4)))


def test_mode_coverage_counts_confident_classes():
    probs = torch.tensor([[0.9, 0.05, 0.05, 0.0], [0.1, 0.8, 0.1, 0.0], [0.4, 0.3, 0.3, 0.0], [0.95, 0.05, 0, 0]])
    share, counts = mode_coverage(probs)
    assert share == 0.5 and counts.tolist() == [2, 1, 0, 0]  # the 0.4 image is no one's
    assert mode_coverage(probs, confidence=0.0)[0] == 0.5
    with pytest.raises(ValueError):
        mode_coverage(torch.ones(3))
