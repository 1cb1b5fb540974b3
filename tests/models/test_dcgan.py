"""The DCGAN model: shapes per image size, the phases' gradients, scratch = native, config checks."""
from __future__ import annotations

import pytest
import torch

from asrkit.errors import ConfigError
from asrkit.models import build_model, resolve_model_config
from asrkit.nn import set_impl


def _cfg(**kw):
    return {"type": "dcgan", "in_channels": 1, "image_size": 28, "nz": 8, "g_channels": 8, "d_channels": 8, **kw}


@pytest.mark.parametrize("size,channels,layers,base", [(28, 1, 2, 7), (32, 3, 3, 4), (64, 3, 4, 4), (16, 1, 2, 4)])
def test_shapes_and_auto_layers(size, channels, layers, base):
    m = build_model(_cfg(image_size=size, in_channels=channels))
    assert m.config["layers"] == layers and m.base == base
    x = m(torch.randn(5, 8))
    assert x.shape == (5, channels, size, size) and x.abs().max() <= 1
    assert m.discriminate(x).shape == (5,)


def test_paper_init():
    torch.manual_seed(0)
    m = build_model(_cfg(g_channels=32, d_channels=32))
    w = m.generator.net[0].weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.003 and abs(float(w.mean())) < 0.003
    bn = m.generator.net[1].requires_grad_(False)
    assert abs(float(bn.weight.mean()) - 1) < 0.01 and not bn.bias.any()


def test_the_discriminator_phase_leaves_the_generator_without_gradients():
    m = build_model(_cfg())
    real_logits, fake_logits = m(torch.randn(4, 8), torch.randn(4, 1, 28, 28))
    (real_logits.sum() + fake_logits.sum()).backward()
    assert all(p.grad is None for p in m.generator.parameters())
    assert all(p.grad is not None for p in m.discriminator.parameters())
    m.zero_grad(set_to_none=True)
    m(torch.randn(4, 8), mode="g").sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    with pytest.raises(ValueError, match="mode"):
        m(torch.randn(4, 8), mode="x")


@pytest.mark.parametrize("spectral", [False, True])
def test_scratch_and_native_agree(spectral):
    torch.manual_seed(1)
    a = build_model(_cfg(spectral_norm=spectral))
    b = build_model(_cfg(spectral_norm=spectral, impl="native"))
    b.load_state_dict(a.state_dict())
    z, real = torch.randn(6, 8), torch.randn(6, 1, 28, 28)
    for mode in ("d", "g"):
        oa = a(z, real if mode == "d" else None, mode=mode)
        ob = b(z, real if mode == "d" else None, mode=mode)
        oa = torch.cat(oa) if mode == "d" else oa
        ob = torch.cat(ob) if mode == "d" else ob
        torch.testing.assert_close(oa, ob, atol=1e-5, rtol=1e-4)
        oa.sum().backward()
        ob.sum().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-5, rtol=1e-4, msg=n)
    for (n, ba), bb in zip(a.named_buffers(), b.buffers()):
        torch.testing.assert_close(ba, bb, atol=1e-6, rtol=1e-5, msg=n)
    set_impl(a, "native")  # one state_dict serves both
    assert a.discriminator.net[0].impl == "native"


@pytest.mark.parametrize("over,match", [
    ({"image_size": [28, 32]}, "square images"),
    ({"image_size": 20, "layers": 3}, "model.layers: 20-pixel"),
    ({"layers": 0}, "model.layers: expected an integer >= 1"),
    ({"loss": "wgan"}, "model.loss"),
    ({"spectral_norm": "yes"}, "model.spectral_norm"),
    ({"g_channels": 0}, "model.g_channels"),
    ({"hidden": 3}, "model.hidden: unknown key for a 'dcgan' model"),
])
def test_config_errors_name_the_key(over, match):
    with pytest.raises(ConfigError, match=match):
        resolve_model_config(_cfg(**over))


def test_missing_image_shape_is_one_line():
    with pytest.raises(ConfigError, match="model.in_channels: missing"):
        resolve_model_config({"type": "dcgan", "image_size": 28})
    assert resolve_model_config(_cfg(image_size=[28, 28]))["image_size"] == 28
