"""Incremental decoding: MultiheadAttention.project_kv/attend, positional offsets, and the
Transformer layers' ``step`` against their full causal ``forward`` (float64, both impls)."""
from __future__ import annotations

import pytest
import torch

from asrkit.nn.attention import KVCache, LearnedPositionalEncoding, MultiheadAttention, SinusoidalPositionalEncoding
from asrkit.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer

IMPLS = ["scratch", "native"]
TOL = dict(rtol=1e-10, atol=1e-12)


def _mha(impl: str, kdim=None, bias=True, batch_first=True, **kw) -> MultiheadAttention:
    torch.manual_seed(0)
    m = MultiheadAttention(8, 2, bias=bias, kdim=kdim, vdim=kdim, batch_first=batch_first, impl=impl, **kw).double()
    if bias:  # non-zero biases, so that a missing one shows
        with torch.no_grad():
            m.in_proj_bias.normal_()
            m.out_proj.bias.normal_()
    return m.eval()


# ---------------------------------------------------------------- MultiheadAttention


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kdim", [None, 5])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mask", ["none", "bool", "float"])
def test_attend_equals_forward(impl, kdim, bias, mask):
    m = _mha(impl, kdim, bias)
    g = torch.Generator().manual_seed(1)
    N, L, S = 3, 4, 6
    q = torch.randn(N, L, 8, generator=g, dtype=torch.float64)
    mem = torch.randn(N, S, kdim or 8, generator=g, dtype=torch.float64)
    kpm = None
    if mask == "bool":
        kpm = torch.zeros(N, S, dtype=torch.bool)
        kpm[0, 4:] = True
        kpm[2, 1:] = True
    elif mask == "float":
        kpm = torch.randn(N, S, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ref, ref_w = m(q, mem, mem, key_padding_mask=kpm)
        k, v = m.project_kv(mem, mem)
        assert k.shape == v.shape == (N, 2, S, 4)
        out, w = m.attend(q, k, v, kpm, need_weights=True)
        torch.testing.assert_close(out, ref, **TOL)
        torch.testing.assert_close(w, ref_w, **TOL)
        assert m.attend(q, k, v, kpm)[1] is None


@pytest.mark.parametrize("impl", IMPLS)
def test_attend_with_kv_rows_shares_the_memory(impl):
    """Query row n over memory row kv_rows[n] == forward over the memory copied per row."""
    m = _mha(impl)
    g = torch.Generator().manual_seed(2)
    M, S = 3, 5
    mem = torch.randn(M, S, 8, generator=g, dtype=torch.float64)
    kpm = torch.zeros(M, S, dtype=torch.bool)
    kpm[1, 2:] = True
    k, v = m.project_kv(mem, mem)
    for rows in ([2, 0, 0, 2, 2, 1, 0], [1], [0, 1, 2], [2, 1, 0], [0, 0, 0, 0]):
        rows = torch.tensor(rows)
        q = torch.randn(len(rows), 2, 8, generator=g, dtype=torch.float64)
        with torch.no_grad():
            ref, ref_w = m(q, mem[rows], mem[rows], key_padding_mask=kpm[rows])
            out, w = m.attend(q, k, v, kpm, need_weights=True, kv_rows=rows)
        torch.testing.assert_close(out, ref, **TOL)
        torch.testing.assert_close(w, ref_w, **TOL)


def test_helpers_are_batch_first_whatever_the_module():
    m = _mha("scratch", batch_first=False)
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 3, 8, generator=g, dtype=torch.float64)
    mem = torch.randn(2, 4, 8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ref = m(q.transpose(0, 1), mem.transpose(0, 1), mem.transpose(0, 1))[0].transpose(0, 1)
        out = m.attend(q, *m.project_kv(mem, mem))[0]
    torch.testing.assert_close(out, ref, **TOL)


def test_helpers_refuse_what_they_do_not_do():
    q = torch.randn(2, 1, 8, dtype=torch.float64)
    for kw in ({"add_bias_kv": True}, {"add_zero_attn": True}):
        m = _mha("scratch", **kw)
        with pytest.raises(ValueError, match="add_bias_kv or add_zero_attn"):
            m.project_kv(q, q)
        with pytest.raises(ValueError, match="add_bias_kv or add_zero_attn"):
            m.attend(q, q.new_zeros(2, 2, 1, 4), q.new_zeros(2, 2, 1, 4))
    m = _mha("scratch", dropout=0.1).train()
    with pytest.raises(RuntimeError, match="eval mode"):
        m.project_kv(q, q)
    m.eval()
    k, v = m.project_kv(q, q)
    with pytest.raises(ValueError, match="kv_rows"):
        m.attend(q[:1], k, v)
    with pytest.raises(ValueError, match="key_padding_mask"):
        m.attend(q, k, v, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="kv_rows must be"):
        m.attend(q, k, v, kv_rows=torch.tensor([0]))
    _mha("scratch").train().attend(q, k, v)  # no dropout: training mode is harmless


# ---------------------------------------------------------------- positional offsets


@pytest.mark.parametrize("batch_first", [True, False])
def test_positional_encodings_offset(batch_first):
    torch.manual_seed(0)
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    if not batch_first:
        x = x.transpose(0, 1)
    t = 1 if batch_first else 0
    for enc in (SinusoidalPositionalEncoding(6, max_len=7, xscale=True, batch_first=batch_first),
                LearnedPositionalEncoding(7, 6, batch_first=batch_first).double()):
        full = enc(x)
        for start, stop in ((0, 1), (3, 4), (6, 7), (2, 5)):
            part = enc(x.narrow(t, start, stop - start), offset=start)
            torch.testing.assert_close(part, full.narrow(t, start, stop - start), rtol=0, atol=0)
        with pytest.raises(ValueError, match="past max_len=7"):
            enc(x.narrow(t, 0, 1), offset=7)
        with pytest.raises(ValueError, match="longer than max_len"):
            enc(torch.cat([x, x], t))
        with pytest.raises(ValueError, match="offset must be"):
            enc(x, offset=-1)


# ---------------------------------------------------------------- layers


def _layer(cls, impl, norm_first, batch_first=True, activation="relu"):
    torch.manual_seed(4)
    layer = cls(8, 2, dim_feedforward=16, dropout=0.1, activation=activation, batch_first=batch_first,
                norm_first=norm_first, impl=impl).double()
    with torch.no_grad():  # non-trivial norms and biases
        for name, p in layer.named_parameters():
            if "norm" in name or "bias" in name:
                p.add_(0.3 * torch.randn_like(p))
    return layer.eval()


def _bf(x, batch_first):
    return x if batch_first else x.transpose(0, 1)


def _start(kind: str, n: int):
    """The cache before the first position: None (plain (k, v) then) or an empty KVCache."""
    return None if kind == "tuple" else KVCache.empty(n, 2, 4, dtype=torch.float64)


def _kv(cache):
    return (cache.keys, cache.values) if isinstance(cache, KVCache) else cache


@pytest.fixture
def small_grow(monkeypatch):
    monkeypatch.setattr(KVCache, "GROW", 2)  # a KVCache fills up within a test's few positions


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("kind", ["tuple", "kvcache"])
def test_encoder_layer_step_equals_causal_forward(impl, norm_first, batch_first, activation, kind, small_grow):
    layer = _layer(TransformerEncoderLayer, impl, norm_first, batch_first, activation)
    g = torch.Generator().manual_seed(5)
    N, T = 3, 6
    x = torch.randn(N, T, 8, generator=g, dtype=torch.float64)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    with torch.no_grad():
        ref = _bf(layer(_bf(x, batch_first), src_mask=causal), batch_first)  # (N, T, E)
        cache = _start(kind, N)
        for t in range(T):
            y, cache = layer.step(x[:, t:t + 1], cache)
            assert isinstance(cache, KVCache) == (kind == "kvcache")
            k, v = _kv(cache)
            assert k.shape == v.shape == (N, 2, t + 1, 4)
            torch.testing.assert_close(y, ref[:, t:t + 1], **TOL)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kind", ["tuple", "kvcache"])
def test_decoder_layer_step_equals_causal_forward(impl, norm_first, batch_first, kind, small_grow):
    layer = _layer(TransformerDecoderLayer, impl, norm_first, batch_first)
    layer.keep_cross_attention = True
    g = torch.Generator().manual_seed(6)
    N, T, S = 3, 5, 7
    x = torch.randn(N, T, 8, generator=g, dtype=torch.float64)
    mem = torch.randn(N, S, 8, generator=g, dtype=torch.float64)
    mask = torch.zeros(N, S, dtype=torch.bool)
    mask[0, 5:] = True
    mask[2, 2:] = True
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    with torch.no_grad():
        ref = _bf(layer(_bf(x, batch_first), _bf(mem, batch_first), tgt_mask=causal,
                        memory_key_padding_mask=mask), batch_first)  # (N, T, E)
        ref_att = layer.cross_attention  # (N, T, S)
        mem_kv = layer.multihead_attn.project_kv(mem, mem)
        cache = _start(kind, N)
        for t in range(T):
            y, cache = layer.step(x[:, t:t + 1], cache, mem_kv, mask)
            torch.testing.assert_close(y, ref[:, t:t + 1], **TOL)
            torch.testing.assert_close(layer.cross_attention, ref_att[:, t:t + 1], **TOL)
            assert float(layer.cross_attention[2, 0, 2:].abs().max()) == 0.0  # padding gets nothing
        # hypotheses sharing memory rows: rows 0 0 2 1 2 of the memory, the same prefix inputs
        rows = torch.tensor([0, 0, 2, 1, 2])
        ref2 = _bf(layer(_bf(x[rows], batch_first), _bf(mem[rows], batch_first), tgt_mask=causal,
                         memory_key_padding_mask=mask[rows]), batch_first)
        cache = _start(kind, len(rows))
        for t in range(T):
            y, cache = layer.step(x[rows, t:t + 1], cache, mem_kv, mask, memory_rows=rows)
            torch.testing.assert_close(y, ref2[:, t:t + 1], **TOL)
        layer.keep_cross_attention = False
        layer.step(x[:, :1], None, mem_kv, mask)
        assert layer.cross_attention is None


def test_layer_step_refuses_training_mode_and_wrong_shapes():
    enc = _layer(TransformerEncoderLayer, "scratch", True)
    dec = _layer(TransformerDecoderLayer, "scratch", True)
    x = torch.randn(2, 1, 8, dtype=torch.float64)
    mem_kv = dec.multihead_attn.project_kv(x, x)
    with pytest.raises(ValueError, match=r"one position x \(N, 1, E\)"):
        enc.step(torch.randn(2, 3, 8, dtype=torch.float64))
    enc.train()
    dec.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        enc.step(x)
    with pytest.raises(RuntimeError, match="eval mode"):
        dec.step(x, None, mem_kv)


def test_kv_cache_appends_in_place_and_never_overwrites(small_grow):
    g = torch.Generator().manual_seed(7)
    pos = [torch.randn(3, 2, 1, 4, generator=g, dtype=torch.float64) for _ in range(6)]
    c0 = KVCache.empty(3, 2, 4, dtype=torch.float64)
    c1 = c0.append(pos[0], -pos[0])  # full (capacity 0): new buffers, 1 + GROW positions
    assert c1.k.shape == (3, 2, 3, 4) and len(c1) == 1 and len(c0) == 0
    c2 = c1.append(pos[1], -pos[1])  # in place
    assert c2.k is c1.k and len(c2) == 2 and len(c1) == 1
    torch.testing.assert_close(c2.keys, torch.cat(pos[:2], 2), rtol=0, atol=0)
    torch.testing.assert_close(c2.values, -torch.cat(pos[:2], 2), rtol=0, atol=0)
    # a second append to c1 must not overwrite c2's position 1: it copies
    c2b = c1.append(pos[2], -pos[2])
    assert c2b.k is not c1.k
    torch.testing.assert_close(c2.keys, torch.cat(pos[:2], 2), rtol=0, atol=0)
    torch.testing.assert_close(c2b.keys, torch.cat([pos[0], pos[2]], 2), rtol=0, atol=0)
    # several positions at once, past the capacity
    c5 = c2.append(torch.cat(pos[2:5], 2), -torch.cat(pos[2:5], 2))
    assert c5.k is not c2.k and c5.k.shape[2] == 5 + KVCache.GROW
    torch.testing.assert_close(c5.keys, torch.cat(pos[:5], 2), rtol=0, atol=0)
    # rows of a beam: new buffers, the positions of the chosen rows
    idx = torch.tensor([2, 2, 0])
    sel = c5.index_select(idx)
    assert sel.k.data_ptr() != c5.k.data_ptr() and len(sel) == 5
    torch.testing.assert_close(sel.keys, torch.cat(pos[:5], 2)[idx], rtol=0, atol=0)
    c6 = sel.append(pos[5][idx], -pos[5][idx])
    torch.testing.assert_close(c6.values, -torch.cat(pos, 2)[idx], rtol=0, atol=0)
    torch.testing.assert_close(c5.keys, torch.cat(pos[:5], 2), rtol=0, atol=0)  # untouched
    with pytest.raises(ValueError, match="KVCache.append"):
        c6.append(torch.zeros(3, 2, 1, 5, dtype=torch.float64), torch.zeros(3, 2, 1, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="length <= capacity"):
        KVCache(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), 4)
