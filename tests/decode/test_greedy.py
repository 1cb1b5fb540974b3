"""Greedy decoding: hand-made log-probs, batching by length, scratch vs native,
the units of every kind."""
from __future__ import annotations

import math

import pytest
import torch

from asrkit.data import FeatureStore
from asrkit.decode import (
    ModelOutput, greedy_decode, greedy_hypothesis, iter_outputs, length_batches, load_exp, load_units,
)
from asrkit.errors import DataError, InputError, UsageError

from decode_util import make_ctc_exp, make_frame_exp, make_store


def _lp(rows: list[list[float]]) -> torch.Tensor:
    return torch.log(torch.tensor(rows, dtype=torch.float32))


def test_greedy_collapses_repeats_and_drops_blanks(ctc_exp):
    units = load_units(ctc_exp)
    ah, k, ae, t, sil = (units.units.index(p) for p in ("ah", "k", "ae", "t", "sil"))
    best = [k, k, 0, ae, ae, t, 0, t, sil, ah]
    rows = []
    for c in best:
        r = [0.01] * units.num_classes
        r[c] = 1.0 - 0.01 * (units.num_classes - 1)
        rows.append(r)
    h = greedy_hypothesis(ModelOutput("u1", _lp(rows), 40), units)
    assert h.units == ["k", "ae", "t", "t", "sil", "ah"]
    assert h.tokens == ["k", "ae", "t", "t", "ah"]  # sil is not an output phone
    assert h.frames == 40 and h.out_frames == 10
    assert h.score == pytest.approx(10 * math.log(rows[0][k]), rel=1e-5)


def test_length_batches():
    lens = [5, 50, 7, 49, 6, 48, 100]
    b = length_batches(list("abcdefg"), lens, 3)
    assert b == [[6, 1, 3], [5, 2, 4], [0]]
    assert sorted(i for x in b for i in x) == list(range(7))
    with pytest.raises(UsageError):
        length_batches(["a"], [1], 0)


def test_outputs_in_utt_order_and_batch_independent(ctc_exp, store):
    exp = load_exp(ctc_exp, device="cpu")
    fs = FeatureStore(store)
    one = list(iter_outputs(exp.model, fs, cmvn="global", batch_size=1))
    four = list(iter_outputs(exp.model, fs, cmvn="global", batch_size=4))
    assert [o.utt for o in one] == fs.keys() == [o.utt for o in four]
    for a, b in zip(one, four):
        assert a.frames == fs.num_frames(a.utt)
        assert a.out_frames == math.ceil(a.frames / 2)  # subsampling 2
        torch.testing.assert_close(a.log_probs, b.log_probs, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(a.log_probs.exp().sum(-1), torch.ones(a.out_frames))


def test_cmvn_matters(ctc_exp, store):
    exp = load_exp(ctc_exp, device="cpu")
    fs = FeatureStore(store)
    u = fs.keys()[0]
    g = next(iter_outputs(exp.model, fs, cmvn="global", utts=[u]))
    r = next(iter_outputs(exp.model, fs, cmvn=None, utts=[u]))
    assert not torch.allclose(g.log_probs, r.log_probs)


def test_scratch_checkpoint_decodes_same_with_native(ctc_exp, store):
    fs = FeatureStore(store)
    scratch = load_exp(ctc_exp, device="cpu")
    native = load_exp(ctc_exp, device="cpu", impl="native")
    assert scratch.config["model"]["impl"] == "scratch" and native.config["model"]["impl"] == "native"
    a = list(greedy_decode(scratch, fs, batch_size=3))
    b = list(greedy_decode(native, fs, batch_size=3))
    assert [h.units for h in a] == [h.units for h in b]
    assert sum(len(h.units) for h in a) > 10  # a non-trivial output (sharpened random model)
    assert len({tuple(h.units) for h in a}) > 1
    for x, y in zip(a, b):
        assert x.score == pytest.approx(y.score, abs=1e-3)


def test_conformer_native_trained_decodes_same_with_scratch(tmp_path, store):
    exp_dir = make_ctc_exp(tmp_path / "conf", encoder="conformer", impl="native", subsampling=4, seed=3)
    fs = FeatureStore(store)
    a = [h.units for h in greedy_decode(load_exp(exp_dir, device="cpu"), fs, batch_size=4)]
    b = [h.units for h in greedy_decode(load_exp(exp_dir, device="cpu", impl="scratch"), fs, batch_size=2)]
    assert a == b and any(a)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_char_and_bpe_units_give_words(tmp_path, store, kind):
    exp_dir = make_ctc_exp(tmp_path / kind, kind=kind, seed=1)
    exp = load_exp(exp_dir, device="cpu")
    assert exp.units.kind == kind and exp.units.output_kind == "words"
    hyps = list(greedy_decode(exp, FeatureStore(store)))
    for h in hyps:
        assert h.tokens == exp.units.tokenizer.decode(exp.units.tokenizer.encode_units(h.units))
        assert all(" " not in w and w for w in h.tokens)
    if kind == "char":
        joined = "".join(u for h in hyps for u in h.units)
        assert any("|" in h.units for h in hyps) or joined  # units are characters or the word separator


def test_feature_dim_mismatch_is_one_line(tmp_path, ctc_exp):
    other = tmp_path / "feats13"
    make_store(other, n=2, dim=13)
    exp = load_exp(ctc_exp, device="cpu")
    with pytest.raises(DataError, match=r"13-dim.*20-dim"):
        list(greedy_decode(exp, FeatureStore(other)))


def test_missing_checkpoint_and_units(tmp_path, ctc_exp):
    with pytest.raises(InputError, match="epoch-9"):
        load_exp(ctc_exp, checkpoint="epoch-9", device="cpu")
    with pytest.raises(InputError, match="no such exp dir"):
        load_exp(tmp_path / "nope", device="cpu")
    broken = make_ctc_exp(tmp_path / "broken")
    (broken / "units" / "units.txt").unlink()
    with pytest.raises(InputError, match="units"):
        load_exp(broken, device="cpu")


def test_bad_device_and_impl(ctc_exp):
    with pytest.raises(UsageError):
        load_exp(ctc_exp, device="tpu")
    with pytest.raises(UsageError):
        load_exp(ctc_exp, impl="fast")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA"):
            load_exp(ctc_exp, device="cuda")


def test_frame_exp_refused_by_ctc_loader(tmp_path):

    exp_dir = make_frame_exp(tmp_path / "frame", ["sil", "aa", "b"])
    with pytest.raises(UsageError, match="predict frame"):
        load_exp(exp_dir, device="cpu", task="ctc")
    assert load_exp(exp_dir, device="cpu", task="frame").units.kind == "ali"

