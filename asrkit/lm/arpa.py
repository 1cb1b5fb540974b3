"""ARPA files: writing a :class:`~asrkit.lm.kneser_ney.KneserNeyModel`, and a
small pure-Python reader with standard backoff queries (the reference the
tests hold kenlm and the estimator to).

Format (as written by SRILM and kenlm's lmplz)::

    \\data\\
    ngram 1=V
    ngram 2=M2
    ...

    \\1-grams:
    log10 p(w)<TAB>w<TAB>log10 backoff(w)
    ...
    \\N-grams:
    log10 p(wN | w1..wN-1)<TAB>w1 ... wN
    \\end\\

The highest order has no backoff column; neither has an n-gram ending in
``</s>`` (it is never a history). ``<s>`` has log10 probability -99.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import IO, Iterable

import numpy as np

from asrkit.errors import DataError, InputError, quote
from asrkit.io import atomic_write, display_name
from asrkit.lm.counts import BOS, EOS, EOS_ID, UNK
from asrkit.lm.kneser_ney import KneserNeyModel

#: log10 "probability" of <s>, which is never predicted (kenlm's convention).
BOS_LOGPROB = -99.0


_BLOCK = 1 << 16  # n-grams formatted per write


def _fmt(x: float) -> str:
    return f"{x:.7g}"


def _write_body(model: KneserNeyModel, f: IO[str]) -> None:
    words = model.words
    counts = model.ngram_counts()
    f.write("\\data\\\n")
    for k, c in enumerate(counts, start=1):
        f.write(f"ngram {k}={c}\n")
    n = model.order
    with np.errstate(divide="ignore"):
        lp1 = np.log10(model.unigram_prob)
        lb1 = np.log10(model.unigram_backoff)
    f.write("\n\\1-grams:\n")
    lines = []
    for i, w in enumerate(words):
        p = BOS_LOGPROB if w == BOS else max(float(lp1[i]), BOS_LOGPROB)
        if n > 1 and i != EOS_ID:
            lines.append(f"{_fmt(p)}\t{w}\t{_fmt(float(lb1[i]))}\n")
        else:
            lines.append(f"{_fmt(p)}\t{w}\n")
    f.writelines(lines)
    vocab = np.array(words, dtype=object)
    for k in range(2, n + 1):
        t = model.tables[k]
        f.write(f"\n\\{k}-grams:\n")
        if len(t.rows) == 0:
            continue
        with np.errstate(divide="ignore"):
            lp = [_fmt(x) for x in np.maximum(np.log10(t.prob), BOS_LOGPROB).tolist()]
        if k < n:
            with np.errstate(divide="ignore"):
                lb = ["\t" + _fmt(x) for x in np.log10(t.backoff).tolist()]
            for i in np.flatnonzero(t.rows[:, -1] == EOS_ID).tolist():
                lb[i] = ""  # an n-gram ending in </s> is never a history
        else:
            lb = [""] * len(lp)
        for start in range(0, len(lp), _BLOCK):
            stop = start + _BLOCK
            # Vectorized over a block of n-grams: the text of each row, then one line per row.
            block = t.rows[start:stop]
            text = vocab[block[:, 0]]
            for j in range(1, k):
                text = text + " " + vocab[block[:, j]]
            f.write("".join([f"{p}\t{w}{b}\n" for p, w, b in zip(lp[start:stop], text.tolist(), lb[start:stop])]))
    f.write("\n\\end\\\n")


def write_arpa(model: KneserNeyModel, path: str | os.PathLike, stream: IO[str] | None = None) -> None:
    """Write ``model`` as ARPA to ``path`` atomically (or to ``stream`` if given)."""
    if stream is not None:
        _write_body(model, stream)
        return
    with atomic_write(path, "w") as f:
        _write_body(model, f)


@dataclass
class ArpaLM:
    """An ARPA model in memory: ``ngrams[k][(w1, ..., wk)] = (log10 p, log10 backoff)``."""

    order: int
    ngrams: dict[int, dict[tuple[str, ...], tuple[float, float]]] = field(default_factory=dict)

    @property
    def vocab(self) -> list[str]:
        return [w for (w,) in self.ngrams[1]]

    def logprob(self, word: str, history: Iterable[str] = ()) -> float:
        """log10 p(word | history) with standard ARPA backoff; unknown words
        score as ``<unk>``. Only the last ``order-1`` history words matter."""
        hist = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        if (word,) not in self.ngrams[1]:
            if (UNK,) not in self.ngrams[1]:
                raise DataError(f"{quote(word)} is not in the LM, which has no {UNK} to score it with")
            word = UNK
        hist = tuple(w if (w,) in self.ngrams[1] else UNK for w in hist)
        backoff = 0.0
        for start in range(len(hist) + 1):
            h = hist[start:]
            entry = self.ngrams.get(len(h) + 1, {}).get(h + (word,))
            if entry is not None:
                return entry[0] + backoff
            hb = self.ngrams.get(len(h), {}).get(h) if h else None
            if hb is not None:
                backoff += hb[1]
        raise KeyError(word)  # unreachable: every word has a unigram

    def sentence_logprob(self, words: Iterable[str], bos: bool = True, eos: bool = True) -> float:
        """log10 probability of a sentence, with ``<s>`` history and ``</s>`` at the end."""
        hist: list[str] = [BOS] if bos else []
        total = 0.0
        seq = list(words) + ([EOS] if eos else [])
        for w in seq:
            total += self.logprob(w, hist)
            hist.append(w)
        return total


def history_groups(lm: ArpaLM, k: int) -> dict[tuple[str, ...], list[str]]:
    """The explicit ``k``-grams of ``lm`` grouped by history: ``h -> [w, ...]``."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for g in lm.ngrams.get(k, {}):
        groups.setdefault(g[:-1], []).append(g[-1])
    return groups


def backoff_weight(lm: ArpaLM, history: tuple[str, ...], words: Iterable[str]) -> float:
    """log10 of the backoff weight that makes ``p(. | history)`` sum to 1,
    given the explicit continuations ``words`` of ``history`` (their
    probabilities as ``lm`` lists them) and the model's lower orders::

        bo(h) = (1 - sum_w p(w | h)) / (1 - sum_w p(w | h'))      w over the explicit words

    ``-99`` when the explicit words already hold all the mass."""
    k = len(history) + 1
    table = lm.ngrams[k]
    words = list(words)
    numer = 1.0 - math.fsum(10.0 ** table[history + (w,)][0] for w in words)
    denom = 1.0 - math.fsum(10.0 ** lm.logprob(w, history[1:]) for w in words)
    if numer <= 1e-12:
        return BOS_LOGPROB
    if denom <= 1e-12:  # the lower order has (almost) no mass left to back off to
        return BOS_LOGPROB
    return math.log10(numer / denom)


def recompute_backoffs(lm: ArpaLM, orders: Iterable[int] | None = None) -> None:
    """Set the backoff weight of every history of order ``k`` in ``orders``
    (default: all, lowest first) so that each history's distribution sums to 1
    (:func:`backoff_weight`); histories without explicit continuations get 0."""
    for k in sorted(orders) if orders is not None else range(1, lm.order):
        groups = history_groups(lm, k + 1)
        table = lm.ngrams[k]
        for h, (lp, _) in list(table.items()):
            if h[-1] == EOS:
                continue
            words = groups.get(h)
            table[h] = (lp, backoff_weight(lm, h, words) if words else 0.0)


def write_arpa_lm(lm: ArpaLM, path: str | os.PathLike) -> None:
    """Write an :class:`ArpaLM` (one read by :func:`read_arpa`, pruned or
    mixed) as ARPA, atomically; n-grams in the order they are held."""
    with atomic_write(path, "w") as f:
        f.write("\\data\\\n")
        for k in range(1, lm.order + 1):
            f.write(f"ngram {k}={len(lm.ngrams.get(k, {}))}\n")
        for k in range(1, lm.order + 1):
            f.write(f"\n\\{k}-grams:\n")
            top = k == lm.order
            lines = []
            for g, (lp, bo) in lm.ngrams.get(k, {}).items():
                p = BOS_LOGPROB if g == (BOS,) else max(lp, BOS_LOGPROB)
                if top or g[-1] == EOS:
                    lines.append(f"{_fmt(p)}\t{' '.join(g)}\n")
                else:
                    lines.append(f"{_fmt(p)}\t{' '.join(g)}\t{_fmt(max(bo, BOS_LOGPROB))}\n")
            f.writelines(lines)
        f.write("\n\\end\\\n")


def read_unigrams(path: str | os.PathLike, skip: Iterable[str] = (BOS, EOS, UNK)) -> list[str]:
    """The words of an ARPA file's ``\\1-grams:`` section, in file order,
    ``skip`` words left out. Streams the file and stops at the next section,
    so a large model's higher orders are never read. Missing, unreadable or
    non-ARPA files (a kenlm binary, say) raise :class:`InputError`."""
    name = display_name(path)
    if not os.path.isfile(path):
        raise InputError(f"{name}: no such file" if not os.path.exists(path) else f"{name}: is not a file")
    skip = tuple(skip)
    skipped = set(skip)
    words: list[str] = []
    seen_data = in_unigrams = False
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, raw in enumerate(f, start=1):
                line = raw.strip()
                if line == "\\data\\":
                    seen_data = True
                elif line == "\\1-grams:":
                    in_unigrams = True
                elif in_unigrams and line.startswith("\\"):
                    break
                elif in_unigrams and line:
                    fields = line.split()
                    if len(fields) < 2:
                        raise InputError(f"{name}:{lineno}: malformed 1-gram line")
                    if fields[1] not in skipped:
                        words.append(fields[1])
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text; is it a kenlm binary? Give the ARPA file") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read: {e.strerror or e}") from None
    if not seen_data or not in_unigrams:
        raise InputError(f"{name}: no \\data\\ header or \\1-grams: section; is this an ARPA file?")
    if not words:
        raise InputError(f"{name}: the ARPA file has no words besides {', '.join(skip)}")
    return words


def read_arpa(path: str | os.PathLike) -> ArpaLM:
    """Read an ARPA file into an :class:`ArpaLM` (meant for small models and
    tests; use kenlm for large ones). Malformed files raise :class:`InputError`."""
    name = display_name(path)
    try:
        text = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{name}: cannot read ARPA file: {e}") from None
    lm = ArpaLM(order=0)
    section = 0
    expected: dict[int, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line == "\\data\\":
            section = -1
            continue
        if line == "\\end\\":
            break
        if line.startswith("\\") and line.endswith("-grams:"):
            try:
                section = int(line[1:-len("-grams:")])
            except ValueError:
                raise InputError(f"{name}:{lineno}: bad section header {quote(line)}") from None
            if not 1 <= section <= 100:
                raise InputError(f"{name}:{lineno}: bad section header {quote(line)}")
            lm.ngrams[section] = {}
            lm.order = max(lm.order, section)
            continue
        if section == -1:
            if line.startswith("ngram "):
                k, _, c = line[6:].partition("=")
                try:
                    expected[int(k)] = int(c)
                except ValueError:
                    raise InputError(f"{name}:{lineno}: bad header line {quote(line)} (expected 'ngram K=COUNT')") from None
            continue
        if section <= 0:
            raise InputError(f"{name}:{lineno}: text outside a section; is this an ARPA file?")
        fields = line.split()
        try:
            lp = float(fields[0])
            if len(fields) == section + 2:
                bo = float(fields[-1])
                gram = tuple(fields[1:-1])
            elif len(fields) == section + 1:
                bo = 0.0
                gram = tuple(fields[1:])
            else:
                raise ValueError
        except ValueError:
            raise InputError(f"{name}:{lineno}: malformed {section}-gram line") from None
        lm.ngrams[section][gram] = (lp, bo)
    for k, c in expected.items():
        if len(lm.ngrams.get(k, {})) != c:
            raise InputError(f"{name}: header says {c} {k}-grams, found {len(lm.ngrams.get(k, {}))}")
    if 1 not in lm.ngrams:
        raise InputError(f"{name}: no \\1-grams: section; is this an ARPA file?")
    return lm


def prob_sum(lm: ArpaLM, history: tuple[str, ...]) -> float:
    """Sum of p(w | history) over the vocabulary without ``<s>`` (1 for a normalized model)."""
    return math.fsum(10.0 ** lm.logprob(w, history) for w in lm.vocab if w != BOS)
