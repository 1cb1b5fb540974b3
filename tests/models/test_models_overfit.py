"""Each model memorises a handful of synthetic utterances to 0 errors (tiny dims, Adam)."""
from __future__ import annotations

import pytest
import torch

from asrkit.models import build_model
from asrkit.nn import CTCLoss, set_impl
from asrkit.nn.search import ctc_greedy

LENGTHS = torch.tensor([32, 29, 24, 19])
TARGETS = [[1, 2, 3, 4], [4, 4, 2], [3, 1, 3, 2, 1], [2, 3]]  # includes a repeated label


def _data(dim: int):
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(len(LENGTHS), int(LENGTHS.max()), dim, generator=g)
    return feats, LENGTHS


def _greedy(model, feats, lengths):
    model.eval()
    with torch.no_grad():
        logits, out_lengths = model(feats, lengths)
    model.train()
    return ctc_greedy(logits.log_softmax(-1), out_lengths)[0]


@pytest.mark.parametrize("encoder, sub, impl, lr", [
    ("lstm", 2, "scratch", 1e-2),
    ("gru", 4, "native", 1e-2),
    ("conformer", 4, "native", 3e-3),
])
def test_ctc_model_overfits_to_zero_errors(encoder, sub, impl, lr):
    torch.manual_seed(0)
    model = build_model({"type": "ctc", "impl": impl, "input_dim": 8, "num_classes": 5, "subsampling": sub,
                         "encoder": encoder, "hidden": 24, "layers": 1 if encoder != "conformer" else 2,
                         "dropout": 0.0, "conv_channels": 4, "heads": 2, "ff_mult": 2, "conv_kernel": 3})
    loss_fn = CTCLoss(impl=impl)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    feats, lengths = _data(8)
    targets = torch.tensor([u for t in TARGETS for u in t])
    target_lengths = torch.tensor([len(t) for t in TARGETS])
    hyps, first = None, None
    for step in range(1, 401):
        opt.zero_grad()
        logits, out_lengths = model(feats, lengths)
        loss = loss_fn(logits.log_softmax(-1).transpose(0, 1), targets, out_lengths, target_lengths)
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
        if step % 25 == 0:
            hyps = _greedy(model, feats, lengths)
            if hyps == TARGETS:
                break
    assert hyps == TARGETS, f"after {step} steps (loss {first:.2f} -> {float(loss):.3f}): {hyps}"
    # the trained weights decode the same with the other implementation
    set_impl(model, "native" if impl == "scratch" else "scratch")
    assert _greedy(model, feats, lengths) == TARGETS


def test_frame_mlp_overfits_to_zero_frame_errors():
    torch.manual_seed(0)
    model = build_model({"type": "frame_mlp", "impl": "scratch", "input_dim": 8, "num_classes": 6,
                         "context": 2, "hidden": [48, 48], "dropout": 0.0})
    feats, lengths = _data(8)
    g = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 6, feats.shape[:2], generator=g)  # (B, T)
    valid = torch.arange(feats.shape[1])[None, :] < lengths[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    errors = None
    for step in range(1, 401):
        opt.zero_grad()
        logits, _ = model(feats, lengths)
        loss = torch.nn.functional.cross_entropy(logits[valid], labels[valid])
        loss.backward()
        opt.step()
        if step % 25 == 0:
            model.eval()
            with torch.no_grad():
                pred = model(feats, lengths)[0].argmax(-1)
            model.train()
            errors = int((pred != labels)[valid].sum())
            if errors == 0:
                break
    assert errors == 0, f"{errors} frame errors after {step} steps"
    model.eval()
    set_impl(model, "native")
    with torch.no_grad():
        assert torch.equal(model(feats, lengths)[0].argmax(-1)[valid], labels[valid])
