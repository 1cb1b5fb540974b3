"""Attention of a step-by-step decoder over an encoder's output (LAS, Chorowski et al.).

One decoder step attends with its state ``query (B, Q)`` over ``memory (B, S, M)``
(the listener's frames), frames past each utterance's length masked by
``padding_mask (B, S)`` (True = padding, weight 0)::

    energies e (B, S)  ->  weights a = masked softmax(e) (B, S)  ->  context c = a memory (B, M)

* :class:`DotProductAttention` (content attention, as in LAS and the 11-785 course):
  ``e_s = <W_q q + b_q, W_k h_s + b_k>``, divided by ``sqrt(attention_dim)`` when ``scaled``.
* :class:`LocationAwareAttention` (Chorowski et al. 2015, "attention-based models for speech
  recognition"): ``e_s = w^T tanh(W q + V h_s + b + U f_s)``, with ``f = Conv1d(a_prev)`` the
  location features computed from the previous step's weights ``a_prev (B, S)``.

The memory-side projection (``W_k h`` or ``V h + b``, ``(B, S, A)``) does not change from
step to step: :meth:`project_memory` computes it once per utterance and ``forward`` takes it
as ``keys``. The context is a weighted sum of the memory itself (no value projection).

Parameters are asrkit layers (``Linear``, ``Conv1d``; names below), so ``impl`` reaches every
piece: scratch runs the hand-written :func:`~asrkit.nn.functional.linear.bmm`,
:func:`~asrkit.nn.functional.activation.masked_softmax` and ``tanh`` kernels; native calls
``torch.bmm``, ``torch.softmax`` and ``torch.tanh``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from asrkit.nn.activation import MaskedSoftmax, Tanh
from asrkit.nn.conv import Conv1d
from asrkit.nn.functional import linear as L
from asrkit.nn.linear import Linear
from asrkit.nn.module import Module

__all__ = ["DotProductAttention", "LocationAwareAttention", "ATTENTIONS"]

#: the ``attention`` names a model config may use
ATTENTIONS = ("dot", "scaled_dot", "location")


class _Seq2SeqAttention(Module):
    """Shared by both: the memory projection, the masked softmax and the context."""

    key_proj: Linear

    def __init__(self, impl: str) -> None:
        super().__init__(impl)
        self.softmax = MaskedSoftmax(-1, impl=impl)

    def project_memory(self, memory: Tensor) -> Tensor:
        """``memory (B, S, M) -> keys (B, S, A)``: the part of the energies that every step shares."""
        return self.key_proj(memory)

    def _bmm(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.bmm(a, b) if self.native else L.bmm(a, b)

    def _attend(self, energies: Tensor, memory: Tensor, padding_mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """``energies (B, S)`` -> ``(context (B, M), weights (B, S))``."""
        weights = self.softmax(energies, padding_mask)  # (B, S), 0 at padding
        context = self._bmm(weights.unsqueeze(1), memory).squeeze(1)  # (B, 1, S) @ (B, S, M) -> (B, M)
        return context, weights

    def initial_weights(self, padding_mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """``(B, S)`` uniform over each utterance's frames (0 at padding): the "previous
        weights" before the first step."""
        valid = (~padding_mask).to(dtype)  # (B, S)
        return valid / valid.sum(1, keepdim=True).clamp_min(1.0)


class DotProductAttention(_Seq2SeqAttention):
    """Content attention: ``e_s = <query_proj(q), key_proj(h_s)>`` (``/ sqrt(attention_dim)``
    when ``scaled``).

    ``forward(query (B, query_dim), memory (B, S, memory_dim), padding_mask (B, S) | None,
    keys (B, S, attention_dim) | None, prev_weights=None) -> (context (B, memory_dim),
    weights (B, S))``. ``prev_weights`` is accepted and ignored (the location-aware
    attention's argument), so a decoder calls either the same way.

    Parameters: ``query_proj`` (Linear query_dim -> attention_dim), ``key_proj``
    (Linear memory_dim -> attention_dim).
    """

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int, scaled: bool = True,
                 bias: bool = True, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.query_dim, self.memory_dim, self.attention_dim = query_dim, memory_dim, attention_dim
        self.scaled = scaled
        self.scale = 1.0 / math.sqrt(attention_dim) if scaled else 1.0
        self.query_proj = Linear(query_dim, attention_dim, bias=bias, impl=impl)
        self.key_proj = Linear(memory_dim, attention_dim, bias=bias, impl=impl)

    def forward(self, query: Tensor, memory: Tensor, padding_mask: Optional[Tensor] = None,
                keys: Optional[Tensor] = None, prev_weights: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if keys is None:
            keys = self.project_memory(memory)  # (B, S, A)
        q = self.query_proj(query)  # (B, A)
        if self.scaled:
            q = q * self.scale
        energies = self._bmm(keys, q.unsqueeze(2)).squeeze(2)  # (B, S, A) @ (B, A, 1) -> (B, S)
        return self._attend(energies, memory, padding_mask)

    def extra_repr(self) -> str:
        return (f"query_dim={self.query_dim}, memory_dim={self.memory_dim}, attention_dim={self.attention_dim}, "
                f"scaled={self.scaled}, " + super().extra_repr())


class LocationAwareAttention(_Seq2SeqAttention):
    """Location-aware attention (Chorowski et al. 2015):
    ``e_s = w^T tanh(W q + V h_s + b + U f_s)``, ``f = Conv1d(a_prev) (B, S, channels)``.

    ``forward(query (B, query_dim), memory (B, S, memory_dim), padding_mask (B, S) | None,
    keys (B, S, attention_dim) | None, prev_weights (B, S)) -> (context (B, memory_dim),
    weights (B, S))``; ``prev_weights`` is the previous step's output
    (:meth:`initial_weights` before the first step).

    Parameters: ``query_proj`` (W: Linear query_dim -> attention_dim, no bias), ``key_proj``
    (V, b: Linear memory_dim -> attention_dim), ``location_conv`` (Conv1d(1, channels,
    kernel_size, padding kernel_size // 2, no bias)), ``location_proj`` (U: Linear channels ->
    attention_dim, no bias), ``score`` (w: Linear attention_dim -> 1, no bias).
    """

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int, channels: int = 10,
                 kernel_size: int = 31, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.query_dim, self.memory_dim, self.attention_dim = query_dim, memory_dim, attention_dim
        self.channels, self.kernel_size = channels, kernel_size
        self.query_proj = Linear(query_dim, attention_dim, bias=False, impl=impl)
        self.key_proj = Linear(memory_dim, attention_dim, impl=impl)
        self.location_conv = Conv1d(1, channels, kernel_size, padding=kernel_size // 2, bias=False, impl=impl)
        self.location_proj = Linear(channels, attention_dim, bias=False, impl=impl)
        self.tanh = Tanh(impl=impl)
        self.score = Linear(attention_dim, 1, bias=False, impl=impl)

    def forward(self, query: Tensor, memory: Tensor, padding_mask: Optional[Tensor] = None,
                keys: Optional[Tensor] = None, prev_weights: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if prev_weights is None:
            raise ValueError("LocationAwareAttention needs prev_weights (B, S): the previous step's "
                             "weights, or initial_weights(padding_mask) before the first step")
        if keys is None:
            keys = self.project_memory(memory)  # (B, S, A)
        f = self.location_conv(prev_weights.unsqueeze(1))  # (B, 1, S) -> (B, C, S)
        loc = self.location_proj(f.transpose(1, 2))  # (B, S, A)
        q = self.query_proj(query).unsqueeze(1)  # (B, 1, A)
        energies = self.score(self.tanh(keys + q + loc)).squeeze(2)  # (B, S, A) -> (B, S)
        return self._attend(energies, memory, padding_mask)

    def extra_repr(self) -> str:
        return (f"query_dim={self.query_dim}, memory_dim={self.memory_dim}, attention_dim={self.attention_dim}, "
                f"channels={self.channels}, kernel_size={self.kernel_size}, " + super().extra_repr())
