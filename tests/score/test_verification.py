"""Verification metrics: AUC, ROC, EER, TAR@FAR against hand-worked cases and a brute force;
the ROC plot."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from asrkit.errors import DataError, UsageError
from asrkit.plot.roc import plot_roc
from asrkit.score.verification import auc, eer, roc_curve, tar_at_far, verification_report


def test_perfect_and_reversed_and_ties():
    assert auc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 1.0
    assert auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]) == 0.5     # ties count one half


def test_auc_matches_pairwise_count():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=60), 1)                       # rounded: many ties
    y = rng.integers(0, 2, 60)
    pos, neg = s[y == 1], s[y == 0]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)])
    assert auc(s, y) == pytest.approx(brute)
    far, tar, _ = roc_curve(s, y)
    assert auc(s, y) == pytest.approx(np.trapezoid(tar, far) if hasattr(np, "trapezoid") else np.trapz(tar, far))


def test_roc_points_and_rates():
    # scores 4 3 2 1 with labels 1 0 1 0
    far, tar, thr = roc_curve([4, 3, 2, 1], [1, 0, 1, 0])
    assert far.tolist() == [0, 0, 0.5, 0.5, 1]
    assert tar.tolist() == [0, 0.5, 0.5, 1, 1]
    assert thr[0] == np.inf and thr[1:].tolist() == [4, 3, 2, 1]
    assert tar_at_far(far, tar, 0.0) == 0.5
    assert tar_at_far(far, tar, 0.49) == 0.5 and tar_at_far(far, tar, 0.5) == 1.0
    assert eer(far, tar) == pytest.approx(0.5)


def test_eer_interpolates():
    # 1000 negatives N(0, 1), 1000 positives N(2, 1): EER between the ROC neighbours, and FAR = FRR there
    rng = np.random.default_rng(1)
    s = np.r_[rng.normal(size=1000), rng.normal(2.0, 1.0, size=1000)]
    y = np.r_[np.zeros(1000), np.ones(1000)]
    rep = verification_report(s, y)
    assert rep.eer == pytest.approx(0.16, abs=0.03)            # Phi(-1) = 0.159 for d' = 2
    assert 0.90 < rep.auc < 0.94                               # Phi(2 / sqrt 2) = 0.921
    assert 0 < rep.tar[1e-3] <= rep.tar[1e-2] < 1 - rep.eer
    assert rep.resolvable(1e-3) and not verification_report(s[:10], [0, 1] * 5).resolvable(1e-2)


def test_report_text_and_dict():
    rep = verification_report([0.9, 0.1, 0.8, 0.3], [1, 0, 1, 0])
    text = rep.format()
    assert "AUC            100.00" in text and "not measurable" in text
    assert rep.as_dict()["auc"] == 1.0 and rep.as_dict()["tar@far=0.01"] == 1.0


@pytest.mark.parametrize("scores,labels,match", [
    ([0.1, 0.2], [1, 1], "all same-identity"),
    ([0.1, 0.2], [0, 2], "labels must be 0"),
    ([0.1, float("nan")], [0, 1], "NaN"),
    ([0.1], [0, 1], "1 scores but 2 labels"),
])
def test_bad_input(scores, labels, match):
    with pytest.raises(DataError, match=match):
        verification_report(scores, labels)


def test_plot_roc(tmp_path):
    rng = np.random.default_rng(0)
    rep = verification_report(np.r_[rng.normal(size=300), rng.normal(2, 1, 300)], np.r_[np.zeros(300), np.ones(300)])
    out = plot_roc(rep, tmp_path / "roc.png", title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UsageError, match="PNG"):
        plot_roc(rep, tmp_path / "roc.jpg")
