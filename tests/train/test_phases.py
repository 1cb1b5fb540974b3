"""Tasks with phases (a GAN's discriminator step, then its generator step): each
phase has its own loss, backward, clip and step; gradients never leak from one
phase into the next; a non-finite phase skips its own step only; resume stays
bit-exact; DDP equals one process."""
from __future__ import annotations

import json

import pytest
import torch
from train_helpers import full_and_resumed, small_overrides

from asrkit.errors import TrainingError
from asrkit.tasks import TASKS
from asrkit.tasks.frame import FrameTask
from asrkit.train import load_config, train

#: (phase, step, proj.weight, temp, every parameter's grad is None) at each loss call
SEEN: list[tuple] = []
#: (step, phase) pairs whose loss the tests turn into NaN
POISON: set[tuple[int, str]] = set()


class _Two(torch.nn.Module):
    """A per-frame linear classifier (B, T, D) -> (B, T, C) with a BatchNorm of the
    features and a temperature the second phase learns."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(cfg["input_dim"])
        self.proj = torch.nn.Linear(cfg["input_dim"], cfg["num_classes"])
        self.temp = torch.nn.Parameter(torch.ones(()))
        self.config = dict(cfg)

    def forward(self, feats, lengths, phase="main"):
        x = self.norm(feats.transpose(1, 2)).transpose(1, 2)
        logits = self.proj(x)
        return (logits if phase == "main" else logits * self.temp), lengths


class TwoPhaseTask(FrameTask):
    """Phase ``main`` (AdamW on the classifier) then ``aux`` (SGD on the temperature,
    whose loss also reaches the classifier: those gradients must not be applied)."""

    name = "twophase"
    help = "A two-phase toy task of the tests."
    model_types = ("twophase",)
    steps = 0

    @classmethod
    def defaults(cls):
        return {"model": {"type": "twophase"}, "units": {"kind": "ali"}, "optim": {"warmup_steps": 0}}

    def resolve_model_config(self, model_cfg):
        return dict(model_cfg)

    def build_model(self, model_cfg):
        return _Two(self.resolve_model_config(model_cfg))

    def setup(self, model, device):
        self.crit = torch.nn.CrossEntropyLoss(reduction="sum", ignore_index=-100)
        self.model = model

    def optimizers(self, model):
        main = [p for n, p in model.named_parameters() if n != "temp"]
        return {"main": torch.optim.AdamW(main, lr=self.cfg["optim"]["lr"]),
                "aux": torch.optim.SGD([model.temp], lr=self.cfg["optim"]["lr"], momentum=0.9)}

    def phases(self):
        return ("main", "aux")

    def stat_names(self):
        return ("correct", "temp")

    def loss(self, net, batch, device, autocast, phase=None):
        m = self.model
        SEEN.append((phase, TwoPhaseTask.steps, m.proj.weight.detach().clone(), float(m.temp.detach()),
                     all(p.grad is None for p in m.parameters())))
        if phase == "aux":
            TwoPhaseTask.steps += 1
        with autocast():
            logits, _ = net(batch.feats, batch.lengths, phase)
        flat, tgt = logits.float().reshape(-1, logits.shape[-1]), batch.targets.reshape(-1)
        loss = self.crit(flat, tgt)
        if (TwoPhaseTask.steps - (phase == "aux"), phase) in POISON:
            loss = loss * float("nan")
        if phase == "main":
            valid = tgt != -100
            return loss, float(batch.num_frames), {"correct": float((flat.argmax(-1)[valid] == tgt[valid]).sum())}
        return loss, float(batch.num_frames), {"temp": float(m.temp.detach()) * float(batch.num_frames)}


@pytest.fixture
def two(monkeypatch):
    monkeypatch.setitem(TASKS, "twophase", TwoPhaseTask)
    SEEN.clear()
    POISON.clear()
    TwoPhaseTask.steps = 0
    return TwoPhaseTask


def _cfg(*extra):
    common = [o for o in small_overrides("frame") if not o.startswith("model.")]
    return load_config("twophase", None, common + ["train.epochs=2", "optim.scheduler=constant", "optim.warmup_steps=0",
                                                 *extra])


def _events(exp, kind):
    return [e for e in map(json.loads, (exp / "metrics.jsonl").read_text().splitlines()) if e["event"] == kind]


def test_phases_step_in_order_without_leaking_gradients(two, stores, tmp_path, monkeypatch):
    clipped = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip(params, *a, **k):
        params = list(params)
        clipped.append(len(params))
        return real_clip(params, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    exp = tmp_path / "exp"
    r = train(_cfg("optim.grad_clip=1.0"), stores["train"], stores["dev"], exp)
    # each phase clips its own optimizer's parameters: main the norm + projection (4), aux the temperature
    assert clipped == [4, 1] * r.steps
    assert r.steps > 2 and [s[0] for s in SEEN] == ["main", "aux"] * r.steps
    assert all(s[4] for s in SEEN)  # every phase starts with no gradient left by the one before
    for (_, _, w_main, t_main, _), (_, _, w_aux, t_aux, _), nxt in zip(SEEN[::2], SEEN[1::2], SEEN[2::2]):
        assert not torch.equal(w_main, w_aux) and t_main == t_aux  # main stepped the classifier only
        assert torch.equal(w_aux, nxt[2]) and nxt[3] != t_aux      # aux stepped the temperature only
    ev = _events(exp, "train")
    assert all(e["loss"] == pytest.approx(e["loss_main"] + e["loss_aux"]) for e in ev)
    assert all(0 <= e["correct"] <= 1 and e["temp"] > 0 for e in ev)
    dev = _events(exp, "dev")
    assert {"train_loss_main", "train_loss_aux", "train_correct", "dev_acc"} <= set(dev[-1])
    ck = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    assert set(ck["optimizer"]) == {"main", "aux"} and ck["optimizer"]["aux"]["param_groups"][0]["params"]


def test_a_non_finite_phase_skips_its_own_step(two, stores, tmp_path):
    POISON.add((1, "aux"))
    exp = tmp_path / "exp"
    train(_cfg("train.epochs=1"), stores["train"], stores["dev"], exp)
    bad = _events(exp, "nonfinite")
    assert len(bad) == 1 and bad[0]["phases"] == ["aux"] and bad[0]["step"] == 1
    steps = {(p, s): (w, t) for p, s, w, t, _ in SEEN}
    assert not torch.equal(steps[("main", 1)][0], steps[("aux", 1)][0])  # main of that batch stepped
    assert steps[("aux", 1)][1] == steps[("main", 2)][1]                  # aux of it did not


def test_a_non_finite_phase_puts_back_the_batchnorm_statistics(two, stores, tmp_path, monkeypatch):
    means = []
    real = TwoPhaseTask.loss

    def loss(self, net, batch, device, autocast, phase=None):
        means.append(self.model.norm.running_mean.clone())
        return real(self, net, batch, device, autocast, phase)

    monkeypatch.setattr(TwoPhaseTask, "loss", loss)
    POISON.add((0, "main"))
    train(_cfg("train.epochs=1"), stores["train"], stores["dev"], tmp_path / "exp")
    # the poisoned main phase's forward changed the running mean; it was put back before aux ran
    assert torch.equal(means[0], means[1]) and not torch.equal(means[1], means[2])


def test_phases_must_name_each_optimizer_once(two, stores, tmp_path, monkeypatch):
    for bad in (("main",), ("main", "aux", "main"), ("main", "other")):
        monkeypatch.setattr(TwoPhaseTask, "phases", lambda self, bad=bad: bad)
        with pytest.raises(TrainingError, match=r"phases .* must name each of its optimizers \['main', 'aux'\] once"):
            train(_cfg("train.epochs=1"), stores["train"], stores["dev"], tmp_path / "exp", overwrite=True)


def test_each_stat_comes_from_one_phase(two, stores, tmp_path, monkeypatch):
    monkeypatch.setattr(TwoPhaseTask, "stat_names", lambda self: ("correct", "temp", "other"))
    with pytest.raises(TrainingError, match="stat_names"):
        train(_cfg("train.epochs=1"), stores["train"], stores["dev"], tmp_path / "exp")


def test_two_phase_resume_mid_epoch_is_bit_exact(two, stores, tmp_path):
    cfg = _cfg("train.epochs=2", "train.save_every_steps=1")
    a, b = full_and_resumed(cfg, stores["train"], stores["dev"], tmp_path)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for name in ("main", "aux"):
        sa, sb = a["optimizer"][name]["state"], b["optimizer"][name]["state"]
        assert sa and all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i] if torch.is_tensor(sa[i][k]))
    full, killed = _events(tmp_path / "full", "dev"), _events(tmp_path / "killed", "dev")
    assert [e["train_loss_aux"] for e in killed] == [e["train_loss_aux"] for e in full]
