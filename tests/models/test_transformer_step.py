"""TransformerS2S incremental decoding (key/value cache) against ``decode`` of the whole prefix:
the same log-probabilities, attention, greedy and beam-search results, with padded memories and
beam reorderings (float64, both impls)."""
from __future__ import annotations

import pytest
import torch

from asrkit.decode.attention import attention_beam_search, attention_greedy
from asrkit.models import TransformerS2S, build_model
from asrkit.nn.attention import KVCache

C = 9
CONF = {"type": "transformer", "input_dim": 6, "num_classes": C, "dropout": 0.0, "hidden": 16, "heads": 4,
        "ff_mult": 2, "encoder_layers": 1, "decoder_layers": 2, "conv_channels": 3, "ctc_weight": 0.3}
LENGTHS = [41, 22]  # 11 and 6 encoder frames: the second utterance's memory is padded


class PrefixRecompute:
    """The reference: every step runs ``decode`` over the whole prefix (state = tokens so far)."""

    def __init__(self, model: TransformerS2S):
        self.model = model

    def init_state(self, enc):
        return torch.zeros(enc.memory.shape[0], 0, dtype=torch.long)

    def step(self, enc, state, tokens):
        prefix = torch.cat([state, tokens.long()[:, None]], 1)
        logits, att = self.model.decode(prefix, enc)
        return logits[:, -1].float().log_softmax(-1), prefix, att[:, -1].float()

    def select_state(self, state, idx):
        return state.index_select(0, idx)


def _setup(impl: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model({**CONF, "impl": impl}).double().eval()
    with torch.no_grad():  # a sharper decoder than the init gives: varied tokens that depend on the memory
        model.output.weight.mul_(4.0)
        model.embed.weight.mul_(3.0)
        for layer in model.decoder:
            layer.multihead_attn.in_proj_weight.mul_(3.0)
        feats = torch.randn(len(LENGTHS), max(LENGTHS), 6, generator=torch.Generator().manual_seed(seed + 1),
                            dtype=torch.float64)
        lengths = torch.tensor(LENGTHS)
        enc = model.encode(feats, lengths)
    return model, enc


@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_step_equals_decode_of_the_prefix_with_reorderings(impl, monkeypatch):
    monkeypatch.setattr(KVCache, "GROW", 2)  # the caches fill up and grow during the test
    model, enc = _setup(impl)
    assert bool(enc.padding_mask[1].any())
    g = torch.Generator().manual_seed(3)
    ref = PrefixRecompute(model)
    idxs = [None, torch.tensor([1, 0]), torch.tensor([0, 0, 1, 1, 0]), None, torch.tensor([4, 2, 2]),
            torch.tensor([2, 1, 0]), torch.tensor([0])]
    with torch.no_grad():
        cur, state, ref_state = enc, model.init_state(enc), ref.init_state(enc)
        tokens = torch.zeros(2, dtype=torch.long)
        for idx in idxs:
            lp, state, att = model.step(cur, state, tokens)
            rlp, ref_state, ratt = ref.step(cur, ref_state, tokens)
            assert lp.dtype == att.dtype == torch.float32 and att.shape == cur.memory.shape[:2]
            torch.testing.assert_close(lp, rlp, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(att, ratt, rtol=1e-6, atol=1e-6)
            tokens = torch.randint(1, C, (lp.shape[0],), generator=g)
            if idx is not None:
                shared = state.memory_kv
                state, ref_state, cur = model.select_state(state, idx), ref.select_state(ref_state, idx), cur.index(idx)
                tokens = tokens[idx]
                # the memory's keys/values are shared by the hypotheses, never copied per row
                assert state.memory_kv is shared and state.memory_kv[0][0].shape[0] == 2
                assert state.self_kv[0].keys.shape[0] == idx.numel() == state.rows.numel()
        assert state.position == len(idxs)


@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_greedy_and_beam_search_equal_the_prefix_recompute(impl):
    model, enc = _setup(impl)
    with torch.no_grad():
        got = attention_greedy(model, enc)
        want = attention_greedy(PrefixRecompute(model), enc)
        assert len(got[0].ids) > len(got[1].ids) > 0 and got[0].ids[:len(got[1].ids)] != got[1].ids
        for a, b in zip(got, want):
            assert a.ids == b.ids and a.hit_max_len == b.hit_max_len
            assert a.score == pytest.approx(b.score, rel=1e-6, abs=1e-6)
            torch.testing.assert_close(a.attention, b.attention, rtol=1e-6, atol=1e-6)
        # each utterance alone (no padding) decodes as in the batch
        for b, h in enumerate(got):
            alone = attention_greedy(model, enc.index(torch.tensor([b])))[0]
            assert alone.ids == h.ids and alone.score == pytest.approx(h.score, rel=1e-6, abs=1e-6)
        model.output.bias[0] += 2.0  # <eos> likelier: hypotheses finish before the maximum length
        got = attention_beam_search(model, enc, beam=4, ctc_weight=0.3, nbest=3)
        want = attention_beam_search(PrefixRecompute(model), enc, beam=4, ctc_weight=0.3, nbest=3)
        for a_utt, b_utt in zip(got, want):
            assert [h.ids for h in a_utt] == [h.ids for h in b_utt] and len(a_utt) == 3
            for a, b in zip(a_utt, b_utt):
                assert a.score == pytest.approx(b.score, rel=1e-6, abs=1e-6)
                torch.testing.assert_close(a.attention, b.attention, rtol=1e-6, atol=1e-6)


def test_step_refuses_rows_that_do_not_match_the_state():
    model, enc = _setup("scratch")
    with torch.no_grad():
        state = model.init_state(enc)
        with pytest.raises(ValueError, match="the state has 2 rows, enc 1"):
            model.step(enc.index(torch.tensor([0])), state, torch.zeros(2, dtype=torch.long))
        with pytest.raises(ValueError, match="the state has 2 rows"):
            model.step(enc, state, torch.zeros(3, dtype=torch.long))
