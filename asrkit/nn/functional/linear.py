"""Linear (affine) kernels: ``y = x W^T + b`` on inputs of any leading shape.

Shapes: ``x (*, in)``, ``W (out, in)``, ``b (out,)``, ``y (*, out)``.
Backward, with ``G = dL/dy`` flattened to ``(M, out)`` and ``X`` to ``(M, in)``:

    dL/dX = G W          (M, in)
    dL/dW = G^T X        (out, in)
    dL/db = sum_m G      (out,)

Batched matrix product (``bmm``, e.g. an attention's context vectors)::

    y = a b              a (Z, n, k), b (Z, k, m), y (Z, n, m)
    dL/da = G b^T        (Z, n, k)
    dL/db = a^T G        (Z, k, m)
"""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import LOWER, apply, kernel_function


def linear_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, tuple]:
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])                       # (M, in)
    if bias is not None:
        y2 = torch.addmm(bias, x2, weight.t())            # (M, out)
    else:
        y2 = x2 @ weight.t()                              # (M, out)
    y = y2.reshape(*lead, weight.shape[0])                # (*, out)
    return y, (x2, weight, bias is not None, lead)


def linear_backward(grad_out: torch.Tensor, cache: tuple, needs: tuple = (True, True, True)):
    x2, weight, has_bias, lead = cache
    g2 = grad_out.reshape(-1, weight.shape[0])            # (M, out)
    gx = (g2 @ weight).reshape(*lead, weight.shape[1]) if needs[0] else None  # (*, in)
    gw = g2.t() @ x2 if needs[1] else None                # (out, in)
    gb = g2.sum(0) if has_bias and needs[2] else None     # (out,)
    return gx, gw, gb


LinearFunction = kernel_function("LinearFunction", linear_forward, linear_backward, pass_needs=True)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x (*, in) @ weight (out, in)^T + bias (out,) -> (*, out)``; as ``torch.nn.functional.linear``."""
    return apply(LinearFunction, LOWER, x, weight, bias)


def bmm_forward(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"bmm: expected (Z, n, k) and (Z, k, m), got {tuple(a.shape)} and {tuple(b.shape)}")
    return torch.bmm(a, b), (a, b)                        # (Z, n, m)


def bmm_backward(grad_out: torch.Tensor, cache: tuple, needs: tuple = (True, True)):
    a, b = cache
    ga = torch.bmm(grad_out, b.transpose(1, 2)) if needs[0] else None  # (Z, n, k)
    gb = torch.bmm(a.transpose(1, 2), grad_out) if needs[1] else None  # (Z, k, m)
    return ga, gb


BmmFunction = kernel_function("BmmFunction", bmm_forward, bmm_backward, pass_needs=True)


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a (Z, n, k) @ b (Z, k, m) -> (Z, n, m)``; as ``torch.bmm``."""
    return apply(BmmFunction, LOWER, a, b)
