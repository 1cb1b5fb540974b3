"""Neural language models: an AWD-LSTM-style LSTM LM and a decoder-only Transformer LM.

Id 0 is the sentence boundary, ``<eos>`` and ``<sos>`` at once (as in
:mod:`asrkit.models.seq2seq`). A sentence ``w_1 .. w_n`` is fed as ``0 w_1 .. w_n`` and
scored on predicting ``w_1 .. w_n 0``; training text is a stream of sentences joined by
0, so the model also learns what follows a sentence end::

    tokens (B, L)  0  w1 w2 ... wn          forward(tokens) -> logits (B, L, C)
    targets        w1 w2 ... wn  0          row i of the logits predicts tokens[:, i + 1]

Training and scoring need only the targets' log-probabilities: ``forward(tokens, targets)``
gives them as ``(B, L)`` (0 where a target is ``-100``, padding), without the full softmax
when the output layer is adaptive.

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

``adaptive_cutoffs`` (e.g. ``[2000, 6000]``) replaces the output Linear and its softmax by an
adaptive softmax (:class:`asrkit.nn.AdaptiveLogSoftmaxWithLoss`, Grave et al. 2017, submodule
``adaptive``; ``output`` is then None): the ids below the first cutoff (the most frequent
words: word units are numbered by falling count) are predicted by a small head, the rest in
clusters through narrower tails (``width // adaptive_div^(i+1)``), each computed only for the
targets in it. Its ``forward(tokens)`` gives log-probabilities instead of logits (a
``log_softmax`` of them changes nothing). It has no weight to tie: ``tie_weights`` must be False.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor

from asrkit.nn import (
    LSTM, AdaptiveLogSoftmaxWithLoss, CrossEntropyLoss, Dropout, Embedding, EmbeddingDropout, LayerNorm,
    LearnedPositionalEncoding, Linear, LockedDropout, LogSoftmax, Module, SinusoidalPositionalEncoding,
    TransformerEncoderLayer, init,
)
from asrkit.nn.attention import KVCache
from asrkit.nn.functional import shape as S

__all__ = ["BOUNDARY", "LanguageModel", "LSTMLM", "TransformerLM", "TransformerLMState", "POS_ENCODINGS", "LSTMState"]

BOUNDARY = 0  #: id 0: ``<sos>`` as the first input, ``</s>`` as the last output
IGNORE = -100  #: a target that is not scored (padding)
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


def _check_adaptive(tie_weights: bool, adaptive_cutoffs: Optional[Sequence[int]]) -> Optional[list[int]]:
    if adaptive_cutoffs is None:
        return None
    if tie_weights:
        raise ValueError("tie_weights must be False with adaptive_cutoffs (the adaptive softmax has no output "
                         "weight to share with the embedding table)")
    return list(adaptive_cutoffs)


class LanguageModel(Module):
    """The base of the neural LMs: ``forward`` for training, ``init_state`` / ``step`` /
    ``select_state`` for scoring and search.

    Attributes: ``num_classes`` (units including id 0), ``config`` (the resolved model
    config, set by :func:`asrkit.models.build_model`), the output layer: ``output`` (a Linear:
    full softmax) or ``adaptive`` (an :class:`~asrkit.nn.AdaptiveLogSoftmaxWithLoss`), the other
    one None.
    """

    num_classes: int
    config: dict
    output: Optional[Linear]
    adaptive: Optional[AdaptiveLogSoftmaxWithLoss]

    @abstractmethod
    def forward(self, tokens: Tensor, targets: Optional[Tensor] = None) -> Tensor:
        """``tokens (B, L)`` int64 -> ``logits (B, L, C)`` (log-probabilities with the adaptive
        softmax); row ``i`` predicts ``tokens[:, i + 1]`` from ``tokens[:, :i + 1]`` (an empty
        history before ``tokens[:, 0]``). With ``targets (B, L)`` (``-100``: not scored) ->
        ``(B, L)`` the log-probabilities of the targets, 0 where not scored."""
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

    # ------------------------------------------------------------------ the output layer
    def _make_output(self, width: int, adaptive_cutoffs: Optional[list[int]], adaptive_div: float,
                     tied: Optional[Tensor], impl: str) -> None:
        """``output = Linear(width, C)`` (weight ``tied`` when given, zero bias) with its
        log-softmax and cross entropy, or ``adaptive``, the adaptive softmax over ``width``."""
        self.output, self.adaptive = None, None
        if adaptive_cutoffs is not None:
            self.adaptive = AdaptiveLogSoftmaxWithLoss(width, self.num_classes, adaptive_cutoffs, adaptive_div,
                                                       impl=impl)
            return
        self.output = Linear(width, self.num_classes, impl=impl)
        init.zeros_(self.output.bias)
        if tied is not None:
            self.output.weight = tied  # (C, width): one tensor, two names in the state_dict
        self.log_softmax = LogSoftmax(-1, impl=impl)
        self.nll = CrossEntropyLoss(ignore_index=IGNORE, reduction="none", impl=impl)

    def _adaptive_dtype(self, x: Tensor) -> Tensor:
        """``x`` in the adaptive softmax's dtype (under autocast, the layer runs in it: torch's
        module cannot mix float16 rows with float32 log-probs)."""
        assert self.adaptive is not None
        return x.to(self.adaptive.head.weight.dtype)

    def _outputs(self, x: Tensor, targets: Optional[Tensor]) -> Tensor:
        """The last hidden ``x (B, L, D)`` -> what :meth:`forward` returns."""
        B, L, D = x.shape
        if targets is not None and tuple(targets.shape) != (B, L):
            raise ValueError(f"targets must be (B, L) = {(B, L)} as the tokens, got shape {tuple(targets.shape)}")
        if self.adaptive is None:
            assert self.output is not None
            logits = self.output(x)                                       # (B, L, C)
            if targets is None:
                return logits
            nll = self.nll(logits.reshape(B * L, -1), targets.reshape(-1).long())  # (B L,), 0 where ignored
            return (nll * -1.0).reshape(B, L)                             # a constant scaling: still ours + glue
        with torch.autocast(x.device.type, enabled=False):
            x = self._adaptive_dtype(x)
            if targets is None:
                return self.adaptive.log_prob(x.reshape(B * L, D)).reshape(B, L, -1)  # (B, L, C)
            keep = targets != IGNORE                                      # (B, L)
            if self.native:
                out = self.adaptive(x[keep], targets[keep].long()).output  # (N,)
                return torch.zeros(B, L, dtype=out.dtype, device=out.device).index_put((keep,), out)
            out = self.adaptive(S.pack(x, keep), targets[keep].long()).output  # (N,) the kept positions
            return S.unpack(out, keep)                                    # (B, L), 0 where ignored

    def _step_log_probs(self, x: Tensor) -> Tensor:
        """The last hidden of one position ``x (N, D)`` -> ``(N, C)`` float32 log-probabilities."""
        if self.adaptive is None:
            assert self.output is not None
            return self.log_softmax(self.output(x).float())
        with torch.autocast(x.device.type, enabled=False):
            return self.adaptive.log_prob(self._adaptive_dtype(x)).float()


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
        adaptive_cutoffs: None (a full softmax) or the cutoffs of an adaptive softmax over the
            last LSTM layer's output (``tie_weights`` must be False).
        adaptive_div: the adaptive softmax's ``div_value``.
        impl: ``"scratch"`` or ``"native"`` for every layer.

    Submodules: ``embed``, ``embed_dropout``, ``input_dropout``, ``rnns`` (ModuleList of
    single-layer LSTMs), ``hidden_dropout``, ``output_dropout``, ``proj`` (or None), ``output``
    (or ``adaptive``).
    ``forward_state(tokens, state)`` carries the state from one block of a token stream to
    the next (truncated backpropagation through time).
    """

    def __init__(self, num_classes: int, embed_dim: int = 256, hidden: int = 256, layers: int = 2,
                 dropout: float = 0.2, embed_dropout: float = 0.1, input_dropout: float = 0.2,
                 hidden_dropout: float = 0.2, tie_weights: bool = True,
                 adaptive_cutoffs: Optional[Sequence[int]] = None, adaptive_div: float = 4.0,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        cutoffs = _check_adaptive(tie_weights, adaptive_cutoffs)
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
        self._make_output(embed_dim if tie_weights else hidden, cutoffs, adaptive_div,
                          self.embed.weight if tie_weights else None, impl)

    def forward_state(self, tokens: Tensor, state: Optional[LSTMState] = None) -> tuple[Tensor, LSTMState]:
        """``tokens (B, L)``, a state (``None``: empty histories) -> ``(logits (B, L, C), state
        after the last token)`` (log-probabilities with the adaptive softmax)."""
        x, state = self._hidden_state(tokens, state)
        return self._outputs(x, None), state

    def _hidden_state(self, tokens: Tensor, state: Optional[LSTMState]) -> tuple[Tensor, LSTMState]:
        """``tokens (B, L)`` -> ``(the output layer's input (B, L, E or H), state after the last token)``."""
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
        return x, new_state

    def forward(self, tokens: Tensor, targets: Optional[Tensor] = None) -> Tensor:
        return self._outputs(self._hidden_state(tokens, None)[0], targets)  # (B, L, C) or (B, L)

    def init_state(self, batch: int, device: Union[str, torch.device, None] = None) -> LSTMState:
        """Zeros: ``[(h, c)] * layers``, each ``(1, batch, H)`` in the weights' dtype."""
        w = self.embed.weight
        z = torch.zeros(1, batch, self.hidden, dtype=w.dtype, device=w.device if device is None else device)
        return [(z, z) for _ in self.rnns]

    def step(self, state: LSTMState, tokens: Tensor) -> tuple[Tensor, LSTMState]:
        x, state = self._hidden_state(tokens.reshape(-1, 1), state)  # (N, 1, D)
        return self._step_log_probs(x[:, 0]), state

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
        adaptive_cutoffs: None (a full softmax) or the cutoffs of an adaptive softmax over the
            final norm's output (``tie_weights`` must be False).
        adaptive_div: the adaptive softmax's ``div_value``.
        impl: ``"scratch"`` or ``"native"`` for every layer.

    Submodules: ``embed``, ``pos_enc``, ``dropout``, ``blocks`` (ModuleList), ``norm``,
    ``output`` (or ``adaptive``). ``step`` is incremental (:class:`TransformerLMState`): each block keeps the
    self-attention keys/values of the positions fed so far (a
    :class:`~asrkit.nn.attention.KVCache`) and computes only the new position. Past
    ``max_len`` tokens the context is a window of the last ``max_len`` tokens at positions
    ``0 .. max_len - 1``, as ``forward`` sees a block: every position moves when the window
    slides, so from there on each step recomputes its window (``forward``).
    """

    def __init__(self, num_classes: int, hidden: int = 256, heads: int = 4, ff_mult: float = 4, layers: int = 4,
                 dropout: float = 0.1, pos_enc: str = "sinusoidal", max_len: int = 512, tie_weights: bool = True,
                 adaptive_cutoffs: Optional[Sequence[int]] = None, adaptive_div: float = 4.0,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if pos_enc not in POS_ENCODINGS:
            raise ValueError(f"pos_enc must be one of {POS_ENCODINGS}, got {pos_enc!r}")
        cutoffs = _check_adaptive(tie_weights, adaptive_cutoffs)
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
        self._make_output(d, cutoffs, adaptive_div, self.embed.weight if tie_weights else None, impl)

    def forward(self, tokens: Tensor, targets: Optional[Tensor] = None) -> Tensor:
        return self._outputs(self._hidden(tokens), targets)  # (B, L, C) or (B, L)

    def _hidden(self, tokens: Tensor) -> Tensor:
        """``tokens (B, L)`` -> the final norm's output ``(B, L, d)``."""
        tokens = _check_tokens(tokens, self.num_classes)
        L = tokens.shape[1]
        if L > self.max_len:
            raise ValueError(f"a block of {L} tokens is longer than the model's max_len={self.max_len}")
        x = self.dropout(self.pos_enc(self.embed(tokens) * self.xscale))  # (B, L, d)
        causal = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)  # True = a later position
        for block in self.blocks:
            x = block(x, src_mask=causal)
        return self.norm(x)  # (B, L, d)

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
            logp = self._step_log_probs(self._hidden(window)[:, -1])  # (N, C)
            return logp, TransformerLMState(None, window, state.length + 1)
        x = self.embed(_check_tokens(tokens[:, None], self.num_classes)) * self.xscale  # (N, 1, d)
        x = self.dropout(self.pos_enc(x, offset=state.length))
        caches = []
        for block, cache in zip(self.blocks, state.caches):
            x, cache = block.step(x, cache)  # (N, 1, d)
            caches.append(cache)
        logp = self._step_log_probs(self.norm(x[:, 0]))  # (N, C)
        return logp, TransformerLMState(tuple(caches), window, state.length + 1)

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
