"""``optim.scheduler: noam``: linear warmup to optim.lr over optim.warmup_steps,
then optim.lr * sqrt(warmup / step) (ESPnet's WarmupLR; Noam normalized to peak at optim.lr)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from train_helpers import small_overrides

from asrkit.errors import ConfigError
from asrkit.nn.optim import SGD, Noam
from asrkit.nn.optim.schedulers import WarmupLR
from asrkit.train import load_config, train


def _opt(lr):
    return SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _lrs(sched, opt, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])  # the lr of this update
        opt.step()
        sched.step()
    return out


def test_warmup_lr_is_espnet_warmup_lr_and_peaks_at_the_optimizer_lr():
    base, w = 2e-3, 25
    opt = _opt(base)
    got = _lrs(WarmupLR(opt, w), opt, 200)
    # ESPnet's WarmupLR: lr * warmup^0.5 * min(step^-0.5, step * warmup^-1.5), step = 1, 2, ...
    want = [base * w ** 0.5 * min(s ** -0.5, s * w ** -1.5) for s in range(1, 201)]
    assert got == pytest.approx(want, rel=1e-12)
    assert max(got) == pytest.approx(base) and got.index(max(got)) == w - 1  # update number w
    assert got[:w] == sorted(got[:w]) and got[w - 1:] == sorted(got[w - 1:], reverse=True)
    assert got[4 * w - 1] == pytest.approx(base / 2)  # sqrt(w / 4w)
    # torch's LambdaLR with the same factor
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=base)
    ref = torch.optim.lr_scheduler.LambdaLR(opt2, lambda e: min((e + 1) / w, math.sqrt(w / (e + 1))))
    assert _lrs(ref, opt2, 200) == pytest.approx(want, rel=1e-12)


def test_warmup_lr_is_noam_rescaled():
    w, d_model = 40, 256
    a, b = _opt(1e-3), _opt(1e-3 * math.sqrt(w * d_model))
    assert _lrs(WarmupLR(a, w), a, 120) == pytest.approx(_lrs(Noam(b, d_model, w), b, 120), rel=1e-12)


def test_warmup_lr_state_dict_continues_the_schedule():
    a = _opt(1.0)
    sa = WarmupLR(a, 10)
    _lrs(sa, a, 7)
    b = _opt(1.0)
    sb = WarmupLR(b, 10)
    sb.load_state_dict(sa.state_dict())
    sb.step(), sa.step()
    assert b.param_groups[0]["lr"] == a.param_groups[0]["lr"] == pytest.approx(0.9)  # step 9 of a 10-step warmup
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupLR(_opt(1.0), 0)


def test_trainer_noam_logs_the_schedule(stores, tmp_path):
    over = small_overrides("ctc") + ["optim.scheduler=noam", "optim.warmup_steps=3", "optim.lr=1e-2",
                                     "train.epochs=2"]
    exp = tmp_path / "exp"
    train(load_config("ctc", None, over), stores["train"], stores["dev"], exp)
    ev = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    steps = [(e["step"], e["lr"]) for e in ev if e["event"] == "train"]
    assert len(steps) >= 6
    for k, lr in steps:  # logged after update k: the lr of update k + 1
        assert lr == pytest.approx(1e-2 * min((k + 1) / 3, math.sqrt(3 / (k + 1))), abs=1e-6)
    with pytest.raises(ConfigError, match="optim.warmup_steps"):
        load_config("ctc", None, ["optim.scheduler=noam", "optim.warmup_steps=0"])


def test_trainer_noam_warmup_longer_than_the_run_is_kept(stores, tmp_path):
    """The Noam warmup is the schedule's own: a run shorter than it is not squeezed."""
    over = small_overrides("frame") + ["optim.scheduler=noam", "optim.warmup_steps=1000", "train.epochs=1"]
    exp = tmp_path / "exp"
    train(load_config("frame", None, over), stores["train"], stores["dev"], exp)
    ev = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert [e["lr"] for e in ev] == pytest.approx([1e-2 * (e["step"] + 1) / 1000 for e in ev], abs=1e-7)


class _Kill(Exception):
    pass


def test_trainer_noam_resume_mid_epoch_is_bit_exact(stores, tmp_path):
    over = small_overrides("ctc") + ["optim.scheduler=noam", "optim.warmup_steps=3", "train.epochs=2",
                                     "train.save_every_steps=1"]

    def kill(step, epoch, position):
        if step == 6:
            raise _Kill

    train(load_config("ctc", None, over), stores["train"], stores["dev"], tmp_path / "full")
    with pytest.raises(_Kill):
        train(load_config("ctc", None, over), stores["train"], stores["dev"], tmp_path / "killed",
              hooks={"after_step": kill})
    train(load_config("ctc", None, over), stores["train"], stores["dev"], tmp_path / "killed", resume=True)
    a, b = (torch.load(tmp_path / x / "checkpoints" / "last.pt", weights_only=True) for x in ("full", "killed"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["scheduler"]["noam"] == b["scheduler"]["noam"] and a["scheduler"]["lr"] == b["scheduler"]["lr"]
