"""The 11-785 course's metrics beside the WER: the mean Levenshtein distance per
utterance (``asrkit score --metric levenshtein``) and frame accuracy
(``--metric frame-accuracy``).

Levenshtein: the unit-cost edit distance between each hypothesis and its
reference, averaged over utterances, as the course scores HW3P2 (phones) and
HW4P2 (characters). ``unit="char"`` compares the strings, the tokens joined by
one space, so a missing or extra space is one edit (the course compares the
transcript strings); ``unit="token"`` compares the token sequences (phones,
words). The distances come from the same batched alignment as the WER
(:func:`asrkit.score.align.align_batch`): errors = sub + del + ins.

Frame accuracy: the share of frames whose predicted label equals the
reference label (an ``ali`` against the output of ``asrkit predict frame``);
both sides must have one label per frame, so a length difference is an error
that names the utterance.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from asrkit.errors import DataError, quote
from asrkit.score.align import align_batch, offsets_from_lengths
from asrkit.score.normalize import Normalizer
from asrkit.score.result import check_sizes, encode_tokens, select_utts

__all__ = ["UNITS", "DistanceResult", "FrameAccuracy", "frame_accuracy", "levenshtein"]

UNITS = ("char", "token")


@dataclass(frozen=True)
class DistanceResult:
    """Per-utterance edit distances, in reference order."""

    ids: list[str]
    unit: str  # "char" | "token"
    distances: np.ndarray  # (U,) int64 edits
    ref_lens: np.ndarray  # (U,) reference chars / tokens
    hyp_lens: np.ndarray  # (U,)
    missing: list[str]
    extra: list[str]
    mode: str
    refs: list[str] | None = None  # the compared sides, tokens joined by one space (a second opinion's input)
    hyps: list[str] | None = None

    @property
    def utts(self) -> int:
        return len(self.ids)

    @property
    def edits(self) -> int:
        return int(self.distances.sum())

    @property
    def mean(self) -> float:
        """Mean edit distance per utterance (the course's number)."""
        return self.edits / self.utts if self.utts else 0.0

    @property
    def ref_units(self) -> int:
        return int(self.ref_lens.sum())

    @property
    def hyp_units(self) -> int:
        return int(self.hyp_lens.sum())


def _strings(seqs: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Token lists -> (the strings, tokens joined by one space; code points (sum L,); offsets (U + 1,))."""
    joined = [" ".join(s) for s in seqs]
    lengths = np.fromiter(map(len, joined), dtype=np.int64, count=len(joined))
    ids = np.frombuffer("".join(joined).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return joined, ids, offsets_from_lengths(lengths)


def levenshtein(
    refs: Mapping[str, Sequence[str]],
    hyps: Mapping[str, Sequence[str]],
    *,
    unit: str = "char",
    mode: str = "strict",
    ignore_case: bool = False,
    strip_punct: bool = False,
    ignore: Iterable[str] = (),
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> DistanceResult:
    """Edit distances of hypotheses against references.

    Args:
        refs, hyps: utt-id -> tokens (the order of ``refs`` is the report order).
        unit: ``"char"``: the distance between the strings (tokens joined by one
            space, spaces count); ``"token"``: between the token sequences.
        mode: as :func:`asrkit.score.score`; with ``"all"`` a missing
            hypothesis is the empty string (distance = the reference length).
        ignore_case, strip_punct, ignore: normalization of both sides
            (:mod:`asrkit.score.normalize`), before joining.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {UNITS}")
    ids, missing, extra = select_utts(refs, hyps, mode, ref_name, hyp_name, missing_means="empty hypotheses")
    empty: list[str] = []
    ref_seqs = [list(refs[u]) for u in ids]
    hyp_seqs = [list(hyps.get(u, empty)) for u in ids]
    norm = Normalizer.make(ignore_case, strip_punct, ignore)
    if norm.active:
        ref_seqs = [norm(s) for s in ref_seqs]
        hyp_seqs = [norm(s) for s in hyp_seqs]
    if unit == "char":
        ref_str, r_ids, r_off = _strings(ref_seqs)
        hyp_str, h_ids, h_off = _strings(hyp_seqs)
        what = "characters"
    else:
        token_ids: defaultdict[str, int] = defaultdict()
        token_ids.default_factory = token_ids.__len__
        r_ids, r_off = encode_tokens(ref_seqs, token_ids)
        h_ids, h_off = encode_tokens(hyp_seqs, token_ids)
        what = "tokens"
        ref_str, hyp_str = [" ".join(s) for s in ref_seqs], [" ".join(s) for s in hyp_seqs]
    r_lens, h_lens = np.diff(r_off), np.diff(h_off)
    check_sizes(ids, r_lens, h_lens, what, False, ref_name, hyp_name)
    counts = align_batch(r_ids, r_off, h_ids, h_off, keep_ops=False).counts  # (U, 4) cor sub del ins
    return DistanceResult(ids, unit, counts[:, 1:].sum(axis=1), r_lens, h_lens, missing, extra, mode,
                          ref_str, hyp_str)


@dataclass(frozen=True)
class FrameAccuracy:
    """Correct frames per utterance, in reference order."""

    ids: list[str]
    correct: np.ndarray  # (U,) int64
    frames: np.ndarray  # (U,) reference frames
    missing: list[str]
    extra: list[str]
    mode: str

    @property
    def utts(self) -> int:
        return len(self.ids)

    @property
    def total_correct(self) -> int:
        return int(self.correct.sum())

    @property
    def total_frames(self) -> int:
        return int(self.frames.sum())

    @property
    def accuracy(self) -> float | None:
        """Percent of frames labelled right; None without frames."""
        n = self.total_frames
        return 100.0 * self.total_correct / n if n else None


def frame_accuracy(
    refs: Mapping[str, Sequence[str]],
    hyps: Mapping[str, Sequence[str]],
    *,
    mode: str = "strict",
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> FrameAccuracy:
    """Frame accuracy of per-frame labels ``hyps`` against ``refs`` (utt-id ->
    one label per frame). With ``mode="all"`` a missing hypothesis counts as
    all its frames wrong. Any utterance whose two sides differ in length is a
    :class:`DataError` naming it: frame labels are compared position by
    position, so the two must come from the same frames."""
    ids, missing, extra = select_utts(refs, hyps, mode, ref_name, hyp_name, missing_means="wrong frames")
    correct = np.zeros(len(ids), dtype=np.int64)
    frames = np.zeros(len(ids), dtype=np.int64)
    bad: list[tuple[str, int, int]] = []
    for k, u in enumerate(ids):
        r = refs[u]
        frames[k] = len(r)
        h = hyps.get(u)
        if h is None:
            continue
        if len(h) != len(r):
            bad.append((u, len(r), len(h)))
            continue
        correct[k] = sum(a == b for a, b in zip(r, h))
    if bad:
        u, nr, nh = bad[0]
        more = f" (and {len(bad) - 1} more utterance(s))" if len(bad) > 1 else ""
        raise DataError(
            f"utterance {quote(u)}{more}: {nr} reference frame labels ({ref_name}) but {nh} predicted ({hyp_name}); "
            "frame accuracy compares one label per frame: predict from the features the references were made for"
        )
    return FrameAccuracy(ids, correct, frames, missing, extra, mode)
