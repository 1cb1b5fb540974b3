"""Which beam search runs, and the word list it searches over.

Backends (:data:`BACKENDS`): flashlight (lexicon-constrained, word LM; any
CTC units), pyctcdecode (open vocabulary, word LM; char and bpe), plain
(prefix beam search without an LM; any CTC units). :func:`resolve_backend`
checks a choice or picks the default.

The words an LM search may produce come from a word list or lexicon file
(:func:`read_word_list`), or from the ARPA file's unigrams
(:func:`asrkit.lm.arpa.read_unigrams`, the one ARPA reader); a kenlm binary
has no readable word list (:func:`is_kenlm_binary`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from asrkit.errors import InputError, UsageError
from asrkit.io import display_name

__all__ = [
    "BACKENDS", "DEFAULT_LM_BACKEND", "SPECIAL_WORDS", "is_kenlm_binary", "read_lm_words", "read_word_list",
    "resolve_backend",
]

#: Search backends: flashlight (lexicon-constrained, word LM; any CTC units), pyctcdecode (open
#: vocabulary, word LM; char and bpe), plain (prefix beam search without an LM; any CTC units).
BACKENDS = ("flashlight", "pyctcdecode", "plain")
#: The backend used with an LM when --backend is not given: flashlight for every unit kind
#: (benchmarks/decode_bench.py: on the same emissions and LM it is faster than pyctcdecode at equal or lower
#: WER, and it is the one that decodes phone models to words).
DEFAULT_LM_BACKEND = "flashlight"
#: LM symbols that are not words a hypothesis can hold.
SPECIAL_WORDS = ("<s>", "</s>", "<unk>")

_KENLM_BINARY_MAGIC = b"mmap lm "


def resolve_backend(kind: str, has_lm: bool, backend: Optional[str] = None) -> str:
    """The search backend for ``kind`` units: ``backend`` checked, or the
    default (``plain`` without an LM, :data:`DEFAULT_LM_BACKEND` with one)."""
    if backend is None:
        return DEFAULT_LM_BACKEND if has_lm else "plain"
    if backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if backend == "plain" and has_lm:
        raise UsageError("--backend plain searches without an LM; drop --lm or use flashlight / pyctcdecode")
    if backend != "plain" and not has_lm:
        raise UsageError(f"--backend {backend} fuses a word LM into the search; give one with --lm LM.arpa")
    if backend == "pyctcdecode" and kind == "phone":
        raise UsageError("pyctcdecode cannot decode a phone model to words; use --backend flashlight "
                         "(lexicon-constrained, the default with --lm)")
    return backend


def is_kenlm_binary(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with kenlm's binary magic (unreadable files: False; loading says why)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_KENLM_BINARY_MAGIC)) == _KENLM_BINARY_MAGIC
    except OSError:
        return False


def read_lm_words(path: str | os.PathLike) -> list[str]:
    """The words of an ARPA LM (its unigrams without ``<s>``, ``</s>``,
    ``<unk>``), streamed; :class:`InputError` for a missing or non-ARPA file."""
    from asrkit.lm.arpa import read_unigrams

    return read_unigrams(Path(path), skip=SPECIAL_WORDS)


def read_word_list(path: str | os.PathLike) -> list[str]:
    """The words of a word list or lexicon file: the first field of every
    line (``word``, ``word phone ...``, CMU ``word(2) ...``), in file order,
    once each; ``#`` / ``;;;`` comment lines and blank lines skipped."""
    from asrkit.io import iter_lines

    words: dict[str, None] = {}
    for _lineno, line in iter_lines(path):  # InputError for missing / unreadable / not UTF-8
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";;;")):
            continue
        w = re.sub(r"\(\d+\)$", "", fields[0])
        if w not in SPECIAL_WORDS:
            words[w] = None
    if not words:
        raise InputError(f"{display_name(path)}: no words")
    return list(words)
