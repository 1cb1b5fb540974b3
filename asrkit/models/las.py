"""Listen, Attend and Spell (Chan et al. 2016), the 11-785 course's attention model.

Built from :mod:`asrkit.nn` layers only::

    feats (B, T, D)
      [frontend: conv2d]  Conv2dSubsampling x2 | x4                       -> (B, T0, H)
      Listener   BiLSTM x listener_layers                                 -> (B, T0, 2H)
                 pyramidal BiLSTM x pyramid_layers, each:
                   concatenate frames 2t, 2t+1 (an odd last frame pairs with a zero frame)
                                                   (B, T, 2H) -> (B, ceil(T/2), 4H)
                   BiLSTM(4H, H)                                          -> (B, ceil(T/2), 2H)
                 (Locked)Dropout between layers; every layer runs packed to each length
      memory h (B, S, M = 2H),  S = ceil(T0 / 2^pyramid_layers)
      [CTC head: Linear(M, C) when ctc_weight > 0]

    Speller, one step u (teacher forcing feeds y_{u-1}; SOS first):
      x = [Embedding(y_{u-1}) (E), c_{u-1} (M)]
      s_u = LSTMCell x speller_layers (hidden D)                           (B, D)
      c_u, a_u = Attend(s_u, h, a_{u-1})                                   (B, M), (B, S)
      logits_u = Linear(Tanh(Linear([s_u, c_u]) (E)))                      (B, C)

``attention``: ``dot`` / ``scaled_dot`` (:class:`~asrkit.nn.DotProductAttention`) or
``location`` (:class:`~asrkit.nn.LocationAwareAttention`, Chorowski et al. 2015). Padded
frames get zero attention weight and are zeros in the memory, so an utterance decodes the
same alone or padded in a batch (eval mode).

Teacher forcing: ``forward(..., tf_rate)`` feeds the true previous token with probability
``tf_rate`` and the model's own previous argmax otherwise, drawn per utterance and step
from torch's global RNG (on the CPU, so a resumed run with the same RNG state draws the same).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from asrkit.models.common import check_input
from asrkit.models.ctc import Conv2dSubsampling, subsampled_lengths
from asrkit.models.seq2seq import Encoded, Seq2SeqModel, Seq2SeqOutput, decoder_targets
from asrkit.nn import (
    LSTM, DotProductAttention, Dropout, Embedding, Linear, LocationAwareAttention, LockedDropout, LogSoftmax,
    LSTMCell, Module, Tanh,
)
from asrkit.nn.seq2seq_attention import ATTENTIONS

__all__ = ["LAS", "LASState", "Listener", "Speller", "pyramid_lengths"]

FRONTENDS = ("none", "conv2d")


def pyramid_lengths(lengths: Tensor, pyramid_layers: int) -> Tensor:
    """Frames after ``pyramid_layers`` halvings: ``ceil(T / 2)`` each time."""
    for _ in range(pyramid_layers):
        lengths = (lengths + 1) // 2
    return lengths


class Listener(Module):
    """``(feats (B, T, D), lengths (B,)) -> (memory (B, S, 2 * hidden), out_lengths (B,))``.

    Submodules: ``frontend`` (Conv2dSubsampling or None), ``blstm`` (ModuleList of
    bidirectional LSTMs), ``pblstm`` (ModuleList of the pyramidal ones, input ``4 * hidden``),
    ``dropout`` (LockedDropout or Dropout, applied to the input of every layer but the first).
    """

    def __init__(self, input_dim: int, hidden: int = 256, layers: int = 1, pyramid_layers: int = 3,
                 dropout: float = 0.1, locked_dropout: bool = True, frontend: str = "none",
                 frontend_subsampling: int = 2, conv_channels: int = 32, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {frontend!r}")
        if layers < 1:
            raise ValueError(f"the listener needs at least one plain BiLSTM layer, got layers={layers}")
        self.hidden, self.pyramid_layers = hidden, pyramid_layers
        self.frontend_subsampling = frontend_subsampling if frontend == "conv2d" else 1
        self.frontend = (Conv2dSubsampling(input_dim, conv_channels, hidden, frontend_subsampling, impl=impl)
                         if frontend == "conv2d" else None)
        width = hidden if self.frontend is not None else input_dim
        self.blstm = torch.nn.ModuleList()
        for i in range(layers):
            self.blstm.append(LSTM(width if i == 0 else 2 * hidden, hidden, batch_first=True, bidirectional=True,
                                   impl=impl))
        self.pblstm = torch.nn.ModuleList()
        for _ in range(pyramid_layers):
            self.pblstm.append(LSTM(4 * hidden, hidden, batch_first=True, bidirectional=True, impl=impl))
        self.dropout = LockedDropout(dropout, impl=impl) if locked_dropout else Dropout(dropout, impl=impl)
        self.output_dim = 2 * hidden

    def output_lengths(self, lengths: Tensor) -> Tensor:
        if self.frontend is not None:
            lengths = subsampled_lengths(lengths, self.frontend_subsampling)
        return pyramid_lengths(lengths, self.pyramid_layers)

    @staticmethod
    def _pyramid(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T, F) -> (B, ceil(T/2), 2F)``: frames ``2t`` and ``2t+1`` side by side. ``x`` is a
        BiLSTM's output, zeros past each length, so an odd last frame always pairs with zeros
        (alone or padded in a batch)."""
        B, T, F = x.shape
        if T % 2:
            x = torch.cat([x, x.new_zeros(B, 1, F)], 1)  # (B, T+1, F)
        return x.reshape(B, (T + 1) // 2, 2 * F), (lengths + 1) // 2

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = feats
        if self.frontend is not None:
            x, lengths = self.frontend(feats, lengths)  # (B, T0, H)
        for i, lstm in enumerate(self.blstm):
            if i:
                x = self.dropout(x)
            x, _ = lstm(x, lengths=lengths)  # (B, T0, 2H), zeros past each length
        for lstm in self.pblstm:
            x, lengths = self._pyramid(self.dropout(x), lengths)  # (B, T/2, 4H)
            x, _ = lstm(x, lengths=lengths)  # (B, T/2, 2H)
        return x, lengths


@dataclass
class LASState:
    """The speller's state between steps (``N`` rows).

    ``h``, ``c``: one ``(N, D)`` per LSTMCell layer; ``context (N, M)`` the last context
    vector; ``weights (N, S)`` the last attention weights (uniform over each utterance's frames
    before the first step); ``keys (N, S, A)`` the attention's memory projection (computed
    once by ``init_state``).
    """

    h: tuple[Tensor, ...]
    c: tuple[Tensor, ...]
    context: Tensor
    weights: Tensor
    keys: Tensor

    def index(self, idx: Tensor) -> "LASState":
        sel = lambda t: t.index_select(0, idx)  # noqa: E731
        return LASState(tuple(map(sel, self.h)), tuple(map(sel, self.c)), sel(self.context), sel(self.weights),
                        sel(self.keys))


class Speller(Module):
    """The attention decoder: one step ``(tokens (N,), state, memory, padding_mask) ->
    (logits (N, C), new state)``.

    Submodules: ``embedding`` (Embedding(C, E)), ``cells`` (ModuleList of LSTMCell; the first
    takes ``E + M``), ``attention``, ``output_proj`` (Linear(D + M, E)), ``output_act`` (Tanh),
    ``classifier`` (Linear(E, C)), ``dropout`` (between cells and before the classifier).
    """

    def __init__(self, num_classes: int, memory_dim: int, embed_dim: int = 256, hidden: int = 512,
                 layers: int = 1, attention: str = "location", attention_dim: int = 128,
                 location_channels: int = 10, location_kernel: int = 31, dropout: float = 0.1,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        self.memory_dim, self.hidden = memory_dim, hidden
        self.embedding = Embedding(num_classes, embed_dim, impl=impl)
        self.cells = torch.nn.ModuleList([
            LSTMCell(embed_dim + memory_dim if i == 0 else hidden, hidden, impl=impl) for i in range(layers)])
        if attention == "location":
            self.attention = LocationAwareAttention(hidden, memory_dim, attention_dim, location_channels,
                                                    location_kernel, impl=impl)
        else:
            self.attention = DotProductAttention(hidden, memory_dim, attention_dim, scaled=attention == "scaled_dot",
                                                 impl=impl)
        self.dropout = Dropout(dropout, impl=impl)
        self.output_proj = Linear(hidden + memory_dim, embed_dim, impl=impl)
        self.output_act = Tanh(impl=impl)
        self.classifier = Linear(embed_dim, num_classes, impl=impl)

    def init_state(self, memory: Tensor, padding_mask: Tensor) -> LASState:
        N = memory.shape[0]
        zeros = memory.new_zeros(N, self.hidden)
        layers = len(self.cells)
        return LASState((zeros,) * layers, (zeros,) * layers, memory.new_zeros(N, self.memory_dim),
                        self.attention.initial_weights(padding_mask, memory.dtype),
                        self.attention.project_memory(memory))

    def forward(self, tokens: Tensor, state: LASState, memory: Tensor, padding_mask: Tensor
                ) -> tuple[Tensor, LASState]:
        x = torch.cat([self.embedding(tokens), state.context], -1)  # (N, E + M)
        hs, cs = [], []
        for i, cell in enumerate(self.cells):
            if i:
                x = self.dropout(x)
            h, c = cell(x, (state.h[i], state.c[i]))  # (N, D) each
            hs.append(h)
            cs.append(c)
            x = h
        context, weights = self.attention(x, memory, padding_mask, keys=state.keys,
                                          prev_weights=state.weights)  # (N, M), (N, S)
        out = self.output_act(self.output_proj(torch.cat([x, context], -1)))  # (N, E)
        logits = self.classifier(self.dropout(out))  # (N, C)
        return logits, LASState(tuple(hs), tuple(cs), context, weights, state.keys)


class LAS(Seq2SeqModel):
    """Listen, Attend and Spell: ``forward(feats, lengths, targets, target_lengths, tf_rate)
    -> Seq2SeqOutput``; ``encode`` / ``init_state`` / ``step`` / ``select_state`` for decoding
    (see :mod:`asrkit.models.seq2seq`).

    Args:
        input_dim, num_classes: feature dimension; units including id 0 (SOS/EOS).
        listener_hidden, listener_layers, pyramid_layers: LSTM units per direction, plain
            BiLSTM layers, pyramidal BiLSTM layers (each halves time).
        dropout, locked_dropout: dropout between listener layers (one mask per utterance when
            ``locked_dropout``) and in the speller.
        frontend, frontend_subsampling, conv_channels: ``"none"`` or ``"conv2d"``
            (:class:`~asrkit.models.ctc.Conv2dSubsampling`, x2 or x4, to ``listener_hidden``).
        attention, attention_dim, location_channels, location_kernel: ``"dot"``,
            ``"scaled_dot"`` or ``"location"`` and its sizes.
        embed_dim, speller_hidden, speller_layers: token embedding (also the output MLP's
            width), LSTMCell units, LSTMCell layers.
        ctc_weight: > 0 adds a CTC head (``ctc``: Linear(2 * listener_hidden, C)) on the listener.
        impl: ``"scratch"`` or ``"native"`` for every layer.
    """

    def __init__(self, input_dim: int, num_classes: int, listener_hidden: int = 256, listener_layers: int = 1,
                 pyramid_layers: int = 3, dropout: float = 0.1, locked_dropout: bool = True,
                 frontend: str = "none", frontend_subsampling: int = 2, conv_channels: int = 32,
                 attention: str = "location", attention_dim: int = 128, location_channels: int = 10,
                 location_kernel: int = 31, embed_dim: int = 256, speller_hidden: int = 512,
                 speller_layers: int = 1, ctc_weight: float = 0.0, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.input_dim, self.num_classes = input_dim, num_classes
        self.listener = Listener(input_dim, listener_hidden, listener_layers, pyramid_layers, dropout,
                                 locked_dropout, frontend, frontend_subsampling, conv_channels, impl=impl)
        self.subsampling = self.listener.frontend_subsampling * 2 ** pyramid_layers
        M = self.listener.output_dim
        self.speller = Speller(num_classes, M, embed_dim, speller_hidden, speller_layers, attention, attention_dim,
                               location_channels, location_kernel, dropout, impl=impl)
        self.ctc: Optional[Linear] = Linear(M, num_classes, impl=impl) if ctc_weight > 0 else None
        self.has_ctc = self.ctc is not None
        self.log_softmax = LogSoftmax(-1, impl=impl)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Listener frames per utterance: ``ceil`` halvings of the front end, then of each pyramid layer."""
        return self.listener.output_lengths(lengths)

    def encode(self, feats: Tensor, lengths: Tensor) -> Encoded:
        check_input(feats, lengths, self.input_dim)
        memory, out_lengths = self.listener(feats, lengths.to(feats.device))  # (B, S, M), (B,)
        return Encoded(memory, out_lengths, self.ctc(memory) if self.ctc is not None else None)

    def init_state(self, enc: Encoded) -> LASState:
        return self.speller.init_state(enc.memory, enc.padding_mask)

    def step(self, enc: Encoded, state: LASState, tokens: Tensor) -> tuple[Tensor, LASState, Tensor]:
        logits, state = self.speller(tokens.to(enc.memory.device), state, enc.memory, enc.padding_mask)
        return self.log_softmax(logits.float()), state, state.weights.float()

    def select_state(self, state: LASState, idx: Tensor) -> LASState:
        return state.index(idx.to(state.context.device))

    def forward(self, feats: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor,
                tf_rate: float = 1.0) -> Seq2SeqOutput:
        if not 0.0 <= tf_rate <= 1.0:
            raise ValueError(f"tf_rate must be in [0, 1], got {tf_rate}")
        enc = self.encode(feats, lengths)
        inputs, outputs = decoder_targets(targets.to(feats.device), target_lengths, self.num_classes)  # (B, U+1)
        B, steps = inputs.shape
        own = None
        if tf_rate < 1.0:  # True where the model's own previous argmax replaces the truth (steps 1..U)
            own = (torch.rand(B, steps - 1) >= tf_rate).to(inputs.device)
        mask = enc.padding_mask
        state = self.init_state(enc)
        logits, weights = [], []
        tokens = inputs[:, 0]  # SOS
        for u in range(steps):
            if u and own is not None:
                tokens = torch.where(own[:, u - 1], logits[-1].detach().argmax(-1), inputs[:, u])
            elif u:
                tokens = inputs[:, u]
            out, state = self.speller(tokens, state, enc.memory, mask)  # (B, C)
            logits.append(out)
            weights.append(state.weights.detach())
        return Seq2SeqOutput(torch.stack(logits, 1), outputs, enc.ctc_logits, enc.lengths,
                             torch.stack(weights, 1))
