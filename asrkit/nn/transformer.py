"""Transformer blocks: ``TransformerEncoderLayer`` and ``TransformerDecoderLayer``.

Arguments, submodule names (``self_attn``, ``multihead_attn``, ``linear1``,
``linear2``, ``norm1..3``, ``dropout1..3``) and behaviour (post-norm by default,
pre-norm with ``norm_first=True``) are torch's, so a ``torch.nn`` layer's
state_dict loads unchanged. Built from asrkit's MultiheadAttention, Linear,
LayerNorm, Dropout and activations; ``impl`` is passed to every sublayer.

Incremental decoding (an asrkit extension, inference only): ``step`` feeds one new
position ``x (N, 1, E)`` (batch-first whatever ``batch_first``) with a cache of the
self-attention keys/values of the positions before it and returns ``(y (N, 1, E), new
cache)``; ``y`` is what ``forward`` with a causal mask gives at that position, for a
fraction of the work (no position is recomputed, the decoder's memory is projected
once). The cache is ``None`` before the first position, then what ``step`` returned:
a plain ``(k, v)`` (``(N, num_heads, L, head_dim)`` each, concatenated each step), or,
when the first one passed is a :class:`~asrkit.nn.attention.KVCache` (e.g.
``KVCache.empty(N, nhead, d_model // nhead)``), a KVCache written in place (no copy of
the earlier positions per step; ``index_select`` reorders it for a beam)::

    cache, mem_kv = None, layer.multihead_attn.project_kv(memory, memory)
    for t in range(T):
        y, cache = layer.step(x[:, t:t + 1], cache, mem_kv, memory_key_padding_mask=mask)
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import torch
from torch import Tensor

from asrkit.nn.activation import GELU, ReLU
from asrkit.nn.attention import KVCache, MultiheadAttention
from asrkit.nn.dropout import Dropout
from asrkit.nn.linear import Linear
from asrkit.nn.module import Module
from asrkit.nn.norm import LayerNorm

__all__ = ["TransformerEncoderLayer", "TransformerDecoderLayer"]

KV = tuple[Tensor, Tensor]  #: keys and values, ``(N, num_heads, L, head_dim)`` each
Cache = Union[KV, KVCache]  #: a self-attention cache: plain ``(k, v)`` (concatenated per step) or a KVCache


def _activation(activation: Union[str, Callable[[Tensor], Tensor]], impl: str):
    if callable(activation):
        return activation
    if activation == "relu":
        return ReLU(impl=impl)
    if activation == "gelu":
        return GELU(impl=impl)
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


def _check_step(layer: Module, x: Tensor) -> None:
    if layer.training and layer.dropout.p > 0:
        raise RuntimeError(f"{type(layer).__name__}.step has no dropout (p={layer.dropout.p}): call it in eval mode")
    if x.dim() != 3 or x.shape[1] != 1:
        raise ValueError(f"step takes one position x (N, 1, E), got shape {tuple(x.shape)}")


def _self_attention_step(attn: MultiheadAttention, x: Tensor, cache: Optional[Cache]) -> tuple[Tensor, Cache]:
    """Causal self-attention of one new position ``x (N, 1, E)`` over the cached ones and itself."""
    k, v = attn.project_kv(x, x)  # (N, H, 1, Dh) each
    if isinstance(cache, KVCache):
        cache = cache.append(k, v)
        k, v = cache.keys, cache.values  # (N, H, L+1, Dh)
    else:
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)  # (N, H, L+1, Dh)
        cache = (k, v)
    return attn.attend(x, k, v)[0], cache


class TransformerEncoderLayer(Module):
    """Self-attention + feed-forward block: ``src (S, N, E)`` (``(N, S, E)`` if batch_first).

    post-norm: ``x = norm1(x + sa(x)); x = norm2(x + ff(x))``;
    pre-norm (``norm_first``): ``x = x + sa(norm1(x)); x = x + ff(norm2(x))``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Union[str, Callable[[Tensor], Tensor]] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, device=None,
                 dtype=None, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        fk = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            impl=impl, **fk)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, impl=impl, **fk)
        self.dropout = Dropout(dropout, impl=impl)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, impl=impl, **fk)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, impl=impl, **fk)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, impl=impl, **fk)
        self.dropout1 = Dropout(dropout, impl=impl)
        self.dropout2 = Dropout(dropout, impl=impl)
        self.activation = _activation(activation, impl)

    def forward(self, src: Tensor, src_mask: Optional[Tensor] = None,
                src_key_padding_mask: Optional[Tensor] = None, is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def step(self, x: Tensor, cache: Optional[Cache] = None) -> tuple[Tensor, Cache]:
        """One position of a causal stack (a decoder-only LM): ``x (N, 1, E)``, ``cache`` the
        self-attention ``(k, v)`` or KVCache of the positions before it (or ``None``) -> ``(y (N, 1,
        E), new cache)``; ``y`` equals ``forward(all positions, causal mask)[:, -1:]``. Eval mode only
        (see the module docstring)."""
        _check_step(self, x)
        if self.norm_first:
            a, cache = _self_attention_step(self.self_attn, self.norm1(x), cache)
            x = x + self.dropout1(a)
            x = x + self._ff_block(self.norm2(x))
        else:
            a, cache = _self_attention_step(self.self_attn, x, cache)
            x = self.norm1(x + self.dropout1(a))
            x = self.norm2(x + self._ff_block(x))
        return x, cache

    def _sa_block(self, x: Tensor, attn_mask, key_padding_mask, is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """Self-attention, cross-attention over ``memory``, feed-forward:
    ``tgt (T, N, E), memory (S, N, E) -> (T, N, E)`` (batch-first if ``batch_first``).

    An asrkit extension for attention plots: set ``layer.keep_cross_attention = True`` and
    each forward keeps its cross-attention weights, averaged over heads and detached, in
    ``layer.cross_attention`` (``(N, T, S)``; after dropout in training, as torch returns
    them). Off by default (no weights computed, ``cross_attention`` is ``None``); it is
    not a constructor argument and not part of the state_dict.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Union[str, Callable[[Tensor], Tensor]] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, device=None,
                 dtype=None, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        fk = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            impl=impl, **fk)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, impl=impl, **fk)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, impl=impl, **fk)
        self.dropout = Dropout(dropout, impl=impl)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, impl=impl, **fk)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, impl=impl, **fk)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, impl=impl, **fk)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, impl=impl, **fk)
        self.dropout1 = Dropout(dropout, impl=impl)
        self.dropout2 = Dropout(dropout, impl=impl)
        self.dropout3 = Dropout(dropout, impl=impl)
        self.activation = _activation(activation, impl)
        self.keep_cross_attention = False
        self.cross_attention: Optional[Tensor] = None

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Optional[Tensor] = None,
                memory_mask: Optional[Tensor] = None, tgt_key_padding_mask: Optional[Tensor] = None,
                memory_key_padding_mask: Optional[Tensor] = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> Tensor:
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def step(self, x: Tensor, cache: Optional[Cache], memory_kv: KV,
             memory_key_padding_mask: Optional[Tensor] = None, *, memory_rows: Optional[Tensor] = None
             ) -> tuple[Tensor, Cache]:
        """One decoder position: ``x (N, 1, E)``, ``cache`` the self-attention ``(k, v)`` or KVCache of
        the positions before it (or ``None`` at the first), ``memory_kv =
        self.multihead_attn.project_kv(memory, memory)`` (computed once per memory),
        ``memory_key_padding_mask (M, S)`` its padding -> ``(y (N, 1, E), new cache)``; ``y``
        equals ``forward(all positions, memory, causal tgt_mask, memory_key_padding_mask)[:, -1:]``
        and ``cross_attention`` is kept (``(N, 1, S)``) as by ``forward``.

        ``memory_rows (N,)`` int64: row ``n`` attends over memory row ``memory_rows[n]`` (the
        hypotheses of a beam share their utterance's ``memory_kv``; see
        :meth:`MultiheadAttention.attend`); without it the memory has the ``N`` rows of ``x``.
        Eval mode only (see the module docstring).
        """
        _check_step(self, x)
        if self.norm_first:
            a, cache = _self_attention_step(self.self_attn, self.norm1(x), cache)
            x = x + self.dropout1(a)
            x = x + self._mha_step(self.norm2(x), memory_kv, memory_key_padding_mask, memory_rows)
            x = x + self._ff_block(self.norm3(x))
        else:
            a, cache = _self_attention_step(self.self_attn, x, cache)
            x = self.norm1(x + self.dropout1(a))
            x = self.norm2(x + self._mha_step(x, memory_kv, memory_key_padding_mask, memory_rows))
            x = self.norm3(x + self._ff_block(x))
        return x, cache

    def _mha_step(self, x: Tensor, memory_kv: KV, key_padding_mask, memory_rows) -> Tensor:
        keep = self.keep_cross_attention
        x, weights = self.multihead_attn.attend(x, memory_kv[0], memory_kv[1], key_padding_mask,
                                                need_weights=keep, kv_rows=memory_rows)
        self.cross_attention = weights.detach() if keep else None
        return self.dropout2(x)

    def _sa_block(self, x: Tensor, attn_mask, key_padding_mask, is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           is_causal=is_causal, need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x: Tensor, mem: Tensor, attn_mask, key_padding_mask, is_causal: bool) -> Tensor:
        keep = self.keep_cross_attention
        x, weights = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                         is_causal=is_causal, need_weights=keep)
        self.cross_attention = weights.detach() if keep else None
        return self.dropout2(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))
