"""asrkit.nn part 1: activations, Linear, Flatten, Dropout, LayerNorm, BatchNorm, Embedding."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

import asrkit.nn as nn
from asrkit.nn.functional import activation as A
from asrkit.nn.functional import dropout as D
from asrkit.nn.functional import embedding as E
from asrkit.nn.functional import linear as L
from asrkit.nn.functional import norm as N
from asrkit.nn.functional import shape as S
from nn1_util import parity

F64 = torch.float64


# ------------------------------------------------------------------ hand toy cases

def _fwd_bwd(fn, x):
    x = torch.tensor(x, dtype=F64, requires_grad=True)
    y = fn(x)
    y.sum().backward()
    return y.detach(), x.grad


def test_toy_activations():
    y, g = _fwd_bwd(A.relu, [-1.0, 0.0, 2.0])
    assert y.tolist() == [0.0, 0.0, 2.0] and g.tolist() == [0.0, 0.0, 1.0]
    y, g = _fwd_bwd(A.sigmoid, [0.0])
    assert y.item() == pytest.approx(0.5) and g.item() == pytest.approx(0.25)
    y, g = _fwd_bwd(A.tanh, [0.0, math.log(2.0)])
    assert y.tolist() == pytest.approx([0.0, 0.6]) and g.tolist() == pytest.approx([1.0, 0.64])
    y, g = _fwd_bwd(A.silu, [1.0])   # 1 * s(1); s + s(1-s)
    s = 1 / (1 + math.exp(-1))
    assert y.item() == pytest.approx(s) and g.item() == pytest.approx(s + s * (1 - s))
    y, g = _fwd_bwd(A.gelu, [1.0])   # Phi(1) = 0.841345, pdf(1) = 0.241971
    assert y.item() == pytest.approx(0.841345, abs=1e-6)
    assert g.item() == pytest.approx(0.841345 + 0.241971, abs=1e-6)
    y, _ = _fwd_bwd(lambda t: A.gelu(t, "tanh"), [1.0])
    assert y.item() == pytest.approx(0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715)))
    y, g = _fwd_bwd(lambda t: A.softmax(t, 0), [0.0, math.log(3.0)])
    assert y.tolist() == pytest.approx([0.25, 0.75]) and g.abs().max() < 1e-12
    x = torch.tensor([0.0, math.log(3.0)], dtype=F64, requires_grad=True)
    A.softmax(x, 0)[1].backward()   # d y1/dx = y1 (e1 - y) = [-0.1875, 0.1875]
    assert x.grad.tolist() == pytest.approx([-0.1875, 0.1875])
    y, g = _fwd_bwd(lambda t: A.log_softmax(t, 0), [0.0, math.log(3.0)])
    assert y.tolist() == pytest.approx([math.log(0.25), math.log(0.75)])
    assert g.tolist() == pytest.approx([1 - 2 * 0.25, 1 - 2 * 0.75])


def test_toy_linear():
    x = torch.tensor([[1.0, 2.0]], dtype=F64, requires_grad=True)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=F64, requires_grad=True)
    b = torch.tensor([0.0, 1.0, 2.0], dtype=F64, requires_grad=True)
    y = L.linear(x, w, b)
    assert y.tolist() == [[1.0, 3.0, 5.0]]
    y.sum().backward()
    assert x.grad.tolist() == [[2.0, 2.0]]          # column sums of W
    assert w.grad.tolist() == [[1.0, 2.0]] * 3      # each row sees x
    assert b.grad.tolist() == [1.0, 1.0, 1.0]


def test_toy_norms_and_embedding():
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    y = N.layer_norm(x, (3,), None, None, 0.0)
    assert y.flatten().tolist() == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    # batch norm over two samples of one channel: mean 2, biased var 1, unbiased var 2
    rm, rv = torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64)
    y = N.batch_norm(torch.tensor([[1.0], [3.0]], dtype=F64), rm, rv, None, None, True, 0.1, 0.0)
    assert y.flatten().tolist() == pytest.approx([-1.0, 1.0])
    assert rm.item() == pytest.approx(0.2) and rv.item() == pytest.approx(0.9 + 0.1 * 2.0)
    w = torch.arange(6, dtype=F64).reshape(3, 2).requires_grad_()
    out = E.embedding(torch.tensor([2, 0, 2]), w, padding_idx=0)
    assert out.tolist() == [[4.0, 5.0], [0.0, 1.0], [4.0, 5.0]]
    out.sum().backward()
    assert w.grad.tolist() == [[0.0, 0.0], [0.0, 0.0], [2.0, 2.0]]


def test_toy_dropout():
    torch.manual_seed(0)
    x = torch.ones(1000, dtype=F64, requires_grad=True)
    y = D.dropout(x, 0.25, True)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert 0.65 < kept.double().mean() < 0.85
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())          # gradient uses the same mask
    assert D.dropout(x, 0.25, False) is x
    assert not D.dropout(x, 1.0, True).any()


# ------------------------------------------------------------------ parity with torch.nn

ELEMENTWISE = [
    (lambda **k: nn.Sigmoid(**k), torch.nn.Sigmoid),
    (lambda **k: nn.Tanh(**k), torch.nn.Tanh),
    (lambda **k: nn.ReLU(**k), torch.nn.ReLU),
    (lambda **k: nn.GELU(**k), torch.nn.GELU),
    (lambda **k: nn.GELU("tanh", **k), lambda: torch.nn.GELU("tanh")),
    (lambda **k: nn.SiLU(**k), torch.nn.SiLU),
    (lambda **k: nn.Softmax(-1, **k), lambda: torch.nn.Softmax(-1)),
    (lambda **k: nn.Softmax(1, **k), lambda: torch.nn.Softmax(1)),
    (lambda **k: nn.LogSoftmax(-1, **k), lambda: torch.nn.LogSoftmax(-1)),
    (lambda **k: nn.LogSoftmax(0, **k), lambda: torch.nn.LogSoftmax(0)),
    (lambda **k: nn.Identity(**k), torch.nn.Identity),
    (lambda **k: nn.Flatten(**k), torch.nn.Flatten),
    (lambda **k: nn.Flatten(0, 1, **k), lambda: torch.nn.Flatten(0, 1)),
]


@pytest.mark.parametrize("shape", [(1, 5), (3, 7, 2), (2, 1, 4, 3)])
@pytest.mark.parametrize("k", range(len(ELEMENTWISE)))
def test_elementwise_parity(k, shape):
    ours, twin = ELEMENTWISE[k][0](), ELEMENTWISE[k][1]()
    parity(ours, twin, lambda: torch.randn(shape) * 3)


@pytest.mark.parametrize("shape,fin,fout,bias", [
    ((1, 5), 5, 3, True), ((4, 7, 13), 13, 9, False), ((2, 3, 1, 6), 6, 1, True), ((11,), 11, 4, True)])
def test_linear_parity(shape, fin, fout, bias):
    for impl in ("scratch", "native"):
        parity(nn.Linear(fin, fout, bias, impl=impl), torch.nn.Linear(fin, fout, bias),
               lambda: torch.randn(shape))


@pytest.mark.parametrize("shape,norm,affine,bias", [
    ((1, 8), (8,), True, True), ((3, 5, 6), (6,), True, False), ((2, 3, 4, 5), (4, 5), True, True),
    ((4, 7), (7,), False, True)])
def test_layer_norm_parity(shape, norm, affine, bias):
    twin = torch.nn.LayerNorm(norm, elementwise_affine=affine, bias=bias)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    parity(nn.LayerNorm(norm, elementwise_affine=affine, bias=bias), twin,
           lambda: torch.randn(shape) * 2 + 1)


@pytest.mark.parametrize("cls,tcls,shape", [
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 6)), (nn.BatchNorm1d, torch.nn.BatchNorm1d, (1, 3, 7)),
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (5, 2, 3)), (nn.BatchNorm2d, torch.nn.BatchNorm2d, (2, 3, 5, 4)),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (1, 4, 3, 3))])
@pytest.mark.parametrize("opts", [{}, {"affine": False}, {"momentum": None}, {"bias": False},
                                  {"track_running_stats": False}, {"eps": 1e-3, "momentum": 0.3}])
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_parity(cls, tcls, shape, opts, train):
    c = shape[1]
    twin = tcls(c, **opts)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        if twin.running_mean is not None:
            twin.running_mean.normal_()
            twin.running_var.uniform_(0.5, 2.0)
    ours = cls(c, **opts)
    # several steps so the running statistics evolve
    for _ in range(3):
        parity(ours, twin, lambda: torch.randn(shape) * 2 + 0.5, train=train)


@pytest.mark.parametrize("opts", [{}, {"padding_idx": 1}, {"padding_idx": -1, "scale_grad_by_freq": True},
                                  {"max_norm": 1.0}])
@pytest.mark.parametrize("shape", [(1,), (3, 4), (2, 1, 5)])
def test_embedding_parity(opts, shape):
    twin = torch.nn.Embedding(7, 5, **opts)
    ours = nn.Embedding(7, 5, **opts)
    parity(ours, twin, lambda: torch.randint(0, 7, shape), input_grad=False)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("train", [True, False])
def test_dropout_parity(p, train):
    # on CPU the scratch mask is drawn exactly as torch's, so the same seed gives the same mask
    parity(nn.Dropout(p), torch.nn.Dropout(p), lambda: torch.randn(3, 17), train=train)


# ------------------------------------------------------------------ gradcheck (float64)

def _r(*shape, pos=False):
    t = torch.randn(*shape, dtype=F64)
    return (t.abs() + 0.5 if pos else t).requires_grad_()


@pytest.mark.parametrize("name,fn,args", [
    ("sigmoid", A.SigmoidFunction, lambda: (_r(3, 4),)),
    ("tanh", A.TanhFunction, lambda: (_r(3, 4),)),
    ("relu", A.ReLUFunction, lambda: (_r(3, 4),)),
    ("gelu", A.GELUFunction, lambda: (_r(3, 4), "none")),
    ("gelu_tanh", A.GELUFunction, lambda: (_r(3, 4), "tanh")),
    ("silu", A.SiLUFunction, lambda: (_r(3, 4),)),
    ("softmax", A.SoftmaxFunction, lambda: (_r(3, 4), 1)),
    ("log_softmax", A.LogSoftmaxFunction, lambda: (_r(2, 3, 4), 0)),
    ("linear", L.LinearFunction, lambda: (_r(2, 3, 4), _r(5, 4), _r(5))),
    ("linear_nobias", L.LinearFunction, lambda: (_r(3, 4), _r(2, 4), None)),
    ("flatten", S.FlattenFunction, lambda: (_r(2, 3, 4), 1, -1)),
    ("dropout", D.DropoutFunction, lambda: (_r(4, 5), 0.0, True)),
    ("layer_norm", N.LayerNormFunction, lambda: (_r(3, 2, 4), _r(2, 4), _r(2, 4), (2, 4), 1e-5)),
    ("layer_norm_plain", N.LayerNormFunction, lambda: (_r(3, 5), None, None, (5,), 1e-5)),
    ("batch_norm_train", N.BatchNormFunction,
     lambda: (_r(4, 3, 2), _r(3), _r(3), None, None, True, 0.1, 1e-5)),
    ("batch_norm_eval", N.BatchNormFunction,
     lambda: (_r(4, 3), _r(3), _r(3), torch.randn(3, dtype=F64), torch.rand(3, dtype=F64) + 0.5,
              False, 0.1, 1e-5)),
    ("embedding", E.EmbeddingFunction,
     # padding_idx / scale_grad_by_freq change the gradient on purpose (not the true one):
     # they are checked against torch in test_embedding_parity
     lambda: (_r(6, 3), torch.tensor([[1, 2, 1], [0, 5, 1]]), None, False)),
])
def test_gradcheck(name, fn, args):
    assert gradcheck(fn.apply, args(), eps=1e-6, atol=1e-5)


def test_dropout_gradcheck_with_mask():
    # fixed seed inside the function so every gradcheck evaluation draws the same mask
    def f(x):
        torch.manual_seed(3)
        return D.DropoutFunction.apply(x, 0.4, True)
    assert gradcheck(f, (_r(5, 6),), eps=1e-6, atol=1e-5)


# ------------------------------------------------------------------ init, switch, autocast

@pytest.mark.parametrize("make", [
    lambda m: m.Linear(7, 5), lambda m: m.Linear(3, 2, bias=False), lambda m: m.LayerNorm((2, 3)),
    lambda m: m.BatchNorm1d(4), lambda m: m.Embedding(9, 4, padding_idx=2)])
def test_same_seed_same_init_as_torch(make):
    torch.manual_seed(11)
    ours = make(nn)
    torch.manual_seed(11)
    twin = make(torch.nn)
    sa, sb = ours.state_dict(), twin.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype
        assert torch.equal(sa[k], sb[k]), k


def test_init_helpers_match_torch():
    for ours, theirs, kw in [(nn.init.kaiming_uniform_, torch.nn.init.kaiming_uniform_, {"a": 0.1}),
                             (nn.init.kaiming_normal_, torch.nn.init.kaiming_normal_, {"mode": "fan_out"}),
                             (nn.init.xavier_uniform_, torch.nn.init.xavier_uniform_, {"gain": 2.0}),
                             (nn.init.xavier_normal_, torch.nn.init.xavier_normal_, {})]:
        a, b = torch.empty(6, 4, 3), torch.empty(6, 4, 3)
        torch.manual_seed(5)
        ours(a, **kw)
        torch.manual_seed(5)
        theirs(b, **kw)
        assert torch.equal(a, b)
    assert nn.init.calculate_gain("leaky_relu", 0.2) == torch.nn.init.calculate_gain("leaky_relu", 0.2)


def test_set_impl_and_dtype_float64():
    m = torch.nn.Sequential(nn.Linear(4, 6, dtype=F64), nn.BatchNorm1d(6, dtype=F64), nn.ReLU(),
                            nn.Linear(6, 2, dtype=F64))
    x = torch.randn(5, 4, dtype=F64)
    y1 = m(x)
    assert y1.dtype == F64
    nn.set_impl(m, "native")
    assert all(l.impl == "native" for l in m if isinstance(l, nn.Module))
    m.eval()
    y2 = m(x)
    nn.set_impl(m, "scratch")
    torch.testing.assert_close(m(x), y2)
    assert y1.shape == y2.shape
    with pytest.raises(ValueError):
        nn.set_impl(m, "fast")


@pytest.mark.parametrize("make,shape", [
    (lambda i: nn.Linear(8, 4, impl=i), (3, 8)), (lambda i: nn.LayerNorm(8, impl=i), (3, 8)),
    (lambda i: nn.Softmax(-1, impl=i), (3, 8)), (lambda i: nn.GELU(impl=i), (3, 8)),
    (lambda i: nn.BatchNorm1d(8, impl=i), (3, 8))])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.bfloat16])
def test_autocast_cpu_bf16(make, shape, in_dtype):
    torch.manual_seed(0)
    ours, nat = make("scratch"), make("native")
    nat.load_state_dict(ours.state_dict())
    x = torch.randn(shape).to(in_dtype)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ya, yb = ours(xa), nat(xb)
    assert ya.dtype == yb.dtype
    torch.testing.assert_close(ya.float(), yb.float(), atol=3e-2, rtol=3e-2)
    ya.float().sum().backward()
    yb.float().sum().backward()
    assert xa.grad.dtype == xb.grad.dtype == in_dtype
    torch.testing.assert_close(xa.grad.float(), xb.grad.float(), atol=5e-2, rtol=5e-2)
    for pa, pb in zip(ours.parameters(), nat.parameters()):
        assert pa.grad.dtype == pb.grad.dtype
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-1, rtol=5e-2)
