"""What every attention (encoder-decoder) model shares: ids, outputs, the decoding interface.

Id 0 is ``<sos>`` as the decoder's first input, ``<eos>`` as its last output, and the CTC
blank of a CTC head (ESPnet shares one id the same way), so ``num_classes`` is the units'
count for every head and a target never holds 0::

    targets of one utterance        y_1 .. y_U          (ids 1 .. C-1)
    decoder inputs   (U+1,)         SOS y_1 .. y_U
    decoder outputs  (U+1,)         y_1 .. y_U EOS      row u of the logits predicts output u

A model (:class:`Seq2SeqModel`) trains with ``forward`` (teacher forcing) and decodes with
``encode`` once, then ``init_state`` and ``step`` one token at a time; a beam search expands
the encoder output with ``Encoded.index`` and reorders decoder states with ``select_state``::

    enc = model.encode(feats, lengths)              # Encoded: memory (B, S, H), lengths (B,)
    state = model.init_state(enc)
    tokens = torch.full((B,), SOS)
    logp, state, att = model.step(enc, state, tokens)   # (B, C) float32, new state, (B, S)
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from asrkit.models.common import lengths_to_padding_mask
from asrkit.nn import Module

__all__ = ["SOS", "EOS", "IGNORE_ID", "Encoded", "Seq2SeqOutput", "Seq2SeqModel", "decoder_targets"]

SOS = 0  #: the decoder's first input
EOS = 0  #: the decoder's last output (the same id: ESPnet's convention)
IGNORE_ID = -100  #: padding of ``Seq2SeqOutput.targets`` (torch's cross-entropy ``ignore_index``)


class Encoded:
    """The encoder's output for a batch: what every decoding step attends over.

    ``memory (B, S, H)``: keys/values of the attention; ``lengths (B,)`` int64 valid frames
    of ``memory``; ``ctc_logits (B, S, C)`` the CTC head's output (``None`` without a head).

    :meth:`index` is lazy: the rows of ``memory`` and ``ctc_logits`` are gathered when one of
    them is first read, so a decoder that keeps its own per-utterance projections of the
    memory (the Transformer's cross-attention keys/values) never pays a copy of it per
    search step.
    """

    def __init__(self, memory: Tensor, lengths: Tensor, ctc_logits: Optional[Tensor] = None) -> None:
        self._memory, self._ctc = memory, ctc_logits
        self._memory_rows: Optional[Tensor] = None  # row n of this batch is row _memory_rows[n] of _memory
        self._ctc_rows: Optional[Tensor] = None
        self.lengths = lengths

    @property
    def memory(self) -> Tensor:
        if self._memory_rows is not None:
            self._memory, self._memory_rows = self._memory.index_select(0, self._memory_rows), None
        return self._memory

    @property
    def ctc_logits(self) -> Optional[Tensor]:
        if self._ctc_rows is not None:
            self._ctc, self._ctc_rows = self._ctc.index_select(0, self._ctc_rows), None
        return self._ctc

    @property
    def device(self) -> torch.device:
        return self._memory.device

    @property
    def frames(self) -> int:
        """``S``: the padded frames of ``memory``."""
        return int(self._memory.shape[1])

    def index(self, idx: Tensor) -> "Encoded":
        """Rows ``idx (N',)`` (repeat for a beam, reorder, drop finished utterances)."""
        idx = idx.to(self._memory.device)
        out = Encoded(self._memory, self.lengths.index_select(0, idx), self._ctc)
        out._memory_rows = idx if self._memory_rows is None else self._memory_rows[idx]
        if self._ctc is not None:
            out._ctc_rows = idx if self._ctc_rows is None else self._ctc_rows[idx]
        return out

    @property
    def padding_mask(self) -> Tensor:
        """``(B, S)`` bool, True at frames past each length."""
        return lengths_to_padding_mask(self.lengths, self.frames)


@dataclass
class Seq2SeqOutput:
    """``forward``'s result (teacher forcing).

    ``logits (B, U+1, C)``: row ``u`` predicts ``targets[:, u]``; rows at or past
    ``target_lengths + 1`` are padding. ``targets (B, U+1)`` int64: each utterance's targets
    then ``EOS``, padded with ``IGNORE_ID`` (-100), ready for a cross-entropy.
    ``ctc_logits (B, S, C)`` or ``None``; ``enc_lengths (B,)``; ``attention (B, U+1, S)`` the
    attention weights of each decoder step (detached; the Transformer's: last decoder layer,
    averaged over heads).
    """

    logits: Tensor
    targets: Tensor
    ctc_logits: Optional[Tensor]
    enc_lengths: Tensor
    attention: Tensor


def decoder_targets(targets: Tensor, target_lengths: Tensor, num_classes: Optional[int] = None
                    ) -> tuple[Tensor, Tensor]:
    """``targets (sum U,)`` concatenated, ``target_lengths (B,)`` -> ``(inputs, outputs)``, both
    ``(B, U+1)`` int64 with ``U = max(target_lengths)``: ``inputs = SOS y_1 .. y_U`` padded with
    ``EOS``, ``outputs = y_1 .. y_U EOS`` padded with ``IGNORE_ID``.

    With ``num_classes``, a target outside ``1 .. num_classes - 1`` (0 is SOS/EOS) is refused.
    """
    target_lengths = target_lengths.to(device=targets.device, dtype=torch.long)
    if targets.dim() != 1 or target_lengths.dim() != 1:
        raise ValueError(f"targets must be (sum U,) and target_lengths (B,), got shapes {tuple(targets.shape)} "
                         f"and {tuple(target_lengths.shape)}")
    if int(target_lengths.sum()) != targets.numel() or (target_lengths.numel() and int(target_lengths.min()) < 0):
        raise ValueError(f"target_lengths (sum {int(target_lengths.sum())}) do not add up to the "
                         f"{targets.numel()} concatenated targets")
    if num_classes is not None and targets.numel() and (int(targets.min()) < 1 or int(targets.max()) >= num_classes):
        raise ValueError(f"targets must be ids in 1 .. {num_classes - 1} (0 is <sos>/<eos>/blank), got "
                         f"min {int(targets.min())} max {int(targets.max())}")
    B = target_lengths.numel()
    U = int(target_lengths.max()) if B else 0
    dev = targets.device
    valid = torch.arange(U, device=dev)[None, :] < target_lengths[:, None]  # (B, U), row-major = concatenated
    padded = torch.full((B, U), EOS, dtype=torch.long, device=dev)
    padded[valid] = targets.long()
    inputs = torch.cat([torch.full((B, 1), SOS, dtype=torch.long, device=dev), padded], 1)  # (B, U+1)
    outputs = torch.full((B, U + 1), IGNORE_ID, dtype=torch.long, device=dev)
    outputs[:, :U][valid] = targets.long()
    outputs[torch.arange(B, device=dev), target_lengths] = EOS
    return inputs, outputs


class Seq2SeqModel(Module, ABC):
    """The base of the attention models (:class:`~asrkit.models.las.LAS`,
    :class:`~asrkit.models.transformer.TransformerS2S`).

    Attributes: ``input_dim``, ``num_classes`` (units including id 0), ``subsampling`` (time
    reduction of the encoder: ``S = output_lengths(T)``), ``has_ctc`` (a CTC head exists:
    ``Encoded.ctc_logits`` is set), ``config`` (the resolved model config, set by
    :func:`asrkit.models.build_model`).
    """

    input_dim: int
    num_classes: int
    subsampling: int
    has_ctc: bool
    config: dict

    @abstractmethod
    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Encoder frames per utterance ``(B,)``."""
        raise NotImplementedError

    @abstractmethod
    def encode(self, feats: Tensor, lengths: Tensor) -> Encoded:
        """``feats (B, T, D)``, ``lengths (B,)`` -> :class:`Encoded`."""
        raise NotImplementedError

    @abstractmethod
    def forward(self, feats: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor,
                tf_rate: float = 1.0) -> Seq2SeqOutput:
        """Teacher-forced pass: ``targets (sum U,)`` concatenated, ``target_lengths (B,)``."""
        raise NotImplementedError

    @abstractmethod
    def init_state(self, enc: Encoded) -> Any:
        """The decoder state before the first step, one row per row of ``enc``."""
        raise NotImplementedError

    @abstractmethod
    def step(self, enc: Encoded, state: Any, tokens: Tensor) -> tuple[Tensor, Any, Tensor]:
        """Feed ``tokens (N,)`` (``SOS`` first): ``(log_probs (N, C) float32, new state,
        attention (N, S) float32)``; ``enc`` has the same ``N`` rows as ``state``."""
        raise NotImplementedError

    @abstractmethod
    def select_state(self, state: Any, idx: Tensor) -> Any:
        """Rows ``idx (N',)`` of ``state`` (beam reordering), as ``Encoded.index``."""
        raise NotImplementedError
