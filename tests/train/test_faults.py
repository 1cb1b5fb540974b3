"""Faults during training: SIGKILL at random (seeded) points, also in the
middle of a checkpoint save; a full disk; Ctrl-C. A killed run resumed with
``--resume`` ends bit-exact with an uninterrupted one, and no fault leaves a
file that looks complete but is not, or a temp file that stays forever."""
from __future__ import annotations

import errno
import functools
import json
import os
import random
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from train_helpers import small_overrides

import asrkit.train
import asrkit.checkpoint as C
from asrkit.io import write_marker
from asrkit.cli.main import main
from asrkit.train import load_config, train

#: a run that draws from every RNG (dropout) and saves after every update
OVER = small_overrides("frame") + ["train.epochs=3", "train.save_every_steps=1", "model.dropout=0.3",
                                   "train.seed=11"]

#: ``train`` in a child process, killed with SIGKILL after update K ("step") or
#: while the K-th checkpoint file of this process is written ("save": the data
#: is in the temp file, the rename has not happened)
_KILLER = """
import os, signal, sys
from contextlib import contextmanager
import asrkit.checkpoint as C
from asrkit.train import load_config, train
train_dir, dev_dir, exp, kind, k, resume = sys.argv[1:7]
k = int(k)
hooks = None
if kind == "step":
    def hook(step, epoch, position):
        if step == k:
            os.kill(os.getpid(), signal.SIGKILL)
    hooks = {"after_step": hook}
else:
    real, count = C.atomic_write, [0]
    @contextmanager
    def atomic_write(path, *a, **kw):
        with real(path, *a, **kw) as f:
            yield f
            count[0] += 1
            if count[0] == k:
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
    C.atomic_write = atomic_write
train(load_config("frame", None, sys.argv[7:]), train_dir, dev_dir, exp, resume=resume == "1", hooks=hooks)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(Path(asrkit.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))


def _cli(stores, exp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "asrkit", "-q", "train", "frame", "--train", str(stores["train"]), "--dev",
            str(stores["dev"]), "--out", str(exp), "--device", "cpu", *OVER, *extra]


def _kill(stores, exp: Path, kind: str, k: int, resume: bool) -> None:
    p = subprocess.run([sys.executable, "-c", _KILLER, str(stores["train"]), str(stores["dev"]), str(exp), kind,
                        str(k), "1" if resume else "0", *OVER], env=_env(), capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, f"{kind} {k}: {p.returncode}\n{p.stderr[-2000:]}"


def _metrics(exp: Path) -> list[dict]:
    """The events without wall-clock fields (speeds, seconds)."""
    out = []
    for line in (exp / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        ev = json.loads(line)
        out.append({k: v for k, v in ev.items() if k not in ("frames_per_s", "seconds", "epoch_s")})
    return out


def _temps(exp: Path) -> list[Path]:
    return [p for d in (exp, exp / "checkpoints") for p in d.glob(".*.tmp")]


def _equal_states(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_sigkill_sweep_then_resume_equals_uninterrupted(stores, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cli(stores, full), check=True, env=_env())
    total = torch.load(full / "checkpoints" / "last.pt", weights_only=True)["step"]
    per_epoch = torch.load(full / "checkpoints" / "epoch-1.pt", weights_only=True)["step"]
    assert total == 3 * per_epoch and per_epoch >= 3
    rng = random.Random(2024)
    k1 = rng.randint(2, per_epoch)                    # first epoch (maybe its last update, before the epoch save)
    k2 = rng.randint(per_epoch + 1, 2 * per_epoch)     # second epoch
    k3 = rng.randint(1, 3)                             # in the middle of the k3-th checkpoint write of a resume
    _kill(stores, killed, "step", k1, resume=False)
    _kill(stores, killed, "step", k2, resume=True)
    assert torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["step"] < k2
    _kill(stores, killed, "save", k3, resume=True)
    assert _temps(killed), "a kill during a save leaves its temp file"
    p = subprocess.run(_cli(stores, killed, "--resume"), env=_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert _temps(killed) == []  # the stale temp file of the killed save is gone
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    assert (a["epoch"], a["step"], a["best"]) == (b["epoch"], b["step"], b["best"])
    assert _equal_states(a["model"], b["model"])
    for n in (1, 2, 3):
        ea = torch.load(full / "checkpoints" / f"epoch-{n}.pt", weights_only=True)["model"]
        eb = torch.load(killed / "checkpoints" / f"epoch-{n}.pt", weights_only=True)["model"]
        assert _equal_states(ea, eb)
    assert _metrics(killed) == _metrics(full)  # losses, lrs, dev metrics: bit-exact, no duplicates


# ------------------------------------------------------------------ in-process faults
def _cfg(*extra: str) -> dict:
    return load_config("frame", None, OVER + list(extra))


def _failing_write(name: str, exc: BaseException):
    """An ``atomic_write`` for checkpoints whose write of ``name`` fails with ``exc`` half-way."""
    real = C.atomic_write

    @contextmanager
    def atomic_write(path, *a, **kw):
        with real(path, *a, **kw) as f:
            if Path(path).name == name:
                yield _Breaking(f, exc)
            else:
                yield f
    return atomic_write


class _Breaking:
    """A file whose second write raises ``exc`` (inside torch's zip writer)."""

    def __init__(self, f, exc):
        self.f, self.exc, self.n = f, exc, 0

    def write(self, b):
        self.n += 1
        if self.n == 2:
            raise self.exc
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_disk_full_during_a_save_is_one_line_and_keeps_the_last_checkpoint(stores, tmp_path, monkeypatch, capsys):
    exp = tmp_path / "exp"
    args = ["-q", "train", "frame", "--train", str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp),
            "--device", "cpu", *OVER, "train.save_every_steps=0"]
    monkeypatch.setattr(C, "atomic_write",
                        _failing_write("epoch-2.pt", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    last = exp / "checkpoints" / "last.pt"
    assert len(err) == 1 and "epoch-2.pt: cannot write the checkpoint: No space left on device" in err[0]
    assert f"{last} is intact" in err[0] and "--resume" in err[0]
    assert _temps(exp) == [] and not (exp / "checkpoints" / "epoch-2.pt").exists()
    ck = torch.load(last, weights_only=True)  # the previous checkpoint, whole
    assert (ck["epoch"], ck["position"]) == (1, 0)
    assert (exp / "checkpoints" / "epoch-1.pt").read_bytes() == last.read_bytes()
    # space again: the resumed run ends where an uninterrupted one does
    monkeypatch.undo()
    assert main([*args, "--resume"]) == 0
    ref = tmp_path / "ref"
    train(_cfg("train.save_every_steps=0"), stores["train"], stores["dev"], ref)
    assert _equal_states(torch.load(ref / "checkpoints" / "last.pt", weights_only=True)["model"],
                         torch.load(last, weights_only=True)["model"])
    assert _metrics(exp) == _metrics(ref)


def test_ctrl_c_during_a_checkpoint_save_is_one_line_and_exit_130(stores, tmp_path, monkeypatch, capsys):
    """KeyboardInterrupt inside torch.save (torch turns it into a RuntimeError of its zip writer)."""
    exp = tmp_path / "exp"
    args = ["-q", "train", "frame", "--train", str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp),
            "--device", "cpu", *OVER]
    monkeypatch.setattr(C, "atomic_write", _failing_write("epoch-2.pt", KeyboardInterrupt()))
    capsys.readouterr()
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    last = exp / "checkpoints" / "last.pt"
    assert err == [f"asrkit: interrupted; resume with --resume (it continues from {last})"]
    assert _temps(exp) == [] and not (exp / "checkpoints" / "epoch-2.pt").exists()
    ck = torch.load(last, weights_only=True)
    assert ck["epoch"] == 1 and ck["position"] > 0  # the mid-epoch save before the interrupted one
    monkeypatch.undo()
    assert main([*args, "--resume"]) == 0
    ref = tmp_path / "ref"
    train(_cfg(), stores["train"], stores["dev"], ref)
    assert _equal_states(torch.load(ref / "checkpoints" / "last.pt", weights_only=True)["model"],
                         torch.load(last, weights_only=True)["model"])


def test_ctrl_c_between_updates_and_before_any_checkpoint(stores, tmp_path, monkeypatch, capsys):
    def interrupt_at(k):
        def hook(step, epoch, position):
            if step == k:
                raise KeyboardInterrupt
        return {"after_step": hook}

    exp = tmp_path / "exp"
    args = ["-q", "train", "frame", "--train", str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp),
            "--device", "cpu", *OVER]
    real = asrkit.train.train
    monkeypatch.setattr(asrkit.train, "train", functools.partial(real, hooks=interrupt_at(1)))
    assert main(args) == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "asrkit: interrupted before the first checkpoint was saved; run it again to start over"]
    monkeypatch.setattr(asrkit.train, "train", functools.partial(real, hooks=interrupt_at(3)))
    assert main([*args, "--resume"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted; resume with --resume" in err[0]
    assert torch.load(exp / "checkpoints" / "last.pt", weights_only=True)["step"] == 2


def test_metrics_half_line_of_a_kill_is_dropped_and_a_fresh_start_empties_them(stores, tmp_path):
    def stop_at_5(step, epoch, position):
        if step == 5:
            raise RuntimeError("stop")

    exp = tmp_path / "exp"
    with pytest.raises(RuntimeError, match="stop"):
        train(_cfg(), stores["train"], stores["dev"], exp, hooks={"after_step": stop_at_5})
    m = exp / "metrics.jsonl"
    with open(m, "a", encoding="utf-8") as f:
        f.write('{"event": "train", "epoch": 2, "st')  # a kill in the middle of an append
    train(_cfg(), stores["train"], stores["dev"], exp, resume=True)
    events = [json.loads(x) for x in m.read_text(encoding="utf-8").splitlines()]  # every line parses
    steps = [e["step"] for e in events if e["event"] == "train"]
    assert steps == list(range(1, steps[-1] + 1))
    # a run that starts from scratch (no checkpoint) does not keep the events of one that never saved
    exp2 = tmp_path / "exp2"
    exp2.mkdir()
    write_marker(exp2, "train")  # a run of its own (another command's folder is refused)
    (exp2 / "metrics.jsonl").write_text('{"event": "train", "step": 99}\n{"event": "tr')
    train(_cfg("train.epochs=1"), stores["train"], stores["dev"], exp2)
    assert all(json.loads(x)["step"] != 99 for x in (exp2 / "metrics.jsonl").read_text().splitlines())
