"""Each attention model memorises three synthetic utterances: zero token errors under greedy
decoding and the beam search of asrkit.decode.attention (tiny dims, AdamW, a plain torch loop)."""
from __future__ import annotations

import time

import pytest
import torch

from asrkit.decode.attention import attention_beam_search, attention_greedy
from asrkit.models import build_model
from asrkit.models.seq2seq import IGNORE_ID
from asrkit.nn import set_impl

LENGTHS = torch.tensor([40, 33, 26])
TARGETS = [[1, 2, 3, 4, 5], [4, 4, 2], [3, 1, 5, 2]]  # a repeated token, different lengths


def _data(dim: int = 8):
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(len(LENGTHS), int(LENGTHS.max()), dim, generator=g)
    targets = torch.tensor([u for t in TARGETS for u in t])
    return feats, LENGTHS, targets, torch.tensor([len(t) for t in TARGETS])


def greedy(model, feats, lengths, max_len: int = 10) -> list[list[int]]:
    """The decoder's own greedy search (asrkit.decode.attention), in eval mode."""
    model.eval()
    with torch.no_grad():
        hyps = [h.ids for h in attention_greedy(model, model.encode(feats, lengths), max_len=max_len)]
    model.train()
    return hyps


def beam(model, feats, lengths, width: int = 4) -> list[list[int]]:
    """The best hypothesis of the beam search (with the CTC prefix score when there is a CTC head)."""
    model.eval()
    with torch.no_grad():
        found = attention_beam_search(model, model.encode(feats, lengths), width,
                                      ctc_weight=0.3 if model.has_ctc else 0.0, max_len=10)
    return [nbest[0].ids for nbest in found]


@pytest.mark.parametrize("cfg, lr", [
    ({"type": "las", "impl": "scratch", "attention": "location", "listener_hidden": 16, "pyramid_layers": 2,
      "attention_dim": 16, "location_channels": 4, "location_kernel": 5, "embed_dim": 16, "speller_hidden": 32},
     5e-3),
    ({"type": "las", "impl": "native", "attention": "scaled_dot", "listener_hidden": 16, "pyramid_layers": 2,
      "attention_dim": 16, "embed_dim": 16, "speller_hidden": 32, "ctc_weight": 0.3}, 5e-3),
    ({"type": "transformer", "impl": "scratch", "hidden": 24, "heads": 2, "ff_mult": 2, "encoder_layers": 2,
      "decoder_layers": 1, "conv_channels": 4}, 3e-3),
    ({"type": "transformer", "impl": "native", "encoder": "conformer", "hidden": 24, "heads": 2, "ff_mult": 2,
      "encoder_layers": 1, "decoder_layers": 1, "conv_channels": 4, "conv_kernel": 3}, 3e-3),
], ids=["las_location_scratch", "las_dot_ctc_native", "transformer_scratch", "conformer_native"])
def test_attention_model_overfits_to_zero_token_errors(cfg, lr):
    torch.manual_seed(0)
    model = build_model({**cfg, "input_dim": 8, "num_classes": 6, "dropout": 0.0})
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    feats, lengths, targets, tlens = _data()
    ctc_weight = model.config["ctc_weight"]
    hyps, first, start = None, None, time.monotonic()
    for step in range(1, 401):
        opt.zero_grad()
        out = model(feats, lengths, targets, tlens)
        loss = torch.nn.functional.cross_entropy(out.logits.transpose(1, 2), out.targets, ignore_index=IGNORE_ID)
        if model.has_ctc:
            logp = out.ctc_logits.log_softmax(-1).transpose(0, 1)
            ctc = torch.nn.functional.ctc_loss(logp, targets, out.enc_lengths, tlens)
            loss = (1 - ctc_weight) * loss + ctc_weight * ctc
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
        if step % 25 == 0:
            hyps = greedy(model, feats, lengths)
            if hyps == TARGETS:
                break
    assert hyps == TARGETS, f"after {step} steps (loss {first:.2f} -> {float(loss):.3f}): {hyps}"
    assert time.monotonic() - start < 120, "overfitting took far longer than it should"
    # the trained weights decode the same with the other implementation
    set_impl(model, "native" if cfg["impl"] == "scratch" else "scratch")
    assert greedy(model, feats, lengths) == TARGETS
    assert beam(model, feats, lengths) == TARGETS
