"""What keeps the BiLSTM/BiGRU-CTC off the all-blank plateau: the front end's output is
normalized per utterance over time (no constant direction for the encoder to settle on; the
projection then has no bias) and the output layer starts leaning to blank (p = 0.6)."""
from __future__ import annotations

import pytest
import torch

from asrkit.models import build_model

CFG = {"type": "ctc", "impl": "native", "input_dim": 12, "num_classes": 9, "subsampling": 4, "hidden": 8,
       "layers": 1, "dropout": 0.0, "conv_channels": 3, "heads": 2, "ff_mult": 2, "conv_kernel": 3}


@pytest.mark.parametrize("encoder", ["lstm", "gru"])
def test_recurrent_encoders_start_leaning_to_blank_without_a_front_end_bias(encoder):
    m = build_model({**CFG, "encoder": encoder})
    assert m.frontend.proj.bias is None and "frontend.proj.bias" not in m.state_dict()
    p = m.output.bias.detach().softmax(-1)  # the output distribution for a zero encoder state
    assert float(p[0]) == pytest.approx(0.6, abs=1e-6)
    torch.testing.assert_close(p[1:], torch.full((8,), 0.4 / 8))


def test_conformer_keeps_its_front_end_bias_and_plain_init():
    m = build_model({**CFG, "encoder": "conformer"})
    assert m.frontend.proj.bias is not None
    assert float(m.output.bias.detach().softmax(-1)[0]) < 0.5


@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_encoder_input_is_normalized_per_utterance_over_its_own_frames(impl):
    torch.manual_seed(0)
    m = build_model({**CFG, "encoder": "lstm", "impl": impl}).eval()
    seen: dict[str, torch.Tensor] = {}

    def first_input(mod, inp, out) -> None:  # the Dropout is used twice; its first input is the front end's
        seen.setdefault("x", inp[0].detach())

    m.dropout.register_forward_hook(first_input)
    feats = torch.randn(3, 40, 12) * 4 + 2
    lengths = torch.tensor([40, 23, 9])
    _, out_lengths = m(feats, lengths)
    x = seen["x"]  # (B, T', H): what the encoder gets
    for b, n in enumerate(out_lengths.tolist()):
        v = x[b, :n]
        torch.testing.assert_close(v.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
        var = v.var(0, unbiased=False)  # var / (var + eps): 1 up to the eps
        assert torch.all(var > 0.95) and torch.all(var < 1 + 1e-5), var
        assert torch.all(x[b, n:] == 0)
    # the same for an utterance alone as padded in the batch
    seen.clear()
    m(feats[1:2, :23], lengths[1:2])
    torch.testing.assert_close(seen["x"][0], x[1, :int(out_lengths[1])], atol=1e-5, rtol=1e-5)
