"""Dropout kernel (inverted dropout).

Training: each element is kept with probability ``1 - p`` and scaled by
``1 / (1 - p)`` so the expectation is unchanged; the mask ``m`` is drawn with
``bernoulli_(1 - p)`` exactly as torch's CPU kernel draws it, so the same seed
gives the same mask there. ``y = x * m / (1 - p)``, ``dL/dx = g * m / (1 - p)``.
Evaluation (``training=False``) is the identity.
"""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import NONE, apply, kernel_function


def dropout_forward(x: torch.Tensor, p: float, training: bool) -> tuple[torch.Tensor, tuple]:
    if not training or p == 0.0:
        return x.clone(), (None,)
    if p == 1.0:
        scale = torch.zeros_like(x)                          # (*) everything dropped
    else:
        scale = torch.empty_like(x).bernoulli_(1.0 - p).div_(1.0 - p)  # (*) m / (1 - p)
    return x * scale, (scale,)


def dropout_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (scale,) = cache
    return (grad_out.clone() if scale is None else grad_out * scale,)


DropoutFunction = kernel_function("DropoutFunction", dropout_forward, dropout_backward)


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
    """As ``torch.nn.functional.dropout``.

    ``inplace`` is accepted for signature parity; the scratch op always returns
    a new tensor (same values), so use the return value.
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training:
        return x
    return apply(DropoutFunction, NONE, x, float(p), True)
