"""Streaming n-gram counting for the estimator.

The training text is read one line (= one sentence) at a time; tokens are
whitespace-separated words or units (characters, phones, BPE pieces). Each
sentence is padded the way kenlm's ``lmplz`` does it: ``N-1`` copies of
``<s>`` in front and one ``</s>`` at the end, and only the highest-order
(``N``) windows that end on a real token or ``</s>`` are counted. A padded
window such as ``<s> <s> a`` stands for the lower-order n-gram ``<s> a``; the
estimator (:mod:`asrkit.lm.kneser_ney`) derives every lower order from these
windows, so one table of distinct ``N``-grams is all that is kept.

Counts are accumulated chunk by chunk with numpy: each chunk's windows are
reduced to distinct rows with counts, and the pending chunk tables are merged
into the global table whenever they grow as large as it, so memory stays
proportional to the number of distinct n-grams (plus one chunk of text).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from asrkit import log
from asrkit.errors import InputError, quote
from asrkit.io import display_name, iter_lines

UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2

#: Tokens written after a padded sentence per chunk before it is reduced.
_CHUNK_TOKENS = 1 << 20


@dataclass
class Vocabulary:
    """Token <-> id map. Ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``.

    ``fixed`` vocabularies (from ``--vocab FILE``) map every other token to
    ``<unk>``; open ones grow as tokens are seen (first-seen order)."""

    words: list[str] = field(default_factory=lambda: [UNK, BOS, EOS])
    fixed: bool = False
    ids: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def add(self, word: str) -> int:
        i = self.ids.get(word)
        if i is None:
            i = self.ids[word] = len(self.words)
            self.words.append(word)
        return i

    def encode(self, tokens: list[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens are added (open) or become ``<unk>`` (fixed)."""
        ids = self.ids
        if self.fixed:
            return [ids.get(t, UNK_ID) for t in tokens]
        add = self.add
        return [ids[t] if t in ids else add(t) for t in tokens]

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary file: one word per line, only the first field is
        used (so a Kaldi ``words.txt`` works); ``<eps>`` and disambiguation
        symbols ``#N`` are skipped, ``<s>``/``</s>``/``<unk>`` are always in."""
        vocab = cls()
        n = 0
        for _, tokens in iter_sentences(path):
            word = tokens[0]
            if word == "<eps>" or (word.startswith("#") and word[1:].isdigit()):
                continue
            vocab.add(word)
            n += 1
        if n == 0:
            raise InputError(f"{display_name(path)}: vocabulary file has no words")
        vocab.fixed = True
        return vocab


class _NoBar:
    """Stands in for a progress bar when none is wanted."""

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def update(self, *args: object, **kwargs: object) -> None:
        return None


def iter_sentences(path: str | os.PathLike, progress_desc: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, tokens)`` for each non-blank line of a UTF-8 text
    file (``-`` = stdin), reading it as a stream (:func:`asrkit.io.iter_lines`).
    With ``progress_desc`` a progress bar (bytes read) is shown on stderr."""
    with (log.progress(transient=True) if progress_desc is not None else _NoBar()) as bar:
        task = bar.add_task(progress_desc or "", total=None)

        def report(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total if total is not None else done)

        for lineno, line in iter_lines(path, progress=report):
            yield lineno, line.split()


def pack_rows(rows: np.ndarray, bits: int) -> np.ndarray:
    """Sortable keys for the rows of ``rows`` (M, k) int: lexicographic row
    order equals key order. Rows that fit in 63 bits become int64 keys
    (``bits`` per column); wider rows become fixed-size big-endian byte
    strings (numpy void), compared bytewise."""
    m, k = rows.shape
    if k * bits <= 63:
        key = np.zeros(m, dtype=np.int64)
        for j in range(k):
            key <<= bits
            key |= rows[:, j].astype(np.int64)
        return key
    be = np.ascontiguousarray(rows, dtype=">u4")
    return be.view(np.dtype((np.void, 4 * k))).ravel()


def unique_rows(rows: np.ndarray, weights: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of ``rows`` (M, k) in lexicographic order, with the sum of
    ``weights`` (M,) per row and the number of input rows per distinct row.

    Returns ``(urows (U, k) int32, summed (U,) int64, multiplicity (U,) int64)``."""
    keys = pack_rows(rows, bits)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    urows = rows[first]
    summed = np.bincount(inverse, weights=weights, minlength=len(first)).astype(np.int64)
    mult = np.bincount(inverse, minlength=len(first)).astype(np.int64)
    return urows, summed, mult


class NgramCounter:
    """Counts padded order-``order`` windows of sentences (see module doc).

    ``add(ids)`` takes one sentence's token ids (without ``<s>``/``</s>``);
    ``result()`` returns the distinct windows ``(M, order) int32`` in
    lexicographic order and their counts ``(M,) int64``."""

    def __init__(self, order: int) -> None:
        self.order = order
        self._buf: list[int] = []
        self._lens: list[int] = []
        self._pad = [BOS_ID] * (order - 1)
        self._rows = np.zeros((0, order), dtype=np.int32)
        self._counts = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0
        self._max_id = EOS_ID
        self.sentences = 0
        self.tokens = 0  # real tokens (no <s>, </s>)
        self.windows = 0  # n-gram occurrences counted (tokens + sentences)

    def add(self, ids: list[int]) -> None:
        self._buf.extend(self._pad)
        self._buf.extend(ids)
        self._buf.append(EOS_ID)
        self._lens.append(len(ids))
        self.sentences += 1
        self.tokens += len(ids)
        if len(self._buf) >= _CHUNK_TOKENS:
            self._flush_chunk()

    def _bits(self) -> int:
        return max(1, int(self._max_id).bit_length())

    def _flush_chunk(self) -> None:
        if not self._lens:
            return
        n = self.order
        flat = np.asarray(self._buf, dtype=np.int32)
        lens = np.asarray(self._lens, dtype=np.int64)
        self._buf, self._lens = [], []
        self._max_id = max(self._max_id, int(flat.max()))
        # Sentence i occupies n + lens[i] slots; its windows start at offsets 0..lens[i].
        offsets = np.concatenate(([0], np.cumsum(n + lens)[:-1]))
        per = lens + 1
        starts = np.repeat(offsets, per) + (np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per))
        windows = np.lib.stride_tricks.sliding_window_view(flat, n)[starts]  # (W, n)
        self.windows += len(windows)
        rows, counts, _ = unique_rows(windows, np.ones(len(windows), dtype=np.int64), self._bits())
        self._pending.append((rows, counts))
        self._pending_size += len(rows)
        if self._pending_size >= max(len(self._rows), _CHUNK_TOKENS):
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        rows = np.concatenate([self._rows] + [r for r, _ in self._pending])
        counts = np.concatenate([self._counts] + [c for _, c in self._pending])
        self._pending, self._pending_size = [], 0
        self._rows, self._counts, _ = unique_rows(rows, counts, self._bits())

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self._flush_chunk()
        self._merge()
        return self._rows, self._counts


def count_text(
    path: str | os.PathLike,
    order: int,
    vocab: Vocabulary,
    progress: bool = True,
) -> NgramCounter:
    """Stream the text at ``path`` (``-`` = stdin) into a :class:`NgramCounter`.

    The special tokens ``<s>`` and ``</s>`` may not appear in the text (they
    are added around every line); ``<unk>`` may (it is the unknown word)."""
    name = display_name(path)
    counter = NgramCounter(order)
    desc = f"counting {Path(name).name if name != '<stdin>' else name}" if progress else None
    for lineno, tokens in iter_sentences(path, progress_desc=desc):
        ids = vocab.encode(tokens)
        if BOS_ID in ids or EOS_ID in ids:
            bad = BOS if BOS_ID in ids else EOS
            raise InputError(
                f"{name}:{lineno}: the text contains {quote(bad)}; asrkit adds <s> and </s> around every line, "
                f"remove them from the text"
            )
        counter.add(ids)
    return counter
