"""Datasets and batching over a feature store, for training and evaluation.

* :class:`UtteranceDataset` — item ``i`` is utterance ``utts[i]`` of a
  :class:`~asrkit.data.feature_store.FeatureStore`: features with CMVN applied
  on read (``FeatureStore.get(utt, cmvn=...)``), optional SpecAugment, and its
  target (frame labels or a token sequence) as an int64 tensor.
* :class:`FrameBatchSampler` — batches by total padded frames with length
  buckets, deterministic given ``(seed, epoch)``, and a distributed sampler:
  every rank builds the same *global* batches and takes its share of each
  (utterances ``rank::world_size`` by length), so N processes see, step for
  step, the same utterances as one process with the same global batch.
* :func:`collate` — pads a list of examples into a :class:`Batch`.

::

    ds = UtteranceDataset(store, utts, targets, cmvn="global")
    sampler = FrameBatchSampler(ds.lengths, max_frames=20000, buckets=10, seed=0)
    sampler.set_epoch(3)
    for idx, norm in sampler:          # local indices, global normalizer
        batch = collate([ds[i] for i in idx], frame_targets=False)
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["Batch", "Example", "FrameBatchSampler", "UtteranceDataset", "collate", "make_batches"]


@dataclass
class Example:
    """One utterance: ``feats (T, D)`` float32, ``target`` int64 (``(T,)`` frame labels
    or ``(U,)`` tokens) or None."""

    index: int
    utt: str
    feats: torch.Tensor
    target: torch.Tensor | None


@dataclass
class Batch:
    """A padded batch.

    ``feats (B, T, D)`` (zero padded), ``lengths (B,)``; for frame targets
    ``targets (B, T)`` padded with -100; for sequence targets ``targets (sum U,)``
    concatenated and ``target_lengths (B,)``.
    """

    utts: list[str]
    feats: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None = None
    target_lengths: torch.Tensor | None = None
    indices: list[int] = field(default_factory=list)

    def to(self, device: torch.device | str) -> Batch:
        mv = lambda t: None if t is None else t.to(device, non_blocking=True)
        return Batch(self.utts, mv(self.feats), self.lengths.to(device), mv(self.targets),
                     mv(self.target_lengths), self.indices)

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())


class UtteranceDataset(torch.utils.data.Dataset):
    """Utterances ``utts`` of ``store`` with optional ``targets`` (utt -> int array).

    ``specaugment`` (``f(x, seed=...) -> x`` on ``(T, D)`` features, e.g. a
    :class:`asrkit.features.specaugment.SpecAugment`, injected by the trainer so
    that ``data`` does not import ``features``) is applied with the seed
    ``(seed, epoch, index)``; call :meth:`set_epoch` before each epoch.
    ``perturb`` (the same kind of callable, e.g. a
    :class:`asrkit.features.perturb.Perturb`) is applied with the same seed to
    the raw features before CMVN, and may change the number of frames
    (``lengths`` stay the stored ones: the batch plan does not depend on it).
    """

    def __init__(self, store, utts: Sequence[str], targets: dict[str, np.ndarray] | None = None,
                 cmvn: str | None = "global", norm_vars: bool = True,
                 specaugment: Callable[..., torch.Tensor] | None = None, seed: int = 0,
                 perturb: Callable[..., torch.Tensor] | None = None) -> None:
        self.store = store
        self.utts = list(utts)
        self.targets = targets
        self.cmvn = cmvn
        self.norm_vars = norm_vars
        self.specaugment = specaugment
        self.perturb = perturb
        self.seed = seed
        self.epoch = 0
        self.lengths = [store.num_frames(u) for u in self.utts]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> Example:
        utt = self.utts[i]
        if self.perturb is None:
            a = self.store.get(utt, cmvn=self.cmvn, norm_vars=self.norm_vars)
        else:
            raw = torch.from_numpy(np.array(self.store[utt], dtype=np.float32))  # a writable copy
            raw = self.perturb(raw, seed=(self.seed, self.epoch, i))
            a = self.store.normalize(utt, raw.numpy(), cmvn=self.cmvn, norm_vars=self.norm_vars)
        x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        if self.specaugment is not None:
            x = self.specaugment(x, seed=(self.seed, self.epoch, i))
        y = None
        if self.targets is not None:
            y = torch.as_tensor(self.targets[utt], dtype=torch.int64)
        return Example(i, utt, x, y)


def make_batches(lengths: Sequence[int], max_frames: int, buckets: int = 10, shuffle: bool = True,
                 seed: int = 0, epoch: int = 0, min_size: int = 1) -> list[list[int]]:
    """Group utterance indices into batches of at most ``max_frames`` padded
    frames (``len(batch) * longest``), at least ``min_size`` utterances each
    (when there are that many).

    Utterances are sorted by length and cut into ``buckets`` equal-count
    buckets; each bucket is shuffled (``random.Random((seed, epoch))``) and
    filled into batches in that order, then all batches are shuffled. The same
    arguments give the same batches. ``shuffle=False``: sorted by length, no
    shuffling (evaluation).
    """
    n = len(lengths)
    if n == 0:
        return []
    order = sorted(range(n), key=lambda i: (lengths[i], i))
    rng = random.Random(f"{seed}/{epoch}")
    nb = max(1, min(buckets, n))
    groups = [order[k * n // nb:(k + 1) * n // nb] for k in range(nb)] if shuffle else [order]
    batches: list[list[int]] = []
    for g in groups:
        if shuffle:
            rng.shuffle(g)
        cur: list[int] = []
        longest = 0
        for i in g:
            m = max(longest, lengths[i])
            if cur and m * (len(cur) + 1) > max_frames and len(cur) >= min_size:
                batches.append(cur)
                cur, m = [], lengths[i]
            cur.append(i)
            longest = m
        if cur:
            batches.append(cur)
    # a short last batch of a bucket (under min_size) joins its neighbour
    if min_size > 1:
        merged: list[list[int]] = []
        for b in batches:
            if merged and len(b) < min_size:
                merged[-1].extend(b)
            else:
                merged.append(b)
        if len(merged) > 1 and len(merged[0]) < min_size:
            merged[1].extend(merged.pop(0))
        batches = merged
    if shuffle:
        rng.shuffle(batches)
    return batches


class FrameBatchSampler:
    """Deterministic length-bucketed batches, optionally distributed.

    Iterating yields ``(local_indices, global_norm)`` per global batch, starting
    at :attr:`start` (the data position, for resuming mid-epoch).
    ``global_norm`` is the sum of ``weights`` (default: frame counts) over the
    whole global batch, the same on every rank, so a loss summed over the
    local utterances and divided by it (times ``world_size``, which DDP's
    gradient averaging divides out) gives every rank the gradient of the
    global batch.
    """

    def __init__(self, lengths: Sequence[int], max_frames: int, buckets: int = 10, shuffle: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1,
                 weights: Sequence[float] | None = None) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.lengths = list(lengths)
        self.weights = list(weights) if weights is not None else [float(x) for x in self.lengths]
        self.max_frames, self.buckets, self.shuffle = max_frames, buckets, shuffle
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.start = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def global_batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            b = make_batches(self.lengths, self.max_frames, self.buckets, self.shuffle, self.seed, self.epoch,
                             min_size=self.world_size)
            self._cache = (self.epoch, b)
        return self._cache[1]

    def local(self, batch: list[int]) -> list[int]:
        """This rank's share of a global batch (longest first, every world_size-th)."""
        if self.world_size == 1:
            return list(batch)
        by_len = sorted(batch, key=lambda i: (-self.lengths[i], i))
        return by_len[self.rank::self.world_size]

    def __len__(self) -> int:
        return len(self.global_batches())

    def __iter__(self) -> Iterator[tuple[list[int], float]]:
        for b in self.global_batches()[self.start:]:
            yield self.local(b), float(sum(self.weights[i] for i in b))


def collate(examples: Sequence[Example], frame_targets: bool = False) -> Batch:
    """Pad ``examples`` into a :class:`Batch` (see there for the shapes)."""
    B = len(examples)
    lengths = torch.tensor([e.feats.shape[0] for e in examples], dtype=torch.int64)
    T = int(lengths.max()) if B else 0
    D = examples[0].feats.shape[1] if B else 0
    feats = torch.zeros(B, T, D, dtype=torch.float32)
    for b, e in enumerate(examples):
        feats[b, :e.feats.shape[0]] = e.feats
    targets = target_lengths = None
    if B and examples[0].target is not None:
        if frame_targets:
            targets = torch.full((B, T), -100, dtype=torch.int64)
            for b, e in enumerate(examples):
                targets[b, :e.target.shape[0]] = e.target
        else:
            target_lengths = torch.tensor([e.target.shape[0] for e in examples], dtype=torch.int64)
            targets = torch.cat([e.target for e in examples]) if B else torch.zeros(0, dtype=torch.int64)
    return Batch([e.utt for e in examples], feats, lengths, targets, target_lengths,
                 [e.index for e in examples])
