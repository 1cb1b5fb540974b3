"""Transcript files, one reader for every command: Kaldi ``text``
(``utt-id w1 w2 ...``), sclite trn (``w1 w2 ... (utt-id)``) and, for
tokenizer training, plain lines of words.

Lines come from :func:`asrkit.io.iter_lines` (UTF-8, ``-`` is stdin,
blank lines skipped, a leading byte-order mark dropped); duplicate utt-ids
and malformed trn lines raise :class:`asrkit.errors.InputError` naming the
file and line.

Telling text from trn (``fmt="auto"``, :func:`detect_format`): a file is trn
when more than half of its lines end in ``(id)``, unless the first words of
the lines are distinct and either look like utterance ids (each has a digit,
``-`` or ``_``) or the parenthesised words repeat and look like no ids. So a
Kaldi text whose transcripts end in ``(noise)`` / ``(laughter)`` stays a
Kaldi text, while a trn with a stray malformed line or a repeated id is
still read as trn and the bad line named.

Telling a Kaldi text from plain lines (:func:`read_training_text`): Kaldi when
the first fields of all lines are distinct and each contains a digit, ``-``
or ``_`` (as utterance ids do and normalized words do not).
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import Sequence

from asrkit.data.table import table_from_lines
from asrkit.errors import InputError, UsageError
from asrkit.io import display_name, iter_lines

__all__ = [
    "FORMATS", "TEXT_FORMATS", "Transcript", "Transcripts", "detect_format", "looks_like_utt_ids",
    "parse_transcripts", "read_training_text", "read_transcripts",
]

#: Formats of :func:`read_transcripts`.
FORMATS = ("auto", "text", "trn")
#: Formats of :func:`read_training_text` (``kaldi`` is a Kaldi text, ``plain`` lines of words).
TEXT_FORMATS = ("auto", "kaldi", "plain")

# the utterance id in parentheses at the very end of the line (the words come
# before it). Searched from its '(' only, so that a long line costs linear time.
_TRN_TAIL = re.compile(r"\(([^()\s]+)\)$")
_ID_LIKE = re.compile(r"[0-9_-]")


@dataclass
class Transcripts:
    """Utterances of one file, in file order."""

    utts: dict[str, list[str]]
    format: str  # "text" or "trn"
    name: str  # file name for messages ("<stdin>" for -)


@dataclass(frozen=True)
class Transcript:
    """One line of training text: ``utt`` is the utterance id for a Kaldi
    ``text`` (None for plain lines)."""

    utt: str | None
    words: list[str]


def _trn_split(line: str) -> tuple[str, str] | None:
    """``(words, utt_id)`` of a trn line, None when it does not end in ``(utt-id)``."""
    m = _TRN_TAIL.search(line)
    return None if m is None else (line[:m.start()].rstrip(), m.group(1))


def looks_like_utt_ids(fields: Sequence[str]) -> bool:
    """True when ``fields`` are distinct and each has a digit, ``-`` or ``_``."""
    return bool(fields) and all(_ID_LIKE.search(f) for f in fields) and len(set(fields)) == len(fields)


def detect_format(lines: Sequence[str]) -> str:
    """``"trn"`` or ``"text"`` for stripped, non-blank lines (rule in the module docstring)."""
    matches = [_trn_split(line) for line in lines]
    ids = [m[1] for m in matches if m is not None]
    if not lines or 2 * len(ids) <= len(lines):
        return "text"
    # first words of the lines that have words before their "(id)" (a trn line may have none)
    firsts = [line.split(None, 1)[0] for line, m in zip(lines, matches) if m is None or m[0]]
    if firsts and len(set(firsts)) == len(firsts):
        if looks_like_utt_ids(firsts):
            return "text"  # "utt-1 words (noise)": the ids come first
        if len(set(ids)) != len(ids) and not all(_ID_LIKE.search(i) for i in ids):
            return "text"  # "alpha words (noise)": the parenthesised words repeat and are no ids
    return "trn"


def _parse(numbered: Sequence[tuple[int, str]], name: str, fmt: str) -> Transcripts:
    if fmt not in FORMATS:
        raise ValueError(f"unknown transcript format {fmt!r}; expected one of {FORMATS}")
    if fmt == "auto":
        fmt = detect_format([line for _, line in numbered])
    if fmt == "trn":
        records = []
        for lineno, line in numbered:
            m = _trn_split(line)
            if m is None:
                raise InputError(f"{name}:{lineno}: malformed trn line, expected 'words ... (utt-id)'"
                                 " (use --format text for a Kaldi text file)")
            records.append((lineno, f"{m[1]} {m[0]}"))
        numbered = records
    table = table_from_lines(name, numbered, what="utt-id")
    return Transcripts(utts={u: v.split() for u, v in table.items()}, format=fmt, name=name)


def parse_transcripts(text: str, name: str, fmt: str = "auto") -> Transcripts:
    """Parse the contents of a transcript file (``fmt``: auto, text or trn)."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as the file readers drop it
    numbered = [(n, line.strip()) for n, line in enumerate(io.StringIO(text), start=1)]
    return _parse([(n, line) for n, line in numbered if line], name, fmt)


def read_transcripts(path: str | os.PathLike, fmt: str = "auto") -> Transcripts:
    """Read a Kaldi text or trn file (``-`` for stdin)."""
    return _parse(list(iter_lines(path)), display_name(path), fmt)


def read_training_text(path: str | os.PathLike, text_format: str = "auto") -> tuple[list[Transcript], str]:
    """Read a Kaldi ``text`` (``utt-id word word ...``) or plain lines of
    words; returns the transcripts and the format used (``kaldi`` or
    ``plain``; ``auto`` decides as the module docstring says). Blank lines are
    skipped; an empty file raises :class:`InputError`."""
    if text_format not in TEXT_FORMATS:
        raise UsageError(f"unknown text format '{text_format}'; use one of {', '.join(TEXT_FORMATS)}")
    name = display_name(path)
    lines = list(iter_lines(path))
    if not lines:
        raise InputError(f"{name}: the text is empty")
    if text_format == "auto":
        firsts = [line.split(None, 1)[0] for _, line in lines]
        text_format = "kaldi" if looks_like_utt_ids(firsts) else "plain"
    if text_format == "plain":
        return [Transcript(None, line.split()) for _, line in lines], text_format
    table = table_from_lines(name, lines)
    return [Transcript(utt, value.split()) for utt, value in table.items()], text_format
