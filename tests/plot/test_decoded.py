"""decode_attention: features in, ids, labels and attention out (with a stand-in model and search)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plot_util import DIM, DiagonalSearch, fake_loaded, make_store

from asrkit.data import FeatureStore
from asrkit.errors import DataError, UsageError
from asrkit.plot.decoded import check_attention_task, decode_attention


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    p = tmp_path_factory.mktemp("feats") / "dev"
    make_store(p, n=3)
    return FeatureStore(p)


def test_features_get_the_models_cmvn_and_attention_its_frames(store):
    utt = store.keys()[1]
    loaded = fake_loaded()
    search = DiagonalSearch()
    got = decode_attention(loaded, store, utt, search=search)
    want = store.get(utt, cmvn="global", norm_vars=True)  # (T, D)
    assert torch.allclose(loaded.model.seen[0], torch.from_numpy(want))
    frames = (store.num_frames(utt) + 1) // 2
    assert got.attention.shape == (3, frames)  # one row per token, the utterance's own frames
    assert got.attention.dtype == np.float32
    assert search.checked == [loaded.model]
    assert got.ids == [2, 3, 4] and got.tokens == ["k", "ae", "t"] and got.score == -1.25
    assert got.labels == ["k", "ae", "t"]
    assert not got.hit_max and got.utt == utt


def test_hit_max_is_passed_on(store):
    got = decode_attention(fake_loaded(), store, store.keys()[0], search=DiagonalSearch(ids=(1, 1), hit_max=True))
    assert got.labels == ["ah", "ah"] and got.hit_max


def test_nothing_decoded_is_one_line(store):
    with pytest.raises(DataError, match="decoded nothing"):
        decode_attention(fake_loaded(), store, store.keys()[0], search=DiagonalSearch(ids=()))


def test_nan_attention_is_one_line(store):
    with pytest.raises(DataError, match="NaN"):
        decode_attention(fake_loaded(), store, store.keys()[0], search=DiagonalSearch(nan=True))


def test_unknown_utterance_and_wrong_dimension(store):
    with pytest.raises(UsageError, match=r"has no utterance 'nope' \(3 utterances; the first is"):
        decode_attention(fake_loaded(), store, "nope", search=DiagonalSearch())
    with pytest.raises(DataError, match=f"features are {DIM}-dim but the model takes 13-dim"):
        decode_attention(fake_loaded(input_dim=13), store, store.keys()[0], search=DiagonalSearch())


@pytest.mark.parametrize("task", ["ctc", "frame", None])
def test_tasks_without_attention_are_refused(task):
    with pytest.raises(UsageError, match="exp/x: has no attention"):
        check_attention_task("exp/x", {"task": task})


@pytest.mark.parametrize("task", ["las", "transformer"])
def test_attention_tasks_pass(task):
    check_attention_task("exp/x", {"task": task})
