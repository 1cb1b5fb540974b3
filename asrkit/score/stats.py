"""Bootstrap statistics over utterances.

- :func:`bootstrap_ci`: a percentile confidence interval for the WER,
  resampling utterances with replacement (errors and reference words of the
  drawn utterances are summed, so long utterances weigh more, as in the WER).
- :func:`paired_bootstrap`: two systems scored on the same references,
  resampled together (M. Bisani and H. Ney, "Bootstrap estimates for
  confidence intervals in ASR performance evaluation", ICASSP 2004). The
  p-value is ``1 - POI``, POI being the share of resamples in which the system
  that is better on the full set stays better (a one-sided test of "the
  difference is real").

Both are seeded: the same seed gives the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asrkit.errors import DataError
from asrkit.score.result import ScoreResult

# Index draws per block of resamples (bounds memory to ~32 MB of int64).
_BLOCK_DRAWS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval of an error rate, in percent."""

    low: float
    high: float
    level: float
    resamples: int


@dataclass(frozen=True)
class Comparison:
    """System B (``--compare``) against system A on the same utterances."""

    wer_a: float
    wer_b: float
    delta: float  # wer_b - wer_a, percent absolute
    ci: Interval  # of delta
    poi: float  # probability that the better system on the full set is better
    p_value: float  # 1 - poi
    utts: int


def _resampled_sums(columns: list[np.ndarray], resamples: int, seed: int) -> list[np.ndarray]:
    """Sums of each ``(U,)`` column over ``resamples`` draws of U utterances
    with replacement (the same draws for every column). Returns ``(resamples,)`` arrays."""
    U = len(columns[0])
    rng = np.random.default_rng(seed)
    out = [np.empty(resamples, dtype=np.float64) for _ in columns]
    block = max(1, _BLOCK_DRAWS // max(U, 1))
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        idx = rng.integers(0, U, size=(stop - start, U))  # (b, U)
        for col, dest in zip(columns, out):
            dest[start:stop] = col[idx].sum(axis=1)
    return out


def _rate(errors: np.ndarray, words: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(errors == 0, 0.0, 100.0 * errors / words)


def bootstrap_ci(result: ScoreResult, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of the WER over utterances."""
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    errors = result.utt_errors.astype(np.float64)
    words = result.ref_lens.astype(np.float64)
    if words.sum() == 0:
        raise DataError("no reference words: the WER and its confidence interval are undefined")
    e, w = _resampled_sums([errors, words], resamples, seed)
    wer = _rate(e, w)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.nanpercentile(wer, [tail, 100.0 - tail])
    return Interval(float(low), float(high), level, resamples)


def paired_bootstrap(
    a: ScoreResult, b: ScoreResult, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> Comparison:
    """Paired bootstrap of ``WER(b) - WER(a)`` over the utterances both scored."""
    index_b = {u: k for k, u in enumerate(b.ids)}
    common = [(k, index_b[u]) for k, u in enumerate(a.ids) if u in index_b]
    if not common:
        raise DataError("the two hypothesis sets share no scored utterance")
    ka = np.array([k for k, _ in common])
    kb = np.array([k for _, k in common])
    words = a.ref_lens[ka].astype(np.float64)
    if not np.array_equal(words, b.ref_lens[kb]):
        raise DataError("the two systems were scored against different references")
    if words.sum() == 0:
        raise DataError("no reference words: the WER difference is undefined")
    ea = a.utt_errors[ka].astype(np.float64)
    eb = b.utt_errors[kb].astype(np.float64)
    wer_a = 100.0 * ea.sum() / words.sum()
    wer_b = 100.0 * eb.sum() / words.sum()
    delta = wer_b - wer_a
    sa, sb, sw = _resampled_sums([ea, eb, words], resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(sw > 0, 100.0 * (sb - sa) / sw, 0.0)  # (resamples,)
    if delta < 0:
        poi = float(np.mean(d < 0))
    elif delta > 0:
        poi = float(np.mean(d > 0))
    else:
        poi = 0.0
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(d, [tail, 100.0 - tail])
    return Comparison(
        wer_a=float(wer_a),
        wer_b=float(wer_b),
        delta=float(delta),
        ci=Interval(float(low), float(high), level, resamples),
        poi=poi,
        p_value=1.0 - poi,
        utts=len(common),
    )
