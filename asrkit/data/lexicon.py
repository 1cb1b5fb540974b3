"""Pronunciation lexicons: word -> phone spellings (ARPAbet 39, no stress).

A :class:`Lexicon` maps words to one or more pronunciations, each a tuple of
phones. :meth:`Lexicon.default` is the CMU Pronouncing Dictionary shipped in
``asrkit/resources/cmudict/`` (BSD-licensed data, about 126k words, 135k
pronunciations); :meth:`Lexicon.load` reads any lexicon file in Kaldi
``lexicon.txt`` or CMU-dict form::

    word phone phone ...          # Kaldi lexicon.txt (space or tab separated)
    word(2) PH1 PH2 ...           # CMU dict: variant markers and stress digits
    ;;; comment                   # comment lines (';;;' or '#'), trailing '# ...'

On reading, phones are lower-cased and stress digits (``ah0`` -> ``ah``) are
dropped, so CMU dict entries come out in the same 39-phone lower-case set as
the synthesized corpora's ``text.phones`` (:data:`ARPABET39`). Pronunciations
that become identical after stress removal are kept once, in file order; the
first one is the word's main spelling (what :meth:`Lexicon.spell` uses).

Lookups are case-insensitive (``Lexicon.prons("THE") == Lexicon.prons("the")``)
so upper-case corpora (WSJ) and lower-case ones (LibriSpeech after
normalization, the tiny corpus) share one dictionary; :meth:`Lexicon.write`
writes the words as the caller spells them.
"""
from __future__ import annotations

import gzip
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from asrkit.data.table import sorted_keys
from asrkit.errors import DataError, InputError, quote
from asrkit.io import atomic_write, display_name, read_text

__all__ = [
    "ARPABET39",
    "CMUDICT_PATH",
    "Lexicon",
    "UnknownWordError",
    "list_words",
    "normalize_phone",
]

#: The 39 ARPAbet phones of the CMU dict without stress, lower-case; the phone
#: set of the synthesized corpora too (:mod:`asrkit.corpora.synth` uses it).
ARPABET39: tuple[str, ...] = tuple(
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh".split()
)

#: The shipped CMU Pronouncing Dictionary (gzip of the upstream ``cmudict.dict``).
CMUDICT_PATH = Path(__file__).resolve().parent.parent / "resources" / "cmudict" / "cmudict.dict.gz"

_VARIANT = re.compile(r"\(\d+\)$")
_STRESS = re.compile(r"(?<=[a-z])[012]$")
_COMMENT = re.compile(r"\s+#.*$")
_STRESS_IN_LINE = re.compile(r"(?<=[a-z])[012](?=\s|$)")


class UnknownWordError(DataError):
    """Words that a lexicon has no pronunciation for. ``.words`` lists them
    (distinct, in order of first appearance)."""

    def __init__(self, message: str, words: Sequence[str]):
        super().__init__(message)
        self.words = list(words)


def normalize_phone(phone: str) -> str:
    """Lower-case a phone and drop an ARPAbet stress digit (``AH0`` -> ``ah``)."""
    return _STRESS.sub("", phone.lower())


def _key(word: str) -> str:
    return word.lower()


def list_words(words: Sequence[str], limit: int = 20) -> str:
    """``'a', 'b', ... (and N more)`` for error messages."""
    shown = ", ".join(f"'{w}'" for w in words[:limit])
    more = len(words) - limit
    return shown + (f" ... and {more} more" if more > 0 else "")


class Lexicon(Mapping[str, list[tuple[str, ...]]]):
    """An in-memory pronunciation lexicon.

    It is a read-only mapping ``word -> [pron, ...]`` (``pron`` a tuple of
    phones) with case-insensitive keys. Build one with :meth:`load`,
    :meth:`default`, :meth:`from_entries` or :meth:`combine`.
    """

    def __init__(self, entries: Mapping[str, Sequence[Sequence[str]]] | None = None, name: str = "<lexicon>"):
        self.name = name
        # key -> pronunciations; a str is a word's pronunciations as read from a file, not yet
        # normalized (one per line), parsed on first use by _get (a decode looks up a few thousand
        # of the CMU dict's 126k words: parsing them all took most of its start-up)
        self._prons: dict[str, list[tuple[str, ...]] | str] = {}
        self._spelling: dict[str, str] = {}  # key -> word as first seen
        for word, prons in (entries or {}).items():
            for pron in prons:
                self._add(word, tuple(normalize_phone(p) for p in pron))

    # -- construction -----------------------------------------------------

    def _get(self, key: str) -> list[tuple[str, ...]] | None:
        """The pronunciations of ``key`` (parsed on first use), or None."""
        prons = self._prons.get(key)
        if isinstance(prons, str):
            parsed: list[tuple[str, ...]] = []
            for line in prons.split("\n"):
                pron = tuple(_STRESS_IN_LINE.sub("", line.lower()).split())
                if pron not in parsed:
                    parsed.append(pron)
            prons = self._prons[key] = parsed
        return prons

    def _add(self, word: str, pron: tuple[str, ...]) -> None:
        key = _key(word)
        prons = self._get(key)
        if prons is None:
            prons = self._prons[key] = []
        self._spelling.setdefault(key, word)
        if pron not in prons:
            prons.append(pron)

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, Sequence[str]]], name: str = "<lexicon>") -> "Lexicon":
        """A lexicon from ``(word, phones)`` pairs (several pairs per word
        give several pronunciations, first one first)."""
        lex = cls(name=name)
        for word, pron in entries:
            lex._add(word, tuple(normalize_phone(p) for p in pron))
        return lex

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Lexicon":
        """Read a lexicon file (Kaldi ``lexicon.txt`` or CMU dict form, plain
        or ``.gz``). A word without phones raises :class:`InputError` naming
        the file and line."""
        name = display_name(path)
        if str(path).endswith(".gz"):
            try:
                data = gzip.decompress(Path(path).read_bytes())
            except FileNotFoundError:
                raise InputError(f"{name}: no such file") from None
            except (OSError, EOFError) as e:
                raise InputError(f"{name}: not a readable gzip file ({e})") from None
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                line = data[: e.start].count(b"\n") + 1
                raise InputError(f"{name}:{line}: invalid UTF-8 (byte {e.start})") from None
        else:
            text = read_text(path)
        lex = cls(name=name)
        prons_of, spelling = lex._prons, lex._spelling
        strip_comment, strip_variant = _COMMENT.sub, _VARIANT.sub
        # each word's phone fields are kept as read and normalized (lower case, no stress, each
        # pronunciation once) when the word is first looked up (_get)
        for lineno, line in enumerate(text.splitlines(), start=1):
            if "#" in line:
                line = strip_comment("", line)
            fields = line.split(None, 1)
            if not fields or fields[0].startswith(";;;") or fields[0] == "#":
                continue
            word = strip_variant("", fields[0]) if fields[0].endswith(")") else fields[0]
            if len(fields) < 2 or not word:
                raise InputError(f"{name}:{lineno}: {quote(fields[0])} has no phones (expected 'word phone phone ...')")
            key = word.lower()
            prons = prons_of.get(key)
            if prons is None:
                prons_of[key] = fields[1]
                spelling[key] = word
            else:
                prons_of[key] = prons + "\n" + fields[1]
        if not lex._prons:
            raise InputError(f"{name}: the lexicon is empty")
        return lex

    @classmethod
    def default(cls) -> "Lexicon":
        """The shipped CMU Pronouncing Dictionary (loaded once per process)."""
        return _default_lexicon()

    @classmethod
    def combine(cls, lexicons: Sequence["Lexicon"], name: str | None = None) -> "Lexicon":
        """One lexicon from several: a word takes all its pronunciations from
        the FIRST lexicon that has it (earlier lexicons override later ones)."""
        out = cls(name=name or "+".join(lx.name for lx in lexicons))
        for lx in lexicons:
            for key, prons in lx._prons.items():
                if key not in out._prons:
                    out._prons[key] = prons if isinstance(prons, str) else list(prons)
                    out._spelling[key] = lx._spelling[key]
        return out

    # -- lookup -------------------------------------------------------------

    def prons(self, word: str) -> list[tuple[str, ...]]:
        """All pronunciations of ``word`` (main one first); ``[]`` when the
        word is not in the lexicon."""
        return list(self._get(_key(word)) or ())

    def pron(self, word: str) -> tuple[str, ...]:
        """The main (first) pronunciation; :class:`UnknownWordError` if none."""
        prons = self._get(_key(word))
        if not prons:
            raise UnknownWordError(f"{quote(word)} is not in the lexicon {self.name}", [word])
        return prons[0]

    def missing(self, words: Iterable[str]) -> list[str]:
        """The distinct words of ``words`` that have no pronunciation, in order
        of first appearance."""
        seen: dict[str, None] = {}
        for w in words:
            if _key(w) not in self._prons and w not in seen:
                seen[w] = None
        return list(seen)

    def spell(self, words: Sequence[str]) -> list[str]:
        """The phones of a word sequence (each word's main pronunciation, no
        word boundaries). Raises :class:`UnknownWordError` listing (up to 20
        of) the missing words."""
        missing = self.missing(words)
        if missing:
            raise UnknownWordError(
                f"{len(missing)} word(s) not in the lexicon {self.name}: {list_words(missing)}", missing
            )
        out: list[str] = []
        for w in words:
            out.extend(self._get(_key(w))[0])
        return out

    def phones(self) -> list[str]:
        """Every phone the lexicon uses, sorted."""
        return sorted({p for key in self._prons for pron in self._get(key) for p in pron})

    def words(self) -> list[str]:
        """The words (as first spelled in the source), in insertion order."""
        return [self._spelling[k] for k in self._prons]

    def subset(self, words: Iterable[str]) -> "Lexicon":
        """A lexicon with only ``words`` (those the lexicon has), spelled as
        given, in the given order."""
        out = Lexicon(name=self.name)
        for w in words:
            key = _key(w)
            if key in self._prons and key not in out._prons:
                prons = self._prons[key]
                out._prons[key] = prons if isinstance(prons, str) else list(prons)
                out._spelling[key] = w
        return out

    # -- Mapping protocol ---------------------------------------------------

    def __getitem__(self, word: str) -> list[tuple[str, ...]]:
        prons = self._get(_key(word))
        if prons is None:
            raise KeyError(word)
        return list(prons)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and _key(word) in self._prons

    def __iter__(self) -> Iterator[str]:
        return iter(self.words())

    def __len__(self) -> int:
        return len(self._prons)

    def __repr__(self) -> str:
        return f"Lexicon({self.name}, {len(self)} words)"

    # -- writing ------------------------------------------------------------

    def lines(self, words: Iterable[str] | None = None, sort: bool = True) -> Iterator[str]:
        """Kaldi ``lexicon.txt`` lines ``word p1 p2 ...`` (one per
        pronunciation, main one first). ``words`` picks and spells the words
        (unknown ones raise :class:`UnknownWordError`); by default all words,
        sorted in C-locale order when ``sort``."""
        if words is None:
            chosen = self.words()
        else:
            chosen = list(dict.fromkeys(words))
            missing = self.missing(chosen)
            if missing:
                raise UnknownWordError(
                    f"{len(missing)} word(s) not in the lexicon {self.name}: {list_words(missing)}", missing
                )
        if sort:
            chosen = sorted_keys(chosen)
        for w in chosen:
            for pron in self._get(_key(w)):
                yield f"{w} {' '.join(pron)}"

    def write(self, path: str | os.PathLike, words: Iterable[str] | None = None, sort: bool = True) -> int:
        """Write a Kaldi ``lexicon.txt`` atomically (see :meth:`lines`);
        returns the number of lines written."""
        n = 0
        with atomic_write(path) as f:
            for line in self.lines(words, sort=sort):
                f.write(line + "\n")
                n += 1
        return n


@lru_cache(maxsize=1)
def _default_lexicon() -> Lexicon:
    if not CMUDICT_PATH.exists():
        raise InputError(f"the shipped CMU dict {CMUDICT_PATH} is missing; reinstall asrkit")
    lex = Lexicon.load(CMUDICT_PATH)
    lex.name = "cmudict"
    return lex
