"""Conformer (Gulati et al. 2020): ``ConformerBlock`` and a ``Conformer`` stack.

Layout and submodule names follow ``torchaudio.models.Conformer`` (``ffn1``,
``self_attn_layer_norm``, ``self_attn``, ``self_attn_dropout``,
``conv_module``, ``ffn2``, ``final_layer_norm``), so with ``pos_enc="abs"`` a
torchaudio Conformer's state_dict loads unchanged. ``pos_enc="rel"`` swaps the
self-attention for :class:`asrkit.nn.attention.RelPositionMultiheadAttention`
(Transformer-XL relative positions, as in the Conformer paper)::

    x = x + 1/2 FFN(x)            FFN: LayerNorm, Linear(D, F), SiLU, Dropout, Linear(F, D), Dropout
    x = x + Dropout(MHSA(LayerNorm(x)))
    x = x + Conv(x)               Conv: LayerNorm, pointwise Conv1d(D, 2D), GLU, depthwise Conv1d(k),
                                        BatchNorm1d, SiLU, pointwise Conv1d(D, D), Dropout
    x = x + 1/2 FFN(x)
    x = LayerNorm(x)

Built from asrkit's Linear, LayerNorm, Dropout, SiLU, Conv1d and BatchNorm1d.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from asrkit.nn.activation import GLU, SiLU
from asrkit.nn.attention import MultiheadAttention, RelPositionMultiheadAttention
from asrkit.nn.conv import Conv1d
from asrkit.nn.dropout import Dropout
from asrkit.nn.functional import shape as S
from asrkit.nn.linear import Linear
from asrkit.nn.module import Module
from asrkit.nn.norm import BatchNorm1d, LayerNorm

__all__ = ["ConformerBlock", "Conformer", "lengths_to_padding_mask"]


def lengths_to_padding_mask(lengths: Tensor, max_len: Optional[int] = None) -> Tensor:
    """``(B,)`` lengths -> ``(B, T)`` bool mask, True at padded frames."""
    T = int(lengths.max()) if max_len is None else max_len
    return torch.arange(T, device=lengths.device)[None, :] >= lengths[:, None]


class _FeedForward(Module):
    def __init__(self, input_dim: int, hidden_dim: int, dropout: float, impl: str) -> None:
        super().__init__(impl)
        self.sequential = torch.nn.Sequential(
            LayerNorm(input_dim, impl=impl),
            Linear(input_dim, hidden_dim, impl=impl),
            SiLU(impl=impl),
            Dropout(dropout, impl=impl),
            Linear(hidden_dim, input_dim, impl=impl),
            Dropout(dropout, impl=impl),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.sequential(x)


class _ConvModule(Module):
    """``(B, T, D) -> (B, T, D)``; padded frames are zeroed before the depthwise conv."""

    def __init__(self, input_dim: int, kernel_size: int, dropout: float, impl: str) -> None:
        super().__init__(impl)
        if (kernel_size - 1) % 2 != 0:
            raise ValueError("depthwise_conv_kernel_size must be odd to achieve 'SAME' padding.")
        self.layer_norm = LayerNorm(input_dim, impl=impl)
        self.sequential = torch.nn.Sequential(
            Conv1d(input_dim, 2 * input_dim, 1, impl=impl),
            GLU(dim=1, impl=impl),
            Conv1d(input_dim, input_dim, kernel_size, padding=(kernel_size - 1) // 2, groups=input_dim,
                   impl=impl),
            BatchNorm1d(input_dim, impl=impl),
            SiLU(impl=impl),
            Conv1d(input_dim, input_dim, 1, impl=impl),
            Dropout(dropout, impl=impl),
        )

    def forward(self, x: Tensor, pad_mask: Optional[Tensor] = None) -> Tensor:
        x = self.layer_norm(x).transpose(1, 2)  # (B, D, T)
        x = self.sequential[1](self.sequential[0](x))  # pointwise + GLU
        if pad_mask is not None:  # keep padding out of the depthwise receptive field
            keep_out = pad_mask.unsqueeze(1)  # (B, 1, T)
            x = x.masked_fill(keep_out, 0.0) if self.native else S.masked_fill(x, keep_out, 0.0)
        for layer in list(self.sequential)[2:]:
            x = layer(x)
        return x.transpose(1, 2)  # (B, T, D)


class ConformerBlock(Module):
    """One Conformer layer: ``x (T, B, D)`` (``(B, T, D)`` if ``batch_first``) -> same shape.

    ``key_padding_mask (B, T)``: True at padded frames.
    """

    def __init__(self, input_dim: int, ffn_dim: int, num_attention_heads: int, depthwise_conv_kernel_size: int,
                 dropout: float = 0.0, *, convolution_first: bool = False, pos_enc: str = "abs",
                 batch_first: bool = False, mask_conv_padding: bool = False, impl: str = "scratch") -> None:
        super().__init__(impl)
        if pos_enc not in ("abs", "rel"):
            raise ValueError(f"pos_enc must be 'abs' or 'rel', got {pos_enc!r}")
        self.pos_enc = pos_enc
        self.batch_first = batch_first
        self.convolution_first = convolution_first
        self.mask_conv_padding = mask_conv_padding
        self.ffn1 = _FeedForward(input_dim, ffn_dim, dropout, impl)
        self.self_attn_layer_norm = LayerNorm(input_dim, impl=impl)
        if pos_enc == "abs":
            self.self_attn = MultiheadAttention(input_dim, num_attention_heads, dropout=dropout, batch_first=True,
                                                impl=impl)
        else:
            self.self_attn = RelPositionMultiheadAttention(input_dim, num_attention_heads, dropout=dropout,
                                                           batch_first=True, impl=impl)
        self.self_attn_dropout = Dropout(dropout, impl=impl)
        self.conv_module = _ConvModule(input_dim, depthwise_conv_kernel_size, dropout, impl)
        self.ffn2 = _FeedForward(input_dim, ffn_dim, dropout, impl)
        self.final_layer_norm = LayerNorm(input_dim, impl=impl)

    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        if not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, D)
        conv_mask = key_padding_mask if self.mask_conv_padding else None
        x = x + 0.5 * self.ffn1(x)
        if self.convolution_first:
            x = x + self.conv_module(x, conv_mask)
        y = self.self_attn_layer_norm(x)
        if self.pos_enc == "abs":
            y = self.self_attn(y, y, y, key_padding_mask=key_padding_mask, need_weights=False)[0]
        else:
            y = self.self_attn(y, key_padding_mask=key_padding_mask)[0]
        x = x + self.self_attn_dropout(y)
        if not self.convolution_first:
            x = x + self.conv_module(x, conv_mask)
        x = x + 0.5 * self.ffn2(x)
        x = self.final_layer_norm(x)
        return x if self.batch_first else x.transpose(0, 1)


class Conformer(Module):
    """A stack of :class:`ConformerBlock`: ``(input (B, T, D), lengths (B,)) -> (output, lengths)``,
    as ``torchaudio.models.Conformer`` (same arguments and state_dict names)."""

    def __init__(self, input_dim: int, num_heads: int, ffn_dim: int, num_layers: int,
                 depthwise_conv_kernel_size: int, dropout: float = 0.0, *, convolution_first: bool = False,
                 pos_enc: str = "abs", mask_conv_padding: bool = False, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.conformer_layers = torch.nn.ModuleList([
            ConformerBlock(input_dim, ffn_dim, num_heads, depthwise_conv_kernel_size, dropout,
                           convolution_first=convolution_first, pos_enc=pos_enc, batch_first=True,
                           mask_conv_padding=mask_conv_padding, impl=impl)
            for _ in range(num_layers)
        ])

    def forward(self, input: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward_layers(input, lengths)[-1], lengths

    def forward_layers(self, input: Tensor, lengths: Tensor,
                       after: Optional[Callable[[int, Tensor], Tensor]] = None) -> list[Tensor]:
        """The output ``(B, T, D)`` of every block, first to last (``forward`` keeps the last);
        ``after(k, x)``, when given, replaces block ``k``'s output (1-based) before the next block reads it."""
        mask = lengths_to_padding_mask(lengths, input.shape[1])  # (B, T)
        x, outs = input, []
        for k, layer in enumerate(self.conformer_layers, 1):
            x = layer(x, mask)
            if after is not None:
                x = after(k, x)
            outs.append(x)
        return outs
