"""asrkit.nn part 1: Conv1d/2d, ConvTranspose1d/2d, padding modes, pooling, resampling."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import asrkit.nn as nn
from asrkit.nn.functional import conv as C
from asrkit.nn.functional import pool as P
from asrkit.nn.functional import resample as R
from nn1_util import parity

F64 = torch.float64


# ------------------------------------------------------------------ hand toy cases

def test_toy_conv1d():
    # y[t] = sum_k w[k] x[t + k]: x = [1, 2, 3, 4], w = [1, 0, -1] -> [1-3, 2-4] = [-2, -2]
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]], dtype=F64, requires_grad=True)
    w = torch.tensor([[[1.0, 0.0, -1.0]]], dtype=F64, requires_grad=True)
    b = torch.tensor([0.5], dtype=F64, requires_grad=True)
    y = C.conv1d(x, w, b)
    assert y.tolist() == [[[-1.5, -1.5]]]
    y.sum().backward()
    assert x.grad.tolist() == [[[1.0, 1.0, -1.0, -1.0]]]   # each x_t sees the taps that touch it
    assert w.grad.tolist() == [[[3.0, 5.0, 7.0]]]          # sum of x over each tap's positions
    assert b.grad.tolist() == [2.0]
    # stride 2, padding 1: windows [0,1,2], [2,3,4] of [0, 1, 2, 3, 4, 0]
    y = C.conv1d(x, w, None, stride=2, padding=1)
    assert y.tolist() == [[[0.0 - 2.0, 2.0 - 4.0]]]


def test_toy_conv2d_and_transpose():
    x = torch.arange(9, dtype=F64).reshape(1, 1, 3, 3)
    w = torch.ones(1, 1, 2, 2, dtype=F64)
    assert C.conv2d(x, w).tolist() == [[[[8.0, 12.0], [20.0, 24.0]]]]   # 2x2 window sums
    # transposed conv, stride 2: each input pixel stamps the kernel at 2*(i, j)
    xt = torch.tensor([[[[1.0, 2.0]]]], dtype=F64)
    wt = torch.tensor([[[[1.0, 10.0]]]], dtype=F64)
    assert C.conv_transpose2d(xt, wt, stride=(1, 2)).tolist() == [[[[1.0, 10.0, 2.0, 20.0]]]]
    assert C.conv_transpose1d(xt[0], wt[0], stride=1).tolist() == [[[1.0, 12.0, 20.0]]]


def test_toy_pool_and_resample():
    x = torch.tensor([[[1.0, 5.0, 2.0, 4.0, 3.0]]], dtype=F64, requires_grad=True)
    y, idx = P.max_pool1d(x, 2, return_indices=True)
    assert y.tolist() == [[[5.0, 4.0]]] and idx.tolist() == [[[1, 3]]]
    y.sum().backward()
    assert x.grad.tolist() == [[[0.0, 1.0, 0.0, 1.0, 0.0]]]
    assert P.avg_pool1d(x, 2).tolist() == [[[3.0, 3.0]]]
    assert P.avg_pool1d(x, 2, padding=1, count_include_pad=False).tolist() == [[[1.0, 3.5, 3.5]]]
    assert P.avg_pool1d(x, 2, padding=1).tolist() == [[[0.5, 3.5, 3.5]]]
    u = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=F64, requires_grad=True)
    up = R.upsample(u, 2)
    assert up.tolist() == [[[1.0, 0.0, 2.0, 0.0, 3.0]]]
    (up * torch.arange(5.0, dtype=F64)).sum().backward()
    assert u.grad.tolist() == [[[0.0, 2.0, 4.0]]]
    d = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]], dtype=F64, requires_grad=True)
    dn = R.downsample(d, 2)
    assert dn.tolist() == [[[1.0, 3.0]]]
    dn.sum().backward()
    assert d.grad.tolist() == [[[1.0, 0.0, 1.0, 0.0]]]
    img = torch.arange(4.0, dtype=F64).reshape(1, 1, 2, 2)
    assert R.upsample(img, 2, 2).tolist() == [[[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [2.0, 0.0, 3.0]]]]
    assert R.downsample(R.upsample(img, 3, 2), 3, 2).tolist() == img.tolist()


# ------------------------------------------------------------------ parity with torch.nn

CONV_CASES = [
    # (class, torch class, args, kwargs, input shape)
    (nn.Conv1d, torch.nn.Conv1d, (3, 5, 3), {}, (2, 3, 11)),
    (nn.Conv1d, torch.nn.Conv1d, (4, 6, 4), {"stride": 2, "padding": 3, "dilation": 2, "groups": 2}, (1, 4, 13)),
    (nn.Conv1d, torch.nn.Conv1d, (3, 4, 4), {"padding": "same", "bias": False}, (3, 3, 7)),
    (nn.Conv1d, torch.nn.Conv1d, (2, 2, 3), {"padding": 2, "padding_mode": "reflect"}, (2, 2, 6)),
    (nn.Conv1d, torch.nn.Conv1d, (2, 3, 3), {"padding": 1, "padding_mode": "circular"}, (1, 2, 5)),
    (nn.Conv2d, torch.nn.Conv2d, (3, 4, 3), {"padding": 1}, (2, 3, 7, 6)),
    (nn.Conv2d, torch.nn.Conv2d, (4, 6, (3, 2)), {"stride": (2, 1), "padding": (1, 0), "groups": 2,
                                                 "dilation": (1, 2)}, (1, 4, 9, 8)),
    (nn.Conv2d, torch.nn.Conv2d, (2, 3, 2), {"padding": "same", "dilation": 3}, (2, 2, 6, 5)),
    (nn.Conv2d, torch.nn.Conv2d, (2, 3, 3), {"padding": (1, 2), "padding_mode": "replicate"}, (1, 2, 5, 4)),
    (nn.ConvTranspose1d, torch.nn.ConvTranspose1d, (3, 5, 3), {"stride": 2, "padding": 1,
                                                              "output_padding": 1}, (2, 3, 7)),
    (nn.ConvTranspose1d, torch.nn.ConvTranspose1d, (4, 2, 2), {"groups": 2, "dilation": 2}, (1, 4, 5)),
    (nn.ConvTranspose2d, torch.nn.ConvTranspose2d, (3, 4, 3), {"stride": 2, "padding": 1,
                                                              "output_padding": 1}, (2, 3, 4, 5)),
    (nn.ConvTranspose2d, torch.nn.ConvTranspose2d, (4, 6, (2, 3)), {"stride": (1, 3), "groups": 2,
                                                                   "bias": False}, (1, 4, 3, 3)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv_parity(case):
    cls, tcls, args, kw, shape = CONV_CASES[case]
    torch.manual_seed(case)
    twin = tcls(*args, **kw)
    torch.manual_seed(case)
    ours = cls(*args, **kw)
    for k, v in twin.state_dict().items():      # same seed, same init
        assert torch.equal(ours.state_dict()[k], v), k
    parity(ours, twin, lambda: torch.randn(shape))
    parity(cls(*args, **kw, impl="native"), twin, lambda: torch.randn(shape))
    parity(ours, twin, lambda: torch.randn(shape[1:]))      # unbatched input


def test_conv_transpose_output_size():
    ours, twin = nn.ConvTranspose2d(2, 3, 3, stride=2), torch.nn.ConvTranspose2d(2, 3, 3, stride=2)
    ours.load_state_dict(twin.state_dict())
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(ours(x, output_size=[10, 9]), twin(x, output_size=[10, 9]))


POOL_CASES = [
    (nn.MaxPool1d, torch.nn.MaxPool1d, (3,), {}, (2, 3, 10)),
    (nn.MaxPool1d, torch.nn.MaxPool1d, (3, 2, 1), {"dilation": 2, "ceil_mode": True}, (1, 2, 9)),
    (nn.MaxPool2d, torch.nn.MaxPool2d, (2,), {}, (2, 3, 6, 7)),
    (nn.MaxPool2d, torch.nn.MaxPool2d, ((3, 2), (2, 1), (1, 0)), {"ceil_mode": True}, (1, 2, 7, 5)),
    (nn.AvgPool1d, torch.nn.AvgPool1d, (3, 2, 1), {}, (2, 3, 8)),
    (nn.AvgPool1d, torch.nn.AvgPool1d, (4, 3, 2), {"ceil_mode": True, "count_include_pad": False}, (1, 2, 9)),
    (nn.AvgPool2d, torch.nn.AvgPool2d, (2,), {}, (2, 3, 6, 5)),
    (nn.AvgPool2d, torch.nn.AvgPool2d, (3, 2, 1), {"ceil_mode": True}, (1, 2, 6, 7)),
    (nn.AvgPool2d, torch.nn.AvgPool2d, (3, 1, 1), {"divisor_override": 4}, (2, 1, 4, 4)),
]


@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_pool_parity(case):
    cls, tcls, args, kw, shape = POOL_CASES[case]
    parity(cls(*args, **kw), tcls(*args, **kw), lambda: torch.randn(shape))
    parity(cls(*args, **kw, impl="native"), tcls(*args, **kw), lambda: torch.randn(shape))


def test_max_pool_return_indices_parity():
    x = torch.randn(2, 3, 7, 6)
    ya, ia = nn.MaxPool2d(3, 2, 1, return_indices=True)(x)
    yb, ib = torch.nn.MaxPool2d(3, 2, 1, return_indices=True)(x)
    assert torch.equal(ya, yb) and torch.equal(ia, ib)


@pytest.mark.parametrize("cls,shape", [(nn.Upsample1d, (2, 3, 5)), (nn.Upsample2d, (1, 2, 3, 4)),
                                       (nn.Downsample1d, (2, 3, 7)), (nn.Downsample2d, (1, 2, 5, 6))])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_resample_scratch_vs_native(cls, shape, k):
    a, b = cls(k), cls(k, impl="native")
    xa = torch.randn(shape, requires_grad=True)
    xb = xa.detach().clone().requires_grad_()
    ya, yb = a(xa), b(xb)
    torch.testing.assert_close(ya, yb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad)


# ------------------------------------------------------------------ gradcheck (float64)

def _r(*shape):
    return torch.randn(*shape, dtype=F64).requires_grad_()


@pytest.mark.parametrize("name,fn,args", [
    ("conv1d", C.Conv1dFunction, lambda: (_r(2, 4, 7), _r(6, 2, 3), _r(6), 2, (1, 2), 1, 2)),
    ("conv2d", C.Conv2dFunction, lambda: (_r(1, 2, 5, 4), _r(3, 2, 2, 3), _r(3), (1, 2), (1, 0, 1, 1), (2, 1), 1)),
    ("conv_t1d", C.ConvTranspose1dFunction, lambda: (_r(2, 2, 4), _r(2, 3, 3), _r(3), 2, 1, 1, 1, 1)),
    ("conv_t2d", C.ConvTranspose2dFunction,
     lambda: (_r(1, 4, 3, 3), _r(4, 1, 2, 2), None, (2, 1), (0, 1), (1, 0), (1, 2), 2)),
    ("pad_reflect", C.PadFunction, lambda: (_r(1, 2, 4, 5), (2, 1, 3, 1), "reflect")),
    ("pad_circular", C.PadFunction, lambda: (_r(1, 2, 5), (2, 3), "circular")),
    ("max_pool", P.MaxPool2dFunction, lambda: (_r(2, 2, 5, 5), (3, 2), (2, 1), (1, 1), (1, 1), True)),
    ("avg_pool", P.AvgPool2dFunction, lambda: (_r(2, 2, 5, 5), (3, 2), (2, 1), (1, 1), True, False, None)),
    ("upsample", R.UpsampleFunction, lambda: (_r(2, 3, 4), 3, 2)),
    ("downsample", R.DownsampleFunction, lambda: (_r(2, 3, 7), 2, 1)),
])
def test_gradcheck(name, fn, args):
    assert gradcheck(lambda *a: fn.apply(*a)[0] if name == "max_pool" else fn.apply(*a),
                     args(), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("in_dtype", [torch.float32, torch.bfloat16])
def test_conv_autocast_cpu_bf16(in_dtype):
    ours = nn.Conv1d(4, 6, 3, padding=1)
    nat = nn.Conv1d(4, 6, 3, padding=1, impl="native")
    nat.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 9).to(in_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ya, yb = ours(x), nat(x)
    assert ya.dtype == yb.dtype == torch.bfloat16
    torch.testing.assert_close(ya.float(), yb.float(), atol=5e-2, rtol=5e-2)


def test_workspace_first_made_under_inference_mode_still_trains():
    """The reused im2col workspace must not become an inference tensor when a
    model is first run under torch.inference_mode() (decoding) and trained later."""
    from asrkit.nn import Conv2d
    from asrkit.nn.functional._autograd import release_workspace

    release_workspace()
    conv = Conv2d(1, 4, 3, stride=2, padding=1, impl="scratch")
    x = torch.randn(2, 1, 9, 7)
    with torch.inference_mode():
        y_inf = conv(x)
    y = conv(x.clone().requires_grad_())
    y.sum().backward()
    assert torch.allclose(y.detach(), y_inf)
    assert conv.weight.grad is not None


# ------------------------------------------------------------------ the kernels' paths, in float64

def test_tap_runs_group_border_positions_by_their_in_range_taps():
    # 4 outputs of a 3-tap, stride-1 window padded by 1: the first and last hang over the border
    assert C._tap_runs(4, 3, 1, 1, 1, 4) == ((0, 1, 1, 3), (1, 3, 0, 3), (3, 4, 0, 2))
    # stride 2 over 8 inputs: only the first output reads padding
    assert C._tap_runs(8, 3, 2, 1, 1, 4) == ((0, 1, 1, 3), (1, 4, 0, 3))
    # padding wider than the kernel's reach: the outer outputs read padding only
    assert C._tap_runs(2, 1, 1, 2, 1, 6) == ((0, 2, 0, 0), (2, 4, 0, 1), (4, 6, 0, 0))


def _grads_match(x, w, b, conv, ref, **kw):
    ya, yb = conv(x, w, b, **kw), ref(x, w, b, **kw)
    torch.testing.assert_close(ya, yb)
    gy = torch.randn_like(yb)
    args = [t for t in (x, w, b) if t is not None]
    for a, r in zip(torch.autograd.grad(ya, args, gy), torch.autograd.grad(yb, args, gy)):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("cin,cout,hw,k,kw", [
    (32, 24, (5, 4), 3, {"padding": 1}),                                # border classes, stride 1
    (32, 16, (5, 7), (3, 2), {"stride": (2, 3), "padding": (1, 0)}),     # strided: col2im by classes
    (64, 8, (6, 6), 3, {"padding": 3, "dilation": 2}),                  # dilated, wide padding
    (24, 8, (2, 1), (1, 3), {"padding": 2}),                            # positions that see padding only
    (40, 8, (3, 3), 5, {"padding": 2}),                                 # kernel wider than the image
    (32, 12, (4, 4), 2, {"padding": "same"}),                           # asymmetric ("same", even kernel)
    (16, 16, (1, 1), 3, {"padding": 1}),                                # one pixel (no workspace views out)
])
def test_conv_channels_last_border_classes_match_torch(cin, cout, hw, k, kw):
    g = torch.Generator().manual_seed(1)
    ks = (k, k) if isinstance(k, int) else k
    x = torch.randn(3, cin, *hw, dtype=F64, generator=g, requires_grad=True)
    w = torch.randn(cout, cin, *ks, dtype=F64, generator=g, requires_grad=True)
    b = torch.randn(cout, dtype=F64, generator=g, requires_grad=True)
    _grads_match(x, w, b, C.conv2d, torch.nn.functional.conv2d, **kw)
    s, p, d = (C._pair(kw.get(a, v)) for a, v in (("stride", 1), ("padding", 0), ("dilation", 1)))
    if kw.get("padding") != "same":
        wo = C.conv_out_size(hw[1], ks[1], s[1], p[1], p[1], d[1])
        assert C._use_channels_last(cin, 1, wo, ks)
    if kw.get("padding") != "same" and all((hw[i] - 1) * s[i] - 2 * p[i] + d[i] * (ks[i] - 1) >= 0
                                           for i in range(2)):
        # the transposed conv runs the same kernels the other way round
        wt = torch.randn(cin, 6, *ks, dtype=F64, generator=g, requires_grad=True)
        _grads_match(x, wt, None, C.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                     stride=s, padding=kw["padding"], dilation=kw.get("dilation", 1))


@pytest.mark.parametrize("cin,groups,k,kw", [
    (4, 1, 3, {"padding": 1}),                  # stride 1: input gradient as the full correlation
    (4, 1, 3, {"padding": (2, 1), "dilation": (2, 1)}),
    (4, 1, 3, {"stride": 2, "padding": 1}),     # strided: column product and col2im
    (4, 2, 3, {"padding": 1}),                  # groups: column product and col2im
    (64, 1, 1, {}),                             # 1x1, stride 1: the input is its own columns
    (64, 1, 1, {"stride": 2}),                  # 1x1 strided (the ResNet shortcut onto 8x8 maps)
    (4, 2, 1, {"padding": 1}),
])
def test_conv_item_major_path_matches_torch(cin, groups, k, kw):
    # few channels on a large image, or a 1x1 kernel: the item-major columns
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, cin, 12, 11, dtype=F64, generator=g, requires_grad=True)
    w = torch.randn(6, cin // groups, k, k, dtype=F64, generator=g, requires_grad=True)
    b = torch.randn(6, dtype=F64, generator=g, requires_grad=True)
    assert not C._use_channels_last(cin // groups, groups, 11, (k, k))
    _grads_match(x, w, b, C.conv2d, torch.nn.functional.conv2d, groups=groups, **kw)


def test_conv_outputs_and_gradients_survive_the_next_conv():
    """Nothing a conv returns may alias the reused workspace."""
    torch.manual_seed(3)
    for cin, hw in ((32, 1), (32, 4), (3, 16)):
        x = torch.randn(2, cin, hw, hw, requires_grad=True)
        w = torch.randn(8, cin, 3, 3, requires_grad=True)
        y = C.conv2d(x, w, None, 1, 1)
        gx, gw = torch.autograd.grad(y, (x, w), torch.ones_like(y))
        keep = [t.clone() for t in (y, gx, gw)]
        y2 = C.conv2d(torch.randn_like(x, requires_grad=True), w, None, 1, 1)
        torch.autograd.grad(y2, w, torch.randn_like(y2))
        for a, b in zip((y, gx, gw), keep):
            assert torch.equal(a, b)
