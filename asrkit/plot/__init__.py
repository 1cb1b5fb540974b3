"""Pictures (PNG) of models and results, and the numbers read off them.

- :mod:`asrkit.plot.attention`: attention maps of encoder-decoder models,
  :func:`diagonality` (how monotonic an alignment is), :func:`plot_attention`,
  :func:`save_epoch_attention` (the trainer's one call per epoch).
- :mod:`asrkit.plot.decoded`: one utterance decoded by an attention model,
  with its attention map (:func:`~asrkit.plot.decoded.decode_attention`).

It imports no model, layer or trainer code (a model is reached through a
loaded exp dir, torch tensors are read as they come), and matplotlib only
inside the functions that draw, with its Agg canvas (no display needed).
"""
from __future__ import annotations

from asrkit.plot.attention import (ATTENTION_PLOT, attention_rows, check_png_path, default_band, diagonality,
                                   plot_attention, save_epoch_attention)

__all__ = ["ATTENTION_PLOT", "attention_rows", "check_png_path", "default_band", "diagonality", "plot_attention",
           "save_epoch_attention"]
