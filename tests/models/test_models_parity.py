"""Scratch vs native give the same outputs and gradients; padding never changes a valid frame."""
from __future__ import annotations

import copy

import pytest
import torch

from asrkit.models import build_model
from asrkit.nn import set_impl

BASE = {"impl": "scratch", "input_dim": 6, "dropout": 0.0}
CASES = {
    "frame_mlp": {**BASE, "type": "frame_mlp", "num_classes": 7, "context": 2, "hidden": [12, 10]},
    "bilstm": {**BASE, "type": "ctc", "num_classes": 5, "subsampling": 2, "encoder": "lstm", "hidden": 7,
               "layers": 2, "conv_channels": 3},
    "bigru": {**BASE, "type": "ctc", "num_classes": 5, "subsampling": 4, "encoder": "gru", "hidden": 7,
              "layers": 2, "conv_channels": 3},
    "conformer": {**BASE, "type": "ctc", "num_classes": 5, "subsampling": 4, "encoder": "conformer",
                  "hidden": 8, "layers": 2, "heads": 2, "ff_mult": 2, "conv_kernel": 3, "conv_channels": 3},
    "conformer_abs": {**BASE, "type": "ctc", "num_classes": 5, "subsampling": 2, "encoder": "conformer",
                      "hidden": 8, "layers": 1, "heads": 2, "ff_mult": 2, "conv_kernel": 5, "conv_channels": 3,
                      "pos_enc": "abs"},
}
LENGTHS = [23, 17, 9, 4]  # odd and even, one shorter than a subsampling window pair


def _batch(dtype=torch.float64, fill: float = 0.0):
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor(LENGTHS)
    feats = torch.randn(len(LENGTHS), max(LENGTHS), 6, generator=g, dtype=dtype)
    pad = torch.arange(max(LENGTHS))[None, :] >= lengths[:, None]
    feats[pad] = fill  # what sits in the padding must not matter
    return feats, lengths


def _run(model, feats, lengths, weights):
    """Forward + backward of a fixed weighting of the valid logits; returns logits and gradients."""
    feats = feats.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    logits, out_lengths = model(feats, lengths)
    valid = torch.arange(logits.shape[1])[None, :] < out_lengths[:, None]  # (B, T')
    (logits * weights[: logits.shape[1]] * valid[..., None]).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return logits.detach(), out_lengths, feats.grad.clone(), grads


@pytest.mark.parametrize("name", list(CASES))
def test_scratch_and_native_agree_on_outputs_and_gradients(name):
    torch.manual_seed(0)
    scratch = build_model(CASES[name]).double().train()  # train mode: BatchNorm batch statistics
    native = set_impl(copy.deepcopy(scratch), "native")
    feats, lengths = _batch()
    weights = torch.randn(max(LENGTHS), CASES[name]["num_classes"], dtype=torch.float64)
    ys, ls, gxs, gs = _run(scratch, feats, lengths, weights)
    yn, ln, gxn, gn = _run(native, feats, lengths, weights)
    assert torch.equal(ls, ln)
    torch.testing.assert_close(ys, yn, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gxs, gxn, rtol=1e-8, atol=1e-10)
    assert gs.keys() == gn.keys()
    for key in gs:
        torch.testing.assert_close(gs[key], gn[key], rtol=1e-8, atol=1e-10, msg=lambda m, k=key: f"{k}: {m}")
    # the BatchNorm running statistics moved the same way too
    for (k, a), (_, b) in zip(scratch.named_buffers(), native.named_buffers()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("name", list(CASES))
def test_scratch_and_native_agree_in_float32(name):
    torch.manual_seed(0)
    scratch = build_model(CASES[name]).eval()
    native = set_impl(copy.deepcopy(scratch), "native")
    feats, lengths = _batch(torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(scratch(feats, lengths)[0], native(feats, lengths)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", ["scratch", "native"])
@pytest.mark.parametrize("name", list(CASES))
def test_padding_does_not_change_valid_frames(name, impl):
    torch.manual_seed(0)
    model = build_model({**CASES[name], "impl": impl}).double().eval()
    feats, lengths = _batch(fill=1e3)  # loud garbage in the padding
    with torch.no_grad():
        logits, out_lengths = model(feats, lengths)
        for b, n in enumerate(LENGTHS):
            alone, alone_len = model(feats[b: b + 1, :n], lengths[b: b + 1])
            assert int(alone_len) == int(out_lengths[b])
            k = int(alone_len)
            torch.testing.assert_close(logits[b, :k], alone[0], rtol=1e-9, atol=1e-10,
                                       msg=lambda m, b=b: f"utterance {b}: {m}")


def test_frame_mlp_training_batch_statistics_ignore_padding():
    """Only valid frames reach BatchNorm: padding the batch does not change the training-mode output."""
    torch.manual_seed(0)
    model = build_model(CASES["frame_mlp"]).double().train()
    feats, lengths = _batch(fill=1e3)
    wide = torch.cat([feats, torch.full((4, 5, 6), -7.0, dtype=torch.float64)], 1)  # 5 more padded frames
    a, _ = model(feats, lengths)
    b, _ = model(wide, lengths)
    torch.testing.assert_close(a, b[:, : feats.shape[1]], rtol=1e-10, atol=1e-12)
