"""The trainer on tiny stores: learning, checkpoints, resume, bad input, averaging."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import make_store, small_overrides

from asrkit.errors import ConfigError, DataError, TrainingError, UsageError
from asrkit.train import average_checkpoints, load_config, train


def _cfg(task: str, *extra: str) -> dict:
    return load_config(task, None, small_overrides(task) + list(extra))


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _events(exp, kind):
    return [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines() if json.loads(x)["event"] == kind]


def test_frame_loss_goes_down_and_files(stores, tmp_path):
    exp = tmp_path / "exp"
    r = train(_cfg("frame", "train.epochs=4"), stores["train"], stores["dev"], exp)
    assert r.epochs == 4 and r.metric == "acc"
    losses = [e["loss"] for e in _events(exp, "train")]
    assert losses[-1] < 0.5 * losses[0]
    dev = _events(exp, "dev")
    assert len(dev) == 4 and dev[-1]["dev_acc"] > dev[0]["dev_acc"] and dev[-1]["dev_acc"] > 60
    for name in ("epoch-1.pt", "epoch-4.pt", "last.pt", "best.pt"):
        assert (exp / "checkpoints" / name).is_file()
    ck = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "scaler", "rng", "epoch", "position", "step", "config"):
        assert key in ck
    assert ck["epoch"] == 4 and ck["position"] == 0
    assert (exp / "units" / "units.txt").read_text().startswith("<blank> 0\nsil 1\n")
    saved = (exp / "config.yaml").read_text()
    assert "input_dim: 16" in saved and "num_classes: 41" in saved
    # the saved exp loads through the models API
    from asrkit.models import load_model

    _, cfg = load_model(exp, "best")
    assert cfg["task"] == "frame"


def test_ctc_loss_goes_down_and_per(stores, tmp_path):
    exp = tmp_path / "exp"
    r = train(_cfg("ctc", "train.epochs=6", "features.specaugment=false"), stores["train"], stores["dev"], exp)
    assert r.metric == "per"
    losses = [e["loss"] for e in _events(exp, "train")]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    dev = _events(exp, "dev")
    assert "dev_per" in dev[0] and "dev_loss" in dev[0] and dev[-1]["dev_loss"] < dev[0]["dev_loss"]
    assert r.best == pytest.approx(min(e["dev_per"] for e in dev), abs=1e-5)


def test_ctc_char_units_report_wer_and_cer(stores, tmp_path):
    exp = tmp_path / "exp"
    r = train(_cfg("ctc", "units.kind=char", "train.epochs=1"), stores["train"], stores["dev"], exp)
    assert r.metric == "wer"
    dev = _events(exp, "dev")[0]
    assert "dev_wer" in dev and "dev_cer" in dev
    assert "<blank> 0\n<unk> 1\n| 2\n" in (exp / "units" / "units.txt").read_text()


class _Kill(Exception):
    pass


def _kill_at(k):
    def hook(step, epoch, position):
        if step == k:
            raise _Kill
    return {"after_step": hook}


@pytest.mark.parametrize("task,impl", [("frame", "native"), ("ctc", "native"), ("ctc", "scratch")])
def test_resume_after_kill_mid_epoch_equals_uninterrupted(stores, tmp_path, task, impl):
    over = ["train.epochs=3", "train.save_every_steps=1", "model.dropout=0.3", f"model.impl={impl}"]
    full = tmp_path / "full"
    train(_cfg(task, *over), stores["train"], stores["dev"], full)
    steps_per_epoch = torch.load(full / "checkpoints" / "epoch-1.pt", weights_only=True)["step"]
    assert steps_per_epoch >= 3
    killed = tmp_path / "killed"
    k = steps_per_epoch + 2  # in the middle of epoch 2
    with pytest.raises(_Kill):
        train(_cfg(task, *over), stores["train"], stores["dev"], killed, hooks=_kill_at(k))
    ck = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    assert (ck["epoch"], ck["position"], ck["step"]) == (1, 1, k - 1)  # the step k save never happened
    with pytest.raises(UsageError, match="--resume"):
        train(_cfg(task, *over), stores["train"], stores["dev"], killed)
    r = train(_cfg(task, *over), stores["train"], stores["dev"], killed, resume=True)
    assert r.epochs == 3
    a, b = _weights(full / "checkpoints" / "last.pt"), _weights(killed / "checkpoints" / "last.pt")
    assert all(torch.equal(a[n], b[n]) for n in a)
    steps = [e["step"] for e in _events(killed, "train")]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no duplicate log lines


def test_resume_refuses_changed_config(stores, tmp_path):
    exp = tmp_path / "exp"
    train(_cfg("frame", "train.epochs=1"), stores["train"], stores["dev"], exp)
    with pytest.raises(ConfigError, match="optim.lr"):
        train(_cfg("frame", "train.epochs=2", "optim.lr=0.5"), stores["train"], stores["dev"], exp, resume=True)
    r = train(_cfg("frame", "train.epochs=2"), stores["train"], stores["dev"], exp, resume=True)
    assert r.epochs == 2


def test_early_stopping(stores, tmp_path):
    exp = tmp_path / "exp"
    # lr so small nothing improves after epoch 1 (ties are not improvements)
    r = train(_cfg("frame", "train.epochs=6", "train.patience=2", "optim.lr=1e-12", "optim.scheduler=constant",
                   "train.metric=acc", "model.dropout=0.0"),
              stores["train"], stores["dev"], exp)
    assert r.stopped_early and r.epochs == 3 and r.best_epoch == 1


def test_plateau_scheduler_loss_metric_and_keep_epochs(stores, tmp_path):
    exp = tmp_path / "exp"
    r = train(_cfg("ctc", "optim.scheduler=plateau", "train.epochs=3", "train.metric=loss", "train.keep_epochs=1"),
              stores["train"], stores["dev"], exp)
    assert r.epochs == 3 and r.metric == "loss"
    assert r.best == pytest.approx(min(e["dev_loss"] for e in _events(exp, "dev")), abs=1e-5)
    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == ["best.pt", "epoch-3.pt", "last.pt"]


# ------------------------------------------------------------------ bad input
def test_empty_training_set(tmp_path, stores):
    from asrkit.data.feature_store import ShardWriter, merge_shards

    empty = tmp_path / "empty"
    with ShardWriter(empty, 0):
        pass
    merge_shards(empty, 1)
    with pytest.raises(DataError, match="training set is empty"):
        train(_cfg("frame"), empty, stores["dev"], tmp_path / "exp")


def test_missing_ali_for_an_utterance(tmp_path, stores):
    st = make_store(tmp_path / "st", n=4)
    lines = (st / "ali").read_text().splitlines()
    (st / "ali").write_text("\n".join(lines[1:]) + "\n")
    missing = lines[0].split()[0]
    with pytest.raises(DataError, match=f"no labels for utterance '{missing}'"):
        train(_cfg("frame"), st, stores["dev"], tmp_path / "exp")


def test_label_out_of_range(tmp_path, stores):
    # units fixed by an earlier exp; a store with an unknown label
    exp = tmp_path / "exp"
    train(_cfg("frame", "train.epochs=1"), stores["train"], stores["dev"], exp)
    st = make_store(tmp_path / "st", n=4)
    ali = (st / "ali").read_text().replace(" aa", " 77", 1)
    (st / "ali").write_text(ali)
    with pytest.raises(DataError, match="label '77' is out of range"):
        train(_cfg("frame", f"units.dir={exp / 'units'}"), st, stores["dev"], tmp_path / "exp2")
    # integer labels beyond a fixed inventory
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "units.txt").write_text("<blank> 0\n0 1\n1 2\n")
    st2 = make_store(tmp_path / "st2", n=3)
    (st2 / "ali").write_text("".join(f"{ln.split()[0]} " + " ".join("5" for _ in ln.split()[1:]) + "\n"
                                     for ln in (st2 / "ali").read_text().splitlines()))
    with pytest.raises(DataError, match="label '5' is out of range"):
        train(_cfg("frame", f"units.dir={tmp_path / 'u'}"), st2, st2, tmp_path / "exp3")


def test_feature_dim_mismatch_with_checkpoint(tmp_path, stores):
    exp = tmp_path / "exp"
    train(_cfg("frame", "train.epochs=1"), stores["train"], stores["dev"], exp)
    other = make_store(tmp_path / "d20", n=4, dim=20)
    other_dev = make_store(tmp_path / "d20dev", n=2, dim=20, seed=3)
    with pytest.raises(TrainingError, match="16-dim features but .* 20-dim"):
        train(_cfg("frame", "train.epochs=2"), other, other_dev, exp, resume=True)


def test_nan_loss_skips_then_stops(tmp_path, stores):
    st = make_store(tmp_path / "nan", n=12, nan_utts=12)
    with pytest.raises(TrainingError, match="NaN/inf in 3 batches in a row"):
        train(_cfg("frame", "train.nan_limit=3", "data.max_frames=50"), st, stores["dev"], tmp_path / "exp")
    ev = _events(tmp_path / "exp", "nonfinite")
    assert [e["streak"] for e in ev] == [1, 2, 3]


def test_nan_batches_are_skipped_and_training_goes_on(tmp_path, stores):
    st = make_store(tmp_path / "nan", n=12, nan_utts=2)
    r = train(_cfg("frame", "data.max_frames=60", "train.epochs=1", "data.cmvn=null"), st, stores["dev"], tmp_path / "exp")
    assert r.epochs == 1
    assert len(_events(tmp_path / "exp", "nonfinite")) >= 1
    w = _weights(tmp_path / "exp" / "checkpoints" / "last.pt")
    assert all(torch.isfinite(v).all() for v in w.values() if torch.is_floating_point(v))


def test_ctc_needs_text(tmp_path, stores):
    st = make_store(tmp_path / "st", n=4)
    (st / "text.phones").unlink()
    (st / "text").unlink()
    with pytest.raises(DataError, match="transcripts"):
        train(_cfg("ctc"), st, stores["dev"], tmp_path / "exp")


# ------------------------------------------------------------------ averaging
def test_average_last_n(stores, tmp_path):
    exp = tmp_path / "exp"
    train(_cfg("frame", "train.epochs=3"), stores["train"], stores["dev"], exp)
    out = average_checkpoints(exp, 2)
    assert out.name == "avg-last-2.pt"
    w2, w3 = _weights(exp / "checkpoints" / "epoch-2.pt"), _weights(exp / "checkpoints" / "epoch-3.pt")
    avg = _weights(out)
    for k, v in avg.items():
        if torch.is_floating_point(v):
            torch.testing.assert_close(v, (w2[k] + w3[k]) / 2)
        else:
            assert torch.equal(v, w3[k])
    from asrkit.models import load_model

    load_model(exp, "avg-last-2")
    assert torch.load(out, weights_only=True)["averaged"] == [2, 3]


def test_average_last_n_with_fewer_checkpoints_averages_those(stores, tmp_path, capsys):
    """``train.keep_epochs=2`` keeps two: ``--last 3`` averages those two with a warning (as ESPnet does)."""
    exp = tmp_path / "exp"
    train(_cfg("frame", "train.epochs=3", "train.keep_epochs=2"), stores["train"], stores["dev"], exp)
    capsys.readouterr()
    out = average_checkpoints(exp, 3)
    err = capsys.readouterr().err
    assert "--last 3 but only 2 epoch checkpoint(s)" in " ".join(err.split()) and "keep_epochs" in err
    assert out.name == "avg-last-3.pt"
    ck = torch.load(out, weights_only=True)
    assert ck["averaged"] == [2, 3]
    w2, w3 = _weights(exp / "checkpoints" / "epoch-2.pt"), _weights(exp / "checkpoints" / "epoch-3.pt")
    for k, v in ck["model"].items():
        if torch.is_floating_point(v):
            torch.testing.assert_close(v, (w2[k] + w3[k]) / 2)
    with pytest.raises(UsageError, match="--last must be >= 1"):
        average_checkpoints(exp, 0)


def test_loader_workers_give_the_same_run(stores, tmp_path):
    over = ["train.epochs=1", "model.dropout=0.2"]
    train(_cfg("ctc", *over), stores["train"], stores["dev"], tmp_path / "a")
    train(_cfg("ctc", *over, "data.num_workers=2"), stores["train"], stores["dev"], tmp_path / "b")
    a, b = _weights(tmp_path / "a" / "checkpoints" / "last.pt"), _weights(tmp_path / "b" / "checkpoints" / "last.pt")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_tensorboard_events_when_installed(stores, tmp_path, monkeypatch):
    """With ``tensorboard`` importable the scalars go to a SummaryWriter (a stand-in here)."""
    import sys
    import types

    calls = []

    class Writer:
        def __init__(self, logdir):
            calls.append(("init", logdir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    train(_cfg("frame", "train.epochs=1", "train.tensorboard=true"), stores["train"], stores["dev"], tmp_path / "e")
    tags = {c[0] for c in calls}
    assert {"train/loss", "train/lr", "train/frames_per_s", "dev/dev_acc", "dev/dev_loss", "close"} <= tags
    assert calls[0] == ("init", str(tmp_path / "e" / "tensorboard"))


def test_init_fine_tunes_from_another_runs_weights_and_units(stores, tmp_path):
    """train.init: the first weights (and units) of a new run come from another run's
    checkpoint; the optimizer and schedule start fresh; a run cannot start from itself."""
    pre = tmp_path / "pre"
    train(_cfg("ctc", "train.epochs=2", "features.specaugment=false"), stores["train"], stores["dev"], pre)
    ft = tmp_path / "ft"
    # one update at a vanishing lr, so the fine-tuned run's weights are exactly the init's
    r = train(_cfg("ctc", "train.epochs=1", "train.max_steps=1", "optim.lr=1e-12", "optim.weight_decay=0",
                   "features.specaugment=false", f"train.init={pre}"), stores["train"], stores["dev"], ft)
    assert r.steps == 1
    assert (ft / "units" / "units.txt").read_text() == (pre / "units" / "units.txt").read_text()
    a, b = _weights(pre / "checkpoints" / "best.pt"), _weights(ft / "checkpoints" / "last.pt")
    learned = [k for k in a if "running_" not in k and "num_batches" not in k]  # BatchNorm's stats move
    assert learned and all(torch.allclose(a[k], b[k], atol=1e-6) for k in learned)
    # starting from random weights instead gives other weights
    scratch = tmp_path / "scratch"
    train(_cfg("ctc", "train.epochs=1", "train.max_steps=1", "optim.lr=1e-12", "optim.weight_decay=0",
               "features.specaugment=false", "train.seed=5"), stores["train"], stores["dev"], scratch)
    c = _weights(scratch / "checkpoints" / "last.pt")
    assert not all(torch.allclose(a[k], c[k], atol=1e-6) for k in learned)
    with pytest.raises(UsageError, match="no such checkpoint"):
        train(_cfg("ctc", f"train.init={tmp_path / 'nope'}"), stores["train"], stores["dev"], tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(UsageError, match="itself"):
        train(_cfg("ctc", f"train.init={pre}"), stores["train"], stores["dev"], pre, overwrite=True)
    # weights of another shape: one line naming the checkpoint
    from asrkit.errors import InputError

    with pytest.raises(InputError, match="weights do not fit"):
        train(_cfg("ctc", "model.hidden=24", f"train.init={pre}"), stores["train"], stores["dev"], tmp_path / "y")
