"""Embedding kernel: a table lookup.

``idx (*) long``, ``weight (V, D)`` -> ``out (*, D) = weight[idx]``. The
gradient of the table adds each output row's gradient into the row it came
from (``index_add``); the ``padding_idx`` row gets none; with
``scale_grad_by_freq`` each row's gradient is divided by how often its index
occurs in the batch.
"""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import NONE, apply, kernel_function


def embedding_forward(
    weight: torch.Tensor,
    idx: torch.Tensor,
    padding_idx: int | None = None,
    scale_grad_by_freq: bool = False,
) -> tuple[torch.Tensor, tuple]:
    flat = idx.reshape(-1)                                        # (M,)
    out = weight.index_select(0, flat).reshape(*idx.shape, weight.shape[1])  # (*, D)
    return out, (flat, weight.shape, padding_idx, scale_grad_by_freq)


def embedding_backward(grad_out: torch.Tensor, cache: tuple) -> tuple:
    flat, wshape, padding_idx, scale_grad_by_freq = cache
    g = grad_out.reshape(-1, wshape[1])                           # (M, D)
    if scale_grad_by_freq:
        counts = torch.bincount(flat, minlength=wshape[0])        # (V,)
        g = g / counts.index_select(0, flat).unsqueeze(1).to(g.dtype)
    if padding_idx is not None:
        g = g * (flat != padding_idx).unsqueeze(1).to(g.dtype)
    gw = torch.zeros(wshape, dtype=grad_out.dtype, device=grad_out.device)  # (V, D)
    gw.index_add_(0, flat, g)
    return (gw,)


EmbeddingFunction = kernel_function("EmbeddingFunction", embedding_forward, embedding_backward)


def embedding(
    idx: torch.Tensor,
    weight: torch.Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> torch.Tensor:
    """As ``torch.nn.functional.embedding`` (dense gradients only).

    ``max_norm`` renormalizes, in place and without gradient, the rows looked
    up whose ``norm_type``-norm exceeds it, as torch does.
    """
    if sparse:
        raise ValueError("the scratch embedding computes dense gradients; use impl='native' for sparse=True")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    if max_norm is not None:
        with torch.no_grad():
            rows = torch.unique(idx.reshape(-1))
            norms = weight.index_select(0, rows).norm(p=norm_type, dim=1)   # (U,)
            scale = torch.where(norms > max_norm, max_norm / (norms + 1e-7), torch.ones_like(norms))
            weight[rows] = weight[rows] * scale.unsqueeze(1)
    return apply(EmbeddingFunction, NONE, weight, idx, padding_idx, bool(scale_grad_by_freq))
