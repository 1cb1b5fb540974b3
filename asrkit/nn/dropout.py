"""Dropout layer (torch.nn signature)."""
from __future__ import annotations

import torch
import torch.nn.functional as TF

from asrkit.nn.functional import dropout as D
from asrkit.nn.module import Module


class Dropout(Module):
    """Zeroes each element with probability ``p`` in training and scales the rest by
    ``1 / (1 - p)``; identity in eval. ``(*) -> (*)``."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:
            return TF.dropout(x, self.p, self.training, self.inplace)
        return D.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}, " + super().extra_repr()
