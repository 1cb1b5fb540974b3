"""The ResNet face model: shapes, one state_dict for scratch and native (same logits,
embeddings and gradients), the heads, the config checks."""
from __future__ import annotations

import pytest
import torch

from asrkit.errors import ConfigError
from asrkit.models import ResNet, build_model, resolve_model_config
from asrkit.nn import set_impl

SMALL = {"type": "resnet", "in_channels": 3, "image_size": 16, "num_classes": 5, "channels": [4, 8],
         "blocks": [1, 2], "embed_dim": 6}


def _images(n=6, seed=0):
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("head", ["softmax", "arcface", "cosface"])
def test_shapes_and_scratch_native_parity(head):
    torch.manual_seed(0)
    a = build_model({**SMALL, "head": head})
    b = build_model({**SMALL, "head": head, "impl": "native"})
    b.load_state_dict(a.state_dict())
    x, y = _images(), torch.tensor([0, 1, 2, 3, 4, 0])
    la, lb = a(x, y), b(x, y)
    assert la.shape == (6, 5)
    torch.testing.assert_close(la, lb, atol=1e-4, rtol=1e-4)
    torch.nn.functional.cross_entropy(la, y).backward()
    torch.nn.functional.cross_entropy(lb, y).backward()
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    for k in pa:
        torch.testing.assert_close(pa[k].grad, pb[k].grad, atol=1e-4, rtol=1e-3, msg=k)
    a.eval(), b.eval()
    e = a.embed(x, normalize=True)
    assert e.shape == (6, 6)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(e, b.embed(x, normalize=True), atol=1e-5, rtol=1e-4)


def test_margin_only_with_labels_and_blocks_start_as_identity():
    torch.manual_seed(0)
    m = build_model({**SMALL, "head": "arcface", "margin": 0.5}).eval()
    x, y = _images(), torch.arange(6) % 5
    plain, margin = m(x), m(x, y)
    rows = torch.arange(6)
    assert torch.all(margin[rows, y] < plain[rows, y])          # the target logit lowered
    other = torch.ones_like(plain, dtype=torch.bool)
    other[rows, y] = False
    torch.testing.assert_close(margin[other], plain[other])
    for block in m.stages:
        assert not block.bn2.weight.any()


def test_set_impl_switches_every_layer():
    m = build_model(SMALL)
    set_impl(m, "native")
    assert all(getattr(mod, "impl", "native") == "native" for mod in m.modules())
    assert isinstance(m, ResNet) and m.config["image_size"] == 16


@pytest.mark.parametrize("bad,match", [
    ({"channels": [4, 8], "blocks": [1]}, "model.blocks"),
    ({"head": "sphere"}, "model.head"),
    ({"image_size": 4}, "model.image_size"),
    ({"stem_stride": 3}, "model.stem_stride"),
    ({"margin": -0.1}, "model.margin"),
    ({"hidden": 3}, "model.hidden: unknown key"),
    ({"image_size": 16, "channels": [4, 8, 8, 8, 8], "blocks": [1] * 5}, "total stride"),
])
def test_config_errors_name_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        resolve_model_config({**SMALL, **bad})


def test_missing_required_and_wrong_input():
    cfg = dict(SMALL)
    del cfg["image_size"]
    with pytest.raises(ConfigError, match="model.image_size: missing"):
        resolve_model_config(cfg)
    with pytest.raises(ValueError, match=r"expected images \(N, 3, 16, 16\)"):
        build_model(SMALL)(torch.randn(2, 1, 16, 16))


@pytest.mark.parametrize("cin,cout,hw,stride,pad,dil", [
    (64, 32, 4, 1, 1, 1), (64, 48, 5, 2, 1, 1), (64, 16, 6, 1, 2, 2), (64, 64, 3, 2, 0, 1), (64, 16, 2, 1, 0, 1),
])
def test_conv_channels_last_path_matches_torch(cin, cout, hw, stride, pad, dil):
    # many channels on a small image: the conv kernels' channels-last columns (the deep ResNet stages)
    from asrkit.nn.functional import conv as C

    g = torch.Generator().manual_seed(0)
    k = 1 if (cout == 16 and pad == 0) else 3
    x = torch.randn(3, cin, hw, hw, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(cout, cin, k, k, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(cout, dtype=torch.float64, generator=g, requires_grad=True)
    assert C._use_channels_last(cin, 1, hw, (k, k))
    ya = C.conv2d(x, w, b, stride, pad, dil)
    yb = torch.nn.functional.conv2d(x, w, b, stride, pad, dil)
    torch.testing.assert_close(ya, yb)
    gy = torch.randn_like(yb)
    for a, r in zip(torch.autograd.grad(ya, (x, w, b), gy), torch.autograd.grad(yb, (x, w, b), gy)):
        torch.testing.assert_close(a, r)
    # the transposed conv runs the same kernels the other way round
    wt = torch.randn(cin, 16, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    ta = C.conv_transpose2d(x, wt, None, stride, pad, output_padding=stride - 1 if stride > 1 else 0)
    tb = torch.nn.functional.conv_transpose2d(x, wt, None, stride, pad, output_padding=stride - 1 if stride > 1 else 0)
    torch.testing.assert_close(ta, tb)
    gt = torch.randn_like(tb)
    for a, r in zip(torch.autograd.grad(ta, (x, wt), gt), torch.autograd.grad(tb, (x, wt), gt)):
        torch.testing.assert_close(a, r)
