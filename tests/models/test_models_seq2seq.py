"""The attention models (LAS, joint CTC/attention Transformer): config, shapes, scratch/native
parity, padding, teacher forcing, and step-by-step decoding against the teacher-forced pass."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from asrkit.errors import ConfigError
from asrkit.models import (
    EOS, LAS, SOS, Encoded, Seq2SeqModel, TransformerS2S, build_model, resolve_model_config,
)
from asrkit.models.seq2seq import IGNORE_ID, decoder_targets
from asrkit.nn import Module as AsrkitModule
from asrkit.nn import set_impl

C = 7
BASE = {"impl": "scratch", "input_dim": 6, "num_classes": C, "dropout": 0.0}
LAS_BASE = {**BASE, "type": "las", "listener_hidden": 5, "pyramid_layers": 2, "attention_dim": 6,
            "location_channels": 3, "location_kernel": 5, "embed_dim": 5, "speller_hidden": 7}
TRF_BASE = {**BASE, "type": "transformer", "hidden": 8, "heads": 2, "ff_mult": 2, "encoder_layers": 2,
            "decoder_layers": 2, "conv_channels": 3}
CASES = {
    "las_location": {**LAS_BASE, "attention": "location"},
    "las_dot": {**LAS_BASE, "attention": "dot", "speller_layers": 2, "locked_dropout": False},
    "las_scaled_conv_ctc": {**LAS_BASE, "attention": "scaled_dot", "frontend": "conv2d", "conv_channels": 3,
                            "pyramid_layers": 1, "listener_layers": 2, "ctc_weight": 0.3},
    "transformer": TRF_BASE,
    "conformer": {**TRF_BASE, "encoder": "conformer", "conv_kernel": 3},
    "conformer_abs": {**TRF_BASE, "encoder": "conformer", "conv_kernel": 3, "pos_enc": "abs", "subsampling": 2},
}
LENGTHS = [23, 17, 9, 4]  # odd and even; 4 frames is one encoder frame after x8
TARGETS = [[1, 2, 3, 4], [5, 5, 2], [6, 1], [3]]


def _batch(dtype=torch.float64, fill: float = 0.0):
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor(LENGTHS)
    feats = torch.randn(len(LENGTHS), max(LENGTHS), 6, generator=g, dtype=dtype)
    feats[torch.arange(max(LENGTHS))[None, :] >= lengths[:, None]] = fill
    targets = torch.tensor([u for t in TARGETS for u in t])
    return feats, lengths, targets, torch.tensor([len(t) for t in TARGETS])


def _model(name: str, **change):
    torch.manual_seed(0)
    return build_model({**CASES[name], **change}).double()


# ---------------------------------------------------------------- config and build


def test_defaults_build_and_resolve_twice():
    las = build_model({"type": "las", "input_dim": 10, "num_classes": 5})
    assert isinstance(las, LAS) and isinstance(las, Seq2SeqModel)
    assert las.subsampling == 8 and not las.has_ctc and las.ctc is None
    assert las.config["attention"] == "location" and las.config["ctc_weight"] == 0.0
    assert las.config["tf_start"] == 1.0 and las.config["tf_end"] == 0.8 and las.config["tf_decay_epochs"] == 10
    assert las.config["label_smoothing"] == 0.1
    trf = build_model({"type": "transformer", "input_dim": 10, "num_classes": 5})
    assert isinstance(trf, TransformerS2S) and trf.subsampling == 4 and trf.has_ctc
    assert trf.config["encoder"] == "transformer" and trf.config["ctc_weight"] == 0.3
    for m in (las, trf):
        assert resolve_model_config(m.config) == m.config
    assert build_model({"type": "las", "input_dim": 10, "num_classes": 5, "frontend": "conv2d",
                        "frontend_subsampling": 4, "pyramid_layers": 2}).subsampling == 16
    assert not build_model({"type": "transformer", "input_dim": 10, "num_classes": 5, "ctc_weight": 0}).has_ctc
    assert build_model({"type": "las", "input_dim": 10, "num_classes": 5, "ctc_weight": 0.2}).has_ctc
    assert SOS == EOS == 0


@pytest.mark.parametrize("change, key", [
    ({"attention": "additive"}, "model.attention"),
    ({"frontend": "vgg"}, "model.frontend"),
    ({"frontend_subsampling": 3}, "model.frontend_subsampling"),
    ({"pyramid_layers": -1}, "model.pyramid_layers"),
    ({"listener_layers": 0}, "model.listener_layers"),
    ({"listener_hidden": 2.5}, "model.listener_hidden"),
    ({"locked_dropout": "yes"}, "model.locked_dropout"),
    ({"location_kernel": 4}, "model.location_kernel"),
    ({"location_channels": 0}, "model.location_channels"),
    ({"attention_dim": None}, "model.attention_dim"),
    ({"speller_layers": 0}, "model.speller_layers"),
    ({"embed_dim": True}, "model.embed_dim"),
    ({"ctc_weight": 1.0}, "model.ctc_weight"),
    ({"label_smoothing": -0.1}, "model.label_smoothing"),
    ({"tf_start": 1.5}, "model.tf_start"),
    ({"tf_end": "low"}, "model.tf_end"),
    ({"tf_decay_epochs": -2}, "model.tf_decay_epochs"),
    ({"num_classes": 1}, "model.num_classes"),
    ({"encoder_layers": 2}, "model.encoder_layers"),     # a transformer key in a las config
    ({"hidden": 8}, "model.hidden"),
])
def test_bad_las_config_names_the_key(change, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_model({**LAS_BASE, **change})


@pytest.mark.parametrize("change, key", [
    ({"encoder": "lstm"}, "model.encoder"),
    ({"subsampling": 8}, "model.subsampling"),
    ({"hidden": 0}, "model.hidden"),
    ({"heads": 3}, "model.heads"),                        # does not divide 8
    ({"ff_mult": -1}, "model.ff_mult"),
    ({"encoder_layers": 0}, "model.encoder_layers"),
    ({"decoder_layers": "two"}, "model.decoder_layers"),
    ({"encoder": "conformer", "conv_kernel": 4}, "model.conv_kernel"),
    ({"encoder": "conformer", "pos_enc": "rope"}, "model.pos_enc"),
    ({"ctc_weight": 2}, "model.ctc_weight"),
    ({"label_smoothing": 1}, "model.label_smoothing"),
    ({"tf_end": 0.5}, "model.tf_end"),                    # a las key in a transformer config
    ({"dropout": 1.0}, "model.dropout"),
])
def test_bad_transformer_config_names_the_key(change, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_model({**TRF_BASE, **change})


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("impl", ["scratch", "native"])
def test_every_layer_is_an_asrkit_layer_with_the_configured_impl(name, impl):
    model = build_model({**CASES[name], "impl": impl})
    for sub_name, m in model.named_modules():
        if isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList)):
            continue
        assert isinstance(m, AsrkitModule), f"{sub_name} is {type(m).__name__}, not an asrkit.nn layer"
        assert m.impl == impl, sub_name


def test_decoder_targets():
    inputs, outputs = decoder_targets(torch.tensor([4, 5, 6, 1]), torch.tensor([3, 0, 1]), num_classes=7)
    assert inputs.tolist() == [[SOS, 4, 5, 6], [SOS, EOS, EOS, EOS], [SOS, 1, EOS, EOS]]
    assert outputs.tolist() == [[4, 5, 6, EOS], [EOS] + [IGNORE_ID] * 3, [1, EOS] + [IGNORE_ID] * 2]
    with pytest.raises(ValueError, match="add up"):
        decoder_targets(torch.tensor([1, 2]), torch.tensor([1]))
    with pytest.raises(ValueError, match="0 is <sos>"):
        decoder_targets(torch.tensor([1, 0]), torch.tensor([2]), num_classes=7)
    with pytest.raises(ValueError, match=r"1 \.\. 6"):
        decoder_targets(torch.tensor([7]), torch.tensor([1]), num_classes=7)


# ---------------------------------------------------------------- shapes and lengths


@pytest.mark.parametrize("name", list(CASES))
def test_output_shapes_and_lengths(name):
    model = _model(name).eval()
    feats, lengths, targets, tlens = _batch()
    out = model(feats, lengths, targets, tlens)
    B, U = len(TARGETS), max(map(len, TARGETS))
    S = int(out.enc_lengths.max())
    assert out.logits.shape == (B, U + 1, C) and out.targets.shape == (B, U + 1)
    assert out.attention.shape == (B, U + 1, S) and not out.attention.requires_grad
    assert torch.equal(out.enc_lengths, model.output_lengths(lengths))
    sub = model.subsampling
    if name.startswith("las") and CASES[name].get("frontend") != "conv2d":
        assert out.enc_lengths.tolist() == [math.ceil(n / sub) for n in LENGTHS]
    assert (out.ctc_logits is not None) == model.has_ctc
    if model.has_ctc:
        assert out.ctc_logits.shape == (B, S, C)
    # attention rows are distributions over each utterance's own frames
    for b, n in enumerate(out.enc_lengths.tolist()):
        rows = out.attention[b, : len(TARGETS[b]) + 1]
        torch.testing.assert_close(rows.sum(-1), torch.ones(len(rows), dtype=torch.float64))
        assert not rows[:, n:].any()


def test_las_pyramid_odd_lengths_and_single_frames():
    model = _model("las_location", pyramid_layers=3).eval()
    lengths = torch.tensor([1, 2, 3, 9, 15, 16, 17])
    feats = torch.randn(len(lengths), 17, 6, dtype=torch.float64)
    enc = model.encode(feats, lengths)
    assert enc.lengths.tolist() == [math.ceil(n / 8) for n in lengths.tolist()]
    assert enc.memory.shape == (7, 3, 10)
    assert not enc.memory[0, 1:].any() and not enc.memory[4, 2:].any()  # zeros past each length


# ---------------------------------------------------------------- scratch vs native


def _run(model, batch, tf_rate=1.0, seed=5):
    feats, lengths, targets, tlens = batch
    feats = feats.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = model(feats, lengths, targets, tlens, **({"tf_rate": tf_rate} if tf_rate != 1.0 else {}))
    g = torch.Generator().manual_seed(2)
    w = torch.randn(out.logits.shape, generator=g, dtype=out.logits.dtype)
    loss = (out.logits * w * (out.targets != IGNORE_ID)[..., None]).sum()
    if out.ctc_logits is not None:
        valid = torch.arange(out.ctc_logits.shape[1])[None, :] < out.enc_lengths[:, None]
        loss = loss + (out.ctc_logits.sin() * valid[..., None]).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, feats.grad.clone(), grads


@pytest.mark.parametrize("name, tf_rate", [(n, 1.0) for n in CASES] + [("las_location", 0.5)])
def test_scratch_and_native_agree_on_outputs_and_gradients(name, tf_rate):
    scratch = _model(name).train()  # train mode: the conformer's BatchNorm uses batch statistics
    native = set_impl(copy.deepcopy(scratch), "native")
    batch = _batch()
    os_, gxs, gs = _run(scratch, batch, tf_rate)
    on, gxn, gn = _run(native, batch, tf_rate)
    tol = {"rtol": 1e-8, "atol": 1e-10}
    torch.testing.assert_close(os_.logits, on.logits, **tol)
    torch.testing.assert_close(os_.attention, on.attention, **tol)
    assert torch.equal(os_.targets, on.targets) and torch.equal(os_.enc_lengths, on.enc_lengths)
    if scratch.has_ctc:
        torch.testing.assert_close(os_.ctc_logits, on.ctc_logits, **tol)
    torch.testing.assert_close(gxs, gxn, **tol)
    assert gs.keys() == gn.keys() == {n for n, _ in scratch.named_parameters()}
    for key in gs:
        torch.testing.assert_close(gs[key], gn[key], **tol, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.parametrize("name", ["las_location", "transformer"])
def test_scratch_and_native_agree_in_float32(name):
    scratch = _model(name).float().eval()
    native = set_impl(copy.deepcopy(scratch), "native")
    feats, lengths, targets, tlens = _batch(torch.float32)
    with torch.no_grad():
        a = scratch(feats, lengths, targets, tlens)
        b = native(feats, lengths, targets, tlens)
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize("name", list(CASES))
def test_padding_does_not_change_an_utterance(name):
    model = _model(name).eval()
    feats, lengths, targets, tlens = _batch(fill=1e3)  # loud garbage in the padding
    with torch.no_grad():
        out = model(feats, lengths, targets, tlens)
        start = 0
        for b, n in enumerate(LENGTHS):
            t = targets[start: start + len(TARGETS[b])]
            start += len(TARGETS[b])
            alone = model(feats[b: b + 1, :n], lengths[b: b + 1], t, tlens[b: b + 1])
            k, s = len(TARGETS[b]) + 1, int(alone.enc_lengths)
            torch.testing.assert_close(out.logits[b, :k], alone.logits[0], rtol=1e-9, atol=1e-10)
            torch.testing.assert_close(out.attention[b, :k, :s], alone.attention[0], rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------- teacher forcing


def test_las_teacher_forcing_rate():
    model = _model("las_location").eval()
    batch = _batch()
    feats, lengths, targets, tlens = batch
    with torch.no_grad():
        full = model(*batch)
        torch.manual_seed(3)
        state = torch.get_rng_state()
        again = model(*batch, tf_rate=1.0)
        assert torch.equal(state, torch.get_rng_state())  # rate 1 draws nothing
        torch.testing.assert_close(full.logits, again.logits, rtol=0, atol=0)
        torch.manual_seed(3)
        half_a = model(*batch, tf_rate=0.3)
        torch.manual_seed(3)
        half_b = model(*batch, tf_rate=0.3)
        torch.testing.assert_close(half_a.logits, half_b.logits, rtol=0, atol=0)  # the same draws
        assert not torch.allclose(half_a.logits, full.logits)
        # rate 0: every input after SOS is the model's own argmax: greedy decoding's logits
        own = model(*batch, tf_rate=0.0)
        enc = model.encode(feats, lengths)
        st = model.init_state(enc)
        tokens = torch.full((len(LENGTHS),), SOS)
        for u in range(own.logits.shape[1]):
            logp, st, _ = model.step(enc, st, tokens)
            torch.testing.assert_close(logp, own.logits[:, u].log_softmax(-1).float(), rtol=1e-5, atol=1e-6)
            tokens = logp.argmax(-1)
    with pytest.raises(ValueError, match="tf_rate"):
        model(*batch, tf_rate=1.5)
    with pytest.raises(ValueError, match="tf_rate"):
        _model("transformer")(*batch, tf_rate=0.9)


# ---------------------------------------------------------------- step == forward


def _stepped(model, enc: Encoded, inputs: torch.Tensor, state=None):
    """Feed the teacher-forced inputs one step at a time: (log_probs (N, L, C), attention (N, L, S))."""
    state = model.init_state(enc) if state is None else state
    logps, atts = [], []
    for u in range(inputs.shape[1]):
        logp, state, att = model.step(enc, state, inputs[:, u])
        assert logp.dtype == torch.float32 and att.shape == enc.memory.shape[:2]
        logps.append(logp)
        atts.append(att)
    return torch.stack(logps, 1), torch.stack(atts, 1), state


@pytest.mark.parametrize("name", list(CASES))
def test_step_reproduces_teacher_forced_forward(name):
    model = _model(name).eval()
    feats, lengths, targets, tlens = _batch()
    inputs, _ = decoder_targets(targets, tlens)
    with torch.no_grad():
        out = model(feats, lengths, targets, tlens)
        ref = out.logits.log_softmax(-1).float()  # (B, U+1, C)
        enc = model.encode(feats, lengths)
        logp, att, _ = _stepped(model, enc, inputs)
        for b, t in enumerate(TARGETS):
            k = len(t) + 1  # rows past EOS are padding
            torch.testing.assert_close(logp[b, :k], ref[b, :k], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(att[b, :k], out.attention[b, :k].float(), rtol=1e-5, atol=1e-6, check_dtype=False)
        # beams: rows repeated and reordered with Encoded.index, before the first step ...
        idx = torch.tensor([2, 0, 0, 3, 1, 2])
        logp2, att2, _ = _stepped(model, enc.index(idx), inputs[idx])
        torch.testing.assert_close(logp2, logp[idx], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(att2, att[idx], rtol=1e-6, atol=1e-6)
        # ... and in the middle of decoding with select_state
        state = model.init_state(enc)
        for u in range(2):
            _, state, _ = model.step(enc, state, inputs[:, u])
        state = model.select_state(state, idx)
        logp3, _, _ = _stepped(model, enc.index(idx), inputs[idx, 2:], state)
        torch.testing.assert_close(logp3, logp[idx, 2:], rtol=1e-6, atol=1e-6)


def test_encoded_index_keeps_ctc_logits():
    model = _model("transformer").eval()
    feats, lengths, _, _ = _batch()
    with torch.no_grad():
        enc = model.encode(feats, lengths)
    sub = enc.index(torch.tensor([3, 1]))
    assert torch.equal(sub.memory, enc.memory[[3, 1]]) and sub.lengths.tolist() == enc.lengths[[3, 1]].tolist()
    assert torch.equal(sub.ctc_logits, enc.ctc_logits[[3, 1]])
    assert torch.equal(sub.padding_mask, enc.padding_mask[[3, 1]])


# ---------------------------------------------------------------- torch.nn twins


def _twin(m):
    """The torch.nn layer with the same hyperparameters as an asrkit layer (None: no twin)."""
    import asrkit.nn as nn

    if isinstance(m, nn.LSTM):
        return torch.nn.LSTM(m.input_size, m.hidden_size, m.num_layers, batch_first=m.batch_first,
                             bidirectional=m.bidirectional)
    if isinstance(m, nn.LSTMCell):
        return torch.nn.LSTMCell(m.input_size, m.hidden_size)
    if isinstance(m, nn.TransformerEncoderLayer):
        return torch.nn.TransformerEncoderLayer(m.linear1.in_features, m.self_attn.num_heads,
                                                m.linear1.out_features, 0.0, batch_first=True, norm_first=True)
    if isinstance(m, nn.TransformerDecoderLayer):
        return torch.nn.TransformerDecoderLayer(m.linear1.in_features, m.self_attn.num_heads,
                                                m.linear1.out_features, 0.0, batch_first=True, norm_first=True)
    if isinstance(m, nn.Embedding):
        return torch.nn.Embedding(m.num_embeddings, m.embedding_dim)
    return None


@pytest.mark.parametrize("name", ["las_dot", "transformer"])
def test_layers_load_into_their_torch_twins(name):
    model = _model(name).float().eval()
    twins = 0
    for sub_name, m in model.named_modules():
        twin = _twin(m)
        if twin is None:
            continue
        twin.load_state_dict(m.state_dict())  # strict: the same names and shapes
        twin.eval()
        twins += 1
        with torch.no_grad():
            if isinstance(twin, torch.nn.LSTM):
                x = torch.randn(2, 5, m.input_size)
                torch.testing.assert_close(m(x)[0], twin(x)[0], rtol=1e-4, atol=1e-5, msg=sub_name)
            elif isinstance(twin, torch.nn.LSTMCell):
                x = torch.randn(3, m.input_size)
                torch.testing.assert_close(m(x)[0], twin(x)[0], rtol=1e-4, atol=1e-5, msg=sub_name)
            elif isinstance(twin, torch.nn.TransformerDecoderLayer):
                x, mem = torch.randn(2, 4, twin.linear1.in_features), torch.randn(2, 6, twin.linear1.in_features)
                causal = torch.ones(4, 4, dtype=torch.bool).triu(1)
                torch.testing.assert_close(m(x, mem, tgt_mask=causal), twin(x, mem, tgt_mask=causal),
                                           rtol=1e-4, atol=1e-5, msg=sub_name)
    assert twins >= (4 if name == "las_dot" else 5)


# ---------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("conf, kind", [("las.yaml", LAS), ("transformer.yaml", TransformerS2S),
                                        ("conformer_transformer.yaml", TransformerS2S)])
def test_shipped_configs_build(conf, kind):
    from pathlib import Path

    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "conf" / conf).read_text())
    assert cfg["task"] == cfg["model"]["type"] and cfg["units"]["kind"] == "char"
    resolved = resolve_model_config({**cfg["model"], "input_dim": 80, "num_classes": 32})
    model = build_model(resolved)
    assert isinstance(model, kind) and model.impl == "scratch"
