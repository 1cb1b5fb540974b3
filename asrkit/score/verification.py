"""Verification metrics: how well a similarity score separates same-identity pairs from
different-identity pairs.

    from asrkit.score.verification import verification_report
    rep = verification_report(scores, labels)     # scores: higher = more alike; labels 1 same, 0 different
    rep.auc, rep.eer, rep.tar[1e-3]; print(rep.format())

Definitions (``P`` positive pairs, label 1; ``N`` negative pairs, label 0),
for a threshold ``t`` that accepts the pairs with ``score >= t``:

* **ROC**: ``FAR(t) = accepted negatives / N`` (false accept rate, the
  x axis) against ``TAR(t) = accepted positives / P`` (true accept rate),
  one point per distinct score, from ``(0, 0)`` to ``(1, 1)``.
* **AUC**: the area under the ROC, computed exactly as the probability that
  a random positive pair scores above a random negative one, ties counting
  one half (the Mann-Whitney statistic from average ranks).
* **EER**: the error rate where the false accept rate equals the false
  reject rate ``1 - TAR``, linearly interpolated between the two ROC points
  around the crossing.
* **TAR@FAR=f**: the best true accept rate of a threshold whose false
  accept rate is at most ``f`` (0 when no threshold gets there, e.g. fewer
  than ``1 / f`` negative pairs make every FAR step larger than ``f``;
  :attr:`VerificationReport.resolvable` says which ``f`` the pairs can
  measure at all).

Plain numpy; scores may be numpy arrays, lists or torch tensors on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from asrkit.errors import DataError

__all__ = ["FARS", "VerificationReport", "auc", "eer", "roc_curve", "tar_at_far", "verification_report"]

#: the false accept rates a report gives the true accept rate at
FARS = (1e-2, 1e-3)


def _arrays(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise DataError(f"{len(s)} scores but {len(y)} labels; give one label per pair")
    if not np.all(np.isfinite(s)):
        raise DataError("a score is NaN or infinite; check the model and its inputs")
    if not np.all((y == 0) | (y == 1)):
        bad = y[(y != 0) & (y != 1)][0]
        raise DataError(f"labels must be 0 (different) or 1 (same), got {bad!r}")
    y = y.astype(np.int64)
    if y.sum() == 0 or y.sum() == len(y):
        raise DataError(f"the {len(y)} pairs are all {'same' if y.sum() else 'different'}-identity pairs; "
                        f"verification metrics need both kinds")
    return s, y


def roc_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(far, tar, thresholds)``: one ROC point per distinct score (accept ``score >= threshold``),
    falling thresholds, starting at ``(0, 0)`` with threshold ``+inf``."""
    s, y = _arrays(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]     # the last pair of every distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    far = np.r_[0.0, fp / (len(y) - y.sum())]
    tar = np.r_[0.0, tp / y.sum()]
    return far, tar, np.r_[np.inf, s[last]]


def auc(scores: Any, labels: Any) -> float:
    """The area under the ROC curve (the Mann-Whitney U statistic over ``P N``, ties half)."""
    s, y = _arrays(scores, labels)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ss = s[order]
    # average rank (1-based) of every run of tied scores
    starts = np.r_[0, np.nonzero(np.diff(ss))[0] + 1]
    ends = np.r_[starts[1:], len(ss)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    p = int(y.sum())
    n = len(y) - p
    return float((ranks[y == 1].sum() - p * (p + 1) / 2.0) / (p * n))


def eer(far: np.ndarray, tar: np.ndarray) -> float:
    """The equal error rate of a ROC (``far``, ``tar`` from :func:`roc_curve`)."""
    frr = 1.0 - tar
    diff = far - frr                       # rises from -1 to +1 along the curve
    k = int(np.argmax(diff >= 0))          # the first point at or past the crossing
    if k == 0 or diff[k] == 0:
        return float(far[k])
    d0, d1 = diff[k - 1], diff[k]
    w = d0 / (d0 - d1)                     # where the segment crosses diff = 0
    return float(far[k - 1] + w * (far[k] - far[k - 1]))


def tar_at_far(far: np.ndarray, tar: np.ndarray, at: float) -> float:
    """The highest true accept rate with a false accept rate of at most ``at``."""
    ok = far <= at + 1e-12
    return float(tar[ok].max()) if ok.any() else 0.0


@dataclass
class VerificationReport:
    """The metrics of one set of scored pairs (:func:`verification_report`)."""

    pairs: int
    positives: int
    negatives: int
    auc: float
    eer: float
    #: FAR -> TAR at that FAR
    tar: dict[float, float]
    far_curve: np.ndarray = field(repr=False)
    tar_curve: np.ndarray = field(repr=False)

    def resolvable(self, at: float) -> bool:
        """Whether the negatives are enough to measure a FAR of ``at`` (at least ``1 / at`` of them)."""
        return self.negatives * at >= 1.0

    def as_dict(self) -> dict[str, float]:
        """The numbers as a flat dict (``auc``, ``eer``, ``tar@far=0.01`` ...), for JSON."""
        out: dict[str, float] = {"pairs": self.pairs, "positives": self.positives, "negatives": self.negatives,
                                 "auc": self.auc, "eer": self.eer}
        out.update({f"tar@far={f:g}": v for f, v in self.tar.items()})
        return out

    def format(self) -> str:
        """A few aligned lines for people (percentages)."""
        rows = [("pairs", f"{self.pairs} ({self.positives} same, {self.negatives} different)"),
                ("AUC", f"{100 * self.auc:.2f}"), ("EER", f"{100 * self.eer:.2f}")]
        for f, v in self.tar.items():
            note = "" if self.resolvable(f) else f"  (only {self.negatives} different pairs: not measurable)"
            rows.append((f"TAR@FAR={f:g}", f"{100 * v:.2f}{note}"))
        width = max(len(k) for k, _ in rows) + 2
        lines = [k.ljust(width) + v for k, v in rows]
        return "\n".join(lines)


def verification_report(scores: Any, labels: Any, fars: Sequence[float] = FARS) -> VerificationReport:
    """AUC, EER and TAR at each of ``fars`` of scored pairs (DataError on bad labels or scores)."""
    far, tar, _ = roc_curve(scores, labels)
    y = _arrays(scores, labels)[1]
    p = int(y.sum())
    return VerificationReport(len(y), p, len(y) - p, auc(scores, labels), eer(far, tar),
                              {float(f): tar_at_far(far, tar, f) for f in fars}, far, tar)
