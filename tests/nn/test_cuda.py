"""Scratch vs native on CUDA, one case per layer family (RNN, CTC, attention, conv, norm).

Each case builds the layer twice with the same weights, runs the same inputs
through ``impl="scratch"`` and ``impl="native"`` (cuDNN / torch's CUDA kernels)
and compares outputs and the gradients of inputs and parameters. TF32 is
switched off for the comparison and restored afterwards. Skipped without a GPU.
"""
from __future__ import annotations

from typing import Callable

import pytest
import torch

import asrkit.nn as nn
from asrkit.models import build_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

DEV = "cuda"


@pytest.fixture(autouse=True)
def _full_precision(no_tf32):
    """Full-precision matmuls and convolutions for the comparison (tests/conftest.py)."""


def _randn(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).to(DEV)


def _outputs(res) -> list[torch.Tensor]:
    if isinstance(res, torch.Tensor):
        return [res]
    out = []
    for r in res:
        out += _outputs(r) if isinstance(r, (tuple, list)) else ([r] if isinstance(r, torch.Tensor) else [])
    return [o for o in out if o.is_floating_point()]


def _run(module: torch.nn.Module, inputs: list, call: Callable):
    inputs = [x.detach().clone().requires_grad_(x.is_floating_point()) if isinstance(x, torch.Tensor) else x
              for x in inputs]
    module.zero_grad(set_to_none=True)
    outs = _outputs(call(module, *inputs))
    loss = sum((o * torch.linspace(-1, 1, o.numel(), device=o.device, dtype=o.dtype).view_as(o)).sum()
               for o in outs)
    loss.backward()
    grads = [x.grad for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    grads += [p.grad for p in module.parameters()]
    return [o.detach() for o in outs], grads


def _check(make: Callable[[str], torch.nn.Module], inputs: list, call: Callable, *, dtype=torch.float32,
           atol=1e-4, rtol=1e-3):
    torch.manual_seed(0)
    scratch = make("scratch").to(DEV, dtype)
    native = make("native").to(DEV, dtype)
    native.load_state_dict(scratch.state_dict())
    inputs = [x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]
    out_s, grad_s = _run(scratch, inputs, call)
    out_n, grad_n = _run(native, inputs, call)
    assert len(out_s) == len(out_n)
    for a, b in zip(out_s, out_n):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol)
    for i, (a, b) in enumerate(zip(grad_s, grad_n)):
        if b is None:
            assert a is None or not a.any(), i
        else:
            torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=f"gradient {i}")
    # buffers (BatchNorm running statistics) move the same way
    for (k, a), (_, b) in zip(scratch.named_buffers(), native.named_buffers()):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=k)


_LENGTHS = torch.tensor([9, 4, 7])

# ------------------------------------------------------------------ RNN


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_rnn_family_cuda(cls):
    _check(lambda impl: cls(5, 8, num_layers=2, bidirectional=True, batch_first=True, impl=impl),
           [_randn(3, 9, 5)], lambda m, x: m(x))
    _check(lambda impl: cls(5, 8, bidirectional=True, batch_first=True, impl=impl),
           [_randn(3, 11, 5, seed=1), _LENGTHS.to(DEV)], lambda m, x, n: m(x, lengths=n))


def test_packed_lstm_and_cells_cuda():
    seqs = [_randn(n, 4, seed=n) for n in (6, 3, 5)]
    packed = torch.nn.utils.rnn.pack_sequence(seqs, enforce_sorted=False)
    _check(lambda impl: nn.LSTM(4, 6, proj_size=3, bidirectional=True, impl=impl), [packed.data],
           lambda m, data: m(torch.nn.utils.rnn.PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                                                                 packed.unsorted_indices))[0].data)
    _check(lambda impl: nn.LSTMCell(4, 6, impl=impl), [_randn(3, 4)], lambda m, x: m(x))
    _check(lambda impl: nn.GRUCell(4, 6, impl=impl), [_randn(3, 4)], lambda m, x: m(x))


# ------------------------------------------------------------------ CTC


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ctc_loss_cuda(reduction):
    T, B, C = 12, 3, 6
    logits = _randn(T, B, C)
    targets = torch.tensor([[1, 2, 2, 3], [4, 1, 0, 0], [5, 5, 5, 0]], device=DEV)
    tl = torch.tensor([4, 2, 3], device=DEV)
    il = torch.tensor([12, 8, 10], device=DEV)
    _check(lambda impl: nn.CTCLoss(reduction=reduction, zero_infinity=True, impl=impl), [logits],
           lambda m, x: m(x.log_softmax(-1), targets, il, tl), dtype=torch.float64, atol=1e-7, rtol=1e-6)


# ------------------------------------------------------------------ attention


def test_multihead_attention_cuda():
    x, mem = _randn(2, 7, 8), _randn(2, 5, 8, seed=1)
    kpm = torch.tensor([[False] * 5, [False] * 3 + [True] * 2], device=DEV)
    _check(lambda impl: nn.MultiheadAttention(8, 2, batch_first=True, impl=impl), [x, mem],
           lambda m, q, kv: m(q, kv, kv, key_padding_mask=kpm))
    _check(lambda impl: nn.MultiheadAttention(8, 2, batch_first=True, impl=impl), [x],
           lambda m, q: m(q, q, q, need_weights=False, is_causal=True))


def test_rel_position_attention_and_conformer_cuda():
    x = _randn(2, 7, 8)
    kpm = torch.tensor([[False] * 7, [False] * 5 + [True] * 2], device=DEV)
    _check(lambda impl: nn.RelPositionMultiheadAttention(8, 2, impl=impl), [x],
           lambda m, q: m(q, key_padding_mask=kpm, need_weights=True))
    _check(lambda impl: nn.Conformer(8, 2, 16, 2, 3, pos_enc="rel", mask_conv_padding=True, impl=impl).eval(),
           [x, torch.tensor([7, 5], device=DEV)], lambda m, q, n: m(q, n)[0])


# ------------------------------------------------------------------ conv


def test_conv_family_cuda():
    _check(lambda impl: nn.Conv1d(6, 4, 3, padding=1, impl=impl), [_randn(2, 6, 10)], lambda m, x: m(x))
    _check(lambda impl: nn.Conv1d(6, 6, 5, padding=2, groups=6, impl=impl), [_randn(2, 6, 10)],
           lambda m, x: m(x))
    _check(lambda impl: nn.Conv2d(3, 5, 3, stride=(2, 1), padding=1, impl=impl), [_randn(2, 3, 9, 8)],
           lambda m, x: m(x))
    _check(lambda impl: nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1, impl=impl), [_randn(2, 4, 5, 5)],
           lambda m, x: m(x))


# ------------------------------------------------------------------ norm and activations


def test_norm_family_cuda():
    _check(lambda impl: nn.LayerNorm(8, impl=impl), [_randn(3, 5, 8)], lambda m, x: m(x))
    _check(lambda impl: nn.BatchNorm1d(6, impl=impl), [_randn(4, 6, 7)], lambda m, x: m(x))
    _check(lambda impl: nn.BatchNorm2d(3, impl=impl), [_randn(2, 3, 5, 5)], lambda m, x: m(x))
    _check(lambda impl: nn.UtteranceNorm(impl=impl), [_randn(3, 9, 4), _LENGTHS.to(DEV)],
           lambda m, x, n: m(x, n))


def test_activations_cuda():
    for make in (lambda impl: nn.GLU(1, impl=impl), lambda impl: nn.SiLU(impl=impl),
                 lambda impl: nn.GELU(impl=impl), lambda impl: nn.Softmax(-1, impl=impl)):
        _check(make, [_randn(3, 6, 5)], lambda m, x: m(x))


# ------------------------------------------------------------------ whole models


@pytest.mark.parametrize("encoder", ["lstm", "conformer"])
def test_ctc_model_cuda(encoder):
    cfg = {"type": "ctc", "input_dim": 6, "num_classes": 5, "encoder": encoder, "hidden": 8, "layers": 2,
           "heads": 2, "ff_mult": 2, "conv_kernel": 3, "conv_channels": 3, "subsampling": 4, "dropout": 0.0}
    feats = _randn(3, 21, 6)
    lengths = torch.tensor([21, 13, 6], device=DEV)
    _check(lambda impl: build_model({**cfg, "impl": impl}), [feats, lengths], lambda m, f, n: m(f, n)[0],
           atol=2e-4, rtol=2e-3)


# ------------------------------------------------------------------ attention models


def test_seq2seq_attention_pieces_cuda():
    q, mem = _randn(3, 6), _randn(3, 9, 5, seed=1)
    pad = (torch.arange(9)[None, :] >= _LENGTHS[:, None]).to(DEV)  # (3, 9)
    prev = torch.softmax(_randn(3, 9, seed=2).masked_fill(pad, float("-inf")), -1)
    _check(lambda impl: nn.LocationAwareAttention(6, 5, 4, 3, 5, impl=impl), [q, mem, prev],
           lambda m, a, b, p: m(a, b, pad, prev_weights=p))
    _check(lambda impl: nn.DotProductAttention(6, 5, 4, impl=impl), [q, mem], lambda m, a, b: m(a, b, pad))
    _check(lambda impl: nn.MaskedSoftmax(-1, impl=impl), [_randn(3, 9, seed=3)], lambda m, x: m(x, pad))


@pytest.mark.parametrize("cfg", [
    {"type": "las", "listener_hidden": 6, "pyramid_layers": 2, "attention": "location", "attention_dim": 5,
     "location_channels": 2, "location_kernel": 3, "embed_dim": 5, "speller_hidden": 7, "ctc_weight": 0.3},
    {"type": "transformer", "hidden": 8, "heads": 2, "ff_mult": 2, "encoder_layers": 2, "decoder_layers": 2,
     "conv_channels": 3},
    {"type": "transformer", "encoder": "conformer", "hidden": 8, "heads": 2, "ff_mult": 2, "encoder_layers": 1,
     "decoder_layers": 1, "conv_channels": 3, "conv_kernel": 3},
], ids=["las", "transformer", "conformer"])
def test_attention_models_cuda(cfg):
    feats = _randn(3, 21, 6)
    lengths = torch.tensor([21, 13, 6], device=DEV)
    targets, tlens = torch.tensor([1, 2, 3, 4, 4, 2], device=DEV), torch.tensor([3, 1, 2], device=DEV)

    def call(m, f, n):
        out = m(f, n, targets, tlens)
        return out.logits, out.ctc_logits, out.attention

    _check(lambda impl: build_model({**cfg, "input_dim": 6, "num_classes": 5, "dropout": 0.0, "impl": impl}),
           [feats, lengths], call, atol=2e-4, rtol=2e-3)


# ------------------------------------------------------------------ adaptive softmax, the adaptive LMs


def test_adaptive_softmax_cuda():
    x = _randn(20, 8)
    t = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 3, 0, 1, 2, 9, 5, 0], device=DEV)  # every cluster
    _check(lambda impl: nn.AdaptiveLogSoftmaxWithLoss(8, 13, [4, 8], div_value=2.0, head_bias=True, impl=impl),
           [x], lambda m, a: m(a, t), dtype=torch.float64, atol=1e-9, rtol=1e-7)
    _check(lambda impl: nn.AdaptiveLogSoftmaxWithLoss(8, 13, [4, 8], div_value=2.0, impl=impl), [x],
           lambda m, a: m.log_prob(a))


@pytest.mark.parametrize("kind", ["lm_lstm", "lm_transformer"])
def test_adaptive_lms_cuda(kind):
    cfg = {"type": kind, "num_classes": 13, "hidden": 8, "layers": 2, "dropout": 0.0, "tie_weights": False,
           "adaptive_cutoffs": [4, 8], "adaptive_div": 2.0}
    if kind == "lm_lstm":
        cfg.update(embed_dim=6, embed_dropout=0.0, input_dropout=0.0, hidden_dropout=0.0)
    else:
        cfg.update(heads=2, ff_mult=2)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 13, (3, 9), generator=g).to(DEV)
    targets = torch.cat([tokens[:, 1:], tokens[:, :1]], 1)
    targets[0, -2:] = -100

    def call(m):
        return m(tokens), m(tokens, targets)  # the full log-probs and the targets' ones

    _check(lambda impl: build_model({**cfg, "impl": impl}), [], call, atol=2e-4, rtol=2e-3)
