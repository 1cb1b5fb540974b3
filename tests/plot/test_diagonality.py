"""diagonality: the share of attention inside a monotonic band, on maps whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from asrkit.plot import attention_rows, default_band, diagonality


def _gauss_path(steps: int, frames: int, start: float, end: float, sigma: float = 1.0) -> np.ndarray:
    """(U, S) rows that are Gaussians (in frames) centred on a straight line from ``start`` to ``end``."""
    centers = np.linspace(start, end, steps)  # (U,)
    s = np.arange(frames)[None, :]  # (1, S)
    w = np.exp(-0.5 * ((s - centers[:, None]) / sigma) ** 2)  # (U, S)
    return w / w.sum(axis=1, keepdims=True)


def test_identity_is_one():
    assert diagonality(np.eye(30)) == pytest.approx(1.0)
    assert diagonality(np.eye(30), band=0) == pytest.approx(1.0)


def test_soft_diagonal_is_near_one():
    w = _gauss_path(40, 40, 0, 39, sigma=1.0)
    d = diagonality(w)  # band 2: +-2 sigma holds ~95% of each row
    assert 0.93 < d <= 1.0


def test_uniform_is_the_chance_level():
    for steps, frames, band in [(10, 100, None), (7, 50, 3), (25, 200, 1), (5, 9, 4)]:
        b = default_band(frames) if band is None else band
        want = min(2 * b + 1, frames) / frames
        assert diagonality(np.ones((steps, frames)), band=band) == pytest.approx(want)


def test_default_band_is_five_percent():
    assert [default_band(s) for s in (1, 10, 30, 100, 210, 1000)] == [1, 1, 2, 5, 11, 50]
    # the default gives uniform attention a chance level near 0.1 at any length
    assert diagonality(np.full((20, 400), 1 / 400)) == pytest.approx(41 / 400)


@pytest.mark.parametrize("steps, frames", [(10, 120), (60, 25), (33, 34), (1, 50)])
def test_stretched_diagonal_is_one(steps, frames):
    """U != S: a sharp monotonic alignment scores 1 whatever its slope."""
    w = np.zeros((steps, frames))
    w[np.arange(steps), np.round(np.linspace(0, frames - 1, steps)).astype(int)] = 1.0
    assert diagonality(w) == pytest.approx(1.0)


def test_offset_does_not_matter():
    """The same alignment starting later (leading silence) scores the same."""
    ref = diagonality(_gauss_path(20, 120, 12, 72, sigma=2.0))
    for start in (13, 30, 47):
        assert diagonality(_gauss_path(20, 120, start, start + 60, sigma=2.0)) == pytest.approx(ref, abs=1e-9)


def test_reversed_map_is_low():
    steps = frames = 40
    assert diagonality(np.eye(frames)[::-1], band=1) == pytest.approx(3 / steps)  # 3 rows fit one band
    assert diagonality(np.eye(frames)[::-1]) == pytest.approx(5 / steps)  # default band 2 for 40 frames
    rev = _gauss_path(30, 120, 119, 0, sigma=1.5)
    assert diagonality(rev) < 0.5 * diagonality(rev[::-1])
    assert diagonality(rev) < 0.45


def test_bands_move_only_forward():
    """Two halves in the wrong order: only one of them fits a forward-moving band."""
    w = np.zeros((20, 100))
    w[:10, 80] = 1.0  # the first tokens attend late ...
    w[10:, 10] = 1.0  # ... the later ones early
    assert diagonality(w) == pytest.approx(0.5)


def test_noise_lowers_it_smoothly():
    rng = np.random.default_rng(0)
    clean = _gauss_path(30, 150, 5, 140, sigma=1.5)
    noisy = 0.5 * clean + 0.5 * rng.dirichlet(np.ones(150), size=30)
    assert diagonality(clean) > diagonality(noisy) > diagonality(np.ones((30, 150)))


def test_rows_are_normalized():
    w = np.eye(12)
    scaled = w * np.arange(1, 13)[:, None] + 0.01
    assert diagonality(scaled) == pytest.approx(diagonality(scaled / scaled.sum(1, keepdims=True)))
    assert np.allclose(attention_rows(scaled).sum(1), 1.0)


def test_torch_tensors_and_half_precision():
    w = _gauss_path(16, 64, 3, 60)
    d = diagonality(w)
    assert diagonality(torch.from_numpy(w)) == pytest.approx(d)
    assert diagonality(torch.from_numpy(w).half()) == pytest.approx(d, abs=2e-3)
    assert diagonality(torch.from_numpy(w).requires_grad_()) == pytest.approx(d)


@pytest.mark.parametrize("bad, what", [
    (np.ones(5), "2-D"),
    (np.ones((0, 5)), "empty"),
    (np.array([[0.5, np.nan], [0.5, 0.5]]), "NaN"),
    (np.array([[1.0, -0.5]]), "negative"),
    (np.array([[1.0, 0.0], [0.0, 0.0]]), "row 1"),
])
def test_bad_maps_are_refused(bad, what):
    with pytest.raises(ValueError, match=what):
        diagonality(bad)


def test_bad_band_is_refused():
    for band in (-1, 1.5, True):
        with pytest.raises(ValueError, match="band"):
            diagonality(np.eye(4), band=band)


def test_dynamic_programme_matches_brute_force():
    """Every monotonic sequence of band positions, tried one by one on small random maps."""
    from itertools import combinations_with_replacement

    rng = np.random.default_rng(3)
    for steps, frames, band in [(4, 9, 1), (5, 7, 0), (3, 12, 2), (6, 6, 1)]:
        w = rng.dirichlet(np.full(frames, 0.3), size=steps)  # (U, S), peaky rows
        width = 2 * band + 1
        mass = np.array([[w[u, j:j + width].sum() for j in range(frames - width + 1)] for u in range(steps)])
        best = max(sum(mass[u, j] for u, j in enumerate(path))
                   for path in combinations_with_replacement(range(frames - width + 1), steps))
        assert diagonality(w, band=band) == pytest.approx(best / steps)
