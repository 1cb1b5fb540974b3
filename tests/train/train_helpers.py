"""Tiny feature stores for the trainer tests (random features shaped by the labels)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from asrkit.data.feature_store import ShardWriter, merge_shards
from asrkit.data.table import write_table

PHONES = ["aa", "b", "d", "iy", "s"]


def make_store(path: Path, n: int = 12, dim: int = 16, seed: int = 0, frames: tuple[int, int] = (4, 7),
               phones_per_utt: tuple[int, int] = (3, 6), nan_utts: int = 0, with_ali: bool = True,
               speakers: int = 2, prefix: str = "s") -> Path:
    """A feature store of ``n`` utterances: each a 'sil', a few phones of
    ``frames`` frames each, and 'sil' again; features = a per-phone mean plus
    noise. Writes ``ali``, ``text.phones``, ``text`` and ``utt2spk``."""
    means_rng = np.random.default_rng(1234)  # the same phone means in every store
    means = {p: means_rng.normal(0, 1.5, dim) for p in ["sil", *PHONES]}
    rng = np.random.default_rng(seed)
    ali, phones, text, utt2spk = {}, {}, {}, {}
    with ShardWriter(path, 0) as w:
        for i in range(n):
            spk = f"{prefix}{i % speakers}"
            utt = f"{spk}-u{i:03d}"
            seq = ["sil"] + [PHONES[k] for k in rng.integers(0, len(PHONES), rng.integers(*phones_per_utt))] + ["sil"]
            labels = [p for p in seq for _ in range(int(rng.integers(*frames)))]
            x = np.stack([means[p] for p in labels]) + 0.3 * rng.normal(size=(len(labels), dim))
            if i < nan_utts:
                x[0, 0] = np.nan
            w.add(utt, spk, x.astype(np.float32))
            ali[utt] = labels
            phones[utt] = seq
            text[utt] = " ".join(f"w{PHONES.index(p)}" for p in seq if p != "sil")
            utt2spk[utt] = spk
    merge_shards(path, 1)
    if with_ali:
        write_table(path / "ali", ali)
    write_table(path / "text.phones", phones)
    write_table(path / "text", text)
    write_table(path / "utt2spk", utt2spk)
    return path



def small_overrides(task: str) -> list[str]:
    """A tiny model and fast settings."""
    common = ["train.epochs=2", "data.max_frames=200", "data.buckets=2", "train.log_every=1",
              "optim.lr=1e-2", "optim.warmup_steps=2", "train.tensorboard=false"]
    if task == "frame":
        return common + ["model.hidden=[32]", "model.context=2"]
    return common + ["model.hidden=16", "model.layers=1", "model.subsampling=2", "model.conv_channels=4"]


class Kill(Exception):
    """Raised from an ``after_step`` hook: stops a run the way a kill would (mid-epoch)."""


def full_and_resumed(cfg, train_in: Path, dev_in: Path, root: Path, before_resume=None) -> tuple[dict, dict]:
    """Train ``cfg`` once straight through (``root/full``) and once stopped two
    updates into its second epoch, then resumed (``root/killed``; ``before_resume()``
    runs in between); -> the two runs' ``last.pt`` contents."""
    import copy

    import pytest
    import torch

    from asrkit.train import train

    train(copy.deepcopy(cfg), train_in, dev_in, root / "full")
    per_epoch = torch.load(root / "full" / "checkpoints" / "epoch-1.pt", weights_only=True)["step"]

    def kill(step, epoch, position):
        if step == per_epoch + 2:
            raise Kill

    with pytest.raises(Kill):
        train(copy.deepcopy(cfg), train_in, dev_in, root / "killed", hooks={"after_step": kill})
    if before_resume is not None:
        before_resume()
    train(copy.deepcopy(cfg), train_in, dev_in, root / "killed", resume=True)
    return tuple(torch.load(root / run / "checkpoints" / "last.pt", weights_only=True) for run in ("full", "killed"))
