"""Whole-model parity: a small CNN and an MLP built of asrkit.nn layers give the same
outputs and gradients with impl="scratch" and "native", and load a torch.nn twin's
state_dict (the models are built by one function from either namespace)."""
from __future__ import annotations

import pytest
import torch

import asrkit.nn as nn


def cnn(m):
    return torch.nn.Sequential(
        m.Conv2d(1, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU(), m.MaxPool2d(2),
        m.Conv2d(4, 8, 3, stride=2, padding="valid"), m.GELU(), m.AvgPool2d(2, ceil_mode=True),
        m.Flatten(), m.Dropout(0.25), m.Linear(8 * 2 * 2, 10), m.LogSoftmax(-1))


def cnn1d(m):
    return torch.nn.Sequential(
        m.Conv1d(6, 8, 5, padding="same"), m.BatchNorm1d(8), m.SiLU(), m.MaxPool1d(2),
        m.ConvTranspose1d(8, 4, 4, stride=2, padding=1), m.Tanh(), m.AvgPool1d(3, 2, 1),
        m.Conv1d(4, 3, 1, groups=1), m.Sigmoid())


def mlp(m):
    return torch.nn.Sequential(
        m.Linear(12, 16), m.LayerNorm(16), m.ReLU(), m.Dropout(0.1),
        m.Linear(16, 16), m.BatchNorm1d(16), m.Tanh(), m.Linear(16, 5))


def _grads(model, x, seed=0):
    torch.manual_seed(seed)
    x = x.clone().requires_grad_()
    y = model(x)
    torch.manual_seed(seed + 1)
    y.backward(torch.randn_like(y))
    return y.detach(), x.grad, {k: p.grad.clone() for k, p in model.named_parameters()}


def _compare(a, b, atol=1e-5, rtol=1e-4):
    torch.testing.assert_close(a[0], b[0], atol=atol, rtol=rtol)
    torch.testing.assert_close(a[1], b[1], atol=atol, rtol=rtol)
    assert a[2].keys() == b[2].keys()
    for k in a[2]:
        torch.testing.assert_close(a[2][k], b[2][k], atol=atol, rtol=rtol, msg=k)


@pytest.mark.parametrize("build,shape", [(cnn, (3, 1, 16, 16)), (cnn1d, (2, 6, 20)), (mlp, (7, 12))])
@pytest.mark.parametrize("train", [True, False])
def test_model_scratch_native_and_torch_twin(build, shape, train):
    torch.manual_seed(0)
    twin = build(torch.nn)
    torch.manual_seed(0)
    ours = build(nn)
    # same seed -> the same initial weights as the torch.nn twin
    for k, v in twin.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v), k
    with torch.no_grad():                       # make BN running stats non-trivial
        for mod in twin.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2)
    ours.load_state_dict(twin.state_dict())
    twin.train(train)
    ours.train(train)
    x = torch.randn(shape)
    native = build(nn)
    native.load_state_dict(twin.state_dict())
    nn.set_impl(native, "native")
    native.train(train)
    r_twin, r_scratch, r_native = _grads(twin, x), _grads(ours, x), _grads(native, x)
    _compare(r_scratch, r_twin)
    _compare(r_native, r_twin)
    # running statistics moved the same way; state_dicts interchange both ways
    for k, v in twin.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[k], v, atol=1e-5, rtol=1e-4, msg=k)
    twin.load_state_dict(ours.state_dict())


def test_train_mlp_scratch_then_switch_to_native():
    """The docs/nn.md example: train with scratch layers, evaluate the same weights natively."""
    torch.manual_seed(0)
    x = torch.randn(256, 2)
    y = ((x[:, 0] * x[:, 1]) > 0).long()                 # XOR-like quadrants
    model = torch.nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = nn.optim.Adam(model.parameters(), lr=0.02)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(150):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.3 * first
    with torch.no_grad():
        scratch_out = model(x)
        nn.set_impl(model, "native")
        torch.testing.assert_close(model(x), scratch_out, atol=1e-5, rtol=1e-4)
    assert (model(x).argmax(1) == y).float().mean() > 0.9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("build,shape", [(cnn, (3, 1, 16, 16)), (cnn1d, (2, 6, 20)), (mlp, (7, 12))])
def test_model_cuda_scratch_vs_native(build, shape):
    torch.manual_seed(0)
    ours = build(nn).cuda().eval()          # eval: dropout masks differ between CUDA kernels
    native = build(nn).cuda().eval()
    native.load_state_dict(ours.state_dict())
    nn.set_impl(native, "native")
    x = torch.randn(shape, device="cuda")
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        _compare(_grads(ours, x), _grads(native, x), atol=1e-4, rtol=1e-3)
    finally:  # other tests must see the flags as they were
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
    with torch.autocast("cuda", dtype=torch.float16):
        ya, yb = ours(x), native(x)
    assert ya.dtype == yb.dtype
    torch.testing.assert_close(ya.float(), yb.float(), atol=2e-2, rtol=2e-2)
