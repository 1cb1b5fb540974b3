"""Reading transcripts: Kaldi text (``utt-id w1 w2 ...``) and sclite trn
(``w1 w2 ... (utt-id)``).

The format is detected per file (trn when more than half of the non-blank
lines end in ``(utt-id)``) or forced. Files are UTF-8, ``-`` is stdin, blank
lines are skipped. Malformed trn lines and duplicate utt-ids raise
:class:`asrkit.errors.InputError` naming the file and line.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass

from asrkit.errors import InputError, quote
from asrkit.io import display_name, read_text

FORMATS = ("auto", "text", "trn")

# the utterance id in parentheses at the very end of the line (the words come
# before it). Searched from its '(' only, so that a long line costs linear time.
_TRN_TAIL = re.compile(r"\(([^()\s]+)\)$")


@dataclass
class Transcripts:
    """Utterances of one file, in file order."""

    utts: dict[str, list[str]]
    format: str  # "text" or "trn"
    name: str  # file name for messages ("<stdin>" for -)


def detect_format(lines: list[str]) -> str:
    """``"trn"`` when more than half of the (stripped, non-blank) lines end in
    ``(utt-id)``, else ``"text"``."""
    if not lines:
        return "text"
    trn = sum(1 for line in lines if _TRN_TAIL.search(line))
    return "trn" if 2 * trn > len(lines) else "text"


def parse_transcripts(text: str, name: str, fmt: str = "auto") -> Transcripts:
    """Parse the contents of a transcript file (see module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown transcript format {fmt!r}; expected one of {FORMATS}")
    numbered = [(n, line.strip()) for n, line in enumerate(io.StringIO(text), start=1)]
    numbered = [(n, line) for n, line in numbered if line]
    if fmt == "auto":
        fmt = detect_format([line for _, line in numbered])
    utts: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    for lineno, line in numbered:
        if fmt == "trn":
            m = _TRN_TAIL.search(line)
            if m is None:
                raise InputError(
                    f"{name}:{lineno}: malformed trn line, expected 'words ... (utt-id)'"
                    " (use --format text for a Kaldi text file)"
                )
            words, utt = line[: m.start()].split(), m.group(1)
        else:
            parts = line.split()
            utt, words = parts[0], parts[1:]
        if utt in utts:
            raise InputError(f"{name}:{lineno}: duplicate utt-id {quote(utt)} (first on line {first_line[utt]})")
        utts[utt] = words
        first_line[utt] = lineno
    return Transcripts(utts=utts, format=fmt, name=name)


def read_transcripts(path: str | os.PathLike, fmt: str = "auto") -> Transcripts:
    """Read a Kaldi text or trn file (``-`` for stdin)."""
    return parse_transcripts(read_text(path), display_name(path), fmt)
