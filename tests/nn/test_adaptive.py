"""asrkit.nn.AdaptiveLogSoftmaxWithLoss: torch.nn.AdaptiveLogSoftmaxWithLoss's values and gradients
(float64) from one state_dict, log_prob / predict / forward agreeing, the scratch graph, the kernels
gradchecked."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.autograd import gradcheck

import asrkit.nn as nn
from asrkit.nn.functional import adaptive as A

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch_graph import our_functions  # noqa: E402

F64 = torch.float64
D, C = 16, 23
#: cutoffs, div_value: one cluster, two, three (the last one's tail is 16 // 2^3 = 2 wide)
CONFIGS = [([6], 4.0), ([4, 11], 2.0), ([3, 8, 15], 2.0)]


def _pair(cutoffs, div, head_bias, seed=0):
    """Ours and torch's, torch's loaded from our state_dict."""
    torch.manual_seed(seed)
    ours = nn.AdaptiveLogSoftmaxWithLoss(D, C, cutoffs, div_value=div, head_bias=head_bias).double()
    twin = torch.nn.AdaptiveLogSoftmaxWithLoss(D, C, cutoffs, div_value=div, head_bias=head_bias).double()
    twin.load_state_dict(ours.state_dict())  # the same names and shapes
    return ours, twin


def _targets(cutoffs, n=40, seed=1):
    """``n`` targets, at least two in the shortlist and in every cluster, the rest random."""
    bounds = [0, *cutoffs, C]
    g = torch.Generator().manual_seed(seed)
    fixed = [b for lo, hi in zip(bounds, bounds[1:]) for b in (lo, hi - 1)]
    rest = torch.randint(0, C, (n - len(fixed),), generator=g)
    t = torch.cat([torch.tensor(fixed), rest])
    return t[torch.randperm(n, generator=g)]


def _grads(module, x, run):
    """``run(module, x) -> scalar``; the gradients of x and of every parameter (None kept)."""
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    run(module, x).backward()
    return x.grad, {n: p.grad for n, p in module.named_parameters()}


def _close(a, b, **kw):
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, **kw)


@pytest.mark.parametrize("head_bias", [False, True])
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_values_and_gradients_equal_torch(config, head_bias):
    cutoffs, div = CONFIGS[config]
    ours, twin = _pair(cutoffs, div, head_bias)
    x = torch.randn(40, D, dtype=F64)
    t = _targets(cutoffs)
    w = torch.randn(40, dtype=F64)
    a, b = ours(x, t), twin(x, t)
    assert type(a).__name__ == "ASMOutput" and a._fields == ("output", "loss")
    _close(a.output, b.output)
    _close(a.loss, b.loss)
    _close(ours.log_prob(x), twin.log_prob(x))
    assert torch.equal(ours.predict(x), twin.predict(x))

    def train(m, xx):  # both outputs reach the gradient
        out = m(xx, t)
        return (out.output * w).sum() + 3.0 * out.loss

    def score(m, xx):
        return (m.log_prob(xx) * torch.linspace(-1, 1, C, dtype=F64)).sum()

    for run in (train, score):
        gxa, gpa = _grads(ours, x, run)
        gxb, gpb = _grads(twin, x, run)
        _close(gxa, gxb)
        assert gpa.keys() == gpb.keys()
        names = {"head.weight", *(f"tail.{i}.{j}.weight" for i in range(len(cutoffs)) for j in (0, 1))}
        assert set(gpa) == names | ({"head.bias"} if head_bias else set())
        for key in gpa:
            _close(gpa[key], gpb[key], msg=key)


@pytest.mark.parametrize("head_bias", [False, True])
def test_a_batch_with_an_empty_cluster(head_bias):
    """No target in the middle cluster: the same values; its tail gets zero gradients (torch's get none)."""
    cutoffs, div = CONFIGS[2]
    ours, twin = _pair(cutoffs, div, head_bias, seed=3)
    t = torch.tensor([0, 2, 5, 7, 3, 16, 22, 1, 15, 4])  # clusters 0 and 2; none in 8 .. 14
    x = torch.randn(len(t), D, dtype=F64)

    def run(m, xx):
        out = m(xx, t)
        return out.output.sum() * 0.5 + out.loss

    _close(ours(x, t).output, twin(x, t).output)
    gxa, gpa = _grads(ours, x, run)
    gxb, gpb = _grads(twin, x, run)
    _close(gxa, gxb)
    for key, g in gpa.items():
        if key.startswith("tail.1."):
            assert gpb[key] is None and torch.count_nonzero(g) == 0, key
        else:
            _close(g, gpb[key], msg=key)
    # every target in the shortlist: no tail runs at all
    s = torch.tensor([0, 1, 2, 2, 1])
    _close(ours(x[:5], s).output, twin(x[:5], s).output)


def test_a_tail_runs_only_on_its_rows():
    """NaN weights in a cluster's tail reach nothing when no target is in that cluster."""
    ours, _ = _pair(*CONFIGS[1], head_bias=True)
    with torch.no_grad():
        ours.tail[1][1].weight.fill_(float("nan"))
    x = torch.randn(6, D, dtype=F64, requires_grad=True)
    out = ours(x, torch.tensor([0, 3, 4, 10, 5, 1]))  # shortlist and cluster 0 only
    out.loss.backward()
    assert torch.isfinite(out.output).all() and torch.isfinite(x.grad).all()
    assert torch.isnan(ours(x, torch.tensor([0, 3, 4, 10, 5, 11])).output[-1])  # cluster 1 does use it


@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_log_prob_is_a_distribution_that_forward_and_predict_agree_with(config):
    cutoffs, div = CONFIGS[config]
    ours, _ = _pair(cutoffs, div, head_bias=True, seed=5)
    x = torch.randn(30, D, dtype=F64) * 3
    t = _targets(cutoffs, n=30, seed=2)
    with torch.no_grad():
        lp = ours.log_prob(x)                                      # (30, C)
        assert lp.shape == (30, C)
        _close(lp.exp().sum(1), torch.ones(30, dtype=F64))
        out = ours(x, t)
        _close(out.output, lp.gather(1, t[:, None])[:, 0])
        _close(out.loss, -out.output.mean())
        assert torch.equal(ours.predict(x), lp.argmax(1))
    # one example, unbatched: input (d,), target ()
    one = ours(x[3], t[3])
    assert one.output.shape == () and float(one.output.detach()) == pytest.approx(float(lp[3, t[3]]), abs=1e-12)


def test_native_is_torchs_module_and_the_init_is_torchs():
    cutoffs, div = CONFIGS[1]
    torch.manual_seed(7)
    ours = nn.AdaptiveLogSoftmaxWithLoss(D, C, cutoffs, div_value=div, head_bias=True, impl="native").double()
    torch.manual_seed(7)
    twin = torch.nn.AdaptiveLogSoftmaxWithLoss(D, C, cutoffs, div_value=div, head_bias=True).double()
    for (n, p), (m, q) in zip(ours.state_dict().items(), twin.state_dict().items()):
        assert n == m and torch.equal(p, q), n                     # the same seed, the same weights
    x = torch.randn(20, D, dtype=F64)
    t = _targets(cutoffs, n=20)
    a, b = ours(x, t), twin(x, t)
    assert isinstance(a, tuple) and a._fields == ("output", "loss")
    _close(a.output, b.output)
    _close(ours.log_prob(x), twin.log_prob(x))
    assert torch.equal(ours.predict(x), twin.predict(x))
    assert all(m.impl == "native" for m in ours.modules() if isinstance(m, nn.Module))
    nn.set_impl(ours, "scratch")
    _close(ours(x, t).output, b.output)
    assert all(m.impl == "scratch" for m in ours.modules() if isinstance(m, nn.Module))


def test_scratch_graph_is_our_functions():
    ours, _ = _pair(*CONFIGS[2], head_bias=True)
    x = torch.randn(12, D, dtype=F64, requires_grad=True)
    out = ours(x, _targets(CONFIGS[2][0], n=12))
    assert our_functions(out.output, out.loss) == {"AdaptiveLogSoftmaxFunctionBackward"}
    assert our_functions(ours.log_prob(x)) == {"AdaptiveLogProbFunctionBackward"}
    one = ours(x[0], torch.tensor(5))  # unbatched: the same Function, unsqueezed and squeezed
    assert our_functions(one.output) == {"AdaptiveLogSoftmaxFunctionBackward"}


@pytest.mark.parametrize("head_bias", [False, True])
def test_gradcheck(head_bias):
    cutoffs = (3, 7, 11)  # the module's cutoffs: the last is the class count
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=F64).requires_grad_()

    x, hw, hb = r(9, 5), r(5, 5), r(5) if head_bias else None
    tails = [r(3, 5), r(4, 3), r(2, 5), r(4, 2)]
    t = torch.tensor([0, 4, 8, 2, 10, 5, 1, 9, 3])
    assert gradcheck(lambda *a: A.AdaptiveLogSoftmaxFunction.apply(a[0], t, a[1], hb, cutoffs, *a[2:]),
                     (x, hw, *tails), eps=1e-6, atol=1e-6)
    assert gradcheck(lambda *a: A.AdaptiveLogProbFunction.apply(a[0], a[1], hb, cutoffs, *a[2:]),
                     (x, hw, *tails), eps=1e-6, atol=1e-6)
    if head_bias:  # the bias on its own
        assert gradcheck(lambda b: A.AdaptiveLogSoftmaxFunction.apply(x, t, hw, b, cutoffs, *tails)[1], (hb,))


def test_errors_are_torchs():
    for bad in ([], [5, 3], [0, 4], [4, C], [4, 4]):
        with pytest.raises(ValueError, match="cutoffs"):
            nn.AdaptiveLogSoftmaxWithLoss(D, C, bad)
    ours, _ = _pair([4, 11], 2.0, False)
    x = torch.randn(3, D, dtype=F64)
    with pytest.raises(RuntimeError, match=r"Target values should be in \[0, 22\]"):
        ours(x, torch.tensor([0, 1, 23]))
    with pytest.raises(RuntimeError, match="same size in the batch dimension"):
        ours(x, torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="multi-target not supported"):
        ours(x, torch.zeros(3, 1, dtype=torch.long))


def test_autocast_runs_in_fp32():
    ours = nn.AdaptiveLogSoftmaxWithLoss(D, C, [4, 11])
    x = torch.randn(5, D)
    t = torch.tensor([0, 5, 12, 3, 20])
    ref = ours(x, t).output
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ours(x.bfloat16(), t)
        lp = ours.log_prob(x)
    assert out.output.dtype == out.loss.dtype == lp.dtype == torch.float32
    torch.testing.assert_close(out.output, ref, rtol=2e-2, atol=2e-2)  # only the input was rounded
