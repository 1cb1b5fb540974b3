"""Training and decoding with ``--device cuda``: every task trains on the GPU
to the losses it reaches on the CPU (fp32, TF32 off), bf16 autocast trains,
and ``asrkit decode --device cuda`` writes the CPU's hypotheses. Skipped
without a GPU (the layer-level CUDA parity lives in tests/nn/test_cuda.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import make_store, small_overrides

from asrkit.cli.main import main
from asrkit.train import load_config, parse_overrides, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from gan_helpers import make_image_folder  # noqa: E402

SEQ2SEQ = {
    "las": ["model.listener_hidden=16", "model.pyramid_layers=1", "model.attention_dim=16", "model.embed_dim=16",
            "model.speller_hidden=32", "model.location_channels=2", "model.location_kernel=3"],
    "transformer": ["model.hidden=16", "model.heads=2", "model.ff_mult=2", "model.encoder_layers=1",
                    "model.decoder_layers=1", "model.subsampling=2", "model.conv_channels=4"],
}
COMMON = ["train.epochs=2", "data.max_frames=200", "data.buckets=2", "train.log_every=1", "optim.lr=1e-2",
          "optim.warmup_steps=2", "train.tensorboard=false", "train.precision=fp32", "model.dropout=0"]


@pytest.fixture(autouse=True)
def _full_precision(no_tf32):
    """TF32 off (tests/conftest.py)."""


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    return {"train": make_store(root / "train", n=16, seed=1), "dev": make_store(root / "dev", n=6, seed=2)}


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("lmtext")
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    g = torch.Generator().manual_seed(0)
    lines = [" ".join(words[int(i)] for i in torch.randint(0, len(words), (6,), generator=g)) for _ in range(120)]
    (d / "train.txt").write_text("\n".join(lines[:100]) + "\n")
    (d / "dev.txt").write_text("\n".join(lines[100:]) + "\n")
    return d / "train.txt", d / "dev.txt"


def _dev_losses(exp: Path) -> list[float]:
    events = [json.loads(ln) for ln in (exp / "metrics.jsonl").read_text().splitlines()]
    return [e["dev_loss"] for e in events if e["event"] == "dev"]


def _overrides(task: str) -> list[str]:
    if task in SEQ2SEQ:
        return COMMON + SEQ2SEQ[task] + ["units.kind=phone", "features.specaugment=false", "model.dropout=0"]
    if task == "lm":
        return ["model.embed_dim=16", "model.hidden=16", "model.layers=1", "data.bptt=12", "data.batch_blocks=6",
                "train.epochs=2", "train.log_every=1", "optim.lr=1e-2", "optim.warmup_steps=2",
                "train.tensorboard=false", "train.precision=fp32", "model.dropout=0"]
    return small_overrides(task) + ["train.precision=fp32", "model.dropout=0"]


@pytest.mark.parametrize("task", ["frame", "ctc", "las", "transformer", "lm"])
def test_cuda_training_reaches_the_cpu_losses(task, stores, texts, tmp_path):
    losses = {}
    for device in ("cpu", "cuda"):
        cfg = load_config(task, None, parse_overrides(_overrides(task) + [f"train.device={device}"]))
        train_in, dev_in = texts if task == "lm" else (stores["train"], stores["dev"])
        train(cfg, train_in, dev_in, tmp_path / device)
        losses[device] = _dev_losses(tmp_path / device)
    # no dropout: CUDA draws other random numbers than the CPU
    assert len(losses["cuda"]) == 2
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=2e-3)


def test_bf16_autocast_trains(stores, tmp_path):
    cfg = load_config("ctc", None, parse_overrides(small_overrides("ctc") + ["train.device=cuda", "train.epochs=3",
                                                                             "train.precision=bf16"]))
    train(cfg, stores["train"], stores["dev"], tmp_path / "exp")
    losses = _dev_losses(tmp_path / "exp")
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_decode_on_cuda_writes_the_cpu_hypotheses(stores, tmp_path, capsys):
    exp = tmp_path / "exp"
    args = ["-q", "train", "ctc", "--train", str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp),
            "--device", "cuda", *small_overrides("ctc"), "train.epochs=4"]
    assert main(args) == 0
    capsys.readouterr()
    hyps = {}
    for device in ("cpu", "cuda"):
        assert main(["-q", "decode", str(exp), str(stores["dev"]), "--device", device]) == 0
        hyps[device] = capsys.readouterr().out.splitlines()
    assert len(hyps["cuda"]) == 6 and hyps["cuda"] == hyps["cpu"]


FACE = ["model.channels=[8,16]", "model.blocks=[1,1]", "model.embed_dim=16", "model.stem_stride=1",
        "data.batch_size=8", "train.epochs=2", "optim.lr=1e-2", "optim.warmup_steps=2", "train.tensorboard=false",
        "train.log_every=1", "train.precision=fp32"]
GAN = ["model.g_channels=8", "model.d_channels=8", "model.nz=8", "data.batch_size=8", "train.log_every=1",
       "train.tensorboard=false", "data.eval_images=8", "train.epochs=2"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("images")
    return make_image_folder(root / "train", 16, 0), make_image_folder(root / "dev", 4, 1)


def test_face_on_cuda_reaches_the_cpu_losses(images, tmp_path):
    losses = {}
    for i, device in enumerate(("cpu", "cuda")):
        cfg = load_config("face", None, parse_overrides(FACE + [f"train.device={device}"]))
        train(cfg, images[0], images[1], tmp_path / f"{i}-{device}")
        losses[device] = _dev_losses(tmp_path / f"{i}-{device}")
    assert len(losses["cuda"]) == 2 and losses["cuda"] == pytest.approx(losses["cpu"], rel=2e-3)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gan_phases_on_cuda(precision, images, tmp_path):
    """Both phases step under autocast (fp16: one GradScaler through the two phases); the noise
    is drawn on the GPU, so the losses are checked for sense, not against the CPU's."""
    exp = tmp_path / precision
    cfg = load_config("gan", None, parse_overrides(GAN + ["train.device=cuda", f"train.precision={precision}"]))
    train(cfg, images[0], images[1], exp)
    events = [json.loads(ln) for ln in (exp / "metrics.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "train"]
    assert steps and all(torch.isfinite(torch.tensor([e["loss_d"], e["loss_g"]])).all() for e in steps)
    assert not [e for e in events if e["event"] == "nonfinite"]
    assert sorted(p.name for p in (exp / "samples").iterdir())[-1] == "epoch-002.png"
