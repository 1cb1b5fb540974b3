"""decode_attention: features in, ids, labels and attention out (with a stand-in model and search)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plot_util import DIM, diagonal_search, fake_loaded, make_store

from asrkit.data import FeatureStore
from asrkit.errors import DataError, UsageError
from asrkit.plot.decoded import EOS_LABEL, check_attention_task, decode_attention


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    p = tmp_path_factory.mktemp("feats") / "dev"
    make_store(p, n=3)
    return FeatureStore(p)


def test_features_get_the_models_cmvn_and_attention_its_frames(store):
    utt = store.keys()[1]
    loaded = fake_loaded()
    search = diagonal_search()
    got = decode_attention(loaded, store, utt, search=search)
    want = store.get(utt, cmvn="global", norm_vars=True)  # (T, D)
    assert torch.allclose(loaded.model.seen[0], torch.from_numpy(want))
    frames = (store.num_frames(utt) + 1) // 2
    assert got.attention.shape == (4, frames)  # the padding frame is cut off
    assert got.attention.dtype == np.float32
    assert search.calls == [frames]  # max length: 1 x the encoder frames
    assert got.ids == [2, 3, 4] and got.tokens == ["k", "ae", "t"] and got.score == -1.25
    assert got.labels == ["k", "ae", "t", EOS_LABEL]
    assert not got.hit_max and got.utt == utt


def test_results_as_objects_with_hit_max(store):
    search = diagonal_search(ids=(1, 1), eos_row=False, as_tuple=False, hit_max=True)
    got = decode_attention(fake_loaded(), store, store.keys()[0], search=search, max_len_ratio=0.5)
    assert got.labels == ["ah", "ah"] and got.hit_max
    assert search.calls == [max(1, int(0.5 * ((store.num_frames(store.keys()[0]) + 1) // 2)))]


def test_rows_that_fit_no_tokens_are_a_bug_of_the_search(store):
    def search(model, enc, max_len):
        return [([2, 3], 0.0, torch.ones(5, enc.memory.shape[1]))]

    with pytest.raises(RuntimeError, match="5 attention rows for 2 tokens"):
        decode_attention(fake_loaded(), store, store.keys()[0], search=search)


def test_nan_attention_is_one_line(store):
    with pytest.raises(DataError, match="NaN"):
        decode_attention(fake_loaded(), store, store.keys()[0], search=diagonal_search(nan=True))


def test_unknown_utterance_and_wrong_dimension(store):
    with pytest.raises(UsageError, match=r"has no utterance 'nope' \(3 utterances; the first is"):
        decode_attention(fake_loaded(), store, "nope", search=diagonal_search())
    with pytest.raises(DataError, match=f"features are {DIM}-dim but the model takes 13-dim"):
        decode_attention(fake_loaded(input_dim=13), store, store.keys()[0], search=diagonal_search())


@pytest.mark.parametrize("task", ["ctc", "frame", None])
def test_tasks_without_attention_are_refused(task):
    with pytest.raises(UsageError, match="exp/x: has no attention"):
        check_attention_task("exp/x", {"task": task})


@pytest.mark.parametrize("task", ["las", "transformer"])
def test_attention_tasks_pass(task):
    check_attention_task("exp/x", {"task": task})
