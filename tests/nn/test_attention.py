"""Scaled dot-product attention, MultiheadAttention, positional encodings."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as TF

from asrkit.nn import set_impl
from asrkit.nn.attention import (
    LearnedPositionalEncoding,
    MultiheadAttention,
    RelPositionMultiheadAttention,
    SinusoidalPositionalEncoding,
    sinusoidal_table,
)
from asrkit.nn.functional.attention import AttentionFunction, scaled_dot_product_attention


def test_attention_by_hand():
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    out = scaled_dot_product_attention(q, k, v, scale=1.0)
    w0 = math.e / (math.e + 1)  # softmax([1, 0])
    torch.testing.assert_close(out, torch.tensor([[w0 * 1 + (1 - w0) * 3, w0 * 2 + (1 - w0) * 4]],
                                                 dtype=torch.float64))
    masked = scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor([[False, True]]), scale=1.0)
    torch.testing.assert_close(masked, v[1:])  # bool True = allowed (torch's SDPA convention)


@pytest.mark.parametrize("mask", ["none", "bool", "float", "causal"])
def test_sdpa_matches_torch(mask):
    torch.manual_seed(0)
    q = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    k = torch.randn(2, 3, 6, 4, dtype=torch.float64)
    v = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    kw = {}
    if mask == "bool":
        m = torch.rand(5, 6) > 0.3
        m[:, 0] = True
        kw["attn_mask"] = m
    elif mask == "float":
        kw["attn_mask"] = torch.randn(2, 1, 5, 6, dtype=torch.float64)
    elif mask == "causal":
        kw["is_causal"] = True
        k, v = k[:, :, :5], v[:, :, :5]
    args_a = [t.clone().requires_grad_() for t in (q, k, v)]
    args_b = [t.clone().requires_grad_() for t in (q, k, v)]
    a = scaled_dot_product_attention(*args_a, **kw)
    b = TF.scaled_dot_product_attention(*args_b, **kw)
    torch.testing.assert_close(a, b)
    g = torch.randn_like(a)
    for u, w in zip(torch.autograd.grad(a, args_a, g), torch.autograd.grad(b, args_b, g)):
        torch.testing.assert_close(u, w)


def test_gradcheck_attention_function():
    torch.manual_seed(1)
    q = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.randn(1, 3, 5, dtype=torch.float64, requires_grad=True)  # broadcast, differentiable
    assert torch.autograd.gradcheck(lambda *a: AttentionFunction.apply(*a, 0.0, 0.7), (q, k, v, mask))
    assert torch.autograd.gradcheck(lambda *a: AttentionFunction.apply(*a, None, 0.0, 0.5)[1], (q, k, v))


def test_attention_dropout_trains():
    torch.manual_seed(2)
    q = torch.randn(2, 4, 8, requires_grad=True)
    out, w = AttentionFunction.apply(q, q, q, None, 0.5, 0.3)
    assert ((w == 0).float().mean() > 0.2)  # some weights dropped, the rest scaled by 2
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


_CONFIGS = [
    {},
    {"kdim": 5, "vdim": 3},
    {"add_bias_kv": True},
    {"add_zero_attn": True},
    {"bias": False},
    {"batch_first": True},
]


@pytest.mark.parametrize("kw", _CONFIGS, ids=lambda d: ",".join(d) or "default")
@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_mha_matches_torch(kw, impl):
    torch.manual_seed(1)
    a = MultiheadAttention(8, 2, impl=impl, **kw)
    torch.manual_seed(1)
    b = torch.nn.MultiheadAttention(8, 2, **kw)
    assert list(a.state_dict()) == list(b.state_dict()) or set(a.state_dict()) == set(b.state_dict())
    for name, p in b.state_dict().items():  # same names and same init for the same seed
        assert torch.equal(a.state_dict()[name], p), name
    bf = kw.get("batch_first", False)
    L, S, N = 5, 6, 3

    def mk(n, d):
        return torch.randn((N, n, d) if bf else (n, N, d))

    q, k, v = mk(L, 8), mk(S, kw.get("kdim", 8)), mk(S, kw.get("vdim", 8))
    kpm = torch.zeros(N, S, dtype=torch.bool)
    kpm[0, 4:] = True  # True = masked
    am = torch.zeros(L, S, dtype=torch.bool)
    am[0, 1] = True
    for avg in (True, False):
        ta = [t.clone().requires_grad_() for t in (q, k, v)]
        tb = [t.clone().requires_grad_() for t in (q, k, v)]
        oa, wa = a(*ta, key_padding_mask=kpm, attn_mask=am, average_attn_weights=avg)
        ob, wb = b(*tb, key_padding_mask=kpm, attn_mask=am, average_attn_weights=avg)
        torch.testing.assert_close(oa, ob, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(wa, wb, atol=1e-5, rtol=1e-4)
        assert wa.shape == ((N, L, S + kw.get("add_bias_kv", 0) + kw.get("add_zero_attn", 0)) if avg else
                            (N, 2, L, S + kw.get("add_bias_kv", 0) + kw.get("add_zero_attn", 0)))
        ga = torch.autograd.grad(oa.sum() + (wa ** 2).sum(), ta + list(a.parameters()))
        gb = torch.autograd.grad(ob.sum() + (wb ** 2).sum(), tb + list(b.parameters()))
        for u, w in zip(ga, gb):
            torch.testing.assert_close(u, w, atol=1e-5, rtol=1e-4)


def test_mha_masks_float_3d_unbatched_and_causal():
    torch.manual_seed(3)
    a = MultiheadAttention(8, 4)
    b = torch.nn.MultiheadAttention(8, 4)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 2, 8)
    am3 = torch.randn(2 * 4, 5, 5)
    kpm = torch.zeros(2, 5)
    kpm[1, 3:] = float("-inf")
    oa, wa = a(x, x, x, attn_mask=am3, key_padding_mask=kpm)
    ob, wb = b(x, x, x, attn_mask=am3, key_padding_mask=kpm)
    torch.testing.assert_close(oa, ob, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(wa, wb, atol=1e-5, rtol=1e-4)
    oa, wa = a(x[:, 0], x[:, 0], x[:, 0])  # unbatched (L, E)
    ob, wb = b(x[:, 0], x[:, 0], x[:, 0])
    torch.testing.assert_close(oa, ob, atol=1e-5, rtol=1e-4)
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    oa, wa = a(x, x, x, attn_mask=causal, need_weights=False, is_causal=True)
    ob, _ = b(x, x, x, attn_mask=causal, need_weights=False, is_causal=True)
    assert wa is None
    torch.testing.assert_close(oa, ob, atol=1e-5, rtol=1e-4)
    oc, _ = a(x, x, x, is_causal=True)  # the hint alone builds the causal mask
    torch.testing.assert_close(oc, ob, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError):
        a(x, x, x, attn_mask=torch.zeros(4, 4, dtype=torch.bool))


def test_mha_dropout_and_set_impl():
    torch.manual_seed(4)
    a = MultiheadAttention(8, 2, dropout=0.3, batch_first=True)
    x = torch.randn(2, 5, 8, requires_grad=True)
    a.train()
    o, _ = a(x, x, x)
    o.sum().backward()
    a.eval()
    o1, w1 = a(x, x, x)
    set_impl(a, "native")
    assert a.out_proj.impl == "native"
    o2, w2 = a(x, x, x)
    torch.testing.assert_close(o1, o2, atol=1e-5, rtol=1e-4)


def test_positional_encodings():
    pe = sinusoidal_table(4, 6)
    assert pe[1, 0].item() == pytest.approx(math.sin(1.0))
    assert pe[1, 1].item() == pytest.approx(math.cos(1.0))
    assert pe[3, 2].item() == pytest.approx(math.sin(3.0 / 10000 ** (2 / 6)), rel=1e-6)
    assert pe[0, 5].item() == pytest.approx(1.0)
    enc = SinusoidalPositionalEncoding(6, max_len=10)
    x = torch.zeros(2, 4, 6)
    torch.testing.assert_close(enc(x), pe.expand(2, 4, 6))
    assert len(enc.state_dict()) == 0
    tm = SinusoidalPositionalEncoding(6, max_len=10, batch_first=False, xscale=True)
    torch.testing.assert_close(tm(torch.ones(4, 2, 6)), math.sqrt(6) + pe.unsqueeze(1).expand(4, 2, 6))
    learned = LearnedPositionalEncoding(10, 6)
    torch.testing.assert_close(learned(x), learned.weight[:4].expand(2, 4, 6))
    with pytest.raises(ValueError):
        enc(torch.zeros(1, 11, 6))


def _rel_reference(m: RelPositionMultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """Loop over (i, j) pairs: score = ((q_i + u) k_j + (q_i + v) W_pos r_{i-j}) / sqrt(Dh)."""
    B, T, E = x.shape
    H, Dh = m.num_heads, m.head_dim
    q = TF.linear(x, m.linear_q.weight, m.linear_q.bias).view(B, T, H, Dh)
    k = TF.linear(x, m.linear_k.weight, m.linear_k.bias).view(B, T, H, Dh)
    v = TF.linear(x, m.linear_v.weight, m.linear_v.bias).view(B, T, H, Dh)
    scores = torch.empty(B, H, T, T, dtype=x.dtype)
    for i in range(T):
        for j in range(T):
            r = sinusoidal_table(1, E, dtype=x.dtype, start=i - j)[0]  # relative distance i - j
            p = TF.linear(r, m.linear_pos.weight).view(H, Dh)
            ac = ((q[:, i] + m.pos_bias_u) * k[:, j]).sum(-1)
            bd = ((q[:, i] + m.pos_bias_v) * p).sum(-1)
            scores[:, :, i, j] = (ac + bd) / math.sqrt(Dh)
    w = scores.softmax(-1)
    out = torch.einsum("bhij,bjhd->bihd", w, v).reshape(B, T, E)
    return TF.linear(out, m.linear_out.weight, m.linear_out.bias)


def test_rel_position_attention_reference_and_native():
    torch.manual_seed(5)
    m = RelPositionMultiheadAttention(8, 2).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    ref = _rel_reference(m, x)
    out, _ = m(x)
    torch.testing.assert_close(out, ref)
    xa = x.clone().requires_grad_()
    out, _ = m(xa)
    ga = torch.autograd.grad(out.pow(2).sum(), [xa] + list(m.parameters()))
    set_impl(m, "native")
    xb = x.clone().requires_grad_()
    out_n, _ = m(xb)
    torch.testing.assert_close(out_n, ref)
    gb = torch.autograd.grad(out_n.pow(2).sum(), [xb] + list(m.parameters()))
    for u, w in zip(ga, gb):
        torch.testing.assert_close(u, w)
