"""asrkit.nn part 1: MSELoss, CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

import asrkit.nn as nn
from asrkit.nn.functional import loss as LF

F64 = torch.float64


def test_toy_losses():
    x = torch.tensor([1.0, 3.0], dtype=F64, requires_grad=True)
    loss = LF.mse_loss(x, torch.tensor([0.0, 1.0], dtype=F64))
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert x.grad.tolist() == pytest.approx([1.0, 2.0])      # 2 (x - t) / n
    # two equal logits: CE = log 2, gradient softmax - onehot = [-0.5, 0.5] / N
    z = torch.zeros(1, 2, dtype=F64, requires_grad=True)
    ce = LF.cross_entropy(z, torch.tensor([0]))
    assert ce.item() == pytest.approx(math.log(2))
    ce.backward()
    assert z.grad.tolist() == [[-0.5, 0.5]]
    # label smoothing 0.2 over 2 classes: target [0.9, 0.1] -> still log 2 for equal logits
    assert LF.cross_entropy(z, torch.tensor([1]), label_smoothing=0.2).item() == pytest.approx(math.log(2))
    # ignore_index drops the row, weights re-weigh the mean
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, 1.0]], dtype=F64)
    ce = LF.cross_entropy(logits, torch.tensor([1, -100]))
    assert ce.item() == pytest.approx(-math.log(0.75))
    lp = torch.log(torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=F64))
    nll = LF.nll_loss(lp, torch.tensor([0, 1]), weight=torch.tensor([3.0, 1.0], dtype=F64))
    assert nll.item() == pytest.approx((3 * math.log(4) + math.log(2)) / 4)
    b = LF.binary_cross_entropy_with_logits(torch.zeros(3, dtype=F64), torch.tensor([0.0, 1.0, 0.5], dtype=F64))
    assert b.item() == pytest.approx(math.log(2))


def _check(ours, twin, x, t, atol=1e-5, rtol=1e-4):
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ta = t.clone().requires_grad_() if t.is_floating_point() else t
    tb = t.clone().requires_grad_() if t.is_floating_point() else t
    la, lb = ours(xa, ta), twin(xb, tb)
    torch.testing.assert_close(la, lb, atol=atol, rtol=rtol)
    g = torch.randn_like(lb)
    la.backward(g)
    lb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, atol=atol, rtol=rtol)
    if t.is_floating_point():
        torch.testing.assert_close(ta.grad, tb.grad, atol=atol, rtol=rtol)
    if hasattr(twin, "weight"):
        ours.load_state_dict(twin.state_dict())            # same buffers, same names


RED = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("shape", [(1,), (4, 3), (2, 3, 5)])
def test_mse_parity(reduction, shape):
    _check(nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction),
           torch.randn(shape), torch.randn(shape))


CE_OPTS = [{}, {"label_smoothing": 0.1}, {"ignore_index": 2}, {"weight": True},
           {"weight": True, "ignore_index": 1, "label_smoothing": 0.3}]


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("opts", range(len(CE_OPTS)))
@pytest.mark.parametrize("shape", [(1, 5), (6, 5), (3, 5, 4), (5,)])
def test_cross_entropy_parity(reduction, opts, shape):
    kw = dict(CE_OPTS[opts])
    if kw.get("weight"):
        kw["weight"] = torch.rand(5) + 0.5
    c = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])
    target = torch.randint(0, c, tshape)
    if "ignore_index" in kw:
        target.view(-1)[0] = (kw["ignore_index"] + 1) % c   # one kept element (else the mean is nan)
        if target.numel() > 1:
            target.view(-1)[-1] = kw["ignore_index"]        # and one ignored
    _check(nn.CrossEntropyLoss(reduction=reduction, **kw), torch.nn.CrossEntropyLoss(reduction=reduction, **kw),
           torch.randn(shape) * 2, target)
    # class-probability targets
    kw.pop("ignore_index", None)
    probs = torch.softmax(torch.randn(shape), dim=0 if len(shape) == 1 else 1)
    _check(nn.CrossEntropyLoss(reduction=reduction, **kw), torch.nn.CrossEntropyLoss(reduction=reduction, **kw),
           torch.randn(shape) * 2, probs)


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(1, 4), (7, 4), (2, 4, 3)])
def test_nll_parity(reduction, weighted, shape):
    kw = {"weight": torch.rand(4) + 0.5} if weighted else {}
    target = torch.randint(0, 4, (shape[0],) + tuple(shape[2:]))
    target.view(-1)[0] = 0                                   # one kept element
    if target.numel() > 1:
        target.view(-1)[-1] = 1                              # and one ignored
    x = torch.log_softmax(torch.randn(shape), 1)
    _check(nn.NLLLoss(reduction=reduction, ignore_index=1, **kw),
           torch.nn.NLLLoss(reduction=reduction, ignore_index=1, **kw), x, target)


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("opts", [{}, {"pos_weight": True}, {"weight": True}, {"weight": True, "pos_weight": True}])
@pytest.mark.parametrize("shape", [(1, 3), (5, 3), (2, 4, 3)])
def test_bce_with_logits_parity(reduction, opts, shape):
    kw = {}
    if "pos_weight" in opts:
        kw["pos_weight"] = torch.rand(3) * 3
    if "weight" in opts:
        kw["weight"] = torch.rand(shape[-1])
    _check(nn.BCEWithLogitsLoss(reduction=reduction, **kw), torch.nn.BCEWithLogitsLoss(reduction=reduction, **kw),
           torch.randn(shape) * 4, torch.rand(shape))


def test_legacy_reduction_args():
    assert nn.MSELoss(size_average=False).reduction == "sum"
    assert nn.MSELoss(reduce=False).reduction == "none"
    with pytest.raises(ValueError):
        nn.MSELoss(reduction="avg")


def _r(*shape):
    return torch.randn(*shape, dtype=F64).requires_grad_()


@pytest.mark.parametrize("name,fn,args", [
    ("mse", LF.MSELossFunction, lambda: (_r(3, 4), _r(3, 4), "mean")),
    ("ce_idx", LF.CrossEntropyFunction,
     lambda: (_r(4, 5), torch.tensor([0, 3, 1, 4]), torch.rand(5, dtype=F64) + 0.5, 3, "mean", 0.1)),
    ("ce_prob", LF.CrossEntropyFunction,
     lambda: (_r(3, 4, 2), torch.rand(3, 4, 2, dtype=F64).requires_grad_(), None, -100, "sum", 0.2)),
    ("nll", LF.NLLLossFunction, lambda: (_r(2, 3, 4), torch.randint(0, 3, (2, 4)), None, -100, "none")),
    ("bce", LF.BCEWithLogitsFunction,
     lambda: (_r(3, 4), torch.rand(3, 4, dtype=F64).requires_grad_(), torch.rand(4, dtype=F64),
              torch.rand(4, dtype=F64) * 2, "mean")),
])
def test_gradcheck(name, fn, args):
    assert gradcheck(fn.apply, args(), eps=1e-6, atol=1e-5)


def test_loss_autocast_runs_in_fp32():
    x = torch.randn(4, 5, dtype=torch.bfloat16)
    t = torch.tensor([0, 1, 2, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = nn.CrossEntropyLoss()(x, t)
        b = nn.CrossEntropyLoss(impl="native")(x, t)
    assert a.dtype == b.dtype == torch.float32
    torch.testing.assert_close(a, b)
