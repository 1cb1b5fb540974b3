"""load_model: exp dir round trip, impl override, cross-impl greedy decoding, clear errors."""
from __future__ import annotations

import pytest
import torch
import yaml

from asrkit.errors import ConfigError, InputError
from asrkit.models import build_model, load_model
from asrkit.nn.search import ctc_greedy

MODEL = {"type": "ctc", "impl": "scratch", "input_dim": 6, "num_classes": 6, "subsampling": 2,
         "encoder": "lstm", "hidden": 8, "layers": 2, "dropout": 0.1, "conv_channels": 4}


def _exp_dir(tmp_path, model_cfg, state, name="best"):
    """A fake exp dir as `asrkit train` writes it: config.yaml + checkpoints/<name>.pt."""
    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True, exist_ok=True)
    config = {"task": "ctc", "model": model_cfg, "units": {"kind": "phone"}, "data": {"cmvn": "global"}}
    (exp / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    torch.save({"model": state, "epoch": 3, "step": 120, "optimizer": {"state": {}}, "config": config},
               exp / "checkpoints" / f"{name}.pt")
    return exp


def _trained(cfg, steps=15):
    """A model moved off its init by a few steps (BatchNorm running stats too)."""
    torch.manual_seed(0)
    model = build_model(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, lengths = torch.randn(3, 15, cfg["input_dim"]), torch.tensor([15, 12, 7])
    labels = torch.randint(1, cfg["num_classes"], (3, 15))  # push frames away from blank
    for _ in range(steps):
        opt.zero_grad()
        logits, _ = model(x, lengths)
        T = logits.shape[1]
        torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, :T]).backward()
        opt.step()
    return model.eval()


def _greedy(model, feats, lengths):
    with torch.no_grad():
        logits, out_lengths = model(feats, lengths)
    return ctc_greedy(logits.log_softmax(-1), out_lengths)[0], logits


def test_round_trip_through_exp_dir(tmp_path):
    model = _trained(MODEL)
    exp = _exp_dir(tmp_path, MODEL, model.state_dict())
    loaded, config = load_model(exp)
    assert not loaded.training
    assert config["task"] == "ctc" and config["model"]["encoder"] == "lstm"
    assert config["model"]["impl"] == "scratch" and loaded.impl == "scratch"
    feats, lengths = torch.randn(2, 11, 6), torch.tensor([11, 8])
    with torch.no_grad():
        assert torch.equal(model(feats, lengths)[0], loaded(feats, lengths)[0])


@pytest.mark.parametrize("cfg", [
    MODEL,
    {**MODEL, "encoder": "gru", "subsampling": 4},
    {**MODEL, "encoder": "conformer", "heads": 2, "conv_kernel": 3, "layers": 1},
    {"type": "frame_mlp", "impl": "scratch", "input_dim": 6, "num_classes": 6, "context": 2, "hidden": [10, 10],
     "dropout": 0.1},
])
@pytest.mark.parametrize("saved_with, decode_with", [("scratch", "native"), ("native", "scratch")])
def test_checkpoint_of_one_impl_decodes_the_same_with_the_other(tmp_path, cfg, saved_with, decode_with):
    cfg = {**cfg, "impl": saved_with}
    model = _trained(cfg)
    exp = _exp_dir(tmp_path, cfg, model.state_dict(), name="last")
    other, config = load_model(exp, checkpoint="last", impl=decode_with)
    assert other.impl == decode_with and config["model"]["impl"] == decode_with
    assert all(getattr(m, "impl", decode_with) == decode_with for m in other.modules())
    feats, lengths = torch.randn(4, 21, 6), torch.tensor([21, 16, 9, 3])
    hyp_a, logits_a = _greedy(model, feats, lengths)
    hyp_b, logits_b = _greedy(other, feats, lengths)
    torch.testing.assert_close(logits_a, logits_b, rtol=1e-4, atol=1e-5)
    assert hyp_a == hyp_b
    assert any(hyp_a), "a trained model should emit something"


def test_checkpoint_given_as_a_path(tmp_path):
    model = _trained(MODEL, steps=1)
    exp = _exp_dir(tmp_path, MODEL, model.state_dict(), name="epoch-1")
    loaded, _ = load_model(exp, checkpoint=str(exp / "checkpoints" / "epoch-1.pt"))
    assert torch.equal(loaded.output.weight, model.output.weight)


def test_missing_config(tmp_path):
    with pytest.raises(InputError, match="config.yaml: no such file"):
        load_model(tmp_path)


def test_missing_checkpoint_lists_the_ones_there(tmp_path):
    exp = _exp_dir(tmp_path, MODEL, build_model(MODEL).state_dict(), name="epoch-2")
    with pytest.raises(InputError, match=r"best\.pt: no such checkpoint \(found: epoch-2\)"):
        load_model(exp)


def test_weights_that_do_not_fit_the_config(tmp_path):
    exp = _exp_dir(tmp_path, {**MODEL, "hidden": 12}, build_model(MODEL).state_dict())
    with pytest.raises(InputError, match="weights do not fit the model"):
        load_model(exp)


def test_corrupt_checkpoint_and_bad_contents(tmp_path):
    exp = _exp_dir(tmp_path, MODEL, build_model(MODEL).state_dict())
    (exp / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_model(exp)
    torch.save({"weights": 1}, exp / "checkpoints" / "best.pt")
    with pytest.raises(InputError, match="has no 'model' state_dict"):
        load_model(exp)


def test_bad_model_section_names_the_file_and_key(tmp_path):
    exp = _exp_dir(tmp_path, {**MODEL, "hiden": 3}, {})
    with pytest.raises(ConfigError, match=r"config\.yaml: model\.hiden: unknown key"):
        load_model(exp)
    with pytest.raises(ConfigError, match="impl"):
        load_model(_exp_dir(tmp_path, MODEL, build_model(MODEL).state_dict()), impl="fast")
    (tmp_path / "exp" / "config.yaml").write_text("task: ctc\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'model' section"):
        load_model(tmp_path / "exp")


@pytest.mark.parametrize("cfg", [
    {"type": "las", "impl": "scratch", "input_dim": 6, "num_classes": 6, "listener_hidden": 6, "pyramid_layers": 2,
     "attention_dim": 5, "location_channels": 2, "location_kernel": 3, "embed_dim": 5, "speller_hidden": 7,
     "ctc_weight": 0.5},
    {"type": "transformer", "impl": "native", "input_dim": 6, "num_classes": 6, "hidden": 8, "heads": 2,
     "encoder_layers": 1, "decoder_layers": 2, "conv_channels": 2},
    {"type": "transformer", "impl": "scratch", "input_dim": 6, "num_classes": 6, "encoder": "conformer", "hidden": 8,
     "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "conv_channels": 2, "conv_kernel": 3},
], ids=["las", "transformer", "conformer"])
def test_attention_model_round_trip_with_the_other_impl(tmp_path, cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # move every weight off its init (BatchNorm statistics too)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        saved = model.state_dict()
        for name, b in model.named_buffers():
            if b.is_floating_point() and name in saved:  # not the positional tables (not saved)
                b.add_(0.1 * torch.rand_like(b))
    model.eval()
    exp = _exp_dir(tmp_path, cfg, model.state_dict())
    other_impl = "native" if cfg["impl"] == "scratch" else "scratch"
    loaded, config = load_model(exp, impl=other_impl)
    assert type(loaded) is type(model) and loaded.impl == other_impl and config["model"]["type"] == cfg["type"]
    assert loaded.has_ctc == model.has_ctc and loaded.subsampling == model.subsampling
    feats, lengths = torch.randn(2, 19, 6), torch.tensor([19, 11])
    targets, tlens = torch.tensor([1, 2, 3, 5, 4]), torch.tensor([3, 2])
    with torch.no_grad():
        a, b = model(feats, lengths, targets, tlens), loaded(feats, lengths, targets, tlens)
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.attention, b.attention, rtol=1e-4, atol=1e-5)
    if model.has_ctc:
        torch.testing.assert_close(a.ctc_logits, b.ctc_logits, rtol=1e-4, atol=1e-5)
