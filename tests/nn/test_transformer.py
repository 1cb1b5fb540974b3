"""Transformer encoder/decoder layers vs torch.nn, and a small Transformer encoder model."""
from __future__ import annotations

import copy

import pytest
import torch

from asrkit.nn import Linear, set_impl
from asrkit.nn.attention import SinusoidalPositionalEncoding
from asrkit.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer


def _grads(loss, xs, module):
    return torch.autograd.grad(loss, xs + list(module.parameters()))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_encoder_layer_matches_torch(norm_first, batch_first, activation, impl):
    torch.manual_seed(0)
    kw = dict(dim_feedforward=16, dropout=0.0, activation=activation, batch_first=batch_first,
              norm_first=norm_first)
    a = TransformerEncoderLayer(8, 2, impl=impl, **kw)
    b = torch.nn.TransformerEncoderLayer(8, 2, **kw)
    assert set(a.state_dict()) == set(b.state_dict())
    a.load_state_dict(b.state_dict())
    x = torch.randn(3, 6, 8) if batch_first else torch.randn(6, 3, 8)
    kpm = torch.zeros(3, 6, dtype=torch.bool)
    kpm[1, 4:] = True
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)
    for mask in (None, causal):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya = a(xa, src_mask=mask, src_key_padding_mask=kpm)
        yb = b(xb, src_mask=mask, src_key_padding_mask=kpm)
        torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-4)
        for u, v in zip(_grads(ya.pow(2).sum(), [xa], a), _grads(yb.pow(2).sum(), [xb], b)):
            torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_layer_matches_torch(norm_first, batch_first):
    torch.manual_seed(1)
    kw = dict(dim_feedforward=16, dropout=0.0, batch_first=batch_first, norm_first=norm_first)
    a = TransformerDecoderLayer(8, 2, **kw)
    b = torch.nn.TransformerDecoderLayer(8, 2, **kw)
    assert set(a.state_dict()) == set(b.state_dict())
    a.load_state_dict(b.state_dict())
    T, S, N = 4, 6, 2
    tgt = torch.randn(N, T, 8) if batch_first else torch.randn(T, N, 8)
    mem = torch.randn(N, S, 8) if batch_first else torch.randn(S, N, 8)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    mkpm = torch.zeros(N, S, dtype=torch.bool)
    mkpm[0, 5:] = True
    ta = [tgt.clone().requires_grad_(), mem.clone().requires_grad_()]
    tb = [tgt.clone().requires_grad_(), mem.clone().requires_grad_()]
    ya = a(*ta, tgt_mask=causal, memory_key_padding_mask=mkpm, tgt_is_causal=True)
    yb = b(*tb, tgt_mask=causal, memory_key_padding_mask=mkpm, tgt_is_causal=True)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-4)
    for u, v in zip(_grads(ya.pow(2).sum(), ta, a), _grads(yb.pow(2).sum(), tb, b)):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)


class _Encoder(torch.nn.Module):
    """A small Transformer encoder acoustic model: Linear in, positions, N layers, Linear out."""

    def __init__(self, idim, d, heads, layers, odim, torch_twin=False):
        super().__init__()
        if torch_twin:
            self.inp = torch.nn.Linear(idim, d)
            layer = torch.nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.out = torch.nn.Linear(d, odim)
        else:
            self.inp = Linear(idim, d)
            self.encoder = torch.nn.Module()
            self.encoder.layers = torch.nn.ModuleList(
                [TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, batch_first=True) for _ in range(layers)])
            self.out = Linear(d, odim)
        self.pos = SinusoidalPositionalEncoding(d, max_len=100)

    def forward(self, x, pad):
        h = self.pos(self.inp(x))
        if isinstance(self.encoder, torch.nn.TransformerEncoder):
            h = self.encoder(h, src_key_padding_mask=pad)
        else:
            for layer in self.encoder.layers:
                h = layer(h, src_key_padding_mask=pad)
        return torch.log_softmax(self.out(h), -1)


def test_small_transformer_encoder_scratch_native_torch():
    torch.manual_seed(2)
    twin = _Encoder(5, 16, 4, 2, 7, torch_twin=True)
    ours = _Encoder(5, 16, 4, 2, 7)
    ours.load_state_dict(twin.state_dict())  # torch.nn.TransformerEncoder's state_dict, unchanged
    native = set_impl(copy.deepcopy(ours), "native")
    x = torch.randn(3, 9, 5)
    pad = torch.arange(9)[None, :] >= torch.tensor([9, 6, 4])[:, None]
    valid = (~pad)[..., None]
    for train in (False, True):
        results = []
        for m in (ours, native, twin):
            m.train(train)
            for mod in m.modules():  # deterministic: dropout off, train-mode code paths otherwise
                if isinstance(mod, torch.nn.Dropout) or type(mod).__name__ == "Dropout":
                    mod.p = 0.0
                if isinstance(mod, torch.nn.MultiheadAttention) or type(mod).__name__ == "MultiheadAttention":
                    mod.dropout = 0.0
            y = m(x, pad)
            results.append((y * valid, _grads((y * valid).pow(2).sum(), [], m)))
        for y, g in results[1:]:
            torch.testing.assert_close(results[0][0], y, atol=1e-5, rtol=1e-4)
            if train:
                for u, v in zip(results[0][1], g):
                    torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)
