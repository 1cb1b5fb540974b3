"""``asrkit train las`` / ``asrkit train transformer`` on tiny stores: the loss mix, the
logged stats, dev greedy decoding and diagonality, the per-epoch attention plot, the
teacher-forcing schedule, and a stopped run that resumes to the same weights."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from train_helpers import make_store  # noqa: E402

from asrkit.errors import ConfigError  # noqa: E402
from asrkit.tasks import LASTask, TransformerTask, get_task  # noqa: E402
from asrkit.tasks.las import teacher_forcing_rate  # noqa: E402
from asrkit.train import load_config, parse_overrides, train  # noqa: E402

TINY = {
    "las": ["model.listener_hidden=16", "model.pyramid_layers=1", "model.attention_dim=16", "model.embed_dim=16",
            "model.speller_hidden=32", "model.location_channels=2", "model.location_kernel=3",
            "model.tf_end=0.5", "model.tf_decay_epochs=1"],
    "transformer": ["model.hidden=16", "model.heads=2", "model.ff_mult=2", "model.encoder_layers=1",
                    "model.decoder_layers=1", "model.subsampling=2", "model.conv_channels=4",
                    "optim.scheduler=cosine"],
}
COMMON = ["train.epochs=2", "data.max_frames=200", "data.buckets=2", "train.log_every=1", "optim.lr=1e-2",
          "optim.warmup_steps=2", "train.tensorboard=false", "units.kind=phone", "features.specaugment=false"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    return {"train": make_store(root / "train", n=12, seed=1), "dev": make_store(root / "dev", n=4, seed=2)}


def _events(exp: Path) -> list[dict]:
    return [json.loads(ln) for ln in (exp / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("task", ["las", "transformer"])
def test_a_run_logs_its_losses_metrics_and_attention_plots(task, stores, tmp_path):
    cfg = load_config(task, None, parse_overrides(COMMON + TINY[task]))
    r = train(cfg, stores["train"], stores["dev"], tmp_path / task)
    assert r.epochs == 2 and r.metric == "acc"  # best.pt follows the dev token accuracy
    ev = _events(tmp_path / task)
    steps = [e for e in ev if e["event"] == "train"]
    devs = [e for e in ev if e["event"] == "dev"]
    assert len(devs) == 2
    has_ctc = task == "transformer"
    for e in steps:
        assert ("ctc_loss" in e) == has_ctc and 0 <= e["acc"] <= 100
        if has_ctc:  # the logged loss is the 0.7 / 0.3 mix of the two
            assert e["loss"] == pytest.approx(0.7 * e["att_loss"] + 0.3 * e["ctc_loss"], rel=1e-4, abs=1e-5)
        else:
            assert e["loss"] == pytest.approx(e["att_loss"], rel=1e-5)
    for e in devs:
        assert 0 < e["dev_diagonality"] <= 1 and e["dev_per"] >= 0 and 0 <= e["dev_acc"] <= 100
    plots = sorted(p.name for p in (tmp_path / task / "plots").iterdir())
    assert plots == ["attention-epoch-1.png", "attention-epoch-2.png"]
    assert (tmp_path / task / "plots" / plots[0]).read_bytes()[:4] == b"\x89PNG"


def test_teacher_forcing_falls_linearly_then_stays():
    assert [teacher_forcing_rate(e, 1.0, 0.8, 4) for e in range(6)] == pytest.approx([1.0, 0.95, 0.9, 0.85, 0.8, 0.8])
    assert teacher_forcing_rate(3, 1.0, 0.7, 0) == 0.7
    cfg = load_config("las", None, [("model.tf_end", 0.6), ("model.tf_decay_epochs", 2)])
    t = LASTask(cfg)
    t.start_epoch(1)
    assert t.tf_rate == pytest.approx(0.8)
    t = TransformerTask(load_config("transformer"))
    t.start_epoch(5)
    assert t.tf_rate == 1.0  # the transformer is always teacher-forced


class _Kill(Exception):
    pass


def test_las_resumes_to_the_same_weights(stores, tmp_path):
    """Teacher forcing < 1 and locked dropout draw from the RNG: a run killed in its second
    epoch and resumed ends with the weights of one never stopped."""
    pairs = parse_overrides(COMMON + TINY["las"] + ["train.save_every_steps=1"])
    train(load_config("las", None, pairs), stores["train"], stores["dev"], tmp_path / "whole")
    per_epoch = torch.load(tmp_path / "whole" / "checkpoints" / "epoch-1.pt", weights_only=True)["step"]

    def kill(step, epoch, position):
        if step == per_epoch + 1:
            raise _Kill

    with pytest.raises(_Kill):
        train(load_config("las", None, pairs), stores["train"], stores["dev"], tmp_path / "cut",
              hooks={"after_step": kill})
    train(load_config("las", None, pairs), stores["train"], stores["dev"], tmp_path / "cut", resume=True)
    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_model_of_another_task_is_one_line():
    with pytest.raises(ConfigError, match="the las task trains a 'las' model"):
        from asrkit.train import check_config

        check_config(load_config("las", None, [("model.type", "transformer")]))
    assert get_task("transformer") is TransformerTask


@pytest.mark.parametrize("name", ["las", "transformer"])
def test_best_pt_follows_the_dev_token_accuracy(name):
    # greedy WER would prefer an epoch that says nothing (100%) to one that loops (300%)
    assert get_task(name)(load_config(name)).metric() == ("acc", "max")
    cfg = load_config(name, None, [("train.metric", "cer")])
    assert get_task(name)(cfg).metric() == ("cer", "min")
