"""Batching by frames with buckets, the distributed split, SpecAugment, collate."""
from __future__ import annotations

import numpy as np
import torch
from train_helpers import make_store

from asrkit.data.dataset import (
    Example,
    FrameBatchSampler,
    UtteranceDataset,
    collate,
    make_batches,
)
from asrkit.features.specaugment import SpecAugment


def _lengths(n=200, seed=0):
    return [int(x) for x in np.random.default_rng(seed).integers(50, 1500, n)]


def test_batches_cover_each_utterance_once_within_budget():
    lens = _lengths()
    b = make_batches(lens, max_frames=6000, buckets=8, seed=3, epoch=1)
    flat = sorted(i for x in b for i in x)
    assert flat == list(range(len(lens)))
    for x in b:
        assert len(x) == 1 or max(lens[i] for i in x) * len(x) <= 6000
    # buckets keep lengths in a batch close together: padding is small
    pad = sum(max(lens[i] for i in x) * len(x) for x in b) / sum(lens)
    assert pad < 1.3


def test_batches_deterministic_per_seed_and_epoch():
    lens = _lengths()
    a = make_batches(lens, 6000, seed=1, epoch=2)
    assert a == make_batches(lens, 6000, seed=1, epoch=2)
    assert a != make_batches(lens, 6000, seed=1, epoch=3)
    assert a != make_batches(lens, 6000, seed=2, epoch=2)
    ev = make_batches(lens, 6000, shuffle=False)
    assert [i for x in ev for i in x] == sorted(range(len(lens)), key=lambda i: (lens[i], i))


def test_distributed_sampler_splits_each_global_batch():
    lens = _lengths(101)
    ranks = [FrameBatchSampler(lens, 5000, seed=4, rank=r, world_size=3) for r in range(3)]
    single = FrameBatchSampler(lens, 5000, seed=4, world_size=3)  # same global batches as rank 0
    for s in ranks:
        s.set_epoch(5)
    single.set_epoch(5)
    out = [list(s) for s in ranks]
    assert len({len(o) for o in out}) == 1  # every rank takes the same number of steps
    for k, gb in enumerate(single.global_batches()):
        parts = [out[r][k][0] for r in range(3)]
        assert sorted(i for p in parts for i in p) == sorted(gb)
        assert all(len(p) >= 1 for p in parts)
        assert len({out[r][k][1] for r in range(3)}) == 1  # the same global normalizer
        assert out[0][k][1] == sum(lens[i] for i in gb)
    # resume from a data position
    ranks[1].set_epoch(5, start=4)
    assert list(ranks[1]) == out[1][4:]


def test_specaugment_is_seeded_and_masks():
    x = torch.randn(300, 40)
    aug = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=30, time_ratio=0.2)
    a, b, c = aug(x, seed=(0, 1, 7)), aug(x, seed=(0, 1, 7)), aug(x, seed=(0, 2, 7))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, x.clone())  # input untouched
    zero = a == 0
    assert 0 < zero.float().mean() < 0.5
    kept = ~zero
    assert torch.equal(a[kept], x[kept])
    assert torch.equal(SpecAugment(0, 10, 0, 30)(x, seed=1), x)


def test_dataset_cmvn_and_collate(tmp_path):
    st_path = make_store(tmp_path / "st", n=5)
    from asrkit.data.feature_store import FeatureStore

    st = FeatureStore(st_path)
    utts = st.keys()
    ds = UtteranceDataset(st, utts, {u: np.arange(st.num_frames(u)) % 3 for u in utts}, cmvn="global")
    ex = ds[0]
    np.testing.assert_allclose(ex.feats.numpy(), st.get(utts[0], cmvn="global"), rtol=1e-6)
    b = collate([ds[i] for i in range(5)], frame_targets=True)
    T = max(ds.lengths)
    assert b.feats.shape == (5, T, 16) and b.targets.shape == (5, T)
    for k in range(5):
        n = ds.lengths[k]
        assert int(b.lengths[k]) == n and (b.targets[k, n:] == -100).all() and (b.feats[k, n:] == 0).all()
    seq = collate([Example(0, "a", torch.zeros(4, 2), torch.tensor([1, 2])),
                   Example(1, "b", torch.zeros(6, 2), torch.tensor([3]))])
    assert seq.targets.tolist() == [1, 2, 3] and seq.target_lengths.tolist() == [2, 1]
