"""asrkit.nn.optim: optimizers match torch.optim for 20 steps; schedulers match torch / hand values."""
from __future__ import annotations

import pytest
import torch

from asrkit.nn import optim


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _run(opt_cls, kw, steps=20, sched=None):
    model = _model()
    opt = opt_cls(model.parameters(), **kw)
    s = sched(opt) if sched else None
    torch.manual_seed(1)
    data = [(torch.randn(4, 5), torch.randn(4, 3)) for _ in range(steps)]
    traj = []
    for x, y in data:
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        if s is not None:
            s.step()
        traj.append([p.detach().clone() for p in model.parameters()])
    return traj, opt


OPT_CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.1, "amsgrad": True}),
]


@pytest.mark.parametrize("case", range(len(OPT_CASES)))
def test_optimizer_matches_torch(case):
    name, kw = OPT_CASES[case]
    ours, _ = _run(getattr(optim, name), kw)
    ref, _ = _run(getattr(torch.optim, name), {**kw, "foreach": False})
    for step, (a, b) in enumerate(zip(ours, ref)):
        for pa, pb in zip(a, b):
            torch.testing.assert_close(pa, pb, atol=1e-6, rtol=0, msg=f"step {step + 1}")


def test_optimizer_state_dict_interchange():
    _, ref = _run(torch.optim.Adam, {"lr": 0.01, "foreach": False}, steps=5)
    model = _model()
    ours = optim.Adam(model.parameters(), lr=0.01)
    ours.load_state_dict(ref.state_dict())
    sd = ours.state_dict()
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    torch.testing.assert_close(sd["state"][0]["exp_avg"], ref.state_dict()["state"][0]["exp_avg"])
    twin = torch.optim.Adam(_model().parameters(), lr=0.01)
    twin.load_state_dict(sd)


def test_hand_sgd_momentum_step():
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    for expected in (1.0 - 0.1 * 2.0, 0.8 - 0.1 * (0.5 * 2.0 + 2.0)):
        p.grad = torch.tensor([2.0])
        opt.step()
        assert p.item() == pytest.approx(expected)


def test_hand_adam_first_step_is_lr_sign():
    p = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    opt = optim.Adam([p], lr=0.1)
    p.grad = torch.tensor([3.0, -0.5])
    opt.step()   # m_hat = g, v_hat = g^2 -> step = lr * sign(g)
    assert p.tolist() == pytest.approx([0.9, -0.9], abs=1e-6)


def _lrs(make, steps=30, metrics=None):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    s = make(opt)
    out = [opt.param_groups[0]["lr"]]
    for i in range(steps):
        opt.step()
        s.step(metrics[i]) if metrics is not None else s.step()
        out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("ours,theirs", [
    (lambda o: optim.StepLR(o, 7, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 7, 0.5)),
    (lambda o: optim.CosineAnnealingLR(o, 10, 0.01),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01)),
])
def test_scheduler_matches_torch(ours, theirs):
    assert _lrs(ours) == pytest.approx(_lrs(theirs), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("kw", [{}, {"mode": "max", "patience": 2, "cooldown": 1, "factor": 0.5},
                                {"threshold_mode": "abs", "threshold": 0.1, "patience": 1, "min_lr": 0.1}])
def test_reduce_on_plateau_matches_torch(kw):
    torch.manual_seed(0)
    # improves for 8 epochs, then wanders on a plateau
    metrics = torch.cat([torch.linspace(1, 0.6, 8), 0.6 + 0.05 * torch.rand(32)]).tolist()
    a = _lrs(lambda o: optim.ReduceLROnPlateau(o, **kw), 40, metrics)
    b = _lrs(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **kw), 40, metrics)
    assert a == pytest.approx(b)
    assert min(a) < 0.5   # it did reduce


def test_warmup_cosine_and_noam_hand_values():
    lrs = _lrs(lambda o: optim.LinearWarmupCosine(o, warmup_steps=4, total_steps=12, eta_min=0.1), 14)
    assert lrs[:5] == pytest.approx([0.0, 0.125, 0.25, 0.375, 0.5])
    assert lrs[8] == pytest.approx(0.1 + 0.4 * 0.5)     # half way through the cosine
    assert lrs[12:] == pytest.approx([0.1, 0.1, 0.1])
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    s = optim.Noam(opt, d_model=256, warmup_steps=4)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(7):
        s.step()
        seen.append(opt.param_groups[0]["lr"])
    expect = [256 ** -0.5 * min(k ** -0.5, k * 4 ** -1.5) for k in range(1, 9)]
    assert seen == pytest.approx(expect)
    assert max(seen) == pytest.approx(256 ** -0.5 * 4 ** -0.5)   # peak at warmup
    sd = s.state_dict()
    assert sd["last_epoch"] == 7 and "optimizer" not in sd
