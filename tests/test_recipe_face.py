"""recipes/face/run.sh, every stage, on a very small drawn corpus and model: the
outputs of each stage, the results table, a second run that keeps finished
outputs, and the option checks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "recipes" / "face" / "run.sh"

FACE = """task: face
model: {type: resnet, impl: scratch, channels: [8, 16], blocks: [1, 1], embed_dim: 16, head: arcface}
data: {batch_size: 16, augment_flip: true}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {epochs: 1, tensorboard: false}
"""


def _run(*args, env):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_run_sh_all_stages(tmp_path):
    (tmp_path / "face.yaml").write_text(FACE)
    env = dict(os.environ, ASRKIT=f"{sys.executable} -m asrkit")
    work = tmp_path / "work"
    opts = ["--dir", str(work), "--device", "cpu", "--threads", "1", "--conf", str(tmp_path / "face.yaml"),
            "--identities", "6", "--per-identity", "4", "--dev-per-identity", "2", "--verify-identities", "4",
            "--pairs", "40", "--size", "32"]
    p = _run(*opts, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    for n, name in enumerate(["corpus", "train", "predict", "verify", "results"]):
        assert f"== stage {n}: {name}" in p.stdout
        assert (work / "exp" / "log" / f"{n:02d}_{name}.log").is_file()
    exp = work / "exp" / "face"
    assert (exp / "checkpoints" / "best.pt").is_file()
    rows = (exp / "predict_dev" / "submission.csv").read_text().splitlines()
    assert rows[0] == "id,label" and len(rows) == 1 + 6 * 2
    acc = float((exp / "predict_dev" / "accuracy.txt").read_text())
    assert 0.0 <= acc <= 100.0
    rep = json.loads((exp / "verify" / "report.json").read_text())
    assert 0.0 <= rep["auc"] <= 1.0 and rep["pairs"] == len((exp / "verify" / "scores.txt").read_text().splitlines())
    assert (exp / "verify" / "roc.png").read_bytes()[:4] == b"\x89PNG"
    table = (exp / "results.txt").read_text()
    assert "verification AUC, unseen identities (%)" in table and "dev identification accuracy (%)" in table
    assert "training minutes" in table
    # a second run keeps the corpus and resumes the finished training
    before = (exp / "checkpoints" / "best.pt").stat().st_mtime_ns
    p = _run(*opts, "--stop-stage", "1", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "is there" in p.stdout and (exp / "checkpoints" / "best.pt").stat().st_mtime_ns == before


def test_options_are_checked(tmp_path):
    env = dict(os.environ, ASRKIT=f"{sys.executable} -m asrkit")
    p = _run("--dir", str(tmp_path), "--identities", "many", env=env)
    assert p.returncode == 2 and "--identities takes a number" in p.stderr
    p = _run("--dir", str(tmp_path), "--impl", "fast", env=env)
    assert p.returncode == 2 and "--impl takes scratch or native" in p.stderr
    p = _run("--help", env=env)
    assert p.returncode == 0 and "stages: 0 corpus" in p.stdout
