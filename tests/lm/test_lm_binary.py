"""``asrkit lm build --binary``: a kenlm binary next to the ARPA, written by kenlm's build_binary.

The pip kenlm module reads binaries but cannot write them, so --binary runs the build_binary
program when it is on PATH and refuses with one line when it is not. The refusal and the way the
program is run (its arguments, the atomic rename, its failure) are tested everywhere; the real
conversion only where build_binary is installed.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from asrkit.lm.build import binary_path

ASRKIT = [sys.executable, "-m", "asrkit"]
TRAIN = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ate the dog food"]


def _text(tmp_path: Path) -> Path:
    p = tmp_path / "train.txt"
    p.write_text("".join(line + "\n" for line in TRAIN), encoding="utf-8")
    return p


def _run(args: list[str], path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([*ASRKIT, "-q", *args], capture_output=True, text=True, env=env)


def _fake_program(folder: Path, script: str) -> str:
    """A build_binary stand-in in ``folder`` (a shell script), for the tests of how it is run."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "build_binary"
    p.write_text("#!/bin/sh\n" + script)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def test_binary_path_names():
    assert binary_path("exp/lm3.arpa") == "exp/lm3.bin"
    assert binary_path("exp/lm3") == "exp/lm3.bin"
    assert binary_path("lm.arpa.gz").endswith("lm.arpa.bin")


def test_binary_without_build_binary_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "lm3.arpa"
    empty = tmp_path / "bin"
    empty.mkdir()
    p = _run(["lm", "build", str(_text(tmp_path)), "--order", "3", "-o", str(out), "--binary"], path=str(empty))
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "build_binary" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists() and not (tmp_path / "lm3.bin").exists()  # refused before any work


def test_binary_to_stdout_is_refused(tmp_path):
    p = _run(["lm", "build", str(_text(tmp_path)), "-o", "-", "--binary"])
    assert p.returncode == 2 and "-o FILE" in p.stderr and p.stdout == ""


def test_binary_runs_build_binary_on_the_arpa(tmp_path):
    """How build_binary is run: ARPA in, a temporary name in the same folder out, renamed to LM.bin."""
    log = tmp_path / "args.txt"
    path = _fake_program(tmp_path / "bin", f'echo "$@" > {log}\nhead -1 "$1" > "$2"\n')
    out = tmp_path / "lm" / "lm3.arpa"
    p = _run(["lm", "build", str(_text(tmp_path)), "--order", "3", "-o", str(out), "--binary"], path=path)
    assert p.returncode == 0, p.stderr
    arpa, target = log.read_text().split()
    assert arpa == str(out) and Path(target).parent == out.parent and Path(target).name != "lm3.bin"
    assert (out.parent / "lm3.bin").read_text() == out.read_text().splitlines()[0] + "\n"
    assert sorted(f.name for f in out.parent.iterdir()) == ["lm3.arpa", "lm3.bin"]  # no temporary left


def test_failing_build_binary_is_one_line_and_leaves_no_binary(tmp_path):
    path = _fake_program(tmp_path / "bin", 'echo "Loading the LM will be faster" >&2\necho "out of memory" >&2\n'
                                           'touch "$2"\nexit 3\n')
    out = tmp_path / "lm3.arpa"
    p = _run(["lm", "build", str(_text(tmp_path)), "--order", "3", "-o", str(out), "--binary"], path=path)
    assert p.returncode == 1
    errors = [ln for ln in p.stderr.splitlines() if not ln.startswith("warning:")]  # (KN warns on this tiny text)
    assert len(errors) == 1 and "build_binary failed: out of memory" in errors[0]
    assert out.exists() and sorted(f.name for f in tmp_path.iterdir() if f.name.startswith("lm3")) == ["lm3.arpa"]


@pytest.mark.skipif(shutil.which("build_binary") is None,
                    reason="kenlm's build_binary is not installed here (the refusal is tested above)")
def test_real_binary_loads_with_the_arpa_scores(tmp_path):
    import kenlm

    out = tmp_path / "lm3.arpa"
    p = _run(["lm", "build", str(_text(tmp_path)), "--order", "3", "-o", str(out), "--binary"])
    assert p.returncode == 0, p.stderr
    binary = tmp_path / "lm3.bin"
    assert binary.read_bytes()[:4] != out.read_bytes()[:4]  # not a copy of the ARPA text
    a, b = kenlm.Model(str(out)), kenlm.Model(str(binary))
    for sentence in [*TRAIN, "the mat sat on a dog", "an unseen word"]:
        assert b.score(sentence) == pytest.approx(a.score(sentence), abs=1e-4)
