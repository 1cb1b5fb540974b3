"""Dropout kernel (inverted dropout).

Training: each element is kept with probability ``1 - p`` and scaled by
``1 / (1 - p)`` so the expectation is unchanged; the mask ``m`` is drawn with
``bernoulli_(1 - p)`` exactly as torch's CPU kernel draws it, so the same seed
gives the same mask there. ``y = x * m / (1 - p)``, ``dL/dx = g * m / (1 - p)``.
Evaluation (``training=False``) is the identity.
"""
from __future__ import annotations

import torch

from asrkit.nn.functional._autograd import NONE, apply, kernel_function


def dropout_forward(x: torch.Tensor, p: float, training: bool) -> tuple[torch.Tensor, tuple]:
    if not training or p == 0.0:
        return x.clone(), (None,)
    if p == 1.0:
        scale = torch.zeros_like(x)                          # (*) everything dropped
    else:
        scale = torch.empty_like(x).bernoulli_(1.0 - p).div_(1.0 - p)  # (*) m / (1 - p)
    return x * scale, (scale,)


def dropout_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (scale,) = cache
    return (grad_out.clone() if scale is None else grad_out * scale,)


DropoutFunction = kernel_function("DropoutFunction", dropout_forward, dropout_backward)


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
    """As ``torch.nn.functional.dropout``.

    ``inplace`` is accepted for signature parity; the scratch op always returns
    a new tensor (same values), so use the return value.
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training:
        return x
    return apply(DropoutFunction, NONE, x, float(p), True)


# ---------------------------------------------------------------- locked (variational) dropout
# One mask per sequence, shared by every time step (Gal & Ghahramani 2016; Merity et al. 2018):
#   x (B, T, D) (batch_first) or (T, B, D);  m (B, 1, D) or (1, B, D) ~ Bernoulli(1 - p) / (1 - p)
#   y = x * m (broadcast over time);  dL/dx = g * m


def _locked_shape(x: torch.Tensor, batch_first: bool) -> tuple[int, ...]:
    if x.dim() != 3:
        raise ValueError(f"locked dropout expects (B, T, D) or (T, B, D) input, got shape {tuple(x.shape)}")
    B, T, D = x.shape if batch_first else (x.shape[1], x.shape[0], x.shape[2])
    return (B, 1, D) if batch_first else (1, B, D)


def locked_dropout_mask(x: torch.Tensor, p: float, batch_first: bool = True) -> torch.Tensor:
    """The scaled mask ``m / (1 - p)``: ``(B, 1, D)`` (``(1, B, D)`` time-first), one draw per
    sequence and feature with ``bernoulli_(1 - p)`` on ``x``'s device (the native path draws the same)."""
    shape = _locked_shape(x, batch_first)
    if p == 1.0:
        return x.new_zeros(shape)
    return x.new_empty(shape).bernoulli_(1.0 - p).div_(1.0 - p)


def locked_dropout_forward(x: torch.Tensor, p: float, batch_first: bool) -> tuple[torch.Tensor, tuple]:
    scale = locked_dropout_mask(x, p, batch_first)            # (B, 1, D) or (1, B, D)
    return x * scale, (scale,)                                # (B, T, D): the same mask at every t


def locked_dropout_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (scale,) = cache
    return (grad_out * scale,)


LockedDropoutFunction = kernel_function("LockedDropoutFunction", locked_dropout_forward, locked_dropout_backward)


def locked_dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, batch_first: bool = True) -> torch.Tensor:
    """Variational dropout of a sequence batch: one mask per sequence, the same at every time step.

    ``x (B, T, D)`` (``(T, B, D)`` when ``batch_first=False``). Identity when not
    training or ``p == 0``; frames that are zero (padding) stay zero.
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    return apply(LockedDropoutFunction, NONE, x, float(p), bool(batch_first))


# ---------------------------------------------------------------- embedding dropout (whole word types)
# AWD-LSTM's embedding dropout (Merity et al. 2018, after Gal & Ghahramani 2016) drops rows of the
# embedding table: a dropped word type is zero wherever it occurs in the batch. Dropping table rows
# and looking up equals looking up and scaling each position by its word's row scale:
#   x (*, E) = Embedding(tokens (*));  s (V,) ~ Bernoulli(1 - p) / (1 - p);  y = x * s[tokens][..., None]
#   dL/dx = g * s[tokens][..., None]    (the table's gradient then flows through the embedding kernel)


def embedding_dropout_mask(x: torch.Tensor, tokens: torch.Tensor, num_embeddings: int, p: float) -> torch.Tensor:
    """The per-position scale ``s[tokens] (*, 1)``: one ``bernoulli_(1 - p)`` draw per word type
    (``(num_embeddings,)`` on ``x``'s device, divided by ``1 - p``); the native path draws the same."""
    if p == 1.0:
        rows = x.new_zeros(num_embeddings)
    else:
        rows = x.new_empty(num_embeddings).bernoulli_(1.0 - p).div_(1.0 - p)  # (V,)
    return rows[tokens].unsqueeze(-1)                                            # (*, 1)


def embedding_dropout_forward(x: torch.Tensor, tokens: torch.Tensor, num_embeddings: int,
                              p: float) -> tuple[torch.Tensor, tuple]:
    scale = embedding_dropout_mask(x, tokens, num_embeddings, p)  # (*, 1)
    return x * scale, (scale,)                                    # (*, E)


def embedding_dropout_backward(grad_out: torch.Tensor, cache: tuple) -> tuple[torch.Tensor]:
    (scale,) = cache
    return (grad_out * scale,)


EmbeddingDropoutFunction = kernel_function("EmbeddingDropoutFunction", embedding_dropout_forward,
                                           embedding_dropout_backward)


def embedding_dropout(x: torch.Tensor, tokens: torch.Tensor, num_embeddings: int, p: float = 0.1,
                      training: bool = True) -> torch.Tensor:
    """Drop whole word types of an embedded batch: ``x (*, E)`` looked up from ``tokens (*)``
    (ids in ``0 .. num_embeddings - 1``). Identity when not training or ``p == 0``."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if tokens.shape != x.shape[:-1]:
        raise ValueError(f"tokens {tuple(tokens.shape)} must be x's shape {tuple(x.shape)} without the last dim")
    if not training or p == 0.0:
        return x
    return apply(EmbeddingDropoutFunction, NONE, x, tokens, int(num_embeddings), float(p))
