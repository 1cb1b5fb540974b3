"""Attention layers: ``MultiheadAttention``, relative-position self-attention and
positional encodings.

``MultiheadAttention`` copies ``torch.nn.MultiheadAttention``: constructor,
parameter names (``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``,
``out_proj.bias``; ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` when
``kdim``/``vdim`` differ; ``bias_k``/``bias_v``), init, mask conventions
(bool masks: True = *masked*; float masks are added to the scores;
``key_padding_mask (N, S)``, ``attn_mask (L, S)`` or ``(N * num_heads, L, S)``)
and return values (weights averaged over heads unless
``average_attn_weights=False``). The scratch path runs asrkit's ``linear``
and the hand-written attention of :mod:`asrkit.nn.functional.attention`;
native calls ``torch.nn.functional.multi_head_attention_forward``.

Incremental decoding (asrkit extensions): ``MultiheadAttention.project_kv`` and
``attend`` split ``forward`` into the key/value projection (done once per memory, or
once per new position into a cache) and the attention of new queries over them; the
positional encodings take an ``offset`` (the first position of ``x``).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as TF
from torch import Tensor

from asrkit.nn import init
from asrkit.nn.dropout import Dropout
from asrkit.nn.functional import attention as A
from asrkit.nn.functional import linear as _L
from asrkit.nn.linear import Linear
from asrkit.nn.module import Module

__all__ = [
    "KVCache",
    "MultiheadAttention",
    "RelPositionMultiheadAttention",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEncoding",
    "sinusoidal_table",
]


def _float_mask(mask: Optional[Tensor], dtype: torch.dtype, name: str) -> Optional[Tensor]:
    """torch's MHA convention: bool True = masked -> -inf; float masks are added."""
    if mask is None:
        return None
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"only bool and floating types of {name} are supported")
    return A.additive_mask(mask, dtype, masked_value=True)


class MultiheadAttention(Module):
    """Multi-head attention, ``torch.nn.MultiheadAttention``'s twin.

    ``query (L, N, E)``, ``key (S, N, kdim)``, ``value (S, N, vdim)`` (``(N, L, E)``
    with ``batch_first``; unbatched ``(L, E)`` too) -> ``(out (L, N, E),
    weights (N, L, S) or (N, num_heads, L, S) or None)``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: Optional[int] = None,
                 vdim: Optional[int] = None, batch_first: bool = False, device=None, dtype=None,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} "
                             f"and num_heads={num_heads} instead")
        fk = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ValueError("embed_dim must be divisible by num_heads")
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = torch.nn.Parameter(torch.empty((embed_dim, embed_dim), **fk))
            self.k_proj_weight = torch.nn.Parameter(torch.empty((embed_dim, self.kdim), **fk))
            self.v_proj_weight = torch.nn.Parameter(torch.empty((embed_dim, self.vdim), **fk))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = torch.nn.Parameter(torch.empty((3 * embed_dim, embed_dim), **fk))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = torch.nn.Parameter(torch.empty(3 * embed_dim, **fk))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, impl=impl, **fk)
        if add_bias_kv:
            self.bias_k = torch.nn.Parameter(torch.empty((1, 1, embed_dim), **fk))
            self.bias_v = torch.nn.Parameter(torch.empty((1, 1, embed_dim), **fk))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """As torch: xavier_uniform projections, zero biases, xavier_normal bias_k/v."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, " + super().extra_repr()

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True, attn_mask: Optional[Tensor] = None,
                average_attn_weights: bool = True, is_causal: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        batched = query.dim() == 3
        L, S = query.shape[-2 if not batched else (1 if self.batch_first else 0)], \
            key.shape[-2 if not batched else (1 if self.batch_first else 0)]
        if is_causal and attn_mask is None:  # build the causal mask the hint refers to
            attn_mask = torch.ones(L, S, dtype=torch.bool, device=query.device).triu(1)
        if self.native:
            return self._native(query, key, value, key_padding_mask, need_weights, attn_mask,
                                average_attn_weights, is_causal, batched)
        # to batch-first (N, L, E)
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        out, weights = self._scratch(query, key, value, key_padding_mask, need_weights, attn_mask,
                                     average_attn_weights)
        if not batched:
            out = out.squeeze(0)
            weights = weights.squeeze(0) if weights is not None else None
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _native(self, query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights,
                is_causal, batched):
        if self.batch_first and batched:
            query, key, value = query.transpose(1, 0), key.transpose(1, 0), value.transpose(1, 0)
        out, w = TF.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight,
            self.out_proj.bias, training=self.training, key_padding_mask=key_padding_mask,
            need_weights=need_weights, attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim, q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        if self.batch_first and batched:
            out = out.transpose(1, 0)
        return out, w

    def _scratch(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask, need_weights, attn_mask,
                 average_attn_weights):
        """query (N, L, E), key (N, S, kdim), value (N, S, vdim) -> (N, L, E), weights."""
        N, L, E = query.shape
        H, Dh = self.num_heads, self.head_dim
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        if self._qkv_same_embed_dim and query is key and key is value:  # self-attention: one matmul
            q, k, v = _L.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, -1)  # (N, L, E) x3
        else:
            q = _L.linear(query, w_q, b_q)  # (N, L, E)
            k = _L.linear(key, w_k, b_k)  # (N, S, E)
            v = _L.linear(value, w_v, b_v)  # (N, S, E)
        dt = q.dtype
        am = _float_mask(attn_mask, dt, "attn_mask")
        kpm = _float_mask(key_padding_mask, dt, "key_padding_mask")
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(N, 1, E)], 1)
            v = torch.cat([v, self.bias_v.expand(N, 1, E)], 1)
            am = TF.pad(am, (0, 1)) if am is not None else None
            kpm = TF.pad(kpm, (0, 1)) if kpm is not None else None
        S = k.shape[1]
        q = q.reshape(N, L, H, Dh).transpose(1, 2)  # (N, H, L, Dh)
        k = k.reshape(N, S, H, Dh).transpose(1, 2)  # (N, H, S, Dh)
        v = v.reshape(N, S, H, Dh).transpose(1, 2)  # (N, H, S, Dh)
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros(N, H, 1, Dh)], 2)
            v = torch.cat([v, v.new_zeros(N, H, 1, Dh)], 2)
            am = TF.pad(am, (0, 1)) if am is not None else None
            kpm = TF.pad(kpm, (0, 1)) if kpm is not None else None
            S += 1
        mask = None
        if am is not None:
            if am.dim() == 2:
                if am.shape != (L, S):
                    raise ValueError(f"The shape of the 2D attn_mask is {tuple(am.shape)}, but should be {(L, S)}.")
                mask = am  # (L, S)
            elif am.dim() == 3:
                if am.shape != (N * H, L, S):
                    raise ValueError(f"The shape of the 3D attn_mask is {tuple(am.shape)}, "
                                     f"but should be {(N * H, L, S)}.")
                mask = am.view(N, H, L, S)
            else:
                raise ValueError(f"attn_mask's dimension {am.dim()} is not supported")
        if kpm is not None:
            if kpm.shape != (N, S):
                raise ValueError(f"expecting key_padding_mask shape of {(N, S)}, but got {tuple(kpm.shape)}")
            kpm = kpm.view(N, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        p = self.dropout if self.training else 0.0
        out, weights = A.attention(q, k, v, mask, p, 1.0 / math.sqrt(Dh))  # (N, H, L, Dh), (N, H, L, S)
        out = out.transpose(1, 2).reshape(N, L, E)  # (N, L, E)
        out = self.out_proj(out)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)  # (N, L, S)
        return out, weights

    # -- incremental decoding (inference helpers, an asrkit extension) ------------------------------

    def _check_incremental(self, what: str) -> None:
        if self.bias_k is not None or self.add_zero_attn:
            raise ValueError(f"MultiheadAttention.{what} does not support add_bias_kv or add_zero_attn")
        if self.training and self.dropout > 0:
            raise RuntimeError(f"MultiheadAttention.{what} has no attention dropout (dropout={self.dropout}): "
                               f"call it in eval mode")

    def _in_proj(self, x: Tensor, i: int, n: int = 1) -> Tensor:
        """``x (*, in)`` through rows ``i .. i+n-1`` of the q/k/v projections (0 q, 1 k, 2 v)."""
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight[i * E:(i + n) * E]
        else:
            w = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * E:(i + n) * E]
        return TF.linear(x, w, b) if self.native else _L.linear(x, w, b)

    def project_kv(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """The projected keys and values of an attention, split into heads, for :meth:`attend`.

        ``key (N, S, kdim)``, ``value (N, S, vdim)`` (batch-first whatever ``batch_first``)
        -> ``(k, v)``, each ``(N, num_heads, S, head_dim)``: what ``forward`` computes from
        ``key`` and ``value`` before the scores. A decoder projects its encoder memory once and
        each new position's self-attention key/value once (a key/value cache). Inference only:
        refused in training mode with attention dropout; ``add_bias_kv``/``add_zero_attn``
        are not supported.
        """
        self._check_incremental("project_kv")
        N, S = key.shape[0], key.shape[1]
        H, Dh = self.num_heads, self.head_dim
        if key is value and self._qkv_same_embed_dim:  # self-attention: one matmul for both
            k, v = self._in_proj(key, 1, 2).chunk(2, -1)
        else:
            k, v = self._in_proj(key, 1), self._in_proj(value, 2)
        return (k.reshape(N, S, H, Dh).transpose(1, 2).contiguous(),
                v.reshape(N, S, H, Dh).transpose(1, 2).contiguous())

    def attend(self, query: Tensor, k: Tensor, v: Tensor, key_padding_mask: Optional[Tensor] = None,
               need_weights: bool = False, kv_rows: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
        """The attention of ``query`` over keys/values already projected by :meth:`project_kv`.

        ``query (N, L, E)`` (batch-first), ``k``, ``v`` ``(M, num_heads, S, head_dim)``,
        ``key_padding_mask (M, S)`` (the rows of ``k``; bool True = masked, or float added) ->
        ``(out (N, L, E), weights (N, L, S) averaged over heads, or None)``: the same as
        ``forward(query, key, value, key_padding_mask)`` (every query position sees every key:
        no ``attn_mask``). Without ``kv_rows``, ``M == N`` and query row ``n`` attends over
        ``k[n]``; with ``kv_rows (N,)`` int64, over ``k[kv_rows[n]]``, so that the hypotheses of a
        beam share one copy of their utterance's memory (computed as one matmul per memory row
        over its query rows, without copying ``k``/``v`` per query row). Inference only (see
        :meth:`project_kv`); differentiable with torch's autograd, not asrkit's kernels.
        """
        self._check_incremental("attend")
        N, L, E = query.shape
        M, H, S, Dh = k.shape
        if H != self.num_heads or Dh != self.head_dim or v.shape[:3] != k.shape[:3]:
            raise ValueError(f"k and v must be (M, {self.num_heads}, S, {self.head_dim}), got "
                             f"{tuple(k.shape)} and {tuple(v.shape)}")
        mask = _float_mask(key_padding_mask, query.dtype, "key_padding_mask")
        if mask is not None:
            if mask.shape != (M, S):
                raise ValueError(f"expecting key_padding_mask shape of {(M, S)}, but got {tuple(mask.shape)}")
            mask = mask.view(M, 1, 1, S)
        q = self._in_proj(query, 0).reshape(N, L, H, Dh).transpose(1, 2)  # (N, H, L, Dh)
        scale = 1.0 / math.sqrt(Dh)
        if kv_rows is not None:
            kv_rows = kv_rows.to(device=query.device, dtype=torch.long)
            if kv_rows.shape != (N,):
                raise ValueError(f"kv_rows must be ({N},), got {tuple(kv_rows.shape)}")
            if M == N and torch.equal(kv_rows, torch.arange(N, device=kv_rows.device)):
                kv_rows = None
        if kv_rows is None:
            if M != N:
                raise ValueError(f"k has {M} rows for {N} query rows: pass kv_rows")
            out, w = _dot_attention(q, k, v, mask, scale)  # (N, H, L, Dh), (N, H, L, S)
            w = w.mean(1) if need_weights else None  # (N, L, S)
        else:
            # each memory row's query rows side by side: (M, G) slots, G = most query rows of one memory row
            counts = torch.bincount(kv_rows, minlength=M)  # (M,)
            G = int(counts.max()) if N else 1
            order = torch.argsort(kv_rows, stable=True)
            first = torch.cumsum(counts, 0) - counts  # (M,)
            pos = torch.empty_like(kv_rows)
            pos[order] = torch.arange(N, device=kv_rows.device) - first[kv_rows[order]]
            slot = kv_rows * G + pos  # (N,) place of each query row among the (M * G) slots
            qg = q.new_zeros(M * G, H, L, Dh)
            qg[slot] = q
            qg = qg.view(M, G, H, L, Dh).transpose(1, 2).reshape(M, H, G * L, Dh)
            og, wg = _dot_attention(qg, k, v, mask, scale)  # (M, H, G*L, Dh), (M, H, G*L, S)
            out = og.view(M, H, G, L, Dh).transpose(1, 2).reshape(M * G, H, L, Dh)[slot]  # (N, H, L, Dh)
            w = wg.mean(1).view(M * G, L, S)[slot] if need_weights else None  # (N, L, S)
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, E))  # (N, L, E)
        return out, w


class KVCache:
    """Self-attention keys and values of the positions decoded so far, with room to grow in place.

    ``keys``, ``values``: ``(N, num_heads, length, head_dim)`` views of buffers ``k``, ``v``
    ``(N, num_heads, capacity, head_dim)``. ``append`` returns the cache one position (or
    ``T``) longer, writing into the free capacity when this cache is the newest over its buffers
    (else, or when full, into new buffers ``GROW`` positions larger); ``index_select`` returns
    the rows ``idx`` in new buffers (a beam's reordering). So a step costs no copy of the
    positions before it, only the reorderings do. A cache is never changed by ``append``: a
    second ``append`` to the same cache copies instead of overwriting the first one's position.
    """

    GROW = 64  #: positions added when a cache is full

    def __init__(self, k: Tensor, v: Tensor, length: int) -> None:
        if k.dim() != 4 or v.shape != k.shape or not 0 <= length <= k.shape[2]:
            raise ValueError(f"KVCache: k and v must be (N, H, capacity, Dh) alike with length <= capacity, got "
                             f"{tuple(k.shape)}, {tuple(v.shape)} and length {length}")
        self.k, self.v, self.length = k, v, length
        self._written = [length]  # positions written into the buffers, shared by the caches over them

    @classmethod
    def empty(cls, n: int, num_heads: int, head_dim: int, *, capacity: int = 0, dtype=None,
              device=None) -> "KVCache":
        z = torch.empty(n, num_heads, capacity, head_dim, dtype=dtype, device=device)
        return cls(z, torch.empty_like(z), 0)

    @property
    def keys(self) -> Tensor:
        return self.k[:, :, :self.length]

    @property
    def values(self) -> Tensor:
        return self.v[:, :, :self.length]

    def __len__(self) -> int:
        return self.length

    def append(self, k: Tensor, v: Tensor) -> "KVCache":
        """``k``, ``v`` ``(N, num_heads, T, head_dim)`` of the next ``T`` positions -> the longer cache."""
        L, T = self.length, k.shape[2]
        if k.shape[:2] != self.k.shape[:2] or k.shape[3] != self.k.shape[3] or v.shape != k.shape:
            raise ValueError(f"KVCache.append: k and v must be {tuple(self.k.shape[:2])} x T x {self.k.shape[3]}, got "
                             f"{tuple(k.shape)} and {tuple(v.shape)}")
        if self._written[0] == L and L + T <= self.k.shape[2]:
            self.k[:, :, L:L + T] = k
            self.v[:, :, L:L + T] = v
            out = KVCache.__new__(KVCache)
            out.k, out.v, out.length, out._written = self.k, self.v, L + T, self._written
            self._written[0] = L + T
            return out
        shape = (*self.k.shape[:2], L + T + self.GROW, self.k.shape[3])
        kb, vb = self.k.new_empty(shape), self.v.new_empty(shape)
        kb[:, :, :L], vb[:, :, :L] = self.keys, self.values
        kb[:, :, L:L + T], vb[:, :, L:L + T] = k, v
        return KVCache(kb, vb, L + T)

    def index_select(self, idx: Tensor) -> "KVCache":
        """Rows ``idx (N',)``, in new buffers (the free capacity comes along: one contiguous copy)."""
        idx = idx.to(self.k.device)
        return KVCache(self.k.index_select(0, idx), self.v.index_select(0, idx), self.length)


def _dot_attention(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], scale: float) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T * scale + mask) v``: ``q (B, H, L, Dh)``, ``k``, ``v`` ``(B, H, S, Dh)`` ->
    ``(out (B, H, L, Dh), weights (B, H, L, S))``."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores + mask
    w = torch.softmax(scores, -1)
    return torch.matmul(w, v), w


# ----------------------------------------------------------------------------
# positional encodings
# ----------------------------------------------------------------------------


def sinusoidal_table(length: int, d_model: int, device=None, dtype=None, start: int = 0,
                     step: int = 1) -> Tensor:
    """``(length, d_model)``: ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``
    for positions ``p = start, start + step, ...``."""
    pos = (start + step * torch.arange(length, dtype=torch.float32, device=device)).unsqueeze(1)  # (len, 1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32, device=device)
                    * (-math.log(10000.0) / d_model))  # (ceil(d/2),)
    pe = torch.zeros(length, d_model, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d_model // 2])
    return pe.to(dtype) if dtype is not None else pe


def _check_positions(T: int, offset: int, max_len: int) -> None:
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if offset + T > max_len:
        if offset:
            raise ValueError(f"positions {offset}..{offset + T - 1} are past max_len={max_len}")
        raise ValueError(f"sequence of {T} frames is longer than max_len={max_len}")


class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sinusoidal table: ``x (B, T, D) -> dropout(x * xscale + PE[:T])``.

    ``xscale=True`` multiplies the input by ``sqrt(d_model)`` first (as in
    "Attention is all you need" after an embedding). ``batch_first=False``
    takes ``(T, B, D)``. The table is a non-persistent buffer (no state_dict entry).
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0, xscale: bool = False,
                 batch_first: bool = True, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.d_model = d_model
        self.max_len = max_len
        self.xscale = math.sqrt(d_model) if xscale else 1.0
        self.batch_first = batch_first
        self.dropout = Dropout(dropout, impl=impl)
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """``offset`` (an asrkit extension): the positions are ``offset .. offset + T - 1`` (one
        step of incremental decoding adds position ``offset``)."""
        T = x.shape[1 if self.batch_first else 0]
        _check_positions(T, offset, self.max_len)
        pe = self.pe[offset:offset + T].to(x.dtype)  # (T, D)
        if not self.batch_first:
            pe = pe.unsqueeze(1)  # (T, 1, D)
        x = x * self.xscale if self.xscale != 1.0 else x
        return self.dropout(x + pe)


class LearnedPositionalEncoding(Module):
    """Adds a learned table ``weight (max_len, d_model)`` (init N(0, 1) like an embedding):
    ``x (B, T, D) -> dropout(x + weight[:T])``."""

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0, batch_first: bool = True,
                 device=None, dtype=None, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.max_len = max_len
        self.d_model = d_model
        self.batch_first = batch_first
        self.weight = torch.nn.Parameter(torch.empty(max_len, d_model, device=device, dtype=dtype))
        self.dropout = Dropout(dropout, impl=impl)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """``offset`` (an asrkit extension): the positions are ``offset .. offset + T - 1``."""
        T = x.shape[1 if self.batch_first else 0]
        _check_positions(T, offset, self.max_len)
        pe = self.weight[offset:offset + T]
        if not self.batch_first:
            pe = pe.unsqueeze(1)
        return self.dropout(x + pe)


# ----------------------------------------------------------------------------
# relative-position self-attention (Transformer-XL style, as in Conformer)
# ----------------------------------------------------------------------------


class RelPositionMultiheadAttention(Module):
    """Self-attention with relative positional encodings (Dai et al. 2019; the Conformer MHSA).

    scores[i, j] = ((q_i + u) . k_j + (q_i + v) . W_pos r_{i-j}) / sqrt(Dh), where
    ``r`` is the sinusoidal table over relative distances ``T-1 .. -(T-1)`` and
    ``u``, ``v`` (``pos_bias_u``, ``pos_bias_v``, ``(num_heads, head_dim)``) are
    learned. The position term enters the attention kernel as an additive
    (differentiable) score mask; scratch computes it with
    :func:`asrkit.nn.functional.attention.rel_position_scores` (hand-written
    backward), native with torch ops and ``scaled_dot_product_attention``. ``x (B, T, E)`` (``(T, B, E)`` if not
    ``batch_first``), ``key_padding_mask (B, T)`` True = padding.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True, device=None, dtype=None, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if embed_dim % num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        fk = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.linear_q = Linear(embed_dim, embed_dim, bias, impl=impl, **fk)
        self.linear_k = Linear(embed_dim, embed_dim, bias, impl=impl, **fk)
        self.linear_v = Linear(embed_dim, embed_dim, bias, impl=impl, **fk)
        self.linear_out = Linear(embed_dim, embed_dim, bias, impl=impl, **fk)
        self.linear_pos = Linear(embed_dim, embed_dim, bias=False, impl=impl, **fk)
        self.pos_bias_u = torch.nn.Parameter(torch.empty(num_heads, self.head_dim, **fk))
        self.pos_bias_v = torch.nn.Parameter(torch.empty(num_heads, self.head_dim, **fk))
        init.xavier_uniform_(self.pos_bias_u)
        init.xavier_uniform_(self.pos_bias_v)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, " + super().extra_repr()

    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None, attn_mask: Optional[Tensor] = None,
                need_weights: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        if not self.batch_first:
            x = x.transpose(0, 1)
        B, T, E = x.shape
        H, Dh = self.num_heads, self.head_dim
        scale = 1.0 / math.sqrt(Dh)
        k = self.linear_k(x).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
        v = self.linear_v(x).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
        rel = sinusoidal_table(2 * T - 1, E, x.device, x.dtype, start=T - 1, step=-1)  # (2T-1, E): T-1 .. -(T-1)
        pos = self.linear_pos(rel)  # (2T-1, E)
        mask = None  # constant additive mask (B or 1, 1 or H, T, T): attn_mask + key padding
        am = _float_mask(attn_mask, x.dtype, "attn_mask")
        kpm = _float_mask(key_padding_mask, x.dtype, "key_padding_mask")
        if am is not None:
            mask = am
        if kpm is not None:
            mask = kpm.view(B, 1, 1, T) if mask is None else mask + kpm.view(B, 1, 1, T)
        drop = self.dropout if self.training else 0.0
        if self.native:
            q_u, scores = self._native_scores(self.linear_q(x), pos, mask, scale)
            out = TF.scaled_dot_product_attention(q_u, k, v, attn_mask=scores, dropout_p=drop, scale=scale)
            weights = None
            if need_weights:
                weights = torch.softmax(torch.matmul(q_u, k.transpose(-1, -2)) * scale + scores, -1)
        else:
            q_u, scores = A.rel_position_scores(self.linear_q(x), pos, self.pos_bias_u, self.pos_bias_v, mask,
                                                H, scale)  # (B, H, T, Dh), (B, H, T, T)
            out, weights = A.attention(q_u, k, v, scores, drop, scale)  # (B, H, T, Dh)
        out = self.linear_out(out.transpose(1, 2).reshape(B, T, E))  # (B, T, E)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, (weights.mean(1) if need_weights else None)

    def _native_scores(self, q: Tensor, pos: Tensor, mask: Optional[Tensor], scale: float):
        """torch ops (autograd) for what :func:`asrkit.nn.functional.attention.rel_position_scores` does."""
        B, T, E = q.shape
        H, Dh = self.num_heads, self.head_dim
        q = q.view(B, T, H, Dh)  # (B, T, H, Dh)
        q_u = (q + self.pos_bias_u).transpose(1, 2)  # (B, H, T, Dh)
        q_v = (q + self.pos_bias_v).transpose(1, 2)  # (B, H, T, Dh)
        p = pos.view(2 * T - 1, H, Dh).permute(1, 2, 0)  # (H, Dh, 2T-1)
        bd = torch.matmul(q_v, p)  # (B, H, T, 2T-1): query i against every distance
        i = torch.arange(T, device=q.device)
        idx = (T - 1 - i[:, None] + i[None, :]).expand(B, H, T, T)  # distance i - j -> column T-1-i+j
        scores = bd.gather(3, idx) * scale  # (B, H, T, T)
        return q_u, (scores if mask is None else scores + mask)
