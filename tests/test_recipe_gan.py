"""recipes/gan/run.sh, every stage, on a tiny fabricated image folder (--images) with very small
configs: the classifier, the GAN with its per-epoch grids, the sample grid, the Fréchet table;
a second run keeps what is done; bad options are one line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tasks"))
from gan_helpers import make_image_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "recipes" / "gan" / "run.sh"

CLASSIFIER = """task: face
model: {type: resnet, impl: scratch, channels: [8, 16], blocks: [1, 1], embed_dim: 16, head: softmax}
data: {batch_size: 8}
optim: {lr: 3.0e-3, warmup_steps: 1}
train: {epochs: 1, tensorboard: false}
"""
GAN = """task: gan
model: {type: dcgan, impl: scratch, nz: 8, g_channels: 8, d_channels: 8}
data: {batch_size: 8, eval_images: 8}
train: {epochs: 2, tensorboard: false}
"""


@pytest.mark.slow
def test_run_sh_all_stages(tmp_path):
    images = tmp_path / "images"
    make_image_folder(images / "train", 12, 0)
    make_image_folder(images / "dev", 4, 1)
    (tmp_path / "clf.yaml").write_text(CLASSIFIER)
    (tmp_path / "gan.yaml").write_text(GAN)
    env = dict(os.environ, ASRKIT=f"{sys.executable} -m asrkit")
    work = tmp_path / "work"
    cmd = ["bash", str(SCRIPT), "--dir", str(work), "--device", "cpu", "--images", str(images), "--num", "8",
           "--classifier-conf", str(tmp_path / "clf.yaml"), "--gan-conf", str(tmp_path / "gan.yaml")]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    for n, name in enumerate(["corpus", "classifier", "train_gan", "sample", "frechet"]):
        assert f"== stage {n}: {name}" in p.stdout
    exp = work / "exp"
    assert (exp / "classifier" / "checkpoints" / "best.pt").is_file()
    assert sorted(x.name for x in (exp / "gan" / "samples").iterdir()) == ["epoch-001.png", "epoch-002.png"]
    assert (exp / "gan" / "samples.png").is_file()
    table = (exp / "gan" / "frechet.txt").read_text().splitlines()
    assert table[0].split() == ["source", "role", "images", "frechet", "coverage"]
    assert [ln.split()[0] for ln in table[1:5]] == ["generator", "held-out", "untrained", "per-pixel"]
    assert table[-1].startswith("ratio") and table[-1] in p.stdout
    # again: the trainings are done (resume finds their last epochs), the table is rewritten
    p = subprocess.run(cmd + ["--stage", "1"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (exp / "gan" / "frechet.txt").read_text().splitlines() == table


@pytest.mark.parametrize("args,message", [
    (["--bogus", "1"], "unknown option '--bogus'"),
    (["--num", "many"], "--num takes a number"),
    (["--images", "/no/such/images"], "has no train/ folder"),
])
def test_bad_options_are_one_line(tmp_path, args, message):
    p = subprocess.run(["bash", str(SCRIPT), "--dir", str(tmp_path), "--stop-stage", "0", *args],
                       capture_output=True, text=True, env=dict(os.environ, ASRKIT="false"))
    assert p.returncode != 0 and message in p.stderr
