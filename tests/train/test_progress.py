"""The trainer's progress bar: each epoch's bar ends full at that epoch's
batch count (bucketed batches vary by epoch), and it shows the time left for
the whole run."""
from __future__ import annotations

import io
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, TextColumn
from train_helpers import small_overrides

from asrkit import log
from asrkit.data import FeatureStore
from asrkit.data.dataset import FrameBatchSampler
from asrkit.train import load_config, train
from asrkit.train.trainer import _Eta


def test_epoch_bars_end_at_each_epochs_batches(stores, tmp_path, monkeypatch):
    bars: list[Progress] = []

    @contextmanager
    def recording(*columns, transient: bool = False):
        with Progress(TextColumn("{task.description}"), *columns,
                      console=Console(file=io.StringIO(), force_terminal=True)) as bar:
            bars.append(bar)
            yield bar

    monkeypatch.setattr(log, "progress", recording)
    # with these settings epoch 3 has one batch more than epoch 1 (the bar used to end at "6/5")
    fs = FeatureStore(stores["train"])
    sampler = FrameBatchSampler([fs.num_frames(u) for u in fs.keys()], 120, 1, True, 0)
    want = []
    for e in range(3):
        sampler.set_epoch(e)
        want.append(len(sampler))
    assert len(set(want)) > 1
    cfg = load_config("frame", None, small_overrides("frame") + ["train.epochs=3", "data.max_frames=120",
                                                                  "data.buckets=1"])
    train(cfg, stores["train"], stores["dev"], tmp_path / "exp")
    tasks = [b.tasks[0] for b in bars]
    assert [t.description for t in tasks] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert [t.total for t in tasks] == want and [t.completed for t in tasks] == want
    assert tasks[-1].fields["eta"] == "ETA 0:00:00"
    assert all(t.fields["eta"].startswith("ETA ") for t in tasks)


def test_eta(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("asrkit.train.trainer.time.monotonic", lambda: now[0])
    eta = _Eta(epochs=3, steps_per_epoch=10, max_steps=None, step=0)
    assert eta.left(0, 0, 10) == "ETA -:--:--"  # nothing measured yet
    now[0] += 20.0
    assert eta.left(0, 5, 10, step=5) == "ETA 0:01:40"  # 4 s per update, 5 + 20 updates left
    now[0] += 3600.0
    assert eta.left(1, 0, 10, step=10) == "ETA 2:00:40"  # 362 s per update, 20 left (epochs 2 and 3 of 3)
    # train.max_steps caps the updates left; a resumed run counts from its first step
    eta = _Eta(epochs=100, steps_per_epoch=10, max_steps=12, step=8)
    now[0] += 10.0
    assert eta.left(0, 9, 10, step=10) == "ETA 0:00:10"
