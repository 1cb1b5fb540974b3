"""A checkpoint is data: every command that opens one refuses a ``.pt`` whose
unpickling would run code, in one line with exit status 1, and runs none of it."""
from __future__ import annotations

import os
import pathlib
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "decode"))
sys.path.insert(0, str(Path(__file__).parent / "train"))

from decode_util import PHONE_WORDS, make_ctc_exp  # noqa: E402
from decode_util import make_store as make_decode_store  # noqa: E402
from train_helpers import make_store as make_train_store  # noqa: E402
from train_helpers import small_overrides  # noqa: E402

from asrkit.cli.main import main  # noqa: E402

KINDS = ["touch-zip", "system-legacy", "bare-pickle"]
REFUSED = "not a plain-data checkpoint (it would run code when loaded); refusing it"


class _Touch:
    """Unpickling this calls ``pathlib.Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


class _System:
    """Unpickling this calls ``os.system("touch marker")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _craft(path: Path, marker: Path, kind: str) -> None:
    """A ``.pt`` that looks like a checkpoint and creates ``marker`` when unpickled in full."""
    path.unlink(missing_ok=True)
    if kind == "touch-zip":  # torch.save's own format
        torch.save({"model": {"w": torch.zeros(2)}, "epoch": 1, "x": _Touch(marker)}, path)
    elif kind == "system-legacy":  # torch's pre-1.6 format (a few pickles in a row)
        torch.save({"model": {"w": torch.zeros(2)}, "x": _System(marker)}, path,
                   _use_new_zipfile_serialization=False)
    else:  # a bare pickle (protocol 4)
        path.write_bytes(pickle.dumps({"model": _System(marker)}, protocol=4))


@pytest.mark.parametrize("kind", KINDS)
def test_the_crafted_files_do_run_code_when_unpickled_in_full(tmp_path, kind):
    """(The files below are real attacks: the unsafe loader creates the marker.)"""
    marker = tmp_path / "PWNED"
    _craft(tmp_path / "x.pt", marker, kind)
    if kind == "bare-pickle":
        with open(tmp_path / "x.pt", "rb") as f:
            pickle.load(f)
    else:
        torch.load(tmp_path / "x.pt", weights_only=False)
    assert marker.exists()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("safety")
    feats = root / "feats"
    make_decode_store(feats, n=3)
    exp = make_ctc_exp(root / "exp", steps=0)
    for n in (1, 2):
        shutil.copy(exp / "checkpoints" / "best.pt", exp / "checkpoints" / f"epoch-{n}.pt")
    from asrkit.lm import build_lm

    (root / "lm.txt").write_text("".join(" ".join(PHONE_WORDS) + "\n" for _ in range(3)))
    build_lm(root / "lm.txt", root / "lm.arpa", 2, progress=False)
    # a run written by `asrkit train ctc` (one tiny epoch) for --resume
    train, dev = make_train_store(root / "train", n=8, seed=1), make_train_store(root / "dev", n=3, seed=2)
    run = root / "run"
    assert main(["-q", "train", "ctc", "--train", str(train), "--dev", str(dev), "--out", str(run), "--device",
                 "cpu", *small_overrides("ctc"), "train.epochs=1"]) == 0
    return {"feats": feats, "exp": exp, "lm": root / "lm.arpa", "train": train, "dev": dev, "run": run}


def _commands(base: dict[str, Path], exp: Path, out: Path) -> dict[str, tuple[str, list[str]]]:
    """command -> (the checkpoint it opens, its argv)."""
    feats = str(base["feats"])
    return {
        "decode": ("best.pt", ["decode", str(exp), feats, "--device", "cpu"]),
        "align": ("best.pt", ["align", str(exp), feats, "--out", str(out), "--device", "cpu"]),
        "tune": ("best.pt", ["tune", str(exp), feats, str(base["feats"] / "text"), "--lm", str(base["lm"]),
                             "--device", "cpu", "--lm-weights", "0.5", "--word-bonuses", "0"]),
        "average": ("epoch-2.pt", ["average", str(exp), "--last", "2"]),
        "train-resume": ("last.pt", ["train", "ctc", "--train", str(base["train"]), "--dev", str(base["dev"]),
                                     "--out", str(exp), "--device", "cpu", "--resume"]),
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["decode", "align", "tune", "average", "train-resume"])
def test_crafted_checkpoint_is_refused_and_never_run(base, tmp_path, capsys, command, kind):
    exp = tmp_path / "exp"
    shutil.copytree(base["run"] if command == "train-resume" else base["exp"], exp)
    marker = tmp_path / "PWNED"
    name, argv = _commands(base, exp, tmp_path / "out")[command]
    target = exp / "checkpoints" / name
    _craft(target, marker, kind)
    capsys.readouterr()
    code = main(["-q", *argv])
    out, err = capsys.readouterr()
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and REFUSED in lines[0] and str(target) in lines[0], err
    assert "Traceback" not in err and out == ""


def test_the_real_checkpoints_still_work(base, tmp_path, capsys):
    """The same commands on the untouched exp dirs succeed (the refusal above is about the file)."""
    exp = tmp_path / "exp"
    shutil.copytree(base["exp"], exp)
    for command in ("decode", "average"):
        _, argv = _commands(base, exp, tmp_path / "out")[command]
        assert main(["-q", *argv]) == 0, capsys.readouterr().err
    run = tmp_path / "run"
    shutil.copytree(base["run"], run)
    _, argv = _commands(base, run, tmp_path / "out")["train-resume"]
    assert main(["-q", *argv, "train.epochs=2"]) == 0, capsys.readouterr().err
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ck["epoch"] == 2


def test_refusal_from_a_real_process_is_one_line(base, tmp_path):
    """The whole stderr of ``python -m asrkit decode`` (no warnings of the loader either)."""
    import subprocess

    exp = tmp_path / "exp"
    shutil.copytree(base["exp"], exp)
    marker = tmp_path / "PWNED"
    _craft(exp / "checkpoints" / "best.pt", marker, "bare-pickle")
    p = subprocess.run([sys.executable, "-m", "asrkit", "decode", str(exp), str(base["feats"]), "--device", "cpu"],
                       capture_output=True, text=True, env=dict(os.environ, COLUMNS="300"))
    assert p.returncode == 1 and not marker.exists()
    assert p.stderr.strip().splitlines() == [f"asrkit: {exp / 'checkpoints' / 'best.pt'}: {REFUSED}"], p.stderr
