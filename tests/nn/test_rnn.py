"""Recurrent layers: hand-computed cells, parity with torch.nn, gradcheck."""
from __future__ import annotations

import math
import zlib

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrkit.nn import set_impl
from asrkit.nn.functional import rnn as R
from asrkit.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _fill(cell: torch.nn.Module, **values) -> None:
    with torch.no_grad():
        for name, v in values.items():
            getattr(cell, name).copy_(torch.tensor(v, dtype=torch.float64).reshape(getattr(cell, name).shape))


# ---------------------------------------------------------------- toy cells by hand


def test_rnn_cell_by_hand():
    cell = RNNCell(1, 1).double()
    _fill(cell, weight_ih=[0.5], weight_hh=[-1.0], bias_ih=[0.1], bias_hh=[0.2])
    x = torch.tensor([[2.0]], dtype=torch.float64)
    h = torch.tensor([[0.5]], dtype=torch.float64)
    out = cell(x, h)
    want = math.tanh(0.5 * 2 - 1 * 0.5 + 0.3)  # tanh(0.8)
    assert out.item() == pytest.approx(want, abs=1e-12)
    out.sum().backward()
    d = 1 - want ** 2
    assert cell.weight_ih.grad.item() == pytest.approx(d * 2.0, abs=1e-12)
    assert cell.weight_hh.grad.item() == pytest.approx(d * 0.5, abs=1e-12)
    assert cell.bias_hh.grad.item() == pytest.approx(d, abs=1e-12)
    relu = RNNCell(1, 1, nonlinearity="relu").double()
    _fill(relu, weight_ih=[0.5], weight_hh=[-1.0], bias_ih=[0.1], bias_hh=[-1.0])
    assert relu(x, h).item() == 0.0  # relu(1 - 0.5 + 0.1 - 1) = relu(-0.4)


def test_gru_cell_by_hand():
    cell = GRUCell(1, 1).double()
    _fill(cell, weight_ih=[0.5, -0.5, 1.0], weight_hh=[0.2, 0.3, -0.4], bias_ih=[0.0, 0.1, 0.2],
          bias_hh=[0.1, 0.0, -0.1])
    x, h = 1.5, -0.7
    r = _sig(0.5 * x + 0.0 + 0.2 * h + 0.1)
    z = _sig(-0.5 * x + 0.1 + 0.3 * h + 0.0)
    n = math.tanh(1.0 * x + 0.2 + r * (-0.4 * h - 0.1))
    want = (1 - z) * n + z * h
    out = cell(torch.tensor([[x]], dtype=torch.float64), torch.tensor([[h]], dtype=torch.float64))
    assert out.item() == pytest.approx(want, abs=1e-12)


def test_lstm_cell_by_hand():
    cell = LSTMCell(1, 1).double()
    _fill(cell, weight_ih=[0.1, 0.2, 0.3, 0.4], weight_hh=[-0.1, 0.5, 0.2, -0.3],
          bias_ih=[0.0, 1.0, 0.0, 0.0], bias_hh=[0.05, 0.0, -0.05, 0.1])
    x, h, c = 2.0, 0.5, -1.0
    i = _sig(0.1 * x - 0.1 * h + 0.05)
    f = _sig(0.2 * x + 0.5 * h + 1.0)
    g = math.tanh(0.3 * x + 0.2 * h - 0.05)
    o = _sig(0.4 * x - 0.3 * h + 0.1)
    c2 = f * c + i * g
    h2 = o * math.tanh(c2)
    hh, cc = cell(torch.tensor([[x]], dtype=torch.float64),
                  (torch.tensor([[h]], dtype=torch.float64), torch.tensor([[c]], dtype=torch.float64)))
    assert hh.item() == pytest.approx(h2, abs=1e-12)
    assert cc.item() == pytest.approx(c2, abs=1e-12)
    # d c2 / d c = f; d h2 / d c = o * (1 - tanh(c2)^2) * f
    c_in = torch.tensor([[c]], dtype=torch.float64, requires_grad=True)
    hh, cc = cell(torch.tensor([[x]], dtype=torch.float64), (torch.tensor([[h]], dtype=torch.float64), c_in))
    (gc,) = torch.autograd.grad(hh.sum() + cc.sum(), c_in)
    assert gc.item() == pytest.approx(f + o * (1 - math.tanh(c2) ** 2) * f, abs=1e-12)


@pytest.mark.parametrize("ours, theirs", [(RNNCell, torch.nn.RNNCell), (GRUCell, torch.nn.GRUCell),
                                          (LSTMCell, torch.nn.LSTMCell)])
@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_cells_match_torch(ours, theirs, impl):
    torch.manual_seed(1)
    a = ours(5, 7, impl=impl)
    torch.manual_seed(1)
    b = theirs(5, 7)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and torch.equal(pa, pb)  # same names, same init for the same seed
    x = torch.randn(3, 5)
    for batched in (True, False):
        xi = x if batched else x[0]
        ha = a(xi)
        hb = b(xi)
        if isinstance(ha, tuple):
            la, lb = ha[0].sum() + (ha[1] ** 2).sum(), hb[0].sum() + (hb[1] ** 2).sum()
            torch.testing.assert_close(ha[1], hb[1], atol=1e-5, rtol=1e-4)
            ha, hb = ha[0], hb[0]
        else:
            la, lb = (ha ** 2).sum(), (hb ** 2).sum()
        torch.testing.assert_close(ha, hb, atol=1e-5, rtol=1e-4)
        ga = torch.autograd.grad(la, list(a.parameters()))
        gb = torch.autograd.grad(lb, list(b.parameters()))
        for u, v in zip(ga, gb):
            torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- sequence layers vs torch

_MODES = {
    "rnn_tanh": (RNN, torch.nn.RNN, {}),
    "rnn_relu": (RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "gru": (GRU, torch.nn.GRU, {}),
    "lstm": (LSTM, torch.nn.LSTM, {}),
    "lstm_proj": (LSTM, torch.nn.LSTM, {"proj_size": 4}),
}


def _pair(mode: str, I: int, H: int, **kw):
    ours, theirs, extra = _MODES[mode]
    a = ours(I, H, **extra, **kw)
    b = theirs(I, H, **extra, **kw)
    b.load_state_dict(a.state_dict())
    return a, b


def _loss(y, h):
    if isinstance(h, tuple):
        return (y ** 2).sum() + (h[0] * 1.7).sum() + (h[1] ** 2).sum()
    return (y ** 2).sum() + (h * 1.7).sum()


def _check(a, b, x, feed, atol=1e-5, rtol=1e-4):
    """Run both modules through ``feed(module, x) -> (y, h)``; compare outputs and all grads."""
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ya, ha = feed(a, xa)
    yb, hb = feed(b, xb)
    torch.testing.assert_close(ya, yb, atol=atol, rtol=rtol)
    for u, v in zip(ha if isinstance(ha, tuple) else (ha,), hb if isinstance(hb, tuple) else (hb,)):
        torch.testing.assert_close(u, v, atol=atol, rtol=rtol)
    ga = torch.autograd.grad(_loss(ya, ha), [xa] + list(a.parameters()))
    gb = torch.autograd.grad(_loss(yb, hb), [xb] + list(b.parameters()))
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=atol, rtol=rtol)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("mode", list(_MODES))
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths", ["full", "lengths", "packed"])
def test_layers_match_torch(mode, layers, bidirectional, batch_first, lengths):
    torch.manual_seed(zlib.crc32(repr((mode, layers, bidirectional, batch_first, lengths)).encode()))
    T, B, I, H = 7, 4, 3, 5
    a, b = _pair(mode, I, H, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    x = torch.randn(B, T, I) if batch_first else torch.randn(T, B, I)
    lens = torch.tensor([5, 7, 1, 3])
    D = 2 if bidirectional else 1
    if lengths == "full":
        _check(a, b, x, lambda m, xx: m(xx))
    elif lengths == "lengths":
        def feed(m, xx):
            if isinstance(m, torch.nn.RNNBase):  # torch: pack, run, pad
                p = pack_padded_sequence(xx, lens, batch_first=batch_first, enforce_sorted=False)
                y, h = m(p)
                return pad_packed_sequence(y, batch_first=batch_first, total_length=T)[0], h
            return m(xx, lengths=lens)
        _check(a, b, x, feed)
    else:
        H_out = 4 if mode == "lstm_proj" else H
        h0 = torch.randn(layers * D, B, H_out)
        hx = (h0, torch.randn(layers * D, B, H)) if mode.startswith("lstm") else h0

        def feed(m, xx):
            p = pack_padded_sequence(xx, lens, batch_first=batch_first, enforce_sorted=False)
            y, h = m(p, hx)
            assert isinstance(y, torch.nn.utils.rnn.PackedSequence)
            return y.data, h
        _check(a, b, x, feed)


def test_padded_outputs_zero_and_reverse_starts_at_last_frame():
    torch.manual_seed(0)
    m = GRU(2, 3, bidirectional=True)
    x = torch.randn(6, 2, 2)
    y, h = m(x, lengths=torch.tensor([6, 3]))
    assert torch.all(y[3:, 1] == 0)
    # the short sequence alone gives the same result: its reverse pass starts at frame 2
    y1, h1 = m(x[:3, 1:2])
    torch.testing.assert_close(y[:3, 1:2], y1)
    torch.testing.assert_close(h[:, 1:2], h1)


def test_long_sequence_bilstm_lengths():
    torch.manual_seed(3)
    a, b = _pair("lstm", 4, 8, num_layers=2, bidirectional=True)
    T = 200
    x = torch.randn(T, 3, 4)
    lens = torch.tensor([200, 150, 77])

    def feed(m, xx):
        p = pack_padded_sequence(xx, lens, enforce_sorted=False)
        y, h = m(p)
        return pad_packed_sequence(y, total_length=T)[0], h
    _check(a, b, x, feed, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", list(_MODES))
def test_native_impl_matches_torch_and_state_dict_roundtrip(mode):
    torch.manual_seed(4)
    a, b = _pair(mode, 3, 5, num_layers=2, bidirectional=True)
    set_impl(a, "native")
    assert a.impl == "native"
    x = torch.randn(6, 2, 3)
    _check(a, b, x, lambda m, xx: m(xx))
    lens = torch.tensor([6, 2])
    ya, ha = a(x, lengths=lens)
    set_impl(a, "scratch")
    ys, hs = a(x, lengths=lens)
    torch.testing.assert_close(ya, ys, atol=1e-5, rtol=1e-4)
    assert list(a.state_dict()) == list(b.state_dict())
    a.load_state_dict(b.state_dict())


def test_init_matches_torch_for_same_seed():
    torch.manual_seed(11)
    a = LSTM(6, 8, num_layers=2, bidirectional=True, proj_size=3)
    torch.manual_seed(11)
    b = torch.nn.LSTM(6, 8, num_layers=2, bidirectional=True, proj_size=3)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and pa.shape == pb.shape and torch.equal(pa, pb)


def test_unbatched_and_dropout():
    torch.manual_seed(5)
    a, b = _pair("lstm", 3, 4, num_layers=2)
    x = torch.randn(5, 3)
    ya, (ha, ca) = a(x)
    yb, (hb, cb) = b(x)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-4)
    assert ha.shape == hb.shape == (2, 4)
    d = LSTM(3, 4, num_layers=2, dropout=0.5)
    d.train()
    y1, _ = d(torch.randn(5, 2, 3))
    y1.sum().backward()  # dropout between layers trains
    assert d.weight_ih_l0.grad is not None
    with pytest.raises(ValueError):
        LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError):
        a(torch.randn(5, 2, 3), lengths=torch.tensor([0, 5]))


# ---------------------------------------------------------------- gradcheck (float64)


def _dd(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("sizes", [None, [3, 3, 2, 1]])
def test_gradcheck_layer_functions(reverse, sizes):
    torch.manual_seed(6)
    T, B, I, H, P = 4, 3, 2, 3, 2
    rev = R.reverse_index(sizes) if sizes is not None and reverse else None
    x = _dd(T, B, I)
    if sizes is not None:  # padded frames carry no gradient; keep them out of the check
        with torch.no_grad():
            mask = torch.arange(B)[None, :] < torch.tensor(sizes)[:, None]
            x.mul_(mask[..., None])
    for nl in ("tanh", "relu"):
        assert torch.autograd.gradcheck(
            lambda *a: R.RNNLayerFunction.apply(*a, nl, sizes, reverse, rev),
            (x, _dd(B, H), _dd(H, I), _dd(H, H), _dd(H), _dd(H)))
    assert torch.autograd.gradcheck(
        lambda *a: R.GRULayerFunction.apply(*a, sizes, reverse, rev),
        (x, _dd(B, H), _dd(3 * H, I), _dd(3 * H, H), _dd(3 * H), _dd(3 * H)))
    assert torch.autograd.gradcheck(
        lambda *a: R.LSTMLayerFunction.apply(*a, None, sizes, reverse, rev),
        (x, _dd(B, H), _dd(B, H), _dd(4 * H, I), _dd(4 * H, H), _dd(4 * H), _dd(4 * H)))
    assert torch.autograd.gradcheck(  # with projection, no bias
        lambda *a: R.LSTMLayerFunction.apply(a[0], a[1], a[2], a[3], a[4], None, None, a[5], sizes, reverse, rev),
        (x, _dd(B, P), _dd(B, H), _dd(4 * H, I), _dd(4 * H, P), _dd(P, H)))


def test_autocast_bf16_cpu():
    m = LSTM(4, 6, bidirectional=True)
    x = torch.randn(5, 2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, (h, c) = m(x, lengths=torch.tensor([5, 3]))
        assert y.dtype == torch.bfloat16  # as torch.nn.LSTM under CPU autocast
    y.float().sum().backward()
    assert m.weight_hh_l0_reverse.grad.dtype == torch.float32
    ref = m(x, lengths=torch.tensor([5, 3]))[0]
    torch.testing.assert_close(y.float(), ref, atol=5e-2, rtol=5e-2)
