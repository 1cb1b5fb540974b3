"""The CTC prefix scorer against a brute-force sum over every CTC alignment."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from asrkit.decode.ctc_prefix import CTCPrefixScorer

BLANK = 0


def _labelling_probs(lp: torch.Tensor) -> dict[tuple[int, ...], float]:
    """P(labelling) of every labelling of a (T, C) log-probability matrix: all C^T paths, collapsed."""
    T, C = lp.shape
    p = lp.exp().tolist()
    out: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(C), repeat=T):
        prob = math.prod(p[t][c] for t, c in enumerate(path))
        lab, prev = [], None
        for c in path:
            if c != prev and c != BLANK:
                lab.append(c)
            prev = c
        out[tuple(lab)] = out.get(tuple(lab), 0.0) + prob
    return out


def _prefix_prob(probs: dict[tuple[int, ...], float], h: tuple[int, ...]) -> float:
    return sum(v for lab, v in probs.items() if lab[:len(h)] == h)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_scores_are_exact(seed):
    g = torch.Generator().manual_seed(seed)
    C, lengths = 3, [6, 4]
    B, T = len(lengths), max(lengths)
    lp = torch.log_softmax(torch.randn(B, T, C, generator=g, dtype=torch.float64) * 1.5, dim=-1)
    lp[1, lengths[1]:] = float("nan")  # padding: never read
    brute = [_labelling_probs(lp[b, :lengths[b]]) for b in range(B)]
    scorer = CTCPrefixScorer(lp, torch.tensor(lengths), blank=BLANK, eos=BLANK)
    state = scorer.initial(torch.arange(B))
    prefixes = [(), ()]  # the hypothesis of every row
    cands = torch.arange(C)
    for _length in range(4):
        N = len(prefixes)
        log_psi, r = scorer.score(state, cands[None].expand(N, C))
        for n, h in enumerate(prefixes):
            b = int(state.rows[n])
            for c in range(C):
                want = brute[b].get(h, 0.0) if c == BLANK else _prefix_prob(brute[b], h + (c,))
                got = math.exp(float(log_psi[n, c]))
                assert got == pytest.approx(want, rel=1e-9, abs=1e-300), (b, h, c)
        # keep every extension by a label: all prefixes one longer
        parents = [n for n in range(N) for c in range(1, C)]
        ks = [c for n in range(N) for c in range(1, C)]
        state = scorer.select(state, r, log_psi, torch.tensor(parents), torch.tensor(ks), torch.tensor(ks))
        prefixes = [prefixes[n] + (c,) for n, c in zip(parents, ks)]
    assert state.length == 4 and state.r.shape == (T, 2, len(prefixes))


def test_a_prefix_longer_than_the_frames_is_impossible():
    lp = torch.log_softmax(torch.randn(1, 2, 3, dtype=torch.float64), dim=-1)
    scorer = CTCPrefixScorer(lp, torch.tensor([2]))
    st = scorer.initial(torch.tensor([0]))
    psi, r = scorer.score(st, torch.tensor([[1]]))
    st = scorer.select(st, r, psi, torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    psi, r = scorer.score(st, torch.tensor([[1, 2, 0]]))  # "1 1" needs 3 frames; "1 2" fits; eos: exactly "1"
    assert psi[0, 0] == float("-inf") and psi[0, 1] > float("-inf") and psi[0, 2] > float("-inf")
