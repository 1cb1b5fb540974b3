"""LeakyReLU: scratch and native against torch.nn.LeakyReLU (values and gradients, at 0 too)."""
from __future__ import annotations

import pytest
import torch
from nn1_util import parity
from torch.autograd import gradcheck

import asrkit.nn as nn
from asrkit.nn.functional import activation as A


@pytest.mark.parametrize("impl", ["scratch", "native"])
@pytest.mark.parametrize("slope", [0.01, 0.2, 1.5])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4, 4)])
def test_leaky_relu_parity(impl, slope, shape):
    parity(nn.LeakyReLU(slope, impl=impl), torch.nn.LeakyReLU(slope), lambda: torch.randn(shape) * 3)


@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_leaky_relu_at_zero_and_default_slope(impl):
    x = torch.tensor([-2.0, -0.0, 0.0, 3.0], requires_grad=True)
    t = x.detach().clone().requires_grad_()
    y = nn.LeakyReLU(impl=impl)(x)
    yt = torch.nn.functional.leaky_relu(t)
    assert torch.equal(y, yt)
    y.sum().backward()
    yt.sum().backward()
    assert torch.equal(x.grad, t.grad) and torch.equal(x.grad, torch.tensor([0.01, 0.01, 0.01, 1.0]))


def test_leaky_relu_gradcheck_and_repr():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(A.LeakyReLUFunction.apply, (x, 0.2), eps=1e-6, atol=1e-5)
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2, impl='scratch')"
    x = torch.randn(5)
    ref = torch.nn.functional.leaky_relu(x, 0.1)
    nn.LeakyReLU(0.1, inplace=True, impl="native")(x)  # native honours inplace
    assert torch.equal(x, ref)
    assert not list(nn.LeakyReLU().state_dict())
