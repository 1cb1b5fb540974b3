"""Frame-level phoneme classifier: an MLP over a context window of +-K frames.

The course's first Kaggle task (11-785 HW1P2): every frame ``t`` of an
utterance is classified from the stacked frames ``t-K .. t+K``; frames outside
the utterance are zeros. Built from :mod:`asrkit.nn` layers only::

    x (B, T, D) --window--> (B, T, (2K+1) D) --valid frames--> (N, (2K+1) D)
    [Linear -> BatchNorm1d -> GELU -> Dropout] x len(hidden) -> Linear -> (N, C)
    --scatter--> logits (B, T, C)

Only the ``N = sum(lengths)`` valid frames go through the MLP, so padding never
reaches BatchNorm's batch statistics and an utterance gets the same logits
alone or padded in a batch (in training mode too, up to the batch statistics of
its batch-mates, which BatchNorm shares by design).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from asrkit.nn import GELU, BatchNorm1d, Dropout, Linear, Module
from asrkit.nn.functional import shape as S
from asrkit.models.common import check_input, lengths_to_padding_mask

__all__ = ["FrameMLP", "context_window"]


def context_window(feats: Tensor, lengths: Tensor, context: int) -> Tensor:
    """Stack ``+-context`` neighbours of every frame: ``(B, T, D) -> (B, T, (2K+1) D)``.

    Frames past an utterance's own length (the padding of a batch) and before
    its start count as zeros, so a window never reaches into padding or a
    neighbouring utterance. Window order: frame ``t-K`` first, ``t+K`` last.
    """
    B, T, D = feats.shape
    valid = ~lengths_to_padding_mask(lengths.to(feats.device), T)  # (B, T)
    x = feats * valid.unsqueeze(-1).to(feats.dtype)  # (B, T, D), padding -> 0
    if context == 0:
        return x
    zeros = x.new_zeros(B, context, D)
    x = torch.cat([zeros, x, zeros], 1)  # (B, T + 2K, D)
    win = x.unfold(1, 2 * context + 1, 1)  # (B, T, D, 2K+1)
    return win.transpose(2, 3).reshape(B, T, (2 * context + 1) * D)  # (B, T, (2K+1) D)


class FrameMLP(Module):
    """``forward(feats (B, T, D), lengths (B,)) -> (logits (B, T, C), lengths (B,))``.

    Args:
        input_dim: feature dimension ``D``.
        num_classes: number of frame labels ``C``.
        context: ``K``, frames on each side of the centre frame.
        hidden: widths of the hidden blocks (each Linear, BatchNorm1d, GELU, Dropout).
        dropout: dropout probability after each hidden block.
        impl: ``"scratch"`` or ``"native"`` for every layer (see :func:`asrkit.nn.set_impl`).

    Logits at padded frames are zeros. ``subsampling`` is 1 (``T' = T``).
    """

    subsampling = 1

    def __init__(self, input_dim: int, num_classes: int, context: int, hidden: Sequence[int],
                 dropout: float = 0.0, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.context = context
        layers: list[torch.nn.Module] = []
        width = (2 * context + 1) * input_dim
        for h in hidden:
            layers += [Linear(width, h, impl=impl), BatchNorm1d(h, impl=impl), GELU(impl=impl),
                       Dropout(dropout, impl=impl)]
            width = h
        self.mlp = torch.nn.Sequential(*layers)
        self.output = Linear(width, num_classes, impl=impl)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Frames out per utterance: ``T' = T``."""
        return lengths

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        check_input(feats, lengths, self.input_dim)
        B, T, _ = feats.shape
        lengths = lengths.to(feats.device)
        win = context_window(feats, lengths, self.context)  # (B, T, (2K+1) D)
        valid = ~lengths_to_padding_mask(lengths, T)  # (B, T)
        if self.native:
            y = self.output(self.mlp(win[valid]))  # (N, C), N = sum(lengths)
            return y.new_zeros(B, T, self.num_classes).index_put((valid,), y), lengths  # (B, T, C)
        y = self.output(self.mlp(S.pack(win, valid)))  # (N, C), the valid frames only
        logits = S.unpack(y, valid)  # (B, T, C), zeros at padded frames
        return logits, lengths

