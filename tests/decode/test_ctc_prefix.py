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


def _loop_score(x: torch.Tensor, r_g: torch.Tensor, last: int, length: int, cands: list[int]) -> torch.Tensor:
    """The forward variables of the extensions, frame by frame (the textbook loop), float64:
    ``x (T, C)`` one utterance, ``r_g (T, 2)`` its hypothesis -> ``(T, 2, K)``."""
    T = x.shape[0]
    c = torch.tensor(cands)
    out = torch.full((T, 2, len(cands)), float("-inf"), dtype=torch.float64)
    phi = torch.where(c[None] == last, r_g[:, 1:], torch.logaddexp(r_g[:, :1], r_g[:, 1:]))  # (T, K)
    if length == 0:
        out[0, 0] = x[0, c]
    for t in range(max(length, 1), T):
        out[t, 0] = torch.logaddexp(out[t - 1, 0], phi[t - 1]) + x[t, c]
        out[t, 1] = torch.logaddexp(out[t - 1, 0], out[t - 1, 1]) + x[t, 0]
    return out


def test_the_frames_at_once_equal_the_loop_on_a_long_float32_utterance():
    # 1500 frames of peaked float32 log-probs (a trained model's), hypotheses grown to 40 labels, with padding
    g = torch.Generator().manual_seed(3)
    C, lengths = 6, [1500, 1100]
    lp = torch.log_softmax(torch.randn(2, max(lengths), C, generator=g) * 6, dim=-1)  # float32
    scorer = CTCPrefixScorer(lp, torch.tensor(lengths))
    state = scorer.initial(torch.arange(2))
    cands = torch.tensor([[1, 2, 3, 0]] * 2)
    for step in range(40):
        psi, r = scorer.score(state, cands)
        if step in (0, 1, 39):
            for n in range(2):
                want = _loop_score(scorer.x[:, n].double(), state.r[:, :, n].double(), int(state.last[n]),
                                   state.length, cands[n].tolist())
                finite = torch.isfinite(want)
                assert torch.equal(finite, torch.isfinite(r[:, :, n])), (step, n)
                torch.testing.assert_close(r[:, :, n].double()[finite], want[finite], rtol=1e-5, atol=1e-3)
        best = psi[:, :3].argmax(dim=1)  # extend each row by its best label
        state = scorer.select(state, r, psi, torch.arange(2), best, cands[0, :3][best])


def test_hypotheses_as_long_as_the_utterance_and_longer():
    lp = torch.log_softmax(torch.randn(1, 3, 3, dtype=torch.float64), dim=-1)
    scorer = CTCPrefixScorer(lp, torch.tensor([3]))
    st = scorer.initial(torch.tensor([0]))
    for _ in range(4):  # labels 1 2 1 2: the 4th needs a 4th frame
        psi, r = scorer.score(st, torch.tensor([[1, 2, 0]]))
        tok = 2 if st.length % 2 else 1
        k = tok - 1
        assert r.shape == (3, 2, 1, 3)
        st = scorer.select(st, r, psi, torch.tensor([0]), torch.tensor([k]), torch.tensor([tok]))
    assert st.length == 4 and float(st.log_psi[0]) == float("-inf")
    assert bool(torch.isneginf(st.r).all())


def test_the_closed_form_and_the_frame_loop_agree(monkeypatch):
    import asrkit.decode.ctc_prefix as cp

    g = torch.Generator().manual_seed(5)
    lp = torch.log_softmax(torch.randn(2, 60, 5, generator=g, dtype=torch.float64) * 4, dim=-1)
    lengths = torch.tensor([60, 41])
    cands = torch.tensor([[1, 2, 3, 0], [4, 1, 2, 0]])
    runs = []
    for limit in (10 ** 9, 0):  # closed form, then the loop
        monkeypatch.setattr(cp, "_CLOSED_FORM_MAX", limit)
        scorer = CTCPrefixScorer(lp, lengths)
        st = scorer.initial(torch.arange(2))
        out = []
        for _ in range(6):
            psi, r = scorer.score(st, cands)
            out.append((psi, r))
            st = scorer.select(st, r, psi, torch.arange(2), torch.tensor([0, 1]), torch.tensor([1, 1]))
        runs.append(out)
    for (psi_a, r_a), (psi_b, r_b) in zip(*runs):
        torch.testing.assert_close(psi_a, psi_b, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(r_a, r_b, rtol=1e-9, atol=1e-9)
