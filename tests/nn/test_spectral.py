"""Spectral norm: scratch and native against torch.nn.utils.spectral_norm (the same
init draws, outputs, gradients, power-iteration buffers, state_dict), gradcheck."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import asrkit.nn as nn
from asrkit.nn.functional import spectral as S
from asrkit.nn.spectral import remove_spectral_norm, spectral_norm

LAYERS = [
    (lambda **k: nn.Linear(6, 4, **k), lambda: torch.nn.Linear(6, 4), (3, 6)),
    (lambda **k: nn.Conv2d(3, 5, 3, 2, 1, **k), lambda: torch.nn.Conv2d(3, 5, 3, 2, 1), (2, 3, 8, 8)),
    (lambda **k: nn.ConvTranspose2d(4, 3, 4, 2, 1, bias=False, **k),
     lambda: torch.nn.ConvTranspose2d(4, 3, 4, 2, 1, bias=False), (2, 4, 3, 3)),
]


@pytest.mark.parametrize("impl", ["scratch", "native"])
@pytest.mark.parametrize("k", range(len(LAYERS)))
def test_spectral_norm_parity_with_torch(k, impl):
    make, make_twin, shape = LAYERS[k]
    torch.manual_seed(3)
    twin = torch.nn.utils.spectral_norm(make_twin(), n_power_iterations=2)
    torch.manual_seed(3)
    ours = spectral_norm(make(impl=impl), n_power_iterations=2)
    sa, sb = ours.state_dict(), twin.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[n], sb[n]) for n in sa)  # the same draws
    for step in range(3):  # training: u, v refined before every forward
        x = torch.randn(shape)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), twin(xb)
        torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-4)
        g = torch.randn_like(yb)
        ya.backward(g)
        yb.backward(g)
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-4)
        for (n, pa), (_, pb) in zip(ours.named_parameters(), twin.named_parameters()):
            torch.testing.assert_close(pa.grad, pb.grad, atol=1e-5, rtol=1e-4, msg=n)
        for n, b in ours.named_buffers():
            torch.testing.assert_close(b, dict(twin.named_buffers())[n], atol=1e-6, rtol=1e-5, msg=n)
        with torch.no_grad():
            for pa, pb in zip(ours.parameters(), twin.parameters()):
                pa.sub_(0.1 * pa.grad)
                pb.sub_(0.1 * pb.grad)
        ours.zero_grad()
        twin.zero_grad()
    # eval: the buffers stay, the weight is the same
    ours.eval()
    twin.eval()
    u = ours.weight_u.clone()
    x = torch.randn(shape)
    torch.testing.assert_close(ours(x), twin(x), atol=1e-5, rtol=1e-4)
    assert torch.equal(ours.weight_u, u)
    # and back: the state_dict loads into a fresh torch twin
    fresh = torch.nn.utils.spectral_norm(make_twin(), n_power_iterations=2).eval()
    fresh.load_state_dict(ours.state_dict())
    torch.testing.assert_close(fresh(x), ours(x), atol=1e-6, rtol=1e-5)


def test_sigma_is_the_largest_singular_value_after_iterating():
    torch.manual_seed(0)
    lin = spectral_norm(nn.Linear(8, 5), n_power_iterations=30)
    lin(torch.randn(1, 8))
    assert float(torch.linalg.matrix_norm(lin.weight.detach(), 2)) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("dim", [0, 1])
def test_spectral_norm_gradcheck(dim):
    w = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    u = S.normalize(torch.randn(w.shape[dim], dtype=torch.float64), 1e-12)
    v = S.normalize(torch.randn(w.numel() // w.shape[dim], dtype=torch.float64), 1e-12)
    assert gradcheck(S.SpectralNormFunction.apply, (w, u, v, dim), eps=1e-6, atol=1e-5)


def test_remove_and_double_registration():
    torch.manual_seed(1)
    twin = torch.nn.utils.spectral_norm(torch.nn.Linear(4, 3))
    torch.manual_seed(1)
    ours = spectral_norm(nn.Linear(4, 3))
    with pytest.raises(RuntimeError, match="two spectral_norm hooks"):
        spectral_norm(ours)
    x = torch.randn(2, 4)
    ours(x), twin(x)
    remove_spectral_norm(ours)
    torch.nn.utils.remove_spectral_norm(twin)
    assert sorted(dict(ours.named_parameters())) == ["bias", "weight"]
    torch.testing.assert_close(ours.weight, twin.weight)
    with pytest.raises(ValueError, match="not found"):
        remove_spectral_norm(ours)
