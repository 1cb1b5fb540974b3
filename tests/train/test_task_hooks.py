"""The loop runs any registered task: a toy task with two optimizers, batch
stats and epoch hooks trains, logs, checkpoints and resumes bit-exact."""
from __future__ import annotations

import json

import pytest
import torch
from train_helpers import full_and_resumed, small_overrides

from asrkit.errors import ConfigError, TrainingError
from asrkit.tasks import TASKS, get_task
from asrkit.tasks.frame import FrameTask
from asrkit.train import check_config, load_config, train

CALLS: list[tuple] = []


class _Toy(torch.nn.Module):
    """A per-frame linear classifier (B, T, D) -> (B, T, C)."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(cfg["input_dim"], cfg["num_classes"])
        self.drop = torch.nn.Dropout(cfg["dropout"])
        self.config = dict(cfg)

    def forward(self, feats, lengths):
        return self.proj(self.drop(feats)), lengths


class ToyTask(FrameTask):
    """Frame labels (the frame task's units and targets), its own model, two
    optimizers (weights: AdamW, bias: SGD), a stat and both epoch hooks."""

    name = "toy"
    help = "A toy task of the tests."
    model_types = ("toy",)

    @classmethod
    def defaults(cls):
        return {"model": {"type": "toy", "dropout": 0.1}, "units": {"kind": "ali"},
                "optim": {"warmup_steps": 1}}

    def resolve_model_config(self, model_cfg):
        extra = set(model_cfg) - {"type", "dropout", "input_dim", "num_classes"}
        if extra:
            raise ConfigError(f"model.{sorted(extra)[0]}: not a key of the toy model")
        return dict(model_cfg)

    def build_model(self, model_cfg):
        return _Toy(self.resolve_model_config(model_cfg))

    def setup(self, model, device):
        self.crit = torch.nn.CrossEntropyLoss(reduction="sum", ignore_index=-100)

    def optimizers(self, model):
        return {"weights": torch.optim.AdamW([model.proj.weight], lr=self.cfg["optim"]["lr"]),
                "bias": torch.optim.SGD([model.proj.bias], lr=10 * self.cfg["optim"]["lr"])}

    def stat_names(self):
        return ("correct",)

    def loss(self, net, batch, device, autocast):
        with autocast():
            logits, _ = net(batch.feats, batch.lengths)
        flat, tgt = logits.float().reshape(-1, logits.shape[-1]), batch.targets.reshape(-1)
        valid = tgt != -100
        correct = float((flat.argmax(-1)[valid] == tgt[valid]).sum())
        return self.crit(flat, tgt), float(batch.num_frames), {"correct": correct}

    def start_epoch(self, epoch):
        CALLS.append(("start", epoch))

    def end_epoch(self, epoch, model, dev_ds, refs, units, exp, device, *, dist):
        CALLS.append(("end", epoch, model.training, torch.is_grad_enabled(), len(dev_ds)))
        return {"toy": 10.0 + epoch}


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(TASKS, "toy", ToyTask)
    CALLS.clear()
    return ToyTask


def _cfg(*extra):
    common = [o for o in small_overrides("frame") if not o.startswith("model.")]
    return load_config("toy", None, common + ["train.epochs=2", *extra])


def _events(exp, kind):
    return [e for e in map(json.loads, (exp / "metrics.jsonl").read_text().splitlines()) if e["event"] == kind]


def test_toy_task_trains_with_two_optimizers_and_its_hooks(toy, stores, tmp_path):
    exp = tmp_path / "exp"
    plain = load_config("toy")  # the task's defaults over the trainer's
    assert plain["model"] == {"type": "toy", "dropout": 0.1} and plain["optim"]["warmup_steps"] == 1
    assert plain["units"]["kind"] == "ali" and plain["data"]["max_frames"] == 20000
    cfg = _cfg("optim.scheduler=constant")
    check_config(cfg)
    with pytest.raises(ConfigError, match="model.hidden"):
        check_config(_cfg("model.hidden=3"))
    torch.manual_seed(0)  # train.seed: the trainer's initial weights
    fresh = _Toy({"input_dim": 16, "num_classes": 41, "dropout": 0.0}).state_dict()
    r = train(cfg, stores["train"], stores["dev"], exp)
    assert r.metric == "acc" and r.epochs == 2
    # the hooks: each epoch started and ended, the end in eval mode without gradients
    assert CALLS == [("start", 0), ("end", 0, False, False, 6), ("start", 1), ("end", 1, False, False, 6)]
    ck = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    # both optimizers stepped: state for each, both parameters moved
    assert set(ck["optimizer"]) == {"weights", "bias"} and set(ck["scheduler"]) == {"weights", "bias"}
    assert ck["optimizer"]["weights"]["state"] and ck["optimizer"]["bias"]["param_groups"][0]["lr"] > 0
    for k in ("proj.weight", "proj.bias"):
        assert not torch.equal(ck["model"][k], fresh[k])
    # the SGD's lr follows the same schedule (warmup, then constant) from its own base (10x)
    st = ck["scheduler"]
    assert st["bias"]["lr"] == pytest.approx(10 * st["weights"]["lr"])
    train_ev = _events(exp, "train")
    assert all(0 <= e["correct"] <= 1 and e["lr_bias"] == pytest.approx(10 * e["lr"]) for e in train_ev)
    assert train_ev[-1]["correct"] > train_ev[0]["correct"]
    dev = _events(exp, "dev")
    assert [e["dev_toy"] for e in dev] == [10.0, 11.0]
    assert all("train_correct" in e and "dev_acc" in e for e in dev)
    assert "correct" in (exp / "train.log").read_text()
    assert (exp / "config.yaml").read_text().startswith("task: toy\n")


def test_toy_task_resume_mid_epoch_is_bit_exact(toy, stores, tmp_path):
    cfg = _cfg("train.epochs=3", "train.save_every_steps=1", "model.dropout=0.3")
    a, b = full_and_resumed(cfg, stores["train"], stores["dev"], tmp_path, before_resume=CALLS.clear)
    assert CALLS[0] == ("start", 1)  # resumed in the middle of the second epoch
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for name in ("weights", "bias"):
        sa, sb = a["optimizer"][name]["state"], b["optimizer"][name]["state"]
        assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i] if torch.is_tensor(sa[i][k]))
    # the resumed epoch's logged means include the batches before the kill
    full, killed = _events(tmp_path / "full", "dev"), _events(tmp_path / "killed", "dev")
    assert [e["train_correct"] for e in killed] == [e["train_correct"] for e in full]


def test_stats_must_match_stat_names(toy, stores, tmp_path, monkeypatch):
    monkeypatch.setattr(ToyTask, "stat_names", lambda self: ("correct", "other"))
    with pytest.raises(TrainingError, match="stat_names"):
        train(_cfg("train.epochs=1"), stores["train"], stores["dev"], tmp_path / "exp")


def test_unknown_task_is_one_line_listing_the_known_ones(toy):
    known = r"known tasks: frame, ctc, las, transformer, lm, (\w+, )*toy"  # the image tasks between lm and toy
    with pytest.raises(ConfigError, match=rf"unknown task 'nosuch' \({known}\)"):
        load_config("nosuch")
    with pytest.raises(ConfigError, match="unknown task"):
        get_task(None)


def test_the_docs_example_task_trains(stores, tmp_path):
    """The task of docs/train.md (the code block under '## Tasks') registers and trains."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "train.md").read_text()
    code = re.search(r"```python\n(# asrkit/tasks/frame_ls\.py\n.*?)```", doc, re.S).group(1)
    saved = dict(TASKS)
    try:
        exec(compile(code, "docs/train.md", "exec"), {"__name__": "frame_ls_example"})
        assert "frame_ls" in TASKS
        cfg = load_config("frame_ls", None, small_overrides("frame") + ["train.epochs=1"])
        assert cfg["optim"]["scheduler"] == "noam" and cfg["model"]["type"] == "frame_mlp"
        r = train(cfg, stores["train"], stores["dev"], tmp_path / "exp")
        assert r.metric == "acc"
        ev = _events(tmp_path / "exp", "train")
        assert all(0 <= e["frame_acc"] <= 1 for e in ev) and "train_frame_acc" in _events(tmp_path / "exp", "dev")[0]
    finally:
        TASKS.clear()
        TASKS.update(saved)
