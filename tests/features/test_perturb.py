"""VTLP and time stretching of log-mel features: the warp's shape, shapes, seeding, refusals
(training with them: tests/train/test_train_perturb.py)."""
from __future__ import annotations

import pytest
import torch

from asrkit.errors import ConfigError
from asrkit.features.perturb import MelGeometry, Perturb, time_stretch, vtlp_positions, vtlp_warp

FBANK80 = {"type": "fbank", "sample_frequency": 16000, "num_mel_bins": 80, "deltas": 0}


def _geom(**conf) -> MelGeometry:
    return MelGeometry.from_conf({**FBANK80, **conf})


def test_geometry_from_the_store_conf():
    g = _geom()
    assert (g.num_bins, g.low_freq, g.high_freq, g.vtlp_low, g.vtlp_high, g.dim) == (80, 20.0, 8000.0, 100.0, 7500.0, 80)
    g = _geom(num_mel_bins=40, sample_frequency=8000, high_freq=-200, use_energy=True, deltas=2)
    assert (g.high_freq, g.vtlp_high, g.offset, g.block, g.blocks, g.dim) == (3800.0, 3500.0, 1, 41, 3, 123)
    assert _geom(use_energy=True, htk_compat=True).offset == 0
    with pytest.raises(ConfigError, match="mfcc"):
        MelGeometry.from_conf({"type": "mfcc", "num_ceps": 13})
    with pytest.raises(ConfigError, match="vtlp_low"):
        MelGeometry.from_conf(FBANK80, vtlp_low=9000.0)


def test_warp_is_kaldis_shape():
    g = _geom()
    f = torch.linspace(g.low_freq, g.high_freq, 2001, dtype=torch.float64)
    assert torch.allclose(vtlp_warp(f, 1.0, g), f)
    for alpha in (0.8, 0.9, 1.1, 1.2):
        w = vtlp_warp(f, alpha, g)
        assert (w.diff() > 0).all()                                        # monotone
        assert w[0] == pytest.approx(g.low_freq) and w[-1] == pytest.approx(g.high_freq)  # ends stay put
        mid = (f > 150 * max(1, alpha)) & (f < 7000 * min(1, alpha))
        assert torch.allclose(w[mid], f[mid] / alpha)                       # linear 1/alpha in between


def test_positions_identity_and_monotone():
    g = _geom()
    assert torch.equal(vtlp_positions(1.0, g), torch.arange(80, dtype=torch.float64))
    for alpha in (0.85, 0.9, 1.1, 1.15):
        p = vtlp_positions(alpha, g)
        assert p.shape == (80,) and (p.diff() >= 0).all() and p.min() >= 0 and p.max() <= 79
        # alpha > 1 reads lower bins (a shorter tract's formants move up), alpha < 1 higher ones
        assert (p[10:70] < torch.arange(10, 70)).all() if alpha > 1 else (p[10:70] > torch.arange(10, 70)).all()


def test_vtlp_shapes_identity_and_values():
    g = _geom()
    x = torch.randn(30, 80)
    assert torch.equal(Perturb(g, (1.0, 1.0))(x, seed=3), x)
    p = Perturb(g, (0.9, 1.1))
    y = p(x, seed=(0, 1, 2))
    assert y.shape == x.shape and y.dtype == x.dtype and not torch.equal(y, x)
    # each output bin lies between the two input bins it reads
    alpha, _ = p.draw((0, 1, 2))
    pos = vtlp_positions(alpha, g)
    lo, hi = x[:, pos.floor().long()], x[:, pos.ceil().long()]
    assert ((y >= torch.minimum(lo, hi) - 1e-5) & (y <= torch.maximum(lo, hi) + 1e-5)).all()
    # a feature that is linear in the bin index maps to the positions themselves
    ramp = torch.arange(80, dtype=torch.float32).expand(5, 80)
    assert torch.allclose(p(ramp, seed=(0, 1, 2)), pos.float().expand(5, 80), atol=1e-4)


def test_vtlp_leaves_energy_and_warps_each_delta_block():
    g = _geom(num_mel_bins=20, use_energy=True, deltas=1)
    x = torch.randn(12, 42)
    y = Perturb(g, (1.1, 1.1))(x, seed=0)
    assert torch.equal(y[:, 0], x[:, 0]) and torch.equal(y[:, 21], x[:, 21])   # the energy columns
    one = Perturb(_geom(num_mel_bins=20), (1.1, 1.1))
    assert torch.equal(y[:, 1:21], one(x[:, 1:21], seed=0)) and torch.equal(y[:, 22:], one(x[:, 22:], seed=0))
    with pytest.raises(ValueError, match="42-dim"):
        Perturb(_geom(), (0.9, 1.1))(x, seed=0)


def test_time_stretch_shapes_and_ends():
    x = torch.randn(100, 8)
    assert torch.equal(time_stretch(x, 1.0), x)
    for rate, n in ((1.1, 91), (0.9, 111), (2.0, 50), (1000.0, 1)):
        y = time_stretch(x, rate)
        assert y.shape == (n, 8)
        assert torch.equal(y[0], x[0])
        if n > 1:
            assert torch.allclose(y[-1], x[-1])
    ramp = torch.arange(100, dtype=torch.float32)[:, None]
    assert torch.allclose(time_stretch(ramp, 0.9)[:, 0], torch.linspace(0, 99, 111), atol=1e-4)
    assert time_stretch(torch.randn(1, 8), 0.5).shape == (1, 8)


def test_seeded_independent_and_gradient_free():
    g = _geom()
    p = Perturb(g, (0.9, 1.1), (0.9, 1.1))
    x = torch.randn(40, 80, requires_grad=True)
    a, b = p(x, seed=(0, 2, 7)), p(x, seed=(0, 2, 7))
    assert torch.equal(a, b) and not a.requires_grad and a.grad_fn is None
    draws = {p.draw((0, e, i)) for e in range(3) for i in range(20)}
    assert len(draws) == 60
    alphas = [d[0] for d in draws]
    rates = [d[1] for d in draws]
    assert 0.9 <= min(alphas) < 0.95 and 1.05 < max(alphas) <= 1.1 and 0.9 <= min(rates) and max(rates) <= 1.1
    # rate and alpha are drawn apart from each other: VTLP alone draws the same alpha
    assert Perturb(g, (0.9, 1.1)).draw((0, 2, 7))[0] == p.draw((0, 2, 7))[0]
    assert p(x, seed=(0, 2, 8)).shape[0] != a.shape[0] or not torch.equal(p(x, seed=(0, 2, 8)), a)
    # an int seed and a tuple seed both work and differ
    assert p.draw(5) != p.draw((5, 0))


def test_bad_ranges():
    g = _geom()
    for bad in ([1.1, 0.9], [0.0, 1.0], [0.9], "0.9", [0.9, float("nan")], [True, 1.1]):
        with pytest.raises(ConfigError, match="features.vtlp_warp"):
            Perturb(g, bad)
        with pytest.raises(ConfigError, match="features.stretch_rate"):
            Perturb(rate=bad)
