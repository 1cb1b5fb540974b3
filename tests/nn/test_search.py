"""CTC greedy and prefix beam search."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from asrkit.nn.search import ctc_greedy, ctc_prefix_beam_search, ctc_prefix_beam_search_nbest


def _collapse(path, blank=0):
    out, prev = [], None
    for p in path:
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return tuple(out)


def test_greedy_and_beam_differ_on_three_symbols():
    # classes (blank, a, b); two frames of [.5, .4, .1]
    p = torch.tensor([[0.5, 0.4, 0.1], [0.5, 0.4, 0.1]]).log()
    hyps, scores = ctc_greedy(p.unsqueeze(0))
    assert hyps == [[]]
    assert scores[0].item() == pytest.approx(math.log(0.25), abs=1e-6)
    bh, bs = ctc_prefix_beam_search(p.unsqueeze(0), beam=3)
    assert bh == [[1]]  # "a": .16 + .2 + .2 = .56 beats "" at .25
    assert bs[0].item() == pytest.approx(math.log(0.56), abs=1e-6)


def test_greedy_collapses_and_respects_lengths():
    lp = torch.full((2, 6, 4), -10.0)
    best = [[1, 1, 0, 1, 2, 2], [3, 0, 3, 3, 2, 1]]
    for b, row in enumerate(best):
        for t, c in enumerate(row):
            lp[b, t, c] = -0.1
    hyps, scores = ctc_greedy(lp, lengths=[6, 4], blank=0)
    assert hyps == [[1, 1, 2], [3, 3]]
    torch.testing.assert_close(scores, torch.tensor([-0.6, -0.4]))


def test_beam_matches_brute_force():
    torch.manual_seed(0)
    T, C = 5, 3
    lp = torch.log_softmax(torch.randn(T, C, dtype=torch.float64) * 2, -1)
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(C), repeat=T):
        s = sum(lp[t, c].item() for t, c in enumerate(path))
        k = _collapse(path)
        totals[k] = math.log(math.exp(totals[k]) + math.exp(s)) if k in totals else s
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    # a beam wide enough to hold every prefix is exact
    nbest = ctc_prefix_beam_search_nbest(lp, beam=1000)
    assert tuple(nbest[0][0]) == ranked[0][0]
    for labels, score in nbest[:5]:
        assert score == pytest.approx(totals[tuple(labels)], abs=1e-9)
    hyps, scores = ctc_prefix_beam_search(lp.unsqueeze(0), beam=8)
    assert tuple(hyps[0]) == ranked[0][0]


def test_beam_lengths_and_blank_index():
    lp = torch.log_softmax(torch.randn(2, 7, 4), -1)
    hyps, scores = ctc_prefix_beam_search(lp, lengths=torch.tensor([7, 3]), beam=4, blank=3)
    h2, s2 = ctc_prefix_beam_search(lp[1:, :3], beam=4, blank=3)
    assert hyps[1] == h2[0] and scores[1].item() == pytest.approx(s2[0].item())
    assert all(3 not in h for h in hyps)
    with pytest.raises(ValueError):
        ctc_prefix_beam_search(lp, lengths=[8, 1])
