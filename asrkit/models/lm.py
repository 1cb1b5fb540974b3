"""Neural language models: an AWD-LSTM-style LSTM LM and a decoder-only Transformer LM.

Id 0 is the sentence boundary, ``<eos>`` and ``<sos>`` at once (as in
:mod:`asrkit.models.seq2seq`). A sentence ``w_1 .. w_n`` is fed as ``0 w_1 .. w_n`` and
scored on predicting ``w_1 .. w_n 0``; training text is a stream of sentences joined by
0, so the model also learns what follows a sentence end::

    tokens (B, L)  0  w1 w2 ... wn          forward(tokens) -> logits (B, L, C)
    targets        w1 w2 ... wn  0          row i of the logits predicts tokens[:, i + 1]

Decoding and scoring go one token at a time through the same interface as the attention
decoders (without an encoder)::

    state = model.init_state(N, device)                 # empty history
    logp, state = model.step(state, torch.zeros(N))     # (N, C) float32: P(w_1 | <s>)
    state = model.select_state(state, idx)              # rows idx (beam reordering)

Built from :mod:`asrkit.nn` layers only::

    LSTMLM          Embedding(C, E), EmbeddingDropout (whole word types), LockedDropout
                    LSTM x layers (one asrkit.nn.LSTM each, LockedDropout between them)
                    LockedDropout, [Linear(H, E) when tied and H != E], Linear(., C)
    TransformerLM   Embedding(C, d), positions (x sqrt(d) + sinusoidal or learned), Dropout
                    TransformerEncoderLayer (pre-norm, causal mask) x layers
                    LayerNorm, Linear(d, C)

``tie_weights`` shares the output layer's weight with the embedding table (Press & Wolf
2017; Inan et al. 2017): the state_dict holds it under both names, one tensor.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import Tensor

from asrkit.nn import (
    LSTM, Dropout, Embedding, EmbeddingDropout, LayerNorm, LearnedPositionalEncoding, Linear, LockedDropout,
    LogSoftmax, Module, SinusoidalPositionalEncoding, TransformerEncoderLayer, init,
)
from asrkit.nn.attention import KVCache

__all__ = ["BOUNDARY", "LanguageModel", "LSTMLM", "TransformerLM", "TransformerLMState", "POS_ENCODINGS", "LSTMState"]

BOUNDARY = 0  #: id 0: ``<sos>`` as the first input, ``</s>`` as the last output
POS_ENCODINGS = ("sinusoidal", "learned")

#: the LSTM LM's state: one ``(h, c)`` pair per layer, each ``(1, N, H_l)``
LSTMState = list[tuple[Tensor, Tensor]]


def _check_tokens(tokens: Tensor, num_classes: int) -> Tensor:
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be (B, L), got shape {tuple(tokens.shape)}")
    tokens = tokens.long()
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= num_classes):
        raise ValueError(f"tokens must be ids in 0 .. {num_classes - 1}, got min {int(tokens.min())} "
                         f"max {int(tokens.max())}")
    return tokens


class LanguageModel(Module):
    """The base of the neural LMs: ``forward`` for training, ``init_state`` / ``step`` /
    ``select_state`` for scoring and search.

    Attributes: ``num_classes`` (units including id 0), ``config`` (the resolved model
    config, set by :func:`asrkit.models.build_model`).
    """

    num_classes: int
    config: dict

    @abstractmethod
    def forward(self, tokens: Tensor) -> Tensor:
        """``tokens (B, L)`` int64 -> ``logits (B, L, C)``; row ``i`` predicts ``tokens[:, i + 1]``
        from ``tokens[:, :i + 1]`` (an empty history before ``tokens[:, 0]``)."""
        raise NotImplementedError

    @abstractmethod
    def init_state(self, batch: int, device: Union[str, torch.device, None] = None) -> Any:
        """The state of ``batch`` empty histories."""
        raise NotImplementedError

    @abstractmethod
    def step(self, state: Any, tokens: Tensor) -> tuple[Tensor, Any]:
        """Feed ``tokens (N,)`` (``0`` first): ``(log_probs (N, C) float32, new state)``; the
        log-probs are the next token's."""
        raise NotImplementedError

    @abstractmethod
    def select_state(self, state: Any, idx: Tensor) -> Any:
        """Rows ``idx (N',)`` of ``state`` (repeat, reorder or drop histories)."""
        raise NotImplementedError


class LSTMLM(LanguageModel):
    """An AWD-LSTM-style LM (Merity et al. 2018, without weight drop and ASGD).

    Args:
        num_classes: units including id 0.
        embed_dim: ``E``, the embedding width.
        hidden: ``H``, the LSTM width of every layer.
        layers: LSTM layers (one ``asrkit.nn.LSTM`` each, so a locked dropout mask sits between
            them).
        dropout: locked dropout on the last LSTM layer's output.
        embed_dropout: embedding dropout: the probability of dropping a whole word type.
        input_dropout: locked dropout on the embeddings (the first LSTM's input).
        hidden_dropout: locked dropout between LSTM layers.
        tie_weights: share the output layer's weight with the embedding table; when
            ``H != E`` a Linear(H, E) projection (``proj``) comes before the output layer.
        impl: ``"scratch"`` or ``"native"`` for every layer.

    Submodules: ``embed``, ``embed_dropout``, ``input_dropout``, ``rnns`` (ModuleList of
    single-layer LSTMs), ``hidden_dropout``, ``output_dropout``, ``proj`` (or None), ``output``.
    ``forward_state(tokens, state)`` carries the state from one block of a token stream to
    the next (truncated backpropagation through time).
    """

    def __init__(self, num_classes: int, embed_dim: int = 256, hidden: int = 256, layers: int = 2,
                 dropout: float = 0.2, embed_dropout: float = 0.1, input_dropout: float = 0.2,
                 hidden_dropout: float = 0.2, tie_weights: bool = True, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.num_classes, self.embed_dim, self.hidden, self.layers = num_classes, embed_dim, hidden, layers
        self.tie_weights = tie_weights
        self.embed = Embedding(num_classes, embed_dim, impl=impl)
        init.uniform_(self.embed.weight, -0.1, 0.1)  # AWD-LSTM's init of the (tied) table
        self.embed_dropout = EmbeddingDropout(num_classes, embed_dropout, impl=impl)
        self.input_dropout = LockedDropout(input_dropout, impl=impl)
        self.rnns = torch.nn.ModuleList([
            LSTM(embed_dim if i == 0 else hidden, hidden, 1, batch_first=True, impl=impl) for i in range(layers)])
        self.hidden_dropout = LockedDropout(hidden_dropout, impl=impl)
        self.output_dropout = LockedDropout(dropout, impl=impl)
        self.proj: Optional[Linear] = None
        if tie_weights and hidden != embed_dim:
            self.proj = Linear(hidden, embed_dim, impl=impl)
        self.output = Linear(embed_dim if tie_weights else hidden, num_classes, impl=impl)
        init.zeros_(self.output.bias)
        if tie_weights:
            self.output.weight = self.embed.weight  # (C, E): one tensor, two names in the state_dict
        self.log_softmax = LogSoftmax(-1, impl=impl)

    def forward_state(self, tokens: Tensor, state: Optional[LSTMState] = None) -> tuple[Tensor, LSTMState]:
        """``tokens (B, L)``, a state (``None``: empty histories) -> ``(logits (B, L, C), state
        after the last token)``."""
        tokens = _check_tokens(tokens, self.num_classes)
        x = self.embed(tokens)                                    # (B, L, E)
        x = self.input_dropout(self.embed_dropout(x, tokens))
        new_state: LSTMState = []
        for i, rnn in enumerate(self.rnns):
            x, (h, c) = rnn(x, None if state is None else state[i])  # (B, L, H), (1, B, H) x 2
            new_state.append((h, c))
            if i < len(self.rnns) - 1:
                x = self.hidden_dropout(x)
        x = self.output_dropout(x)
        if self.proj is not None:
            x = self.proj(x)                                      # (B, L, E)
        return self.output(x), new_state                          # (B, L, C)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.forward_state(tokens)[0]

    def init_state(self, batch: int, device: Union[str, torch.device, None] = None) -> LSTMState:
        """Zeros: ``[(h, c)] * layers``, each ``(1, batch, H)`` in the weights' dtype."""
        w = self.embed.weight
        z = torch.zeros(1, batch, self.hidden, dtype=w.dtype, device=w.device if device is None else device)
        return [(z, z) for _ in self.rnns]

    def step(self, state: LSTMState, tokens: Tensor) -> tuple[Tensor, LSTMState]:
        logits, state = self.forward_state(tokens.reshape(-1, 1), state)  # (N, 1, C)
        return self.log_softmax(logits[:, 0].float()), state

    def select_state(self, state: LSTMState, idx: Tensor) -> LSTMState:
        idx = idx.to(state[0][0].device)
        return [(h.index_select(1, idx), c.index_select(1, idx)) for h, c in state]


class TransformerLM(LanguageModel):
    """A decoder-only Transformer LM (GPT-style, pre-norm, from :mod:`asrkit.nn` layers).

    Args:
        num_classes: units including id 0.
        hidden, heads, ff_mult: model width ``d``, attention heads, feed-forward width
            ``ff_mult * d``.
        layers: TransformerEncoderLayer blocks, each with a causal self-attention mask.
        dropout: on the embedded input, attention weights, feed-forward and residual branches.
        pos_enc: ``"sinusoidal"`` (a fixed table) or ``"learned"`` (``max_len x d`` weights).
        max_len: the longest input ``forward`` takes; ``step`` keeps the last ``max_len``
            tokens of a longer history as its context.
        tie_weights: share the output layer's weight with the embedding table.
        impl: ``"scratch"`` or ``"native"`` for every layer.

    Submodules: ``embed``, ``pos_enc``, ``dropout``, ``blocks`` (ModuleList), ``norm``,
    ``output``. ``step`` is incremental (:class:`TransformerLMState`): each block keeps the
    self-attention keys/values of the positions fed so far (a
    :class:`~asrkit.nn.attention.KVCache`) and computes only the new position. Past
    ``max_len`` tokens the context is a window of the last ``max_len`` tokens at positions
    ``0 .. max_len - 1``, as ``forward`` sees a block: every position moves when the window
    slides, so from there on each step recomputes its window (``forward``).
    """

    def __init__(self, num_classes: int, hidden: int = 256, heads: int = 4, ff_mult: float = 4, layers: int = 4,
                 dropout: float = 0.1, pos_enc: str = "sinusoidal", max_len: int = 512, tie_weights: bool = True,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if pos_enc not in POS_ENCODINGS:
            raise ValueError(f"pos_enc must be one of {POS_ENCODINGS}, got {pos_enc!r}")
        self.num_classes, self.hidden, self.layers, self.max_len = num_classes, hidden, layers, max_len
        self.pos_enc_type, self.tie_weights = pos_enc, tie_weights
        d = hidden
        self.embed = Embedding(num_classes, d, impl=impl)
        init.normal_(self.embed.weight, std=d ** -0.5)  # x sqrt(d) then gives unit-variance embeddings
        self.xscale = math.sqrt(d)
        self.pos_enc: Union[SinusoidalPositionalEncoding, LearnedPositionalEncoding]
        if pos_enc == "sinusoidal":
            self.pos_enc = SinusoidalPositionalEncoding(d, max_len=max_len, impl=impl)
        else:
            self.pos_enc = LearnedPositionalEncoding(max_len, d, impl=impl)
        self.dropout = Dropout(dropout, impl=impl)
        self.blocks = torch.nn.ModuleList([
            TransformerEncoderLayer(d, heads, int(ff_mult * d), dropout, batch_first=True, norm_first=True, impl=impl)
            for _ in range(layers)])
        self.norm = LayerNorm(d, impl=impl)
        self.output = Linear(d, num_classes, impl=impl)
        init.zeros_(self.output.bias)
        if tie_weights:
            self.output.weight = self.embed.weight  # (C, d)
        self.log_softmax = LogSoftmax(-1, impl=impl)

    def forward(self, tokens: Tensor) -> Tensor:
        tokens = _check_tokens(tokens, self.num_classes)
        L = tokens.shape[1]
        if L > self.max_len:
            raise ValueError(f"a block of {L} tokens is longer than the model's max_len={self.max_len}")
        x = self.dropout(self.pos_enc(self.embed(tokens) * self.xscale))  # (B, L, d)
        causal = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)  # True = a later position
        for block in self.blocks:
            x = block(x, src_mask=causal)
        return self.output(self.norm(x))  # (B, L, C)

    def init_state(self, batch: int, device: Union[str, torch.device, None] = None) -> "TransformerLMState":
        """Nothing fed: an empty :class:`~asrkit.nn.attention.KVCache` per block."""
        w = self.embed.weight
        device = w.device if device is None else torch.device(device)
        attn = self.blocks[0].self_attn
        caches = tuple(KVCache.empty(batch, attn.num_heads, attn.head_dim, dtype=w.dtype, device=device)
                       for _ in self.blocks)
        return TransformerLMState(caches, torch.zeros(batch, 0, dtype=torch.long, device=device), 0)

    def step(self, state: "TransformerLMState", tokens: Tensor) -> tuple[Tensor, "TransformerLMState"]:
        """Feed ``tokens (N,)`` at position ``state.length``: ``(log_probs (N, C) float32, new
        state)``, equal to ``forward`` of the (windowed) history at its last position. Eval mode
        (the blocks' ``step`` has no dropout)."""
        tokens = tokens.to(state.tokens.device).long().reshape(-1)  # (N,)
        N = state.tokens.shape[0]
        if tokens.shape[0] != N:
            raise ValueError(f"step: the state has {N} rows, tokens {tuple(tokens.shape)}")
        window = torch.cat([state.tokens, tokens[:, None]], 1)[:, -self.max_len:]  # (N, <= max_len)
        if state.caches is None or state.length >= self.max_len:  # the window slides: recompute it
            logits = self.forward(window)[:, -1]  # (N, C)
            return self.log_softmax(logits.float()), TransformerLMState(None, window, state.length + 1)
        x = self.embed(_check_tokens(tokens[:, None], self.num_classes)) * self.xscale  # (N, 1, d)
        x = self.dropout(self.pos_enc(x, offset=state.length))
        caches = []
        for block, cache in zip(self.blocks, state.caches):
            x, cache = block.step(x, cache)  # (N, 1, d)
            caches.append(cache)
        logits = self.output(self.norm(x[:, 0]))  # (N, C)
        return self.log_softmax(logits.float()), TransformerLMState(tuple(caches), window, state.length + 1)

    def select_state(self, state: "TransformerLMState", idx: Tensor) -> "TransformerLMState":
        return state.index(idx)


@dataclass
class TransformerLMState:
    """The Transformer LM's state between steps (``N`` rows, ``length`` tokens fed so far).

    ``caches``: per block, the self-attention keys/values of the positions fed
    (:class:`~asrkit.nn.attention.KVCache`, ``(N, heads, length, d / heads)``); ``None`` once
    ``length`` passed ``max_len`` (every step then recomputes its window). ``tokens (N, W)``
    int64: the last ``W = min(length, max_len)`` tokens fed, the window a recomputation reads.
    ``index`` selects rows (a beam's reordering).
    """

    caches: Optional[tuple[KVCache, ...]]
    tokens: Tensor
    length: int

    def index(self, idx: Tensor) -> "TransformerLMState":
        idx = idx.to(self.tokens.device)
        caches = None if self.caches is None else tuple(c.index_select(idx) for c in self.caches)
        return TransformerLMState(caches, self.tokens.index_select(0, idx), self.length)
