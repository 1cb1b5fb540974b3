"""Intermediate CTC (model.inter_ctc_weight / inter_ctc_layers): config checks, the tapped layers'
logits, and the task's loss against torch's CTC loss."""
from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from asrkit.data.dataset import Batch
from asrkit.errors import ConfigError
from asrkit.models import build_model
from asrkit.tasks.ctc import CTCTask
from asrkit.train.config import load_config

CONF = {"type": "ctc", "impl": "scratch", "input_dim": 12, "num_classes": 6, "subsampling": 4,
        "encoder": "conformer", "hidden": 16, "layers": 3, "heads": 2, "conv_kernel": 3, "dropout": 0.0}


def test_defaults_off_and_middle_layer():
    m = build_model(CONF)
    assert m.config["inter_ctc_weight"] == 0.0 and m.config["inter_ctc_layers"] is None and m.inter_layers == ()
    m = build_model({**CONF, "inter_ctc_weight": 0.3})
    assert m.config["inter_ctc_layers"] == [1] and m.inter_layers == (1,)   # layers // 2
    m = build_model({**CONF, "inter_ctc_weight": 0.5, "inter_ctc_layers": [2, 1]})
    assert m.inter_layers == (1, 2)
    # no parameters of its own: the same state_dict keys with and without
    assert m.state_dict().keys() == build_model(CONF).state_dict().keys()


@pytest.mark.parametrize("change, what", [
    ({"inter_ctc_weight": 1.0}, "inter_ctc_weight"),
    ({"inter_ctc_weight": -0.1}, "inter_ctc_weight"),
    ({"inter_ctc_weight": 0.3, "inter_ctc_layers": [3]}, "inter_ctc_layers"),    # the last layer
    ({"inter_ctc_weight": 0.3, "inter_ctc_layers": [0]}, "inter_ctc_layers"),
    ({"inter_ctc_weight": 0.3, "inter_ctc_layers": []}, "inter_ctc_layers"),
    ({"inter_ctc_weight": 0.3, "inter_ctc_layers": [1, 1]}, "inter_ctc_layers"),
    ({"inter_ctc_weight": 0.3, "inter_ctc_layers": 1}, "inter_ctc_layers"),
    ({"inter_ctc_weight": 0.3, "inter_ctc_layers": [[1]]}, "inter_ctc_layers"),
    ({"inter_ctc_layers": [5]}, "inter_ctc_layers"),                            # checked when off too
    ({"inter_ctc_weight": 0.3, "encoder": "lstm"}, "conformer encoder"),
    ({"inter_ctc_weight": 0.3, "layers": 1}, "layers >= 2"),
])
def test_bad_inter_ctc_config_is_one_clear_error(change, what):
    with pytest.raises(ConfigError, match=what):
        build_model({**CONF, **change})


def test_inter_logits_are_the_tapped_layer_through_the_output_layer():
    torch.manual_seed(0)
    m = build_model({**CONF, "inter_ctc_weight": 0.3, "inter_ctc_layers": [1, 2]}).eval()
    x, lens = torch.randn(2, 37, 12), torch.tensor([37, 25])
    logits, out_lens, inter = m(x, lens, inter=True)
    ref_logits, ref_lens = m(x, lens)
    assert torch.equal(logits, ref_logits) and torch.equal(out_lens, ref_lens)
    h, hl = m.frontend(x, lens)
    outs = m.encoder.forward_layers(h, hl)
    assert len(inter) == 2
    for k, got in zip((1, 2), inter):
        torch.testing.assert_close(got, m.output(outs[k - 1]))
    assert not torch.allclose(inter[0], logits)


def _loss(model, batch) -> torch.Tensor:
    """The CTC task's loss; the weight comes from the model's own (resolved) config."""
    task = CTCTask(load_config("ctc"))
    task.setup(model, torch.device("cpu"))
    return task.loss(model, batch, torch.device("cpu"), contextlib.nullcontext)[0]


def test_task_loss_mixes_last_and_intermediate_ctc_like_torch():
    torch.manual_seed(1)
    w = 0.3
    m = build_model({**CONF, "inter_ctc_weight": w}).eval()
    feats, lens = torch.randn(2, 40, 12), torch.tensor([40, 31])
    targets, tlens = torch.tensor([1, 2, 3, 4, 5, 2, 1]), torch.tensor([4, 3])
    batch = Batch(["a", "b"], feats, lens, targets, tlens)
    logits, out_lens, (mid,) = m(feats, lens, inter=True)

    def ctc(z):
        return F.ctc_loss(z.log_softmax(-1).transpose(0, 1), targets, out_lens, tlens, blank=0,
                          reduction="sum", zero_infinity=True)

    torch.testing.assert_close(_loss(m, batch), (1 - w) * ctc(logits) + w * ctc(mid))
    plain = build_model(CONF).eval()
    plain.load_state_dict(m.state_dict())
    torch.testing.assert_close(_loss(plain, batch), ctc(logits))
    # the layers up to the tap get the intermediate loss's gradient too; the layers above it do not
    for net in (m, plain):
        net.zero_grad()
        _loss(net, batch).backward()
    below = dict(m.encoder.conformer_layers[0].named_parameters())
    above = dict(m.encoder.conformer_layers[2].named_parameters())
    grads_plain = {n: p.grad for n, p in plain.named_parameters()}
    assert any(not torch.allclose(p.grad, grads_plain[f"encoder.conformer_layers.0.{n}"]) for n, p in below.items())
    for n, p in above.items():
        torch.testing.assert_close(p.grad, (1 - w) * grads_plain[f"encoder.conformer_layers.2.{n}"])


def test_self_conditioning_feeds_the_tapped_posteriors_to_the_next_layer():
    torch.manual_seed(2)
    m = build_model({**CONF, "inter_ctc_weight": 0.3, "inter_ctc_condition": True}).eval()
    assert {"condition.weight", "condition.bias"} <= m.state_dict().keys()
    x, lens = torch.randn(2, 33, 12), torch.tensor([33, 20])
    logits, _, (mid,) = m(x, lens, inter=True)
    # by hand: block 1, its logits, the posteriors mapped back and added, then blocks 2 and 3
    h, hl = m.frontend(x, lens)
    mask = torch.arange(h.shape[1])[None, :] >= hl[:, None]
    blocks = m.encoder.conformer_layers
    h = blocks[0](h, mask)
    z = m.output(h)
    torch.testing.assert_close(mid, z)
    h = h + m.condition(z.softmax(-1))
    h = blocks[2](blocks[1](h, mask), mask)
    torch.testing.assert_close(logits, m.output(h))
    # decoding uses it too (eval, inter=False); torch's kernels give the same logits from the same weights
    native = build_model({**m.config, "impl": "native"}).eval()
    native.load_state_dict(m.state_dict())
    torch.testing.assert_close(native(x, lens)[0], m(x, lens)[0], atol=1e-5, rtol=1e-5)


def test_self_conditioning_needs_intermediate_ctc():
    with pytest.raises(ConfigError, match="inter_ctc_condition"):
        build_model({**CONF, "inter_ctc_condition": True})
    with pytest.raises(ConfigError, match="inter_ctc_condition"):
        build_model({**CONF, "inter_ctc_weight": 0.3, "inter_ctc_condition": "yes"})
