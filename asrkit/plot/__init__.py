"""Pictures (PNG) of models and results, and the numbers read off them.

- :mod:`asrkit.plot.attention`: attention maps of encoder-decoder models,
  :func:`diagonality` (how monotonic an alignment is), :func:`plot_attention`,
  :func:`save_epoch_attention` (the trainer's one call per epoch).

A room of numpy and matplotlib: it imports no model, layer or trainer code
(torch tensors are read without importing torch), and matplotlib only inside
the functions that draw, with its Agg canvas (no display needed).
"""
from __future__ import annotations

from asrkit.plot.attention import (ATTENTION_PLOT, attention_rows, default_band, diagonality, plot_attention,
                                   save_epoch_attention)

__all__ = ["ATTENTION_PLOT", "attention_rows", "default_band", "diagonality", "plot_attention",
           "save_epoch_attention"]
