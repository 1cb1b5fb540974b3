"""Text normalization before scoring (all off by default).

Order of the steps, applied to both sides alike:

1. drop the ``ignore`` tokens (matched case-insensitively with ``ignore_case``),
2. lower-case every token (``ignore_case``),
3. delete Unicode punctuation characters (categories ``P*``) inside tokens and
   drop tokens left empty (``strip_punct``): ``"Hello,"`` -> ``"hello"``,
   ``"don't"`` -> ``"dont"``, ``"--"`` -> nothing.

Ignored tokens are matched before punctuation is stripped, so
``ignore=("[laughter]",)`` works together with ``strip_punct``.
"""
from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence


@lru_cache(maxsize=1)
def _punct_table() -> dict[int, None]:
    """``str.translate`` table deleting every Unicode punctuation character."""
    return {
        cp: None
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)).startswith("P")
    }


@dataclass(frozen=True)
class Normalizer:
    """Token-list normalization; calling it on a token list returns a new list."""

    ignore_case: bool = False
    strip_punct: bool = False
    ignore: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def make(cls, ignore_case: bool = False, strip_punct: bool = False, ignore: Iterable[str] = ()) -> "Normalizer":
        tokens = frozenset(t.lower() if ignore_case else t for t in ignore)
        return cls(ignore_case=ignore_case, strip_punct=strip_punct, ignore=tokens)

    @property
    def active(self) -> bool:
        return self.ignore_case or self.strip_punct or bool(self.ignore)

    def __call__(self, tokens: Sequence[str]) -> list[str]:
        out = list(tokens)
        if self.ignore_case:
            out = [t.lower() for t in out]
        if self.ignore:
            out = [t for t in out if t not in self.ignore]
        if self.strip_punct:
            table = _punct_table()
            out = [s for s in (t.translate(table) for t in out) if s]
        return out
