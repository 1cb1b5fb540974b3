"""Shared helpers for the asrkit.nn part-1 tests (parity with torch.nn)."""
from __future__ import annotations

from typing import Callable

import torch

ATOL, RTOL = 1e-5, 1e-4


def parity(ours: torch.nn.Module, twin: torch.nn.Module, make_input: Callable[[], torch.Tensor],
           *, train: bool = True, seed: int = 0, atol: float = ATOL, rtol: float = RTOL,
           input_grad: bool = True) -> None:
    """Load ``twin``'s state_dict into ``ours`` and check forward output, the input
    gradient and every parameter gradient (and buffers after the step) agree."""
    ours.load_state_dict(twin.state_dict())
    ours.zero_grad(set_to_none=True)
    twin.zero_grad(set_to_none=True)
    ours.train(train)
    twin.train(train)
    x = make_input()
    xa = x.clone().requires_grad_(input_grad and x.is_floating_point())
    xb = x.clone().requires_grad_(input_grad and x.is_floating_point())
    torch.manual_seed(seed)
    ya = ours(xa)
    torch.manual_seed(seed)
    yb = twin(xb)
    torch.testing.assert_close(ya, yb, atol=atol, rtol=rtol)
    g = torch.randn_like(yb)
    ya.backward(g)
    yb.backward(g)
    if xa.requires_grad:
        torch.testing.assert_close(xa.grad, xb.grad, atol=atol, rtol=rtol)
    pa, pb = dict(ours.named_parameters()), dict(twin.named_parameters())
    assert pa.keys() == pb.keys()
    for k in pa:
        if pb[k].grad is None:
            assert pa[k].grad is None or not pa[k].grad.any(), k
        else:
            torch.testing.assert_close(pa[k].grad, pb[k].grad, atol=atol, rtol=rtol, msg=k)
    ba, bb = dict(ours.named_buffers()), dict(twin.named_buffers())
    assert ba.keys() == bb.keys()
    for k in ba:
        torch.testing.assert_close(ba[k], bb[k], atol=atol, rtol=rtol, msg=k)
    # and back: our state_dict loads into the twin unchanged
    twin.load_state_dict(ours.state_dict())
