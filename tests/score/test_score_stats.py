"""Bootstrap confidence interval and paired bootstrap comparison."""
from __future__ import annotations

import random

import pytest

from asrkit.errors import DataError
from asrkit.score import bootstrap_ci, paired_bootstrap, score


def _system(err_rate: float, seed: int, n: int = 200, noise_seed: int | None = None):
    """References from ``seed``; hypotheses with ``err_rate`` substitutions
    drawn with ``noise_seed`` (default: the same stream)."""
    rng = random.Random(seed)
    refs = {f"s-u{k}": [f"w{rng.randrange(50)}" for _ in range(rng.randint(3, 12))] for k in range(n)}
    noise = rng if noise_seed is None else random.Random(noise_seed)
    hyps = {u: [w if noise.random() > err_rate else "zzz" for w in ref] for u, ref in refs.items()}
    return refs, hyps


def test_ci_is_seeded_and_brackets_the_wer():
    refs, hyps = _system(0.2, 1)
    r = score(refs, hyps)
    a = bootstrap_ci(r, seed=0)
    assert a == bootstrap_ci(r, seed=0)
    assert a != bootstrap_ci(r, seed=1)
    assert a.low < r.wer < a.high and a.resamples == 1000 and a.level == 0.95
    assert 1.0 < a.high - a.low < 15.0
    perfect = score(refs, refs)
    z = bootstrap_ci(perfect)
    assert (z.low, z.high) == (0.0, 0.0)
    with pytest.raises(DataError):
        bootstrap_ci(score({"u": []}, {"u": []}))


def test_paired_bootstrap():
    refs, good = _system(0.05, 2)
    _, bad = _system(0.30, 2)
    a, b = score(refs, bad), score(refs, good)
    c = paired_bootstrap(a, b, seed=0)
    assert c.delta == pytest.approx(b.wer - a.wer) and c.delta < 0
    assert c.p_value < 0.01 and c.ci.high < 0 and c.utts == 200
    assert c == paired_bootstrap(a, b, seed=0)
    same = paired_bootstrap(a, a)
    assert same.delta == 0 and same.p_value == 1.0
    # nearly equal systems: no significance
    _, b2 = _system(0.30, 2, noise_seed=99)
    close = paired_bootstrap(a, score(refs, b2))
    assert close.p_value > 0.05


def test_paired_bootstrap_uses_common_utterances():
    refs, hyps = _system(0.2, 4, n=20)
    part = {u: h for k, (u, h) in enumerate(hyps.items()) if k % 2 == 0}
    a = score(refs, hyps)
    b = score(refs, part, mode="present")
    assert paired_bootstrap(a, b).utts == 10
    with pytest.raises(DataError, match="different references"):
        paired_bootstrap(a, score({u: r + ["x"] for u, r in refs.items()}, hyps))
