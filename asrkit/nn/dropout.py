"""Dropout layers: ``Dropout`` (torch.nn signature), ``LockedDropout`` (variational) and
``EmbeddingDropout`` (whole word types, AWD-LSTM)."""
from __future__ import annotations

import torch
import torch.nn.functional as TF

from asrkit.nn.functional import dropout as D
from asrkit.nn.module import Module

__all__ = ["Dropout", "LockedDropout", "EmbeddingDropout"]


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


class LockedDropout(Module):
    """Variational ("locked") dropout: one mask per sequence, the same at every time step.

    ``x (B, T, D)`` (``(T, B, D)`` with ``batch_first=False``) -> same shape. In
    training each sequence keeps each of its ``D`` features with probability
    ``1 - p`` for all ``T`` steps (scaled by ``1 / (1 - p)``), as in AWD-LSTM
    and the 11-785 LAS listener; identity in eval. torch has no such layer: the
    native path is the same formula in torch ops (the same RNG draws, so the
    two paths give the same output for the same seed).
    """

    def __init__(self, p: float = 0.5, batch_first: bool = True, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.native:
            return x * D.locked_dropout_mask(x, self.p, self.batch_first)
        return D.locked_dropout(x, self.p, True, self.batch_first)

    def extra_repr(self) -> str:
        return f"p={self.p}, batch_first={self.batch_first}, " + super().extra_repr()


class EmbeddingDropout(Module):
    """Embedding dropout (AWD-LSTM): drops whole word types, not single features.

    ``forward(x (*, E), tokens (*)) -> (*, E)``: ``x`` is ``Embedding(tokens)``. In
    training each of the ``num_embeddings`` word types is kept with probability
    ``1 - p`` for the whole batch (scaled by ``1 / (1 - p)``); a dropped type is a
    zero vector wherever it occurs, as if its row of the table were zero. Identity
    in eval. torch has no such layer: the native path is the same formula in torch
    ops (the same RNG draws, so the two paths give the same output for the same seed).
    """

    def __init__(self, num_embeddings: int, p: float = 0.1, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.num_embeddings = num_embeddings
        self.p = p

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.native:
            return x * D.embedding_dropout_mask(x, tokens, self.num_embeddings, self.p)
        return D.embedding_dropout(x, tokens, self.num_embeddings, self.p, True)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, p={self.p}, " + super().extra_repr()
