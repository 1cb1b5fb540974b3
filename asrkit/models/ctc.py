"""CTC acoustic models: Conv2d subsampling -> BiLSTM / BiGRU / Conformer -> Linear.

Built from :mod:`asrkit.nn` layers only::

    feats (B, T, D)
      Conv2dSubsampling: Conv2d(1, C, 3, stride 2, pad 1), ReLU,
                         Conv2d(C, C, 3, stride (s/2, 2), pad 1), ReLU, Linear(C * D'', H)
                                                         -> (B, T', H),  T' = ceil(T / s)
      lstm | gru only: UtteranceNorm: per-utterance normalization of each of the H dims
                       over the utterance's own T' frames (mean 0, variance 1; no
                       parameters; the front end's Linear then has no bias)
      Dropout
      encoder  lstm | gru:   bidirectional LSTM/GRU, ``layers`` deep, packed by length -> (B, T', 2H)
               conformer:    [sinusoidal positions if pos_enc=abs], Conformer blocks    -> (B, T', H)
      Dropout, Linear -> logits (B, T', num_classes)          (blank = id 0; not log-softmaxed)

Why the recurrent encoders normalize the front end's output and start with a
blank-leaning output bias: before CTC finds alignments its gradient says only
"emit blank more often", which does not depend on the input. A BiLSTM can
satisfy it with a constant input, and Adam pushes the front end's biases there
within a few dozen updates: on the tiny corpus the front end's frames
collapsed onto one vector (across-frame spread / mean norm 1.0 -> 0.45 after
40 updates; 0.14 even with a LayerNorm after the projection, which normalizes
each frame, not the spread over time), the gradient reaching the front end
fell 500x, and training stayed at the all-blank plateau (loss ~3.4, PER 100%).
Normalizing each dim over the utterance's frames removes that constant
direction (it keeps only what varies over time), and a blank bias of
``log(1.5 (C - 1))`` (blank probability 0.6 at the start) lets the first
updates go to the alignment instead of the blank prior. The Conformer, whose
residual blocks keep the input in reach, does not need either and is left as
it was.

Variable lengths: the front end zeroes every frame past an utterance's own
length before and after each convolution, the recurrent encoders run packed
(each direction starts at the utterance's own last frame) and the Conformer
masks padded keys in attention and padded frames before its depthwise
convolution. So, in eval mode, an utterance gives the same logits on its
``out_lengths`` frames alone or padded in a batch. (In training mode the
Conformer's BatchNorm statistics include the padded frames of the batch, as in
torchaudio/ESPnet.)
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from asrkit.models.common import check_input, lengths_to_padding_mask
from asrkit.nn import (
    GRU, LSTM, Conformer, Conv2d, Dropout, Linear, Module, ReLU, SinusoidalPositionalEncoding, Softmax,
    UtteranceNorm,
)
from asrkit.nn.functional import shape as S

__all__ = ["Conv2dSubsampling", "CTCModel", "subsampled_lengths"]

_ENCODERS = ("lstm", "gru", "conformer")


def _halve(n: Tensor | int) -> Tensor | int:
    """Frames out of a kernel-3, stride-2, padding-1 convolution: ``ceil(n / 2)``."""
    return (n - 1) // 2 + 1


def subsampled_lengths(lengths: Tensor, subsampling: int) -> Tensor:
    """``T' = ceil(T / 2)`` for ``subsampling=2``, ``ceil(ceil(T / 2) / 2) = ceil(T / 4)`` for 4."""
    out = _halve(lengths)
    if subsampling == 4:
        out = _halve(out)
    return out


class Conv2dSubsampling(Module):
    """``(feats (B, T, D), lengths (B,)) -> (x (B, T', out_dim), out_lengths (B,))``.

    Two 3x3 convolutions over (time, frequency) with ReLU; the first has stride
    2 in both axes, the second stride 2 in frequency and ``subsampling // 2``
    in time, so ``T' = ceil(T / subsampling)`` and ``D'' = ceil(ceil(D / 2) / 2)``;
    a Linear maps the ``channels * D''`` values of each frame to ``out_dim``
    (without a bias when ``bias=False``).
    Frames past each utterance's length are zeroed before each convolution, so
    they never reach a valid frame's receptive field.
    """

    def __init__(self, input_dim: int, channels: int, out_dim: int, subsampling: int,
                 *, bias: bool = True, impl: str = "scratch") -> None:
        super().__init__(impl)
        if subsampling not in (2, 4):
            raise ValueError(f"subsampling must be 2 or 4, got {subsampling}")
        self.subsampling = subsampling
        self.conv1 = Conv2d(1, channels, 3, stride=2, padding=1, impl=impl)
        self.act1 = ReLU(impl=impl)
        self.conv2 = Conv2d(channels, channels, 3, stride=(subsampling // 2, 2), padding=1, impl=impl)
        self.act2 = ReLU(impl=impl)
        freq = _halve(_halve(input_dim))
        self.proj = Linear(channels * freq, out_dim, bias=bias, impl=impl)

    def _mask(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Zero the time steps past each length: ``x (B, C, T, F)``."""
        pad = lengths_to_padding_mask(lengths, x.shape[2])[:, None, :, None]  # (B, 1, T, 1)
        return x.masked_fill(pad, 0.0) if self.native else S.masked_fill(x, pad, 0.0)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self._mask(feats.unsqueeze(1), lengths)  # (B, 1, T, D)
        x = self.act1(self.conv1(x))  # (B, C, ceil(T/2), ceil(D/2))
        lengths = _halve(lengths)
        x = self._mask(x, lengths)
        x = self.act2(self.conv2(x))  # (B, C, T', D'')
        if self.subsampling == 4:
            lengths = _halve(lengths)
        B, C, T, F = x.shape
        x = self.proj(x.transpose(1, 2).reshape(B, T, C * F))  # (B, T', out_dim)
        return x, lengths


class CTCModel(Module):
    """``forward(feats (B, T, D), lengths (B,)) -> (logits (B, T', C), out_lengths (B,))``.

    Args:
        input_dim: feature dimension ``D``.
        num_classes: CTC units including the blank (id 0).
        subsampling: 2 or 4 (time reduction of the convolutional front end).
        encoder: ``"lstm"``, ``"gru"`` (bidirectional, ``hidden`` units per direction)
            or ``"conformer"`` (model width ``hidden``).
        hidden, layers, dropout: encoder size, depth and dropout (also used after the
            front end and before the output layer).
        conv_channels: channels of the two front-end convolutions.
        heads, ff_mult, conv_kernel, pos_enc: Conformer attention heads, feed-forward
            width ``ff_mult * hidden``, depthwise kernel (odd), ``"rel"`` (relative
            positions in attention) or ``"abs"`` (sinusoidal table added to the input).
        inter_layers: Conformer layers (1-based, below the last) whose outputs also go through
            the output layer with ``forward(..., inter=True)`` (intermediate CTC).
        inter_condition: self-conditioned CTC: the tapped layers' posteriors go through a
            Linear(num_classes, hidden) and are added to their outputs, in every forward.
        impl: ``"scratch"`` or ``"native"`` for every layer.
    """

    def __init__(self, input_dim: int, num_classes: int, subsampling: int = 4, encoder: str = "lstm",
                 hidden: int = 256, layers: int = 3, dropout: float = 0.1, conv_channels: int = 32,
                 heads: int = 4, ff_mult: float = 4, conv_kernel: int = 15, pos_enc: str = "rel",
                 inter_layers: tuple[int, ...] = (), inter_condition: bool = False, *,
                 impl: str = "scratch") -> None:
        super().__init__(impl)
        if encoder not in _ENCODERS:
            raise ValueError(f"encoder must be one of {_ENCODERS}, got {encoder!r}")
        if inter_layers and (encoder != "conformer" or not all(1 <= i < layers for i in inter_layers)):
            raise ValueError(f"inter_layers: conformer layers in 1 .. {layers - 1}, got {inter_layers!r}")
        if inter_condition and not inter_layers:
            raise ValueError("inter_condition needs inter_layers")
        self.inter_layers = tuple(inter_layers)
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.subsampling = subsampling
        self.encoder_type = encoder
        rnn_encoder = encoder in ("lstm", "gru")
        # the recurrent encoders normalize the front end's output over time, which removes any
        # constant a bias could add: a bias there would get only rounding noise as gradient (and
        # Adam would turn that noise into full-size steps), so the projection has none
        self.frontend = Conv2dSubsampling(input_dim, conv_channels, hidden, subsampling, bias=not rnn_encoder,
                                          impl=impl)
        self.norm = UtteranceNorm(impl=impl) if rnn_encoder else None
        self.dropout = Dropout(dropout, impl=impl)
        self.pos_enc = None
        if rnn_encoder:
            rnn = LSTM if encoder == "lstm" else GRU
            self.encoder = rnn(hidden, hidden, num_layers=layers, batch_first=True,
                               dropout=dropout if layers > 1 else 0.0, bidirectional=True, impl=impl)
            width = 2 * hidden
        else:
            if pos_enc == "abs":
                self.pos_enc = SinusoidalPositionalEncoding(hidden, max_len=10000, xscale=True, impl=impl)
            self.encoder = Conformer(hidden, heads, int(ff_mult * hidden), layers, conv_kernel, dropout,
                                     pos_enc=pos_enc, mask_conv_padding=True, impl=impl)
            width = hidden
        self.output = Linear(width, num_classes, impl=impl)
        # self-conditioned CTC: each tapped layer's posteriors, mapped back to the model width, are added
        # to its output before the next layer reads it (one Linear shared by the taps, as in ESPnet)
        self.condition = Linear(num_classes, width, impl=impl) if inter_condition else None
        self.softmax = Softmax(-1, impl=impl) if inter_condition else None
        if rnn_encoder:
            # start with blank probability 0.6 (see the module docstring)
            with torch.no_grad():
                self.output.bias.zero_()
                self.output.bias[0] = math.log(1.5 * max(num_classes - 1, 1))

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Frames out per utterance: ``ceil(T / subsampling)`` (see :func:`subsampled_lengths`)."""
        return subsampled_lengths(lengths, self.subsampling)

    def forward(self, feats: Tensor, lengths: Tensor, inter: bool = False):
        """``(logits, out_lengths)``; with ``inter=True`` also the list of logits of the
        ``inter_layers`` (1-based encoder layers) through the same output layer (intermediate CTC)."""
        check_input(feats, lengths, self.input_dim)
        lengths = lengths.to(feats.device)
        x, out_lengths = self.frontend(feats, lengths)  # (B, T', H)
        if self.encoder_type != "conformer":
            x = self.norm(x, out_lengths)  # (B, T', H), zeros past each length
        x = self.dropout(x)
        if self.encoder_type == "conformer":
            if self.pos_enc is not None:
                x = self.pos_enc(x)
            inter_logits: list[Tensor] = []
            cond = self.condition is not None
            outs = self.encoder.forward_layers(x, out_lengths, self._tap(inter_logits) if cond else None)
            x = outs[-1]  # (B, T', H)
        else:
            x, _ = self.encoder(x, lengths=out_lengths)  # (B, T', 2H), zeros past each length
        logits = self.output(self.dropout(x))  # (B, T', C)
        if not inter:
            return logits, out_lengths
        if self.condition is None:
            # the tapped layers' logits, after the last layer's: the same values the hook would give,
            # but computing them inside the encoder loop changes autograd's summation order and so
            # the rounding of a whole training run (docs/demo.md's numbers come from this order)
            inter_logits = [self.output(self.dropout(outs[i - 1])) for i in self.inter_layers]
        return logits, out_lengths, inter_logits

    def _tap(self, inter_logits: list[Tensor]):
        """The encoder's per-layer hook when self-conditioning: the tapped layers' logits into
        ``inter_logits`` and their posteriors fed back into the layer's output."""
        def after(k: int, h: Tensor) -> Tensor:
            if k not in self.inter_layers:
                return h
            z = self.output(self.dropout(h))
            inter_logits.append(z)
            return h + self.condition(self.softmax(z))
        return after
