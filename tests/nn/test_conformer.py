"""Conformer: parity with torchaudio (absolute positions), relative positions scratch vs native."""
from __future__ import annotations

import pytest
import torch
import torchaudio

from asrkit.nn import set_impl
from asrkit.nn.conformer import Conformer, ConformerBlock, lengths_to_padding_mask



@pytest.mark.parametrize("convolution_first", [False, True])
def test_matches_torchaudio_conformer(convolution_first):
    torch.manual_seed(0)
    ta = torchaudio.models.Conformer(input_dim=16, num_heads=4, ffn_dim=32, num_layers=2,
                                     depthwise_conv_kernel_size=5, convolution_first=convolution_first)
    ours = Conformer(16, 4, 32, 2, 5, convolution_first=convolution_first)
    assert set(ta.state_dict()) == set(ours.state_dict())
    ours.load_state_dict(ta.state_dict())
    x = torch.randn(3, 10, 16)
    lens = torch.tensor([10, 7, 4])
    valid = (~lengths_to_padding_mask(lens))[..., None]
    for train in (True, False):
        ta.train(train)
        ours.train(train)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, la = ta(xa, lens)
        yb, lb = ours(xb, lens)
        torch.testing.assert_close(ya * valid, yb * valid, atol=1e-5, rtol=1e-4)
        ga = torch.autograd.grad((ya * valid).pow(2).sum(), [xa] + list(ta.parameters()))
        gb = torch.autograd.grad((yb * valid).pow(2).sum(), [xb] + list(ours.parameters()))
        for u, v in zip(ga, gb):
            torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.conformer_layers[0].conv_module.sequential[3].running_mean,
                               ta.conformer_layers[0].conv_module.sequential[3].running_mean)


def test_rel_block_scratch_vs_native_and_padding():
    torch.manual_seed(1)
    blk = ConformerBlock(16, 32, 4, 5, dropout=0.0, pos_enc="rel", batch_first=True, mask_conv_padding=True)
    x = torch.randn(2, 8, 16)
    pad = lengths_to_padding_mask(torch.tensor([8, 5]))
    xa = x.clone().requires_grad_()
    ya = blk(xa, pad)
    ga = torch.autograd.grad(ya[~pad].pow(2).sum(), [xa] + list(blk.parameters()))
    native = set_impl(blk, "native")
    xb = x.clone().requires_grad_()
    yb = native(xb, pad)
    gb = torch.autograd.grad(yb[~pad].pow(2).sum(), [xb] + list(native.parameters()))
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-4)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-4)
    # in eval, with the conv padding masked, padded frames do not change valid outputs
    set_impl(blk, "scratch").eval()
    x2 = x.clone()
    x2[1, 5:] = 100.0
    torch.testing.assert_close(blk(x, pad)[1, :5], blk(x2, pad)[1, :5], atol=1e-5, rtol=1e-4)
    y_tm = ConformerBlock(16, 32, 4, 5, pos_enc="rel")  # time-major by default, as torchaudio
    assert y_tm(torch.randn(8, 2, 16)).shape == (8, 2, 16)
    with pytest.raises(ValueError):
        ConformerBlock(16, 32, 4, 4)
