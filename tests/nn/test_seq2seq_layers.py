"""The pieces of the attention models: locked dropout, masked softmax, bmm, the LAS attentions,
and the decoder layer's kept cross-attention.

Kernels are gradchecked in float64 and compared with torch; modules give the same values and
gradients with ``impl="scratch"`` and ``"native"`` from the same weights.
"""
from __future__ import annotations

import copy

import pytest
import torch

import asrkit.nn as nn
from asrkit.nn.functional import activation as A
from asrkit.nn.functional import dropout as D
from asrkit.nn.functional import linear as L

F64 = {"dtype": torch.float64}


def _rand(*shape, grad=True, seed=0):
    g = torch.Generator().manual_seed(seed + 7 * sum(shape))
    return torch.randn(*shape, generator=g, **F64).requires_grad_(grad)


# ------------------------------------------------------------------ locked dropout


@pytest.mark.parametrize("batch_first", [True, False])
def test_locked_dropout_one_mask_per_sequence(batch_first):
    x = torch.ones(4, 9, 6)  # (B, T, D) or (T, B, D): the mask must repeat along time
    torch.manual_seed(0)
    y = D.locked_dropout(x, 0.5, True, batch_first)
    kept = y != 0
    t_axis = 1 if batch_first else 0
    assert torch.equal(kept, kept.select(t_axis, 0).unsqueeze(t_axis).expand_as(kept))
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert 0 < int(kept.sum()) < kept.numel()
    # sequences (and features) get different masks
    m = kept.select(t_axis, 0)  # (B, D) or (T=4 -> B rows when time-first)
    assert not all(torch.equal(m[0], m[b]) for b in range(1, m.shape[0]))


def test_locked_dropout_gradcheck_and_identity_cases():
    x = _rand(3, 5, 4)

    def f(t):
        torch.manual_seed(3)  # the same mask on every call
        return D.locked_dropout(t, 0.4, True)

    assert torch.autograd.gradcheck(f, (x,))
    assert D.locked_dropout(x, 0.4, training=False) is x
    assert D.locked_dropout(x, 0.0, training=True) is x
    assert not D.locked_dropout(x, 1.0, True).any()
    with pytest.raises(ValueError, match="between 0 and 1"):
        D.locked_dropout(x, 1.5)
    with pytest.raises(ValueError, match="locked dropout"):
        D.locked_dropout(_rand(3, 4), 0.5)


def test_locked_dropout_module_scratch_and_native_agree():
    x = _rand(3, 7, 5)
    g = _rand(3, 7, 5, grad=False, seed=1)
    outs = []
    for impl in ("scratch", "native"):
        m = nn.LockedDropout(0.3, impl=impl).train()
        torch.manual_seed(11)
        y = m(x)
        outs.append((y, torch.autograd.grad(y, x, g)[0]))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])
    m = nn.LockedDropout(0.3).eval()
    assert m(x) is x
    assert "p=0.3" in repr(m)


# ------------------------------------------------------------------ masked softmax and bmm


def _mask():
    return torch.tensor([[False, False, True, True, True], [False] * 5, [True, False, True, False, False]])


def test_masked_softmax_gradcheck_and_torch():
    x, mask = _rand(3, 5), _mask()
    assert torch.autograd.gradcheck(lambda t: A.masked_softmax(t, mask, -1), (x,))
    ours = A.masked_softmax(x, mask, -1)
    ref = torch.softmax(x.masked_fill(mask, float("-inf")), -1)
    torch.testing.assert_close(ours, ref)
    g = _rand(3, 5, grad=False, seed=2)
    torch.testing.assert_close(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0])
    assert not ours[mask].any()
    # broadcast mask, other dim, a fully masked row gives zeros (torch would give NaN)
    x3 = _rand(2, 3, 4, seed=5)
    m3 = torch.tensor([[[False], [True], [False]]]).expand(2, 3, 4).clone()
    m3[1, :, 2] = True
    y = A.masked_softmax(x3, m3, 1)
    torch.testing.assert_close(y.sum(1), torch.ones(2, 4, **F64).masked_fill(m3.all(1), 0.0))
    assert not y[1, :, 2].any()
    assert torch.autograd.gradcheck(lambda t: A.masked_softmax(t, m3, 1), (x3,))
    with pytest.raises(TypeError, match="bool"):
        A.masked_softmax(x, mask.long(), -1)


def test_masked_softmax_module_switches():
    x, mask = _rand(3, 5), _mask()
    s, n = nn.MaskedSoftmax(-1), nn.MaskedSoftmax(-1, impl="native")
    torch.testing.assert_close(s(x, mask), n(x, mask))
    torch.testing.assert_close(s(x), torch.softmax(x, -1))
    torch.testing.assert_close(n(x), torch.softmax(x, -1))


def test_bmm_gradcheck_and_torch():
    a, b = _rand(2, 3, 4), _rand(2, 4, 5, seed=1)
    assert torch.autograd.gradcheck(L.bmm, (a, b))
    torch.testing.assert_close(L.bmm(a, b), torch.bmm(a, b))
    with pytest.raises(ValueError, match="bmm"):
        L.bmm(a, _rand(2, 3, 5))


# ------------------------------------------------------------------ LAS attentions

Q, M, ATT = 6, 5, 4
LENGTHS = torch.tensor([7, 3, 5])


def _attn(kind: str, impl: str = "scratch"):
    torch.manual_seed(0)
    if kind == "location":
        return nn.LocationAwareAttention(Q, M, ATT, channels=3, kernel_size=5, impl=impl).double()
    return nn.DotProductAttention(Q, M, ATT, scaled=kind == "scaled_dot", impl=impl).double()


def _inputs():
    B, S = len(LENGTHS), int(LENGTHS.max())
    pad = torch.arange(S)[None, :] >= LENGTHS[:, None]  # (B, S)
    memory = _rand(B, S, M, seed=1).detach().masked_fill(pad[..., None], 0.0).requires_grad_()
    query = _rand(B, Q, seed=2)
    prev = torch.softmax(_rand(B, S, grad=False, seed=3).masked_fill(pad, float("-inf")), -1)
    return query, memory, pad, prev


def _reference(m, query, memory, pad, prev):
    """The formula in plain torch ops."""
    if isinstance(m, nn.LocationAwareAttention):
        f = torch.nn.functional.conv1d(prev.unsqueeze(1), m.location_conv.weight, padding=m.kernel_size // 2)
        e = torch.tanh((query @ m.query_proj.weight.T)[:, None, :] + memory @ m.key_proj.weight.T + m.key_proj.bias
                       + f.transpose(1, 2) @ m.location_proj.weight.T) @ m.score.weight.T
        e = e.squeeze(2)
    else:
        q = query @ m.query_proj.weight.T + m.query_proj.bias
        k = memory @ m.key_proj.weight.T + m.key_proj.bias
        e = (k * q[:, None, :]).sum(-1) * m.scale
    w = torch.softmax(e.masked_fill(pad, float("-inf")), -1)
    return (w[..., None] * memory).sum(1), w


@pytest.mark.parametrize("kind", ["dot", "scaled_dot", "location"])
def test_attention_matches_the_formula_and_native(kind):
    query, memory, pad, prev = _inputs()
    inputs = [query, memory]
    if kind == "location":  # the previous weights are an input with a gradient too
        prev.requires_grad_()
        inputs.append(prev)
    outs = []
    for impl in ("scratch", "native"):
        m = _attn(kind, impl)
        ctx, w = m(query, memory, pad, prev_weights=prev)
        ref_ctx, ref_w = _reference(m, query, memory, pad, prev)
        torch.testing.assert_close(ctx, ref_ctx)
        torch.testing.assert_close(w, ref_w)
        assert not w[pad].any()
        torch.testing.assert_close(w.sum(1), torch.ones(len(LENGTHS), **F64))
        loss = (ctx * torch.arange(M, **F64)).sum() + (w ** 2).sum()
        grads = torch.autograd.grad(loss, inputs + list(m.parameters()))
        outs.append((ctx, w, grads))
    (cs, ws, gs), (cn, wn, gn) = outs
    torch.testing.assert_close(cs, cn, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ws, wn, rtol=1e-10, atol=1e-12)
    for a, b in zip(gs, gn):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["dot", "location"])
def test_attention_gradcheck_and_padding_independence(kind):
    query, memory, pad, prev = _inputs()
    m = _attn(kind)
    keys = m.project_memory(memory)
    assert torch.autograd.gradcheck(lambda q, mem: m(q, mem, pad, prev_weights=prev), (query, memory))
    # precomputed keys give the same result; each utterance alone == in the batch
    ctx, w = m(query, memory, pad, keys=keys, prev_weights=prev)
    torch.testing.assert_close((ctx, w), m(query, memory, pad, prev_weights=prev))
    for b, n in enumerate(LENGTHS.tolist()):
        cb, wb = m(query[b:b + 1], memory[b:b + 1, :n], pad[b:b + 1, :n], prev_weights=prev[b:b + 1, :n])
        torch.testing.assert_close(cb, ctx[b:b + 1])
        torch.testing.assert_close(wb, w[b:b + 1, :n])


def test_location_attention_needs_previous_weights_and_initial_weights_are_uniform():
    query, memory, pad, _ = _inputs()
    m = _attn("location")
    with pytest.raises(ValueError, match="prev_weights"):
        m(query, memory, pad)
    w0 = m.initial_weights(pad, torch.float64)
    torch.testing.assert_close(w0[1], torch.tensor([1 / 3] * 3 + [0.0] * 4, **F64))
    with pytest.raises(ValueError, match="odd"):
        nn.LocationAwareAttention(Q, M, ATT, kernel_size=4)
    names = set(m.state_dict())
    assert names == {"query_proj.weight", "key_proj.weight", "key_proj.bias", "location_conv.weight",
                     "location_proj.weight", "score.weight"}


# ------------------------------------------------------------------ decoder layer: kept cross-attention


@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_decoder_layer_keeps_cross_attention_only_when_asked(impl):
    torch.manual_seed(1)
    twin = torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True)
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True, impl=impl)
    layer.load_state_dict(twin.state_dict())  # the flag adds no state_dict entry
    assert set(layer.state_dict()) == set(twin.state_dict())
    tgt, mem = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    mkpm = torch.zeros(2, 6, dtype=torch.bool)
    mkpm[1, 3:] = True
    causal = torch.ones(4, 4, dtype=torch.bool).triu(1)
    y0 = layer(tgt, mem, tgt_mask=causal, memory_key_padding_mask=mkpm)
    assert layer.cross_attention is None
    layer.keep_cross_attention = True
    y1 = layer(tgt, mem, tgt_mask=causal, memory_key_padding_mask=mkpm)
    torch.testing.assert_close(y0, y1)
    torch.testing.assert_close(y1, twin(tgt, mem, tgt_mask=causal, memory_key_padding_mask=mkpm),
                               rtol=1e-4, atol=1e-5)
    w = layer.cross_attention
    assert w.shape == (2, 4, 6) and not w.requires_grad
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))
    assert not w[1, :, 3:].any()
    # torch's own cross-attention weights of the same input (pre-norm: norm2 of the residual stream)
    x = tgt + twin._sa_block(twin.norm1(tgt), causal, None)
    _, ref = twin.multihead_attn(twin.norm2(x), mem, mem, key_padding_mask=mkpm, need_weights=True)
    torch.testing.assert_close(w, ref, rtol=1e-4, atol=1e-5)
    other = copy.deepcopy(layer)
    nn.set_impl(other, "native" if impl == "scratch" else "scratch")
    other(tgt, mem, tgt_mask=causal, memory_key_padding_mask=mkpm)
    torch.testing.assert_close(other.cross_attention, w, rtol=1e-4, atol=1e-5)
