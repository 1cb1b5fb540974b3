"""AdaptiveAvgPool2d: scratch kernel vs native vs torch.nn (values and gradients), gradcheck."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import asrkit.nn as nn
from asrkit.nn.functional import pool as P
from nn1_util import parity

F64 = torch.float64


def test_toy_global_and_bins():
    x = torch.arange(16, dtype=F64).reshape(1, 1, 4, 4).requires_grad_()
    y = P.adaptive_avg_pool2d(x, 1)
    assert y.tolist() == [[[[7.5]]]]
    y.sum().backward()
    assert torch.all(x.grad == 1 / 16)
    # 5 -> 3 bins: [0, 2), [1, 4), [3, 5) (torch's floor/ceil split, overlapping)
    r = torch.tensor([[[[0.0, 1.0, 2.0, 3.0, 4.0]]]], dtype=F64)
    assert P.adaptive_avg_pool2d(r, (1, 3)).tolist() == [[[[0.5, 2.0, 3.5]]]]


@pytest.mark.parametrize("out", [1, (1, 1), 2, (3, 2), (5, None), (7, 4)])
def test_matches_torch_and_gradcheck(out):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 7, dtype=F64, generator=g, requires_grad=True)
    torch.testing.assert_close(P.adaptive_avg_pool2d(x, out), torch.nn.functional.adaptive_avg_pool2d(x, out))
    assert gradcheck(lambda t: P.adaptive_avg_pool2d(t, out), (x,))


@pytest.mark.parametrize("impl", ["scratch", "native"])
@pytest.mark.parametrize("out", [1, (2, 3)])
def test_module_parity_with_torch_nn(impl, out):
    parity(nn.AdaptiveAvgPool2d(out, impl=impl), torch.nn.AdaptiveAvgPool2d(out),
           lambda: torch.randn(4, 8, 6, 6))


def test_unbatched_and_bad_size():
    x = torch.randn(3, 4, 4)
    torch.testing.assert_close(P.adaptive_avg_pool2d(x, 2), torch.nn.functional.adaptive_avg_pool2d(x, 2))
    with pytest.raises(ValueError, match="positive"):
        P.adaptive_avg_pool2d(x, 0)
