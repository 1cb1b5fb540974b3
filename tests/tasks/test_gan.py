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


# ------------------------------------------------------------------ asrkit sample, asrkit frechet
@pytest.fixture(scope="module")
def gan_exp(folders, tmp_path_factory):
    exp = tmp_path_factory.mktemp("gan") / "exp"
    train(load_config("gan", None, SMALL + ["train.epochs=1"]), *folders, exp)
    return exp


@pytest.fixture(scope="module")
def classifier_exp(folders, tmp_path_factory):
    """A classifier exp as 'asrkit train face' writes it (config, best.pt, class units), untrained."""
    from asrkit.models import build_model
    from asrkit.tasks.images import write_class_units
    from asrkit.train.config import save_config

    exp = tmp_path_factory.mktemp("clf") / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    model = build_model({"type": "resnet", "in_channels": 1, "image_size": 16, "num_classes": 2,
                         "channels": [8, 16], "blocks": [1, 1], "embed_dim": 16, "head": "softmax"})
    save_config({"task": "face", "model": dict(model.config)}, exp / "config.yaml")
    torch.save({"model": model.state_dict()}, exp / "checkpoints" / "best.pt")
    write_class_units(["disc", "square"], exp / "units")
    return exp


def test_sample_writes_a_grid_or_a_folder_the_same_for_a_seed(gan_exp, tmp_path):
    from asrkit.cli.main import main

    assert main(["-q", "sample", str(gan_exp), "--num", "6", "--nrow", "3", "--out", str(tmp_path / "g.png")]) == 0
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (3 * 18 + 2, 2 * 18 + 2)
    for out in ("a", "b"):
        assert main(["-q", "sample", str(gan_exp), "-n", "3", "--seed", "7", "--out", str(tmp_path / out)]) == 0
    names = sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    assert names == ["sample-00000.png", "sample-00001.png", "sample-00002.png"]
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)
    assert main(["-q", "sample", str(gan_exp), "-n", "3", "--seed", "8", "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / names[0]).read_bytes() != (tmp_path / "b" / names[0]).read_bytes()


def test_sample_and_frechet_refuse_the_wrong_exp(gan_exp, classifier_exp, folders, tmp_path, capsys):
    from asrkit.cli.main import main

    assert main(["sample", str(classifier_exp), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "is a 'face' exp, not a GAN" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    assert main(["sample", str(gan_exp), "--out", str(tmp_path / "busy")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["frechet", str(gan_exp), str(folders[0]), str(gan_exp)]) == 2
    assert "needs a face model" in capsys.readouterr().err


def test_frechet_table_floor_ceilings_and_ratio(gan_exp, classifier_exp, folders, capsys):
    from asrkit.cli.main import main
    from asrkit.pipeline.frechet import frechet_table

    t = frechet_table(classifier_exp, folders[0], gan_exp, heldout=folders[1], num=8, device="cpu")
    assert [r.role for r in t.rows] == ["generator", "floor", "ceiling", "ceiling"]
    assert all(r.images == 8 and r.fd >= 0 and 0 <= r.coverage <= 1 for r in t.rows)
    assert t.classes == ["disc", "square"]
    g, floor, *ceilings = (r.fd for r in t.rows)
    assert t.ratio == pytest.approx((min(ceilings) - g) / (g - floor))
    again = frechet_table(classifier_exp, folders[0], gan_exp, heldout=folders[1], num=8, device="cpu")
    assert [r.fd for r in again.rows] == [r.fd for r in t.rows]  # seeded: the same numbers
    # a folder of images as the generator, and the CLI's table and JSON
    assert main(["-q", "frechet", str(classifier_exp), str(folders[0]), str(folders[1]), "-n", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["role"] for r in out["rows"]] == ["generator", "ceiling"] and out["ratio"] is None
    assert main(["-q", "frechet", str(classifier_exp), str(folders[0]), str(gan_exp), "-n", "8",
                 "--heldout", str(folders[1])]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["source", "role", "images", "frechet", "coverage"]
    assert "untrained generator" in table[3] and table[-1].startswith("ratio (ceiling - generator)")


@pytest.mark.slow
def test_gan_trains_under_ddp(folders, tmp_path):
    """Two gloo processes: the discriminator phase leaves the generator's parameters without
    gradients (DDP must be told), every rank draws its own noise, rank 0 writes."""
    r = train(load_config("gan", None, SMALL + ["train.epochs=1", "data.batch_size=8"]), *folders, tmp_path / "exp",
              nproc=2)
    assert r.steps == 3
    ck = torch.load(tmp_path / "exp" / "checkpoints" / "last.pt", weights_only=True)
    assert len(ck["rng"]) == 2 and set(ck["optimizer"]) == {"d", "g"}
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert (tmp_path / "exp" / "samples" / "epoch-001.png").is_file()
