"""Joint CTC/attention Transformer (Watanabe et al. 2017; ESPnet's ``asr.sh`` Transformer/Conformer).

Built from :mod:`asrkit.nn` layers only::

    feats (B, T, D)
      Conv2dSubsampling x4 (x2)                                   -> (B, S, d),  S = ceil(T / 4)
      encoder  transformer: sinusoidal positions (x * sqrt(d) + PE), Dropout,
                            TransformerEncoderLayer (pre-norm) x encoder_layers, LayerNorm
               conformer:   [sinusoidal positions if pos_enc=abs], Dropout,
                            Conformer blocks x encoder_layers (each ends with a LayerNorm)
                                                                  -> memory (B, S, d)
      CTC head  Linear(d, C) on the memory (when ctc_weight > 0)   -> ctc_logits (B, S, C)

    decoder inputs SOS y_1 .. y_U (B, U+1)
      Embedding(C, d), positions (x * sqrt(d) + PE), Dropout
      TransformerDecoderLayer (pre-norm) x decoder_layers: causal self-attention,
          cross-attention over the memory (padded frames masked), feed-forward
      LayerNorm, Linear(d, C)                                     -> logits (B, U+1, C)

Training combines ``ctc_weight * CTC + (1 - ctc_weight) * attention cross-entropy`` (the
task does, from ``Seq2SeqOutput``); decoding can add the CTC prefix score of the head.
``step`` decodes incrementally (:class:`TransformerState`): each decoder layer keeps the
self-attention keys/values of the positions fed so far (a key/value cache, ``(N, heads,
L, d / heads)``) and the keys/values of the encoder memory, projected once by
``init_state`` and shared by every hypothesis of an utterance; a step computes only the new
position (work and memory linear in the prefix, not quadratic, and no copy of the memory
per hypothesis). ``decode`` (every position at once) is the training path; both give the
same log-probabilities. The attention reported for plots is the last decoder layer's
cross-attention, averaged over heads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from asrkit.models.common import check_input, lengths_to_padding_mask
from asrkit.models.ctc import Conv2dSubsampling, subsampled_lengths
from asrkit.models.seq2seq import Encoded, Seq2SeqModel, Seq2SeqOutput, decoder_targets
from asrkit.nn import (
    Conformer, Dropout, Embedding, LayerNorm, Linear, LogSoftmax, SinusoidalPositionalEncoding,
    TransformerDecoderLayer, TransformerEncoderLayer, init,
)
from asrkit.nn.attention import KVCache

__all__ = ["TransformerS2S", "TransformerState", "ENCODERS"]

ENCODERS = ("transformer", "conformer")


@dataclass
class TransformerState:
    """The decoder's state between steps (``N`` hypothesis rows, ``L`` tokens fed so far).

    ``self_kv``: per decoder layer, the self-attention keys/values of the ``L`` positions
    (a :class:`~asrkit.nn.attention.KVCache`: ``(N, heads, L, d / heads)`` each, appended in
    place). ``memory_kv``: per decoder layer, the cross-attention ``(k, v)`` of the encoder
    memory given to ``init_state``, ``(M, heads, S, d / heads)`` each (``M``: its rows),
    with ``memory_mask (M, S)`` (True at padding); ``rows (N,)`` int64: the memory row of
    each hypothesis. ``position``: ``L``, the position of the next token. ``index`` selects
    hypothesis rows (``self_kv`` and ``rows``); the memory's keys/values are shared, never
    copied per hypothesis.
    """

    self_kv: tuple[KVCache, ...]
    memory_kv: tuple[tuple[Tensor, Tensor], ...]
    memory_mask: Tensor
    rows: Tensor
    position: int

    def index(self, idx: Tensor) -> "TransformerState":
        idx = idx.to(self.rows.device)
        return TransformerState(tuple(c.index_select(idx) for c in self.self_kv),
                                self.memory_kv, self.memory_mask, self.rows.index_select(0, idx), self.position)


class TransformerS2S(Seq2SeqModel):
    """``forward(feats, lengths, targets, target_lengths) -> Seq2SeqOutput`` (teacher forcing);
    ``encode`` / ``init_state`` / ``step`` / ``select_state`` for decoding.

    Args:
        input_dim, num_classes: feature dimension; units including id 0 (SOS/EOS, CTC blank).
        encoder: ``"transformer"`` or ``"conformer"``.
        hidden, heads, ff_mult: model width ``d``, attention heads, feed-forward width
            ``ff_mult * d`` (encoder and decoder).
        encoder_layers, decoder_layers: depths.
        dropout: everywhere (positions, attention weights, feed-forward, residual branches).
        subsampling, conv_channels: the Conv2d front end (4 or 2) and its channels.
        conv_kernel, pos_enc: conformer only: depthwise kernel (odd); ``"rel"`` relative
            positions in attention or ``"abs"`` a sinusoidal table on the input.
        ctc_weight: > 0 adds the CTC head (``ctc``: Linear(d, C)); the weight itself is the task's.
        impl: ``"scratch"`` or ``"native"`` for every layer.

    Submodules: ``frontend``, ``pos_enc`` (None for a conformer with ``rel``), ``dropout``,
    ``encoder`` (ModuleList of TransformerEncoderLayer, or a Conformer), ``encoder_norm``
    (LayerNorm; None for the conformer), ``ctc`` (or None), ``embed``, ``decoder_pos``,
    ``decoder`` (ModuleList of TransformerDecoderLayer), ``decoder_norm``, ``output``.
    """

    def __init__(self, input_dim: int, num_classes: int, encoder: str = "transformer", hidden: int = 256,
                 heads: int = 4, ff_mult: float = 4, encoder_layers: int = 12, decoder_layers: int = 6,
                 dropout: float = 0.1, subsampling: int = 4, conv_channels: int = 32, conv_kernel: int = 15,
                 pos_enc: str = "rel", ctc_weight: float = 0.3, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self.input_dim, self.num_classes = input_dim, num_classes
        self.subsampling = subsampling
        self.encoder_type = encoder
        d, ff = hidden, int(ff_mult * hidden)
        self.frontend = Conv2dSubsampling(input_dim, conv_channels, d, subsampling, impl=impl)
        self.pos_enc: Optional[SinusoidalPositionalEncoding] = None
        if encoder == "transformer" or pos_enc == "abs":
            self.pos_enc = SinusoidalPositionalEncoding(d, max_len=10000, xscale=True, impl=impl)
        self.dropout = Dropout(dropout, impl=impl)
        self.encoder_norm: Optional[LayerNorm] = None
        if encoder == "transformer":
            self.encoder = torch.nn.ModuleList([
                TransformerEncoderLayer(d, heads, ff, dropout, batch_first=True, norm_first=True, impl=impl)
                for _ in range(encoder_layers)])
            self.encoder_norm = LayerNorm(d, impl=impl)
        else:
            self.encoder = Conformer(d, heads, ff, encoder_layers, conv_kernel, dropout, pos_enc=pos_enc,
                                     mask_conv_padding=True, impl=impl)
        self.ctc: Optional[Linear] = Linear(d, num_classes, impl=impl) if ctc_weight > 0 else None
        self.has_ctc = self.ctc is not None
        self.embed = Embedding(num_classes, d, impl=impl)
        init.normal_(self.embed.weight, std=d ** -0.5)  # x sqrt(d) then gives unit-variance embeddings
        self.decoder_pos = SinusoidalPositionalEncoding(d, max_len=5000, xscale=True, impl=impl)
        self.decoder = torch.nn.ModuleList([
            TransformerDecoderLayer(d, heads, ff, dropout, batch_first=True, norm_first=True, impl=impl)
            for _ in range(decoder_layers)])
        self.decoder[-1].keep_cross_attention = True  # the attention that forward and step report
        self.decoder_norm = LayerNorm(d, impl=impl)
        self.output = Linear(d, num_classes, impl=impl)
        self.log_softmax = LogSoftmax(-1, impl=impl)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Encoder frames per utterance: ``ceil(T / subsampling)``."""
        return subsampled_lengths(lengths, self.subsampling)

    def encode(self, feats: Tensor, lengths: Tensor) -> Encoded:
        check_input(feats, lengths, self.input_dim)
        x, out_lengths = self.frontend(feats, lengths.to(feats.device))  # (B, S, d)
        if self.pos_enc is not None:
            x = self.pos_enc(x)
        x = self.dropout(x)
        if self.encoder_type == "transformer":
            mask = lengths_to_padding_mask(out_lengths, x.shape[1])  # (B, S), True at padding
            for layer in self.encoder:
                x = layer(x, src_key_padding_mask=mask)
            x = self.encoder_norm(x)
        else:
            x, _ = self.encoder(x, out_lengths)
        return Encoded(x, out_lengths, self.ctc(x) if self.ctc is not None else None)

    def decode(self, tokens: Tensor, enc: Encoded) -> tuple[Tensor, Tensor]:
        """``tokens (N, L)`` decoder inputs (SOS first) -> ``(logits (N, L, C), cross-attention
        (N, L, S))``: every position at once, each seeing only the positions before it."""
        L = tokens.shape[1]
        x = self.dropout(self.decoder_pos(self.embed(tokens)))  # (N, L, d)
        causal = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)  # True = a later position
        mask = enc.padding_mask  # (N, S)
        for layer in self.decoder:
            x = layer(x, enc.memory, tgt_mask=causal, memory_key_padding_mask=mask)
        logits = self.output(self.decoder_norm(x))  # (N, L, C)
        return logits, self.decoder[-1].cross_attention

    def forward(self, feats: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor,
                tf_rate: float = 1.0) -> Seq2SeqOutput:
        if tf_rate != 1.0:
            raise ValueError(f"the Transformer decoder trains with full teacher forcing (tf_rate=1.0), got {tf_rate}")
        enc = self.encode(feats, lengths)
        inputs, outputs = decoder_targets(targets.to(feats.device), target_lengths, self.num_classes)  # (B, U+1)
        logits, attention = self.decode(inputs, enc)
        return Seq2SeqOutput(logits, outputs, enc.ctc_logits, enc.lengths, attention)

    def init_state(self, enc: Encoded) -> TransformerState:
        """Nothing fed yet; the memory's keys/values of every decoder layer, projected once."""
        memory = enc.memory  # (M, S, d)
        M = memory.shape[0]
        first = self.decoder[0].self_attn
        return TransformerState(tuple(KVCache.empty(M, first.num_heads, first.head_dim, dtype=memory.dtype,
                                                    device=memory.device) for _ in self.decoder),
                                tuple(layer.multihead_attn.project_kv(memory, memory) for layer in self.decoder),
                                enc.padding_mask, torch.arange(M, device=memory.device), 0)

    def step(self, enc: Encoded, state: TransformerState, tokens: Tensor
             ) -> tuple[Tensor, TransformerState, Tensor]:
        """Feed ``tokens (N,)`` at position ``state.position``: ``(log_probs (N, C) float32, new
        state, attention (N, S) float32)``, equal to ``decode`` of the whole prefix at its last
        position. ``enc`` must have the ``N`` rows of ``state`` (the search indexes both alike);
        the memory attended over is the one given to ``init_state``. Eval mode (no dropout)."""
        N = state.rows.shape[0]
        if enc.lengths.shape[0] != N or tokens.shape != (N,):  # (enc.memory itself is not read)
            raise ValueError(f"step: the state has {N} rows, enc {enc.lengths.shape[0]} and tokens "
                             f"{tuple(tokens.shape)}")
        x = self.embed(tokens.to(state.rows.device).long()[:, None])  # (N, 1, d)
        x = self.dropout(self.decoder_pos(x, offset=state.position))
        caches = []
        for layer, cache, mem_kv in zip(self.decoder, state.self_kv, state.memory_kv):
            x, cache = layer.step(x, cache, mem_kv, state.memory_mask, memory_rows=state.rows)
            caches.append(cache)
        logits = self.output(self.decoder_norm(x[:, 0]))  # (N, C)
        new = TransformerState(tuple(caches), state.memory_kv, state.memory_mask, state.rows, state.position + 1)
        return self.log_softmax(logits.float()), new, self.decoder[-1].cross_attention[:, 0].float()

    def select_state(self, state: TransformerState, idx: Tensor) -> TransformerState:
        return state.index(idx)
