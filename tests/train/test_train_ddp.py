"""DistributedDataParallel on CPU (gloo, 2 processes) equals one process with the same global batch."""
from __future__ import annotations

import pytest
import torch
from train_helpers import small_overrides

from asrkit.train import load_config, train


def _w(exp):
    return torch.load(exp / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_ddp_gloo_two_processes_equals_single_process(stores, tmp_path):
    over = small_overrides("ctc") + ["train.max_steps=4", "model.dropout=0.0", "train.epochs=5",
                                     "data.max_frames=300", "optim.warmup_steps=0"]
    cfg = load_config("ctc", None, over)
    one = train(cfg, stores["train"], stores["dev"], tmp_path / "one")
    two = train(cfg, stores["train"], stores["dev"], tmp_path / "two", nproc=2)
    assert one.steps == two.steps == 4
    a, b = _w(tmp_path / "one"), _w(tmp_path / "two")
    assert len(b["rng"]) == 2  # every rank's RNG state is saved
    for name, v in a["model"].items():
        torch.testing.assert_close(b["model"][name], v, atol=1e-5, rtol=0)
    # the run did train: weights moved away from a fresh model's
    from asrkit.models import build_model

    torch.manual_seed(0)
    fresh = build_model(a["config"]["model"]).state_dict()
    moved = sum(float((fresh[k] - a["model"][k]).abs().max()) > 1e-3 for k in fresh)
    assert moved > 0


@pytest.mark.slow
def test_torchrun_module_entry(stores, tmp_path):
    """``torchrun --nproc-per-node 2 -m asrkit train ctc ...``: rank 0 writes, every rank's RNG is saved."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    # torchrun comes with torch (a pinned dependency); `python -m torch.distributed.run` is the same program
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    exp = tmp_path / "exp"
    cmd = [*launcher, "--nproc-per-node", "2", "-m", "asrkit", "-q", "train", "ctc", "--train",
           str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp), "--device", "cpu",
           *small_overrides("ctc"), "train.epochs=1"]
    p = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    ck = _w(exp)
    assert len(ck["rng"]) == 2 and ck["epoch"] == 1
    assert sorted(x.name for x in (exp / "checkpoints").iterdir()) == ["best.pt", "epoch-1.pt", "last.pt"]
