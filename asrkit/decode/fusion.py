"""The language model of the attention beam search (shallow fusion): one interface, two models.

The search (:func:`asrkit.decode.attention.attention_beam_search`) keeps an LM
state for its hypothesis rows and asks the LM three things, each for all rows at once::

    rows = lm.init_rows(B, device)            # B hypotheses after <sos>
    gains = lm.score_rows(rows, cand)          # cand (R, K) token ids -> (R, K) natural-log LM gains
    rows = lm.select_rows(rows, idx, tokens)   # rows idx (R',) (repeated, reordered), each after tokens (R',)

and adds ``lm_weight x gain`` to every proposal. Two models implement it:

- a file (ARPA or kenlm binary): :class:`asrkit.decode.word_lm.WordLM`, a word
  n-gram whose gains are non-zero where a token completes a word (``|``, a ``▁``
  piece, ``<eos>``);
- a directory (``asrkit train lm``): :class:`asrkit.decode.neural_lm.NeuralFusionLM`,
  a neural LM on the model's own char/bpe units, whose gain is every token's
  log-probability (``</s>`` for ``<eos>``).

:func:`open_fusion_lm` picks one by the path.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Protocol, Union, runtime_checkable

import torch
from torch import Tensor

from asrkit.data.units import UnitMap
from asrkit.errors import InputError
from asrkit.io import display_name

__all__ = ["FusionLM", "open_fusion_lm"]


@runtime_checkable
class FusionLM(Protocol):
    """What the attention search asks of its LM (the module docstring). ``path``: the model's path,
    for messages and tuning files."""

    path: Path

    def init_rows(self, n: int, device: Union[str, torch.device, None] = None) -> Any:
        """The state of ``n`` hypotheses that have fed only ``<sos>``."""
        ...

    def score_rows(self, rows: Any, cand: Tensor) -> Tensor:
        """``cand (R, K)`` ids -> ``(R, K)`` float natural-log gains on ``cand``'s device."""
        ...

    def select_rows(self, rows: Any, idx: Tensor, tokens: Tensor) -> Any:
        """Rows ``idx (R',)`` of ``rows``, each after ``tokens (R',)`` (not ``<eos>``)."""
        ...

    def close(self) -> None:
        ...


def open_fusion_lm(path: Union[str, os.PathLike], units: UnitMap, *, device: Union[str, torch.device] = "cpu",
                   impl: Optional[str] = None) -> FusionLM:
    """The LM at ``path`` for an attention model with ``units``: a directory is a neural LM exp
    dir (on ``device``, layers ``impl``), a file an ARPA / kenlm word n-gram. :class:`InputError`
    for a missing path or one that is no LM, :class:`UsageError` for units the LM cannot score."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{display_name(path)}: no such file or folder (--lm takes an ARPA file, a kenlm binary "
                         f"or a neural LM exp dir)")
    if p.is_dir():
        from asrkit.decode.neural_lm import NeuralFusionLM

        return NeuralFusionLM(p, units, device=device, impl=impl)
    from asrkit.decode.word_lm import WordLM

    return WordLM(p, units)
