"""From a model's output ids to what a decoder writes.

:class:`UnitMap` wraps the exp dir's ``units/`` folder:

- CTC models (``units.kind`` phone | char | bpe): the tokenizer of
  :mod:`asrkit.data.tokenizer`. :meth:`UnitMap.symbols` gives the unit symbols
  of ids, :meth:`UnitMap.tokens` the output tokens: phones for phone units
  (``<blank>`` and ``sil`` dropped), words for char (``|`` between words)
  and bpe (sentencepiece pieces joined).
- Frame classifiers (``units.kind`` ali): a ``units.txt`` of ``label id``
  lines, ``<blank>`` at id 0 (never a frame target) and the labels of the
  training ``ali`` after it (the trainer saves the full phone tokenizer
  folder when the labels are phones); symbols and tokens are the labels, one
  per frame, none dropped. :attr:`UnitMap.never` lists the ids a frame
  prediction must not pick (the blank).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence

from asrkit.errors import DataError, InputError, quote
from asrkit.io import iter_lines

BLANK = "<blank>"

__all__ = ["UnitMap", "load_units", "read_label_units"]


class UnitMap:
    """Id -> unit symbol, and id sequence -> output tokens.

    Attributes:
        kind: ``phone``, ``char``, ``bpe`` (CTC) or ``ali`` (frame labels).
        units: the unit symbols in id order.
        blank_id: 0 for CTC units, None for frame labels.
    """

    def __init__(self, kind: str, units: Sequence[str], tokenizer=None, source: str = "<units>"):
        self.kind = kind
        self.units = list(units)
        self.tokenizer = tokenizer if kind != "ali" else None
        self.source = source
        self.blank_id: Optional[int] = 0 if self.units and self.units[0] == BLANK else None
        #: ids that are not frame labels (a frame classifier's argmax skips them)
        self.never: list[int] = [] if self.blank_id is None else [self.blank_id]

    @property
    def num_classes(self) -> int:
        return len(self.units)

    def _check(self, ids: Sequence[int]) -> None:
        n = len(self.units)
        for i in ids:
            if not 0 <= i < n:
                raise DataError(f"the model produced unit id {i}, but {self.source} has ids 0..{n - 1}; "
                                f"the units dir does not belong to this model")

    def symbols(self, ids: Iterable[int]) -> list[str]:
        """One unit symbol per id (blanks included if given)."""
        ids = [int(i) for i in ids]
        self._check(ids)
        return [self.units[i] for i in ids]

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Output tokens of a collapsed CTC id sequence (phones or words), or
        the labels of frame predictions."""
        ids = [int(i) for i in ids]
        if self.tokenizer is None:
            return self.symbols(ids)
        self._check(ids)
        return list(self.tokenizer.decode(ids))

    @property
    def output_kind(self) -> str:
        """What :meth:`tokens` gives: ``phones``, ``words`` or ``labels``."""
        return {"phone": "phones", "char": "words", "bpe": "words"}.get(self.kind, "labels")

    def __repr__(self) -> str:
        return f"UnitMap(kind={self.kind!r}, units={len(self.units)}, source={self.source!r})"


def read_label_units(path: str | os.PathLike) -> list[str]:
    """A frame classifier's ``units.txt``: ``label id`` lines with ids
    0..C-1, any order; returns the labels in id order."""
    by_id: dict[int, str] = {}
    for lineno, line in iter_lines(path):
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"\d+", parts[1]):
            raise InputError(f"{path}:{lineno}: expected 'label id', got {quote(line)}")
        i = int(parts[1])
        if i in by_id:
            raise InputError(f"{path}:{lineno}: id {i} is used twice")
        by_id[i] = parts[0]
    n = len(by_id)
    if n == 0:
        raise InputError(f"{path}: no units")
    if sorted(by_id) != list(range(n)):
        gap = next(i for i in range(n) if i not in by_id)
        raise InputError(f"{path}: ids must be 0..{n - 1} without gaps; id {gap} is missing")
    return [by_id[i] for i in range(n)]


def load_units(exp: str | os.PathLike, config: Optional[dict] = None) -> UnitMap:
    """The :class:`UnitMap` of an exp dir (``EXP/units/``).

    ``units.kind=ali`` (frame labels) reads only ``units.txt``; CTC kinds
    load the tokenizer (``tokenizer.json``).
    """
    from asrkit.data.tokenizer import CONFIG_FILE, UNITS_FILE, Tokenizer

    folder = Path(exp) / "units"
    kind = ((config or {}).get("units") or {}).get("kind")
    if not (folder / UNITS_FILE).is_file():
        raise InputError(f"{folder / UNITS_FILE}: no such file; the exp dir has no units (was it trained "
                         f"with 'asrkit train'?)")
    if kind == "ali":
        return UnitMap("ali", read_label_units(folder / UNITS_FILE), source=str(folder / UNITS_FILE))
    if (folder / CONFIG_FILE).is_file():
        tok = Tokenizer.load(folder)
        if kind is not None and tok.kind != kind:
            raise InputError(f"{folder}: holds {tok.kind} units but config.yaml says units.kind={kind}")
        return UnitMap(tok.kind, tok.units, tokenizer=tok, source=str(folder / UNITS_FILE))
    if kind is not None:
        raise InputError(f"{folder}: no {CONFIG_FILE}, but config.yaml says units.kind={kind}; "
                         f"the units dir is not finished (retrain, or rerun 'asrkit tokenizer train')")
    return UnitMap("ali", read_label_units(folder / UNITS_FILE), source=str(folder / UNITS_FILE))
