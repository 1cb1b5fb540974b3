"""``score()``: error counts, alignments and breakdowns of a hypothesis set
against references. No file formats and no printing here (see ``report.py``
and ``asrkit/cli/score.py``)."""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import chain
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from asrkit.data.table import sorted_keys
from asrkit.errors import DataError, quote
from asrkit.score.align import (
    COR,
    DEL,
    INS,
    OP_LETTERS,
    SUB,
    BatchAlignment,
    align_batch,
    offsets_from_lengths,
    oversized_pairs,
    pair_limit_text,
)
from asrkit.score.normalize import Normalizer

MODES = ("strict", "present", "all")
_SPK_SPLIT = re.compile(r"[-_]")


def speaker_of(utt: str) -> str:
    """The speaker prefix of an utt-id: everything before the first ``-`` or ``_``."""
    return _SPK_SPLIT.split(utt, maxsplit=1)[0]


def error_rate(errors: int, total: int) -> float | None:
    """Percent errors; ``None`` when undefined (errors against an empty reference)."""
    if errors == 0:
        return 0.0
    if total == 0:
        return None
    return 100.0 * errors / total


@dataclass(frozen=True)
class Counts:
    """Alignment counts of a set of utterances (words or characters)."""

    ref: int
    hyp: int
    cor: int
    sub: int
    dele: int
    ins: int

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def rate(self) -> float | None:
        """Error rate in percent (WER / CER)."""
        return error_rate(self.errors, self.ref)

    @classmethod
    def from_arrays(cls, counts: np.ndarray, ref_len: np.ndarray, hyp_len: np.ndarray) -> "Counts":
        c = counts.sum(axis=0) if len(counts) else np.zeros(4, dtype=np.int64)
        return cls(int(ref_len.sum()), int(hyp_len.sum()), int(c[0]), int(c[1]), int(c[2]), int(c[3]))


@dataclass(frozen=True)
class Alignment:
    """One utterance's alignment: columns of (ref token | None, hyp token | None, op)
    with op one of ``C`` (correct), ``S``, ``D`` (ref token missing in hyp), ``I``."""

    utt: str
    ref: list[str]
    hyp: list[str]
    ops: str  # one letter per column, "CSDI"

    def columns(self) -> Iterator[tuple[str | None, str | None, str]]:
        i = j = 0
        for op in self.ops:
            if op in "CS":
                yield self.ref[i], self.hyp[j], op
                i += 1
                j += 1
            elif op == "D":
                yield self.ref[i], None, op
                i += 1
            else:
                yield None, self.hyp[j], op
                j += 1

    @property
    def counts(self) -> tuple[int, int, int, int]:
        """(cor, sub, del, ins)."""
        return tuple(self.ops.count(c) for c in "CSDI")  # type: ignore[return-value]


@dataclass(frozen=True)
class SpeakerStats:
    """One speaker's totals."""

    speaker: str
    utts: int
    utt_errors: int
    words: Counts
    chars: Counts | None

    @property
    def ser(self) -> float:
        return 100.0 * self.utt_errors / self.utts if self.utts else 0.0


@dataclass(frozen=True)
class Confusions:
    """Most frequent errors: ``sub`` as ((ref, hyp), count), ``dele`` and ``ins``
    as (token, count), most frequent first (ties in token order)."""

    sub: list[tuple[tuple[str, str], int]]
    dele: list[tuple[str, int]]
    ins: list[tuple[str, int]]


@dataclass
class ScoreResult:
    """Everything :func:`score` computed. Totals are attributes; per-utterance
    alignments are built on demand with :meth:`alignment`.

    Per-utterance arrays are in the order of :attr:`ids` (reference order).
    """

    ids: list[str]
    refs: list[list[str]]  # normalized reference tokens
    hyps: list[list[str]]  # normalized hypothesis tokens
    speakers: list[str]
    words: Counts
    utt_counts: np.ndarray  # (U, 4) int64: cor, sub, del, ins (words)
    ref_lens: np.ndarray  # (U,) reference words
    hyp_lens: np.ndarray  # (U,) hypothesis words
    missing: list[str]  # reference ids without a hypothesis
    extra: list[str]  # hypothesis ids without a reference (never scored)
    mode: str
    chars: Counts | None = None
    char_utt_counts: np.ndarray | None = None  # (U, 4)
    char_ref_lens: np.ndarray | None = None  # (U,)
    _ops: np.ndarray | None = field(default=None, repr=False)  # flat op codes
    _ops_offsets: np.ndarray | None = field(default=None, repr=False)  # (U + 1,)
    _ref_ids: np.ndarray | None = field(default=None, repr=False)  # flat word ids, refs
    _hyp_ids: np.ndarray | None = field(default=None, repr=False)  # flat word ids, hyps
    _vocab: list[str] | None = field(default=None, repr=False)  # id -> word
    _index: dict[str, int] | None = field(default=None, repr=False)

    # -- totals -----------------------------------------------------------
    @property
    def utts(self) -> int:
        return len(self.ids)

    @property
    def utt_errors(self) -> np.ndarray:
        """(U,) word errors per utterance."""
        return self.utt_counts[:, 1:].sum(axis=1)

    @property
    def wer(self) -> float | None:
        return self.words.rate

    @property
    def cer(self) -> float | None:
        return None if self.chars is None else self.chars.rate

    @property
    def sentence_errors(self) -> int:
        return int((self.utt_errors > 0).sum())

    @property
    def ser(self) -> float:
        return 100.0 * self.sentence_errors / self.utts if self.utts else 0.0

    # -- alignments --------------------------------------------------------
    def alignment(self, utt: str | int) -> Alignment:
        """The alignment of one utterance (by id or position)."""
        if isinstance(utt, str):
            if self._index is None:
                self._index = {u: k for k, u in enumerate(self.ids)}
            try:
                k = self._index[utt]
            except KeyError:
                raise KeyError(f"utterance {utt!r} was not scored") from None
        else:
            k = utt
        assert self._ops is not None and self._ops_offsets is not None
        codes = self._ops[self._ops_offsets[k] : self._ops_offsets[k + 1]]
        ops = codes.tobytes().translate(_OP_BYTES).decode("ascii")
        return Alignment(self.ids[k], self.refs[k], self.hyps[k], ops)

    def alignments(self) -> Iterator[Alignment]:
        for k in range(len(self.ids)):
            yield self.alignment(k)

    # -- breakdowns --------------------------------------------------------
    def per_speaker(self) -> list[SpeakerStats]:
        """Totals per speaker, speakers in C-locale order."""
        order = sorted_keys(set(self.speakers))
        index = {s: k for k, s in enumerate(order)}
        spk = np.fromiter((index[s] for s in self.speakers), dtype=np.int64, count=len(self.speakers))
        n = len(order)

        def sums(values: np.ndarray) -> np.ndarray:
            return np.bincount(spk, weights=values, minlength=n).astype(np.int64)

        utts = sums(np.ones(len(spk)))
        errs = sums((self.utt_errors > 0).astype(np.float64))
        wc = [sums(self.utt_counts[:, c]) for c in range(4)]
        rl, hl = sums(self.ref_lens), sums(self.hyp_lens)
        if self.chars is not None:
            assert self.char_utt_counts is not None and self.char_ref_lens is not None
            cc = [sums(self.char_utt_counts[:, c]) for c in range(4)]
            crl = sums(self.char_ref_lens)
        out = []
        for k, s in enumerate(order):
            chars = None
            if self.chars is not None:
                c_hyp = int(cc[0][k] + cc[1][k] + cc[3][k])
                chars = Counts(int(crl[k]), c_hyp, int(cc[0][k]), int(cc[1][k]), int(cc[2][k]), int(cc[3][k]))
            words = Counts(int(rl[k]), int(hl[k]), int(wc[0][k]), int(wc[1][k]), int(wc[2][k]), int(wc[3][k]))
            out.append(SpeakerStats(s, int(utts[k]), int(errs[k]), words, chars))
        return out

    def confusions(self, n: int) -> Confusions:
        """The ``n`` most frequent substitutions, deletions and insertions."""
        assert self._ops is not None and self._ref_ids is not None and self._hyp_ids is not None
        assert self._vocab is not None
        ops = self._ops
        # Refs and hyps are concatenated in the same utterance order as the
        # ops, so running counts of consumed tokens index the flat id arrays.
        ref_pos = np.cumsum(ops != INS) - 1  # (L,)
        hyp_pos = np.cumsum(ops != DEL) - 1
        vocab = self._vocab
        V = len(vocab)
        sub_mask = ops == SUB
        keys = self._ref_ids[ref_pos[sub_mask]] * V + self._hyp_ids[hyp_pos[sub_mask]]
        subs = [((vocab[k // V], vocab[k % V]), c) for k, c in _top(keys, n, lambda k: (vocab[k // V], vocab[k % V]))]
        dels = [(vocab[k], c) for k, c in _top(self._ref_ids[ref_pos[ops == DEL]], n, lambda k: vocab[k])]
        inss = [(vocab[k], c) for k, c in _top(self._hyp_ids[hyp_pos[ops == INS]], n, lambda k: vocab[k])]
        return Confusions(subs, dels, inss)


_OP_BYTES = bytes.maketrans(bytes([COR, SUB, DEL, INS]), OP_LETTERS.encode("ascii"))


def _top(keys: np.ndarray, n: int, name) -> list[tuple[int, int]]:
    """The ``n`` most frequent values of ``keys`` with their counts; ties by ``name(key)``."""
    if n <= 0 or len(keys) == 0:
        return []
    values, counts = np.unique(keys, return_counts=True)
    # candidates: everything at least as frequent as the n-th most frequent
    cut = np.sort(counts)[::-1][min(n, len(counts)) - 1]
    cand = [(int(v), int(c)) for v, c in zip(values, counts) if c >= cut]
    cand.sort(key=lambda vc: (-vc[1], name(vc[0])))
    return cand[:n]


def encode_tokens(seqs: Sequence[Sequence[str]], word_ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Token lists -> (flat int64 ids, (U + 1,) offsets), growing ``word_ids``."""
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    ids = np.fromiter(map(word_ids.__getitem__, chain.from_iterable(seqs)), dtype=np.int64, count=int(lengths.sum()))
    return ids, offsets_from_lengths(lengths)


def _encode_chars(seqs: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Token lists -> characters (spaces excluded) as code points, with offsets."""
    joined = ["".join(s) for s in seqs]
    lengths = np.fromiter(map(len, joined), dtype=np.int64, count=len(joined))
    ids = np.frombuffer("".join(joined).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return ids, offsets_from_lengths(lengths)


def _name_ids(ids: list[str], total: int) -> str:
    shown = ", ".join(quote(u)[1:-1] for u in ids[:5])
    return shown + (f", ... ({total} in all)" if total > 5 else "")


def check_sizes(ids, ref_lens, hyp_lens, unit: str, keep_ops: bool, ref_name: str, hyp_name: str) -> None:
    """Refuse, before any work, an utterance pair too large to align."""
    big = oversized_pairs(ref_lens, hyp_lens, keep_ops)
    if len(big):
        k = int(big[0])
        more = f" (and {len(big) - 1} more)" if len(big) > 1 else ""
        raise DataError(
            f"utterance {quote(ids[k])}{more}: {ref_lens[k]} reference and {hyp_lens[k]} hypothesis {unit} "
            f"({ref_name}, {hyp_name}) are over the limit of {pair_limit_text(keep_ops)} for one alignment; "
            "split long recordings into utterances (e.g. with a segments file) and score those"
        )


def select_utts(
    refs: Mapping[str, object], hyps: Mapping[str, object], mode: str, ref_name: str, hyp_name: str,
    missing_means: str = "deletions",
) -> tuple[list[str], list[str], list[str]]:
    """The utterances to score under ``mode`` (see :func:`score`), in reference
    order, with the reference ids lacking a hypothesis and the hypothesis ids
    lacking a reference. ``missing_means`` words what ``--mode all`` does with
    a missing hypothesis, for the strict mode's message."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    missing = [u for u in refs if u not in hyps]
    extra = [u for u in hyps if u not in refs]
    if mode == "strict" and (missing or extra):
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} reference utterance(s) have no hypothesis in {hyp_name}: {_name_ids(missing, len(missing))}"
            )
        if extra:
            parts.append(
                f"{len(extra)} hypothesis utterance(s) are not in {ref_name}: {_name_ids(extra, len(extra))}"
            )
        raise DataError(
            "; ".join(parts)
            + f" (--mode present scores the utterances in both, --mode all counts missing ones as {missing_means})"
        )
    if mode == "present":
        ids = [u for u in refs if u in hyps]
    else:
        ids = list(refs)
    if not ids:
        raise DataError(f"nothing to score: no utterance of {ref_name} has a hypothesis in {hyp_name}")
    return ids, missing, extra


def score(
    refs: Mapping[str, Sequence[str]],
    hyps: Mapping[str, Sequence[str]],
    *,
    mode: str = "strict",
    cer: bool = False,
    utt2spk: Mapping[str, str] | None = None,
    ignore_case: bool = False,
    strip_punct: bool = False,
    ignore: Iterable[str] = (),
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> ScoreResult:
    """Score hypotheses against references.

    Args:
        refs: utt-id -> reference tokens (the order of ``refs`` is the report order).
        hyps: utt-id -> hypothesis tokens.
        mode: ``"strict"``: any reference without a hypothesis, or hypothesis
            without a reference, raises :class:`DataError`; ``"present"``:
            score the utterances in both; ``"all"``: a missing hypothesis
            counts as all deletions (hypotheses without a reference are
            ignored in both lenient modes; see ``missing`` / ``extra``).
        cer: also align characters (spaces excluded) for a CER.
        utt2spk: utt-id -> speaker; default: the utt-id prefix before the
            first ``-`` or ``_``.
        ignore_case, strip_punct, ignore: normalization, see
            :mod:`asrkit.score.normalize`.
        ref_name, hyp_name: names used in error messages (file names).

    Returns:
        A :class:`ScoreResult`. Error counts are those of a unit-cost
        Levenshtein alignment, ties resolved towards substitutions.
    """
    ids, missing, extra = select_utts(refs, hyps, mode, ref_name, hyp_name)
    empty: list[str] = []
    ref_seqs = [refs[u] for u in ids]
    hyp_seqs = [hyps.get(u, empty) for u in ids]
    norm = Normalizer.make(ignore_case, strip_punct, ignore)
    if norm.active:
        ref_seqs = [norm(s) for s in ref_seqs]
        hyp_seqs = [norm(s) for s in hyp_seqs]
    else:
        ref_seqs = [s if isinstance(s, list) else list(s) for s in ref_seqs]
        hyp_seqs = [s if isinstance(s, list) else list(s) for s in hyp_seqs]

    if utt2spk is not None:
        lacking = [u for u in ids if u not in utt2spk]
        if lacking:
            raise DataError(f"utt2spk has no speaker for {len(lacking)} utterance(s): {_name_ids(lacking, len(lacking))}")
        speakers = [utt2spk[u] for u in ids]
    else:
        speakers = [speaker_of(u) for u in ids]

    word_ids: defaultdict[str, int] = defaultdict()
    word_ids.default_factory = word_ids.__len__  # new word -> next id
    ref_ids, ref_off = encode_tokens(ref_seqs, word_ids)
    hyp_ids, hyp_off = encode_tokens(hyp_seqs, word_ids)
    check_sizes(ids, np.diff(ref_off), np.diff(hyp_off), "words", True, ref_name, hyp_name)
    al: BatchAlignment = align_batch(ref_ids, ref_off, hyp_ids, hyp_off, keep_ops=True)
    ref_lens, hyp_lens = np.diff(ref_off), np.diff(hyp_off)
    result = ScoreResult(
        ids=ids,
        refs=ref_seqs,
        hyps=hyp_seqs,
        speakers=speakers,
        words=Counts.from_arrays(al.counts, ref_lens, hyp_lens),
        utt_counts=al.counts,
        ref_lens=ref_lens,
        hyp_lens=hyp_lens,
        missing=missing,
        extra=extra,
        mode=mode,
        _ops=al.ops,
        _ops_offsets=al.ops_offsets,
        _ref_ids=ref_ids,
        _hyp_ids=hyp_ids,
        _vocab=list(word_ids),
    )
    if cer:
        c_ref, c_ref_off = _encode_chars(ref_seqs)
        c_hyp, c_hyp_off = _encode_chars(hyp_seqs)
        check_sizes(ids, np.diff(c_ref_off), np.diff(c_hyp_off), "characters", False, ref_name, hyp_name)
        cal = align_batch(c_ref, c_ref_off, c_hyp, c_hyp_off, keep_ops=False)
        result.char_utt_counts = cal.counts
        result.char_ref_lens = np.diff(c_ref_off)
        result.chars = Counts.from_arrays(cal.counts, result.char_ref_lens, np.diff(c_hyp_off))
    return result
