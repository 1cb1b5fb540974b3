"""Transformer blocks: ``TransformerEncoderLayer`` and ``TransformerDecoderLayer``.

Arguments, submodule names (``self_attn``, ``multihead_attn``, ``linear1``,
``linear2``, ``norm1..3``, ``dropout1..3``) and behaviour (post-norm by default,
pre-norm with ``norm_first=True``) are torch's, so a ``torch.nn`` layer's
state_dict loads unchanged. Built from asrkit's MultiheadAttention, Linear,
LayerNorm, Dropout and activations; ``impl`` is passed to every sublayer.
"""
from __future__ import annotations

from typing import Callable, Optional, Union

from torch import Tensor

from asrkit.nn.activation import GELU, ReLU
from asrkit.nn.attention import MultiheadAttention
from asrkit.nn.dropout import Dropout
from asrkit.nn.linear import Linear
from asrkit.nn.module import Module
from asrkit.nn.norm import LayerNorm

__all__ = ["TransformerEncoderLayer", "TransformerDecoderLayer"]


def _activation(activation: Union[str, Callable[[Tensor], Tensor]], impl: str):
    if callable(activation):
        return activation
    if activation == "relu":
        return ReLU(impl=impl)
    if activation == "gelu":
        return GELU(impl=impl)
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


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
