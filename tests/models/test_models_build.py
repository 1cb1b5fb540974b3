"""build_model: config checks, output shapes, the out_lengths rule, layers from asrkit.nn only."""
from __future__ import annotations

import math

import pytest
import torch

from asrkit.errors import ConfigError, DataError
from asrkit.models import (
    CTCModel, FrameMLP, build_model, context_window, resolve_model_config, subsampled_lengths,
)
from asrkit.nn import Module as AsrkitModule

FRAME = {"type": "frame_mlp", "impl": "scratch", "input_dim": 6, "num_classes": 7, "context": 2,
         "hidden": [16, 8], "dropout": 0.0}
CTC = {"type": "ctc", "impl": "scratch", "input_dim": 10, "num_classes": 5, "subsampling": 4,
       "encoder": "lstm", "hidden": 8, "layers": 2, "dropout": 0.0}


# ---------------------------------------------------------------- config


def test_defaults_are_filled_and_resolved_config_is_kept():
    m = build_model({"type": "ctc", "input_dim": 10, "num_classes": 5})
    assert isinstance(m, CTCModel)
    assert m.config["encoder"] == "lstm" and m.config["subsampling"] == 4 and m.config["impl"] == "scratch"
    assert m.subsampling == 4
    f = build_model({"type": "frame_mlp", "input_dim": 4, "num_classes": 3, "hidden": 12, "layers": 2})
    assert isinstance(f, FrameMLP) and f.subsampling == 1
    assert f.config["hidden"] == [12, 12] and f.config["layers"] == 2
    # resolving twice changes nothing (the trainer saves the resolved form)
    assert resolve_model_config(f.config) == f.config
    assert resolve_model_config(m.config) == m.config


@pytest.mark.parametrize("change, key", [
    ({"hiddn": 4}, "model.hiddn"),                      # unknown key
    ({"type": "rnnt"}, "model.type"),                   # unknown type
    ({"impl": "cuda"}, "model.impl"),
    ({"input_dim": 0}, "model.input_dim"),
    ({"num_classes": 1}, "model.num_classes"),          # CTC needs blank + one unit
    ({"subsampling": 3}, "model.subsampling"),
    ({"encoder": "transformer"}, "model.encoder"),
    ({"hidden": "big"}, "model.hidden"),
    ({"layers": True}, "model.layers"),
    ({"dropout": 1.0}, "model.dropout"),
    ({"conv_channels": -1}, "model.conv_channels"),
    ({"encoder": "conformer", "heads": 3}, "model.heads"),       # 3 does not divide 8
    ({"encoder": "conformer", "conv_kernel": 4}, "model.conv_kernel"),
    ({"encoder": "conformer", "pos_enc": "rope"}, "model.pos_enc"),
    ({"encoder": "conformer", "ff_mult": 0}, "model.ff_mult"),
    ({"context": 3}, "model.context"),                  # a frame_mlp key in a ctc config
])
def test_bad_ctc_config_names_the_key(change, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_model({**CTC, **change})


@pytest.mark.parametrize("change, key", [
    ({"context": -1}, "model.context"),
    ({"hidden": []}, "model.hidden"),
    ({"hidden": [8, 0]}, "model.hidden"),
    ({"hidden": [8, 8], "layers": 3}, "model.layers"),
    ({"encoder": "lstm"}, "model.encoder"),             # a ctc key in a frame config
])
def test_bad_frame_config_names_the_key(change, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_model({**FRAME, **change})


@pytest.mark.parametrize("missing", ["type", "input_dim", "num_classes"])
def test_missing_required_key(missing):
    cfg = dict(CTC)
    del cfg[missing]
    with pytest.raises(ConfigError, match=f"model.{missing}: missing"):
        build_model(cfg)


def test_config_error_is_a_usage_error():
    with pytest.raises(ConfigError) as info:
        build_model("lstm")
    assert info.value.exit_code == 2


@pytest.mark.parametrize("cfg", [
    FRAME,
    CTC,
    {**CTC, "encoder": "gru"},
    {**CTC, "encoder": "conformer", "heads": 2, "conv_kernel": 3},
    {**CTC, "encoder": "conformer", "heads": 2, "conv_kernel": 3, "pos_enc": "abs"},
])
@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_every_layer_is_an_asrkit_layer_with_the_configured_impl(cfg, impl):
    model = build_model({**cfg, "impl": impl})
    assert model.impl == impl
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList)):
            continue
        assert isinstance(m, AsrkitModule), f"{name} is {type(m).__name__}, not an asrkit.nn layer"
        assert m.impl == impl, name


# ---------------------------------------------------------------- shapes and lengths


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 7, 8, 9, 30, 31])
def test_subsampled_lengths_rule(T):
    t = torch.tensor([T])
    assert int(subsampled_lengths(t, 2)) == math.ceil(T / 2)
    assert int(subsampled_lengths(t, 4)) == math.ceil(T / 4)


@pytest.mark.parametrize("encoder", ["lstm", "gru", "conformer"])
@pytest.mark.parametrize("sub", [2, 4])
def test_ctc_output_shapes_and_lengths(encoder, sub):
    torch.manual_seed(0)
    model = build_model({**CTC, "encoder": encoder, "subsampling": sub, "heads": 2, "conv_kernel": 3}).eval()
    lengths = torch.tensor([13, 1, 6, 9])  # odd, a single frame, even
    feats = torch.randn(4, 13, 10)
    logits, out_lengths = model(feats, lengths)
    want = [math.ceil(n / sub) for n in lengths.tolist()]
    assert out_lengths.tolist() == want
    assert out_lengths.dtype == torch.int64
    assert torch.equal(model.output_lengths(lengths), out_lengths)
    assert logits.shape == (4, math.ceil(13 / sub), 5)
    assert torch.isfinite(logits).all()


def test_frame_output_shapes_and_padding_logits_are_zero():
    model = build_model(FRAME).eval()
    lengths = torch.tensor([5, 2])
    logits, out_lengths = model(torch.randn(2, 5, 6), lengths)
    assert logits.shape == (2, 5, 7)
    assert out_lengths.tolist() == [5, 2]
    assert torch.all(logits[1, 2:] == 0)


def test_context_window_zero_pads_at_utterance_edges():
    # utterance 0: frames 1, 2, 3; utterance 1: frame 10 then padding filled with 99 (must not leak)
    feats = torch.tensor([[[1.0], [2.0], [3.0]], [[10.0], [99.0], [99.0]]])
    win = context_window(feats, torch.tensor([3, 1]), 1)  # (2, 3, 3): t-1, t, t+1
    assert win[0].tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 0]]
    assert win[1, 0].tolist() == [0, 10, 0]
    assert context_window(feats, torch.tensor([3, 1]), 0)[1, :, 0].tolist() == [10, 0, 0]


def test_feature_dim_mismatch_is_a_data_error():
    model = build_model(CTC)
    with pytest.raises(DataError, match="10-dim features"):
        model(torch.randn(1, 8, 13), torch.tensor([8]))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.randn(2, 8, 10), torch.tensor([8, 9]))
