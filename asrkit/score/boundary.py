"""Comparing two frame labellings of the same utterances: phone boundary
errors and frame accuracy (e.g. a corpus's exact ``ali`` against a forced
alignment from ``asrkit align``).

:func:`boundary_error` is the mean absolute difference of phone start
times, over the phones a Levenshtein alignment of the two phone strings
matches; :func:`frame_accuracy` the fraction of frames with the same label.

    from asrkit.score.boundary import boundary_error
    print(boundary_error(ref_ali, hyp_ali, frame_shift_ms=10))
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from asrkit.data.tokenizer import SIL  # frames of no phone: left out of the comparison
from asrkit.score.align import COR, DEL, INS, align_batch, offsets_from_lengths

__all__ = ["SIL", "BoundaryError", "boundary_error", "frame_accuracy", "phone_starts"]

@dataclass
class BoundaryError:
    """Phone start-time differences between two frame labellings.

    Attributes:
        mean_ms, median_ms: of the absolute differences (NaN if none compared).
        within_20, within_40: fraction of compared phones within 20 / 40 ms.
        compared: phones compared (matched by the Levenshtein alignment).
        ref_phones, hyp_phones: phones (runs, ``sil`` dropped) in each.
        utterances: utterances in both.
        errors_ms: every absolute difference.
    """

    mean_ms: float
    median_ms: float
    within_20: float
    within_40: float
    compared: int
    ref_phones: int
    hyp_phones: int
    utterances: int
    errors_ms: np.ndarray

    def __str__(self) -> str:
        return (f"mean {self.mean_ms:.1f} ms, median {self.median_ms:.1f} ms, {100 * self.within_20:.1f}% within "
                f"20 ms, {100 * self.within_40:.1f}% within 40 ms ({self.compared} phone starts compared of "
                f"{self.ref_phones} ref / {self.hyp_phones} hyp, {self.utterances} utterances)")


def phone_starts(labels: Sequence[str] | str, drop: Sequence[str] = (SIL,)) -> list[tuple[str, int]]:
    """``(label, start frame)`` of each run of equal labels, ``drop`` labels left out."""
    if isinstance(labels, str):
        labels = labels.split()
    out: list[tuple[str, int]] = []
    prev = None
    for t, lab in enumerate(labels):
        if lab != prev and lab not in drop:
            out.append((lab, t))
        prev = lab
    return out


def boundary_error(ali_ref: Mapping[str, Sequence[str] | str], ali_hyp: Mapping[str, Sequence[str] | str],
                   frame_shift_ms: float = 10.0, utts: Sequence[str] | None = None) -> BoundaryError:
    """Mean absolute error (ms) of phone start times of ``ali_hyp`` against
    ``ali_ref`` (utt -> frame labels, a list or a space-separated string).

    Each labelling becomes its runs of equal labels with ``sil`` dropped; the
    two phone strings are aligned with Levenshtein (so different spellings,
    e.g. a lexicon's and a synthesizer's, still compare the phones they
    share) and only matched (equal) phones count. Utterances in only one of
    the two are skipped (``utts`` picks them explicitly)."""
    keys = [u for u in (utts if utts is not None else ali_ref) if u in ali_ref and u in ali_hyp]
    vocab: dict[str, int] = {}
    refs = [phone_starts(ali_ref[u]) for u in keys]
    hyps = [phone_starts(ali_hyp[u]) for u in keys]
    rid = np.array([vocab.setdefault(p, len(vocab)) for r in refs for p, _ in r], dtype=np.int64)
    hid = np.array([vocab.setdefault(p, len(vocab)) for h in hyps for p, _ in h], dtype=np.int64)
    roff = offsets_from_lengths(np.array([len(r) for r in refs], dtype=np.int64))
    hoff = offsets_from_lengths(np.array([len(h) for h in hyps], dtype=np.int64))
    errs: list[float] = []
    if keys:
        res = align_batch(rid, roff, hid, hoff, keep_ops=True)
        for k, (r, h) in enumerate(zip(refs, hyps)):
            i = j = 0
            for op in res.ops_of(k):
                if op == COR:
                    errs.append(abs(r[i][1] - h[j][1]) * float(frame_shift_ms))
                if op != INS:
                    i += 1
                if op != DEL:
                    j += 1
    e = np.asarray(errs, dtype=np.float64)
    nan = float("nan")
    return BoundaryError(
        mean_ms=float(e.mean()) if e.size else nan, median_ms=float(np.median(e)) if e.size else nan,
        within_20=float((e <= 20).mean()) if e.size else nan, within_40=float((e <= 40).mean()) if e.size else nan,
        compared=int(e.size), ref_phones=len(rid), hyp_phones=len(hid), utterances=len(keys),
        errors_ms=e)


def frame_accuracy(ali_ref: Mapping[str, Sequence[str] | str], ali_hyp: Mapping[str, Sequence[str] | str]) -> float:
    """Fraction of frames with the same label, over utterances in both whose
    lengths agree."""
    same = total = 0
    for u, r in ali_ref.items():
        h = ali_hyp.get(u)
        if h is None:
            continue
        r = r.split() if isinstance(r, str) else r
        h = h.split() if isinstance(h, str) else h
        if len(r) != len(h):
            continue
        same += sum(a == b for a, b in zip(r, h))
        total += len(r)
    return same / total if total else float("nan")
