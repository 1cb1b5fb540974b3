"""``asrkit train gan``: the two phases train a DCGAN on an image folder, log both
losses, write a sample grid per epoch, resume bit-exact; bad configs are one line."""
from __future__ import annotations

import json

import pytest
import torch
from gan_helpers import make_image_folder
from PIL import Image

from asrkit.errors import ConfigError
from asrkit.train import check_config, load_config, train

SMALL = ["model.g_channels=8", "model.d_channels=8", "model.nz=8", "data.batch_size=8", "train.log_every=1",
         "train.tensorboard=false", "data.eval_images=8"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return make_image_folder(root / "train", 12, 0), make_image_folder(root / "dev", 4, 1)


def _events(exp, kind):
    return [e for e in map(json.loads, (exp / "metrics.jsonl").read_text().splitlines()) if e["event"] == kind]


def test_gan_trains_both_phases_and_writes_sample_grids(folders, tmp_path):
    exp = tmp_path / "exp"
    cfg = load_config("gan", None, SMALL + ["train.epochs=2"])
    assert cfg["optim"]["betas"] == [0.5, 0.999] and cfg["optim"]["lr"] == 2e-4 and cfg["model"]["type"] == "dcgan"
    torch.manual_seed(0)
    r = train(cfg, *folders, exp)
    assert r.metric == "fd_pix" and r.epochs == 2 and r.steps == 6
    ev = _events(exp, "train")
    assert all({"loss_d", "loss_g", "d_real", "d_fake", "lr_g"} <= set(e) for e in ev)
    assert all(0 < e["d_real"] < 1 and 0 < e["d_fake"] < 1 for e in ev)
    dev = _events(exp, "dev")
    assert all(e["dev_fd_pix"] > 0 and "dev_d_real" in e and "train_loss_g" in e for e in dev)
    ck = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    assert set(ck["optimizer"]) == {"d", "g"}
    # each optimizer holds one network's parameters
    n_d = len(ck["optimizer"]["d"]["param_groups"][0]["params"])
    assert n_d == sum(1 for k in ck["model"] if k.startswith("discriminator.") and not k.endswith(
        ("running_mean", "running_var", "num_batches_tracked")))
    grids = sorted((exp / "samples").iterdir())
    assert [p.name for p in grids] == ["epoch-001.png", "epoch-002.png"]
    with Image.open(grids[0]) as im:  # 8 x 8 samples of 16 pixels, 2 pixels of padding
        assert im.size == (8 * 18 + 2, 8 * 18 + 2)


def test_gan_hinge_and_spectral_norm_train(folders, tmp_path):
    cfg = load_config("gan", None, SMALL + ["train.epochs=1", "model.loss=hinge", "model.spectral_norm=true"])
    train(cfg, *folders, tmp_path / "exp")
    ck = torch.load(tmp_path / "exp" / "checkpoints" / "last.pt", weights_only=True)
    assert any(k.endswith("weight_u") for k in ck["model"])
    assert not any(k.startswith("discriminator.") and "running_mean" in k for k in ck["model"])
    ev = _events(tmp_path / "exp", "train")
    assert all(torch.isfinite(torch.tensor([e["loss_d"], e["loss_g"]])).all() for e in ev)


class _Kill(Exception):
    pass


def test_gan_resume_mid_epoch_is_bit_exact(folders, tmp_path):
    over = SMALL + ["train.epochs=2", "train.save_every_steps=1"]
    train(load_config("gan", None, over), *folders, tmp_path / "full")

    def kill(step, epoch, position):
        if step == 4:
            raise _Kill

    with pytest.raises(_Kill):
        train(load_config("gan", None, over), *folders, tmp_path / "killed", hooks={"after_step": kill})
    train(load_config("gan", None, over), *folders, tmp_path / "killed", resume=True)
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for name in ("d", "g"):
        sa, sb = a["optimizer"][name]["state"], b["optimizer"][name]["state"]
        assert sa and all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    grid = "samples/epoch-002.png"
    assert (tmp_path / "full" / grid).read_bytes() == (tmp_path / "killed" / grid).read_bytes()


def test_gan_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="model.type: the gan task trains a 'dcgan' model"):
        check_config(load_config("gan", None, ["model.type=resnet"]))
    with pytest.raises(ConfigError, match="model.loss: expected one of bce, hinge"):
        check_config(load_config("gan", None, ["model.loss=wasserstein"]))
    with pytest.raises(ConfigError, match="data.eval_images"):
        check_config(load_config("gan", None, ["data.eval_images=1"]))
    with pytest.raises(ConfigError, match="model.layers: 20-pixel images"):
        check_config(load_config("gan", None, ["model.image_size=20", "model.layers=3"]))
