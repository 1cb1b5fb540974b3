"""Neural LM shallow fusion for the attention search, token by token.

A neural LM trained by ``asrkit train lm`` on the units of an attention model
(char or bpe, the same symbol at every id) scores each proposal of the beam
search with its next-token log-probability: the search adds

    lm_weight * ln P_lm(y_i | y_1 .. y_{i-1})

for every token ``y_i``, and for ``<eos>`` (id 0) ``ln P_lm(</s> | y)``: id 0 is the
attention decoder's ``<sos>``/``<eos>`` and the LM's sentence boundary alike. Every
hypothesis row carries the LM's state; the LM steps once per search step, on all
rows together (:meth:`NeuralFusionLM.select_rows`), and its state is reordered with
the decoder's (``select_state``).

    lm = NeuralFusionLM("exp/lm_char", units)         # UsageError unless the units match
    rows = lm.init_rows(2)                            # 2 hypotheses after <sos>
    lm.score_rows(rows, cand)                         # (2, K) ln P_lm of candidates cand (2, K)
    rows = lm.select_rows(rows, idx, tokens)          # rows idx (R',), each after its token

The units must be the acoustic model's (:func:`check_shared_units`): an LM
trained with ``units.dir=EXP/units`` (``asrkit train lm --text T --dev D --out
LM units.kind=char units.dir=EXP/units``) has them. A word-unit LM does not
fuse here: its words would be scored at word ends, which a word n-gram does
(:mod:`asrkit.decode.word_lm`); ``asrkit rescore`` takes a word LM on n-best
lists.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor

from asrkit.data.units import UnitMap
from asrkit.errors import UsageError, quote

__all__ = ["NeuralFusionLM", "NeuralRows", "check_shared_units"]


class NeuralRows(NamedTuple):
    """The LM side of ``R`` hypothesis rows: the model's state after each row's tokens and the
    log-probabilities ``(R, C)`` float32 of the next token it gives."""

    state: object
    log_probs: Tensor


def _train_hint(kind: str) -> str:
    return (f"train an LM on the model's units: asrkit train lm --text TEXT --dev DEV --out LM_EXP "
            f"units.kind={kind} units.dir=EXP/units")


def check_shared_units(lm_units: UnitMap, units: UnitMap, lm_path: Union[str, os.PathLike]) -> None:
    """:class:`UsageError` (one line: how they differ, how to train a matching LM) unless the
    LM's units are the attention model's: both char or both bpe, the same symbol at every id."""
    name = str(lm_path)
    if units.kind not in ("char", "bpe"):
        raise UsageError(f"--lm {name}: a neural LM fuses on char or bpe units, and this attention model's units "
                         f"are {units.kind}s; decode it without --lm")
    if lm_units.kind == "word":
        raise UsageError(f"--lm {name}: a word-unit LM; fusion in the attention search needs the model's "
                         f"{units.kind} units ({_train_hint(units.kind)}), or rescore n-best lists with it "
                         f"(asrkit rescore)")
    if lm_units.kind != units.kind:
        raise UsageError(f"--lm {name}: the LM's units are {lm_units.kind}, the model's {units.kind}; "
                         f"{_train_hint(units.kind)}")
    if list(lm_units.units) != list(units.units):
        a, b = list(lm_units.units), list(units.units)
        diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        where = (f"id {diff} is {quote(a[diff])} in the LM, {quote(b[diff])} in the model" if diff is not None
                 else "the first ids agree")
        raise UsageError(f"--lm {name}: the LM has {len(a)} {lm_units.kind} units, the model {len(b)}, and {where}; "
                         f"{_train_hint(units.kind)}")


class NeuralFusionLM:
    """A neural LM exp dir (``asrkit train lm``) as the attention search's LM.

    Args:
        path: the LM's exp dir.
        units: the attention model's :class:`UnitMap` (checked against the LM's).
        device: where the LM runs (the decoder's device).
        checkpoint: the LM's checkpoint (``best``, ``last``, ``epoch-N`` or a ``.pt``).
        impl: ``scratch`` / ``native`` override of the LM's layers (None: as trained).

    Attributes: ``path``, ``lm`` (:class:`asrkit.lm.neural.NeuralLM`), ``model``, ``device``.
    :class:`InputError` when ``path`` is not an LM exp dir, :class:`UsageError` when its units
    are not the model's.
    """

    def __init__(self, path: Union[str, os.PathLike], units: UnitMap, *,
                 device: Union[str, torch.device] = "cpu", checkpoint: str = "best",
                 impl: Optional[str] = None) -> None:
        from asrkit.lm.neural import NeuralLM

        self.path = Path(path)
        self.lm = NeuralLM.load(path, checkpoint, device=device, impl=impl)
        check_shared_units(self.lm.units, units, path)
        self.model = self.lm.model
        self.device = self.lm.device

    @torch.no_grad()
    def init_rows(self, n: int, device: Union[str, torch.device, None] = None) -> NeuralRows:
        """``n`` hypotheses that have fed ``<sos>`` (id 0) and nothing else."""
        state = self.model.init_state(n, self.device)
        logp, state = self.model.step(state, torch.zeros(n, dtype=torch.long, device=self.device))
        return NeuralRows(state, logp)

    def score_rows(self, rows: NeuralRows, cand: Tensor) -> Tensor:
        """``cand (R, K)`` token ids -> ``(R, K)`` float32 natural-log ``P_lm(cand | row)`` on
        ``cand``'s device (id 0: ``</s>``)."""
        return rows.log_probs.gather(1, cand.to(self.device)).to(cand.device)

    @torch.no_grad()
    def select_rows(self, rows: NeuralRows, idx: Tensor, tokens: Tensor) -> NeuralRows:
        """Rows ``idx (R',)`` of ``rows``, each after one more token ``tokens (R',)``: one LM
        step for all of them."""
        state = self.model.select_state(rows.state, idx.to(self.device))
        logp, state = self.model.step(state, tokens.to(self.device))
        return NeuralRows(state, logp)

    def close(self) -> None:
        """Nothing to release (the model goes with the object)."""
