"""Greedy and beam search of attention models, on a deterministic fake model (attention_util.py)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from asrkit.decode.attention import (
    AttentionSearch, attention_beam_search, attention_greedy, max_lengths,
)
from asrkit.errors import UsageError
from asrkit.nn.search import ctc_prefix_beam_search_nbest

from attention_util import EOS, Encoded, FakeSeq2Seq, probs_table

A, B_, C_, D = 1, 2, 3, 4  # token ids of the toy tables (0 is <eos>)


def _random_enc(lengths: list[int], C: int, seed: int = 0, ctc: bool = True) -> Encoded:
    g = torch.Generator().manual_seed(seed)
    S = max(lengths)
    memory = torch.randn(len(lengths), S, C, generator=g)
    lens = torch.tensor(lengths)
    memory = memory * (torch.arange(S)[None, :, None] < lens[:, None, None])
    return Encoded(memory, lens, memory * 2.0 if ctc else None)


def _one(enc: Encoded, b: int) -> Encoded:
    """Utterance b alone, its padding cut off."""
    n = int(enc.lengths[b])
    e = enc.index(torch.tensor([b]))
    return Encoded(e.memory[:, :n], e.lengths, None if e.ctc_logits is None else e.ctc_logits[:, :n])


def _same(h1, h2):
    assert h1.ids == h2.ids
    assert h1.score == pytest.approx(h2.score, abs=1e-4)
    assert h1.hit_max_len == h2.hit_max_len
    assert h1.attention.shape == h2.attention.shape
    assert torch.allclose(h1.attention, h2.attention, atol=1e-6)


# -- greedy --------------------------------------------------------------------------------------------


def test_greedy_batched_equals_one_by_one_and_finished_rows_stop():
    lengths = [9, 4, 12, 7, 6]
    model = FakeSeq2Seq(8)
    enc = _random_enc(lengths, 8)
    batched = attention_greedy(model, enc)
    rows = list(model.rows_seen)
    assert rows[0] == len(lengths) and rows == sorted(rows, reverse=True) and rows[-1] < len(lengths)
    lens = {len(h.ids) for h in batched}
    assert len(lens) > 1  # the utterances end at different steps
    for b in range(len(lengths)):
        alone = attention_greedy(model, _one(enc, b))[0]
        _same(batched[b], alone)
        h = batched[b]
        assert h.attention.shape == (len(h.ids), lengths[b])  # the utterance's own frames
        assert not h.hit_max_len and h.parts["att"] == h.score and h.score < 0
        assert EOS not in h.ids


def test_greedy_takes_the_best_token_each_step():
    C = 5
    table = probs_table({(): {A: 0.6, B_: 0.4}, (A,): {EOS: 0.45, C_: 0.55}, (A, C_): {EOS: 0.99},
                         (B_,): {EOS: 0.9, C_: 0.1}}, C)
    model = FakeSeq2Seq(C, table=table)
    h = attention_greedy(model, _random_enc([10], C))[0]
    assert h.ids == [A, C_]
    want = float(table[()][A] + table[(A,)][C_] + table[(A, C_)][EOS])
    assert h.score == pytest.approx(want, abs=1e-5)


def test_max_length_cuts_and_is_flagged():
    model = FakeSeq2Seq(6, never_eos=True)
    enc = _random_enc([5, 3], 6)
    hyps = attention_greedy(model, enc, max_len_ratio=1.0)
    assert [len(h.ids) for h in hyps] == [5, 3] == max_lengths(enc.lengths, 1.0)
    assert all(h.hit_max_len for h in hyps)
    hyps = attention_greedy(model, enc, max_len=2)
    assert [len(h.ids) for h in hyps] == [2, 2]
    beams = attention_beam_search(model, enc, 3, max_len_ratio=1.0, nbest=2)
    assert [len(n[0].ids) for n in beams] == [5, 3] and all(n[0].hit_max_len for n in beams)
    # a model that says <eos> by itself is not flagged, even at the limit
    table = probs_table({(): {A: 0.9}, (A,): {EOS: 0.9}}, 4)
    h = attention_greedy(FakeSeq2Seq(4, table=table), _random_enc([1], 4), max_len_ratio=1.0)[0]
    assert h.ids == [A] and not h.hit_max_len
    with pytest.raises(UsageError, match="--max-len-ratio"):
        attention_greedy(model, enc, max_len_ratio=0.0)


# -- beam search -----------------------------------------------------------------------------------------


def test_beam_one_equals_greedy():
    model = FakeSeq2Seq(8, seed=3)
    enc = _random_enc([9, 4, 12, 7], 8, seed=3)
    greedy = attention_greedy(model, enc)
    beam = attention_beam_search(model, enc, 1)
    for g, nb in zip(greedy, beam):
        _same(g, nb[0])


def test_beam_is_the_same_batched_and_alone():
    model = FakeSeq2Seq(8, seed=5)
    enc = _random_enc([9, 4, 12, 7], 8, seed=5)
    batched = attention_beam_search(model, enc, 4, ctc_weight=0.3, nbest=3)
    for b in range(4):
        alone = attention_beam_search(model, _one(enc, b), 4, ctc_weight=0.3, nbest=3)[0]
        assert len(alone) == len(batched[b])
        for h1, h2 in zip(batched[b], alone):
            _same(h1, h2)
            assert h1.parts["ctc"] == pytest.approx(h2.parts["ctc"], abs=1e-4)


TOY = {(): {A: 0.6, B_: 0.4}, (A,): {EOS: 0.45, C_: 0.55}, (A, C_): {EOS: 0.99}, (B_,): {EOS: 0.9, C_: 0.1},
       (B_, C_): {EOS: 0.5, D: 0.5}, (A, C_, D): {EOS: 0.9}}


def _all_sequences(table: dict, C: int, max_len: int) -> dict[tuple[int, ...], float]:
    """log P of every complete sequence of at most max_len tokens (brute force)."""
    out = {}
    for n in range(max_len + 1):
        for seq in itertools.product(range(1, C), repeat=n):
            lp = 0.0
            for i in range(n + 1):
                row = table.get(seq[:i])
                if row is None:  # the fake's default row: <eos> almost surely
                    row = torch.log_softmax(torch.full((C,), -30.0).index_fill(0, torch.tensor([EOS]), 0.0), -1)
                lp += float(row[seq[i]] if i < n else row[EOS])
            out[seq] = lp
    return out


def test_beam_finds_the_best_that_greedy_misses():
    C = 5
    model = FakeSeq2Seq(C, table=probs_table(TOY, C))
    enc = _random_enc([10], C)
    assert attention_greedy(model, enc)[0].ids == [A, C_]  # 0.6 x 0.55 x 1 = 0.33
    best = attention_beam_search(model, enc, 2)[0][0]
    assert best.ids == [B_]  # 0.4 x 0.9 = 0.36
    assert best.score == pytest.approx(math.log(0.4 * 0.9), abs=1e-4)


def test_nbest_is_the_exact_ranking_of_a_small_table():
    C = 5
    table = probs_table(TOY, C)
    model = FakeSeq2Seq(C, table=table)
    enc = _random_enc([3], C)  # max length 6
    brute = sorted(_all_sequences(table, C, 3).items(), key=lambda kv: -kv[1])[:4]
    nbest = attention_beam_search(model, enc, 8, nbest=4, pre_beam=C)[0]
    assert [h.ids for h in nbest] == [list(s) for s, _ in brute]
    assert [h.score for h in nbest] == pytest.approx([v for _, v in brute], abs=1e-4)
    assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)


def test_length_bonus_and_normalization_favour_longer_hypotheses():
    C = 5
    model = FakeSeq2Seq(C, table=probs_table(TOY, C))
    enc = _random_enc([10], C)
    assert attention_beam_search(model, enc, 3)[0][0].ids == [B_]
    # "B" 0.36 (log -1.02), "A C" 0.33 (log -1.11): +1 per token makes "A C" the best (0.88 vs -0.02)
    long = attention_beam_search(model, enc, 3, length_bonus=1.0)[0][0]
    assert long.ids == [A, C_]
    # bonus x 2 tokens; (A, C) -> <eos> is 0.99 of 0.99
    assert long.score == pytest.approx(math.log(0.6 * 0.55) + 2.0, abs=1e-3)
    # normalized by |Y| + 1: "B" -1.02 / 2 = -0.51, "A C" -1.11 / 3 = -0.37
    norm = attention_beam_search(model, enc, 3, length_norm=True, nbest=2)[0]
    assert [h.ids for h in norm] == [[A, C_], [B_]]
    assert norm[0].score == pytest.approx(math.log(0.6 * 0.55), abs=1e-3)  # the score itself is not divided


def test_ctc_weight_one_is_the_ctc_prefix_beam_search():
    C, S = 4, 6
    g = torch.Generator().manual_seed(7)
    ctc = torch.log_softmax(torch.randn(1, S, C, generator=g) * 2.0, dim=-1)
    model = FakeSeq2Seq(C, seed=7)  # its attention scores do not count with ctc_weight 1
    enc = Encoded(torch.randn(1, S, C, generator=g), torch.tensor([S]), ctc)
    best = attention_beam_search(model, enc, 6, ctc_weight=1.0, nbest=3)[0]
    ref = ctc_prefix_beam_search_nbest(ctc[0].double(), beam=200)
    assert [h.ids for h in best] == [ids for ids, _ in ref[:3]]
    assert [h.score for h in best] == pytest.approx([s for _, s in ref[:3]], abs=1e-4)
    assert best[0].parts["ctc"] == pytest.approx(best[0].score, abs=1e-6)


def test_ctc_weight_mixes_both_scores():
    C = 5
    model = FakeSeq2Seq(C, table=probs_table(TOY, C))
    S = 4
    ctc = torch.full((1, S, C), math.log(1e-3))
    ctc[0, :, 0] = math.log(0.5)  # CTC: "A C" (blank A blank C), not "B"
    ctc[0, 1, A] = ctc[0, 3, C_] = math.log(0.9)
    ctc = torch.log_softmax(ctc, -1)
    enc = Encoded(torch.zeros(1, S, C), torch.tensor([S]), ctc)
    assert attention_beam_search(model, enc, 3)[0][0].ids == [B_]
    h = attention_beam_search(model, enc, 3, ctc_weight=0.5)[0][0]
    assert h.ids == [A, C_]
    assert h.score == pytest.approx(0.5 * h.parts["att"] + 0.5 * h.parts["ctc"], abs=1e-5)


def test_refusals():
    model = FakeSeq2Seq(5, has_ctc=False)
    enc = _random_enc([4], 5, ctc=False)
    with pytest.raises(UsageError, match="no CTC head"):
        attention_beam_search(model, enc, 2, ctc_weight=0.3)
    with pytest.raises(UsageError, match="no CTC head"):
        AttentionSearch(beam=2, ctc_weight=0.3).check_model(model)
    with pytest.raises(UsageError, match="--nbest 3 is larger than --beam 2"):
        attention_beam_search(model, enc, 2, nbest=3)
    with pytest.raises(UsageError, match="--ctc-weight must be between 0 and 1"):
        AttentionSearch(beam=2, ctc_weight=1.5)
    with pytest.raises(UsageError, match="--ctc-weight needs the beam search"):
        AttentionSearch(ctc_weight=0.3)
    with pytest.raises(UsageError, match="--beam must be >= 1"):
        AttentionSearch(beam=0)
