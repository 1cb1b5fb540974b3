"""The unit map: a model's output classes, for training targets and decoding.

:class:`UnitMap` wraps an exp dir's ``units/`` folder (or the units a
trainer is about to save there):

- CTC models (``kind`` phone | char | bpe): the tokenizer of
  :mod:`asrkit.data.tokenizer`. :meth:`UnitMap.symbols` gives the unit symbols
  of ids, :meth:`UnitMap.tokens` the output tokens: phones for phone units
  (``<blank>`` and ``sil`` dropped), words for char (``|`` between words)
  and bpe (sentencepiece pieces joined).
- Frame classifiers (``kind`` ali): a ``units.txt`` of ``label id`` lines,
  ``<blank>`` at id 0 (never a frame target) and the labels of the training
  ``ali`` after it (the trainer saves the full phone tokenizer folder when
  the labels are phones); symbols and tokens are the labels, one per frame,
  none dropped. :attr:`UnitMap.never` lists the ids a frame prediction must
  not pick (the blank).
- Image classifiers (``kind`` class: the face task, the GAN's classifier):
  a ``units.txt`` of ``class id`` lines, the class folders' names from id 0,
  no blank (made by :mod:`asrkit.tasks.images`).
- Word language models (``kind`` word): a ``units.txt`` alone, ``<eos>`` at id 0
  (the sentence boundary), ``<unk>`` at id 1, then the training text's words
  (made by the LM task). Symbols and tokens are the words; :meth:`UnitMap.id_of`
  maps a word to its id (None for an out-of-vocabulary word).

The on-disk folder is the tokenizer's (``units.txt`` + ``tokenizer.json``,
see :mod:`asrkit.data.tokenizer`): :func:`load_units` reads it,
:func:`save_units` writes it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Optional, Sequence

from asrkit.data.tokenizer import BLANK, CONFIG_FILE, UNITS_FILE, UNK, Tokenizer, read_units, write_units
from asrkit.errors import DataError, InputError

__all__ = ["BLANK", "WORD_EOS", "WORD_UNK", "UnitMap", "load_units", "load_units_dir", "save_units"]

WORD_EOS = "<eos>"  #: id 0 of word units: the sentence boundary
WORD_UNK = UNK      #: id 1 of word units: every word outside the vocabulary


class UnitMap:
    """Id -> unit symbol, and id sequence -> output tokens.

    Attributes:
        kind: ``phone``, ``char``, ``bpe`` (CTC), ``ali`` (frame labels) or ``word``
            (a word LM's vocabulary).
        units: the unit symbols in id order.
        tokenizer: the :class:`~asrkit.data.tokenizer.Tokenizer` (CTC units,
            and frame labels that are the phone set), else None.
        source: where the units came from (for messages).
        blank_id: 0 when id 0 is ``<blank>``, else None.
    """

    def __init__(self, kind: str, units: Sequence[str], tokenizer: Optional[Tokenizer] = None,
                 source: str = "<units>"):
        self.kind = kind
        self.units = list(units)
        self.tokenizer = tokenizer
        self.source = source
        self.blank_id: Optional[int] = 0 if self.units and self.units[0] == BLANK else None
        #: ids that are not frame labels (a frame classifier's argmax skips them)
        self.never: list[int] = [] if self.blank_id is None else [self.blank_id]
        self._ids = {s: i for i, s in enumerate(self.units)}

    @property
    def num_classes(self) -> int:
        return len(self.units)

    def id_of(self, symbol: str) -> Optional[int]:
        """The id of a unit symbol, None when it is not one."""
        return self._ids.get(symbol)

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
        if self.kind == "ali" or self.tokenizer is None:
            return self.symbols(ids)
        self._check(ids)
        return list(self.tokenizer.decode(ids))

    @property
    def output_kind(self) -> str:
        """What :meth:`tokens` gives: ``phones``, ``words`` or ``labels``."""
        return {"phone": "phones", "char": "words", "bpe": "words", "word": "words"}.get(self.kind, "labels")

    def __repr__(self) -> str:
        return f"UnitMap(kind={self.kind!r}, units={len(self.units)}, source={self.source!r})"


def load_units_dir(folder: str | os.PathLike, kind: Optional[str] = None, *, blank_first: bool = False) -> UnitMap:
    """The :class:`UnitMap` of a units folder.

    ``kind`` is what the config says (None: unknown). ``ali`` reads
    ``units.txt`` (and the tokenizer when the folder has one); CTC kinds load
    the tokenizer (``tokenizer.json``), which must be of that kind; ``word``
    reads ``units.txt`` (``<eos>`` 0, ``<unk>`` 1, then the words); ``class``
    reads ``units.txt`` (an image task's class names, no blank). A folder
    without ``tokenizer.json`` and no kind given holds word units when its id 0
    is ``<eos>``, else frame labels.
    """
    folder = Path(folder)
    source = str(folder / UNITS_FILE)
    if not (folder / UNITS_FILE).is_file():
        raise InputError(f"{source}: no such file; the exp dir has no units (was it trained with 'asrkit train'?)")
    has_tokenizer = (folder / CONFIG_FILE).is_file()
    if kind == "word" or (kind is None and not has_tokenizer):
        units = read_units(folder / UNITS_FILE, blank_first=False)
        if kind == "word" or units[0] == WORD_EOS:
            if units[:2] != [WORD_EOS, WORD_UNK]:
                raise InputError(f"{source}: word units must start with '{WORD_EOS} 0' and '{WORD_UNK} 1', "
                                 f"found {' '.join(units[:2])!r}")
            return UnitMap("word", units, source=source)
    if kind == "class":  # an image classifier's classes (face identities), no blank
        return UnitMap("class", read_units(folder / UNITS_FILE, blank_first=False), source=source)
    if kind == "ali" or (kind is None and not has_tokenizer):
        tok = Tokenizer.load(folder) if has_tokenizer else None
        return UnitMap("ali", read_units(folder / UNITS_FILE, blank_first=blank_first), tok, source=source)
    if not has_tokenizer:
        raise InputError(f"{folder}: no {CONFIG_FILE}, but config.yaml says units.kind={kind}; "
                         f"the units dir is not finished (retrain, or rerun 'asrkit tokenizer train')")
    tok = Tokenizer.load(folder)
    if kind is not None and tok.kind != kind:
        raise InputError(f"{folder}: holds {tok.kind} units but config.yaml says units.kind={kind}")
    return UnitMap(tok.kind, tok.units, tokenizer=tok, source=source)


def load_units(exp: str | os.PathLike, config: Optional[dict] = None) -> UnitMap:
    """The :class:`UnitMap` of an exp dir (``EXP/units/``; ``config`` is its
    saved config, whose ``units.kind`` is checked)."""
    kind = ((config or {}).get("units") or {}).get("kind")
    return load_units_dir(Path(exp) / "units", kind)


def save_units(units: UnitMap, out: str | os.PathLike, src_dir: Optional[str | os.PathLike] = None) -> None:
    """Write the units folder ``out``: a copy of ``src_dir`` when given, else
    the tokenizer's folder, else ``units.txt`` alone (frame labels)."""
    out = Path(out)
    if src_dir is not None and Path(src_dir).resolve() != out.resolve():
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(src_dir, out)
        return
    if units.tokenizer is not None:
        units.tokenizer.save(out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_units(out / UNITS_FILE, units.units)
