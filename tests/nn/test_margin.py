"""L2 normalization and cosine-margin (ArcFace / CosFace) logits: the hand-written
kernels vs torch's autograd (values and gradients), gradcheck, and the modules'
scratch / native swap."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

import asrkit.nn as nn
from asrkit.nn.functional import margin as M

F64 = torch.float64


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=F64, generator=g, requires_grad=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_normalize_matches_torch_and_gradcheck(dim):
    x = _rand(4, 5)
    torch.testing.assert_close(M.normalize(x, dim), torch.nn.functional.normalize(x, dim=dim))
    assert gradcheck(lambda t: M.normalize(t, dim), (x,))
    g = torch.randn(4, 5, dtype=F64)
    (ga,) = torch.autograd.grad(M.normalize(x, dim), x, g)
    (gb,) = torch.autograd.grad(torch.nn.functional.normalize(x, dim=dim), x, g)
    torch.testing.assert_close(ga, gb)


def test_normalize_zero_row_takes_eps_branch():
    x = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    g = torch.ones(2, 3, dtype=F64)
    (ga,) = torch.autograd.grad(M.normalize(x, 1, 1e-6), x, g)
    x2 = x.detach().clone().requires_grad_()
    (gb,) = torch.autograd.grad(torch.nn.functional.normalize(x2, dim=1, eps=1e-6), x2, g)
    torch.testing.assert_close(ga, gb)


def test_toy_arcface_logit():
    # x at angle 0 from class 0, 90 degrees from class 1; margin 0.5 on class 0 -> cos(0.5)
    x = torch.tensor([[2.0, 0.0]], dtype=F64)
    w = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=F64)
    t = torch.tensor([0])
    y = M.cosine_margin_logits(x, w, t, scale=10.0, m_arc=0.5)
    torch.testing.assert_close(y, torch.tensor([[10 * math.cos(0.5), 0.0]], dtype=F64))
    y = M.cosine_margin_logits(x, w, t, scale=10.0, m_cos=0.35)
    torch.testing.assert_close(y, torch.tensor([[10 * 0.65, 0.0]], dtype=F64))
    y = M.cosine_margin_logits(x, w, None, scale=10.0, m_arc=0.5)   # no targets: no margin
    torch.testing.assert_close(y, torch.tensor([[10.0, 0.0]], dtype=F64))


CASES = [  # (m_arc, m_cos, with targets)
    (0.5, 0.0, True), (0.0, 0.35, True), (0.3, 0.2, True), (0.5, 0.0, False), (0.0, 0.0, True),
]


@pytest.mark.parametrize("m_arc,m_cos,targets", CASES)
def test_margin_logits_match_autograd_reference(m_arc, m_cos, targets):
    x, w = _rand(6, 4, seed=1), _rand(5, 4, seed=2)
    # targets incl. an ignored row (-1); with 5 classes in 4 dims some targets sit past pi - m
    t = torch.tensor([0, 1, 4, -1, 2, 3]) if targets else None
    ya = M.cosine_margin_logits(x, w, t, 16.0, m_arc, m_cos)
    yb = M.cosine_margin_logits_reference(x, w, t, 16.0, m_arc, m_cos)
    torch.testing.assert_close(ya, yb)
    g = torch.randn_like(ya)
    ga = torch.autograd.grad(ya, (x, w), g)
    gb = torch.autograd.grad(yb, (x, w), g)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)
    assert gradcheck(lambda a, b: M.cosine_margin_logits(a, b, t, 16.0, m_arc, m_cos), (x, w))


def test_arcface_fallback_branch_is_monotonic():
    # target angles past pi - m use cos - m sin(pi - m): the logit keeps falling with the angle
    w = torch.tensor([[1.0, 0.0]], dtype=F64)
    angles = torch.linspace(2.4, math.pi, 20, dtype=F64)
    x = torch.stack([angles.cos(), angles.sin()], 1)
    y = M.cosine_margin_logits(x, w, torch.zeros(20, dtype=torch.int64), 1.0, 0.5).flatten()
    assert torch.all(y[1:] < y[:-1])


@pytest.mark.parametrize("m_arc,m_cos", [(0.5, 0.0), (0.0, 0.35)])
def test_margin_linear_scratch_native_one_state_dict(m_arc, m_cos):
    torch.manual_seed(0)
    a = nn.MarginLinear(8, 10, 30.0, m_arc, m_cos)
    b = nn.MarginLinear(8, 10, 30.0, m_arc, m_cos, impl="native")
    b.load_state_dict(a.state_dict())
    assert list(a.state_dict()) == ["weight"] and a.weight.shape == (10, 8)
    x = torch.randn(12, 8)
    t = torch.randint(0, 10, (12,))
    ya, yb = a(x, t), b(x, t)
    torch.testing.assert_close(ya, yb, atol=1e-4, rtol=1e-4)
    torch.nn.functional.cross_entropy(ya, t).backward()
    torch.nn.functional.cross_entropy(yb, t).backward()
    torch.testing.assert_close(a.weight.grad, b.weight.grad, atol=1e-5, rtol=1e-4)


def test_normalize_module_parity():
    x = torch.randn(5, 7)
    for impl in ("scratch", "native"):
        torch.testing.assert_close(nn.Normalize(impl=impl)(x), torch.nn.functional.normalize(x))


def test_margin_under_autocast_runs_in_fp32():
    m = nn.MarginLinear(4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(torch.randn(2, 4).bfloat16(), torch.tensor([0, 2]))
    assert y.dtype == torch.float32
