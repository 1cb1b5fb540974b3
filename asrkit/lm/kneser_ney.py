"""Interpolated modified Kneser-Ney estimation (Chen & Goodman 1998).

Input: the distinct padded ``N``-gram windows and their counts from
:class:`asrkit.lm.counts.NgramCounter`. Output: a :class:`KneserNeyModel`
whose probabilities and backoff weights are written as ARPA by
:func:`asrkit.lm.arpa.write_arpa`.

The recipe follows kenlm's ``lmplz``:

* **Adjusted counts.** The highest order uses raw counts ``c(g)``. A lower
  order n-gram ``g`` uses its continuation count ``N1+(. g)`` (the number of
  distinct words seen before it), except when ``g`` starts with ``<s>``
  (nothing can precede it), which keeps its raw count.
* **Discounts.** Per order, from the count-of-counts ``n1..n4`` of the
  adjusted counts: ``Y = n1/(n1+2 n2)``, ``D1 = 1-2Y n2/n1``,
  ``D2 = 2-3Y n3/n2``, ``D3+ = 3-4Y n4/n3``. If an order's statistics make a
  discount undefined or negative (tiny or artificial text), that order falls
  back to ``0.5, 1, 1.5`` with a warning (lmplz's ``--discount_fallback``).
* **Interpolation.** ``p(w|h) = (a(hw) - D(a(hw))) / a(h.) + g(h) p(w|h')``
  with ``h'`` the history without its first word and ``g(h)`` the mass set
  aside by discounting (and by pruning). Unigrams interpolate with the uniform
  distribution over the vocabulary without ``<s>``. Every probability written
  is already interpolated, so the ARPA backoff weight of ``h`` is ``g(h)``
  and the ARPA is self-consistent: a model reading it with standard backoff
  (kenlm) computes exactly these probabilities, summing to 1 for every history.
* **<s>, </s>, <unk>.** ``<s>`` is never predicted (log10 probability -99);
  n-grams with ``</s>`` as history are not written. ``<unk>`` gets the
  uniform share of the unigram mass. Without ``keep_unk`` n-grams that
  contain ``<unk>`` (out-of-vocabulary words of ``--vocab``, or a literal
  ``<unk>`` in the text) are left out of the model (they still count as left
  contexts for continuation counts); with ``keep_unk`` (``--unk``) ``<unk>``
  is estimated like any other word.
* **Pruning.** ``prune[k-1]`` is a threshold for order ``k``: an n-gram of
  order ``k >= 2`` whose adjusted count (raw count at the highest order) is
  ``<= prune[k-1]`` is dropped, unless it is a prefix or suffix of an n-gram
  that is kept (the ARPA must contain the history and the lower-order
  n-gram of everything it lists). The mass of dropped n-grams goes into
  their history's backoff weight, so the model still normalizes. Discounts
  are estimated before pruning. Unigrams are never pruned.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asrkit import log
from asrkit.errors import DataError, UsageError
from asrkit.lm.counts import BOS_ID, UNK_ID, pack_rows, unique_rows

#: lmplz's fallback discounts for orders whose count-of-counts are unusable.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


@dataclass
class OrderTable:
    """The n-grams of one order ``k >= 2`` that the model lists.

    ``rows`` (M, k) int32 token ids, lexicographic order; ``prob`` (M,) the
    interpolated probability p(last | first k-1); ``backoff`` (M,) the backoff
    weight of the n-gram as a history (1.0 where it has no continuation)."""

    rows: np.ndarray
    prob: np.ndarray
    backoff: np.ndarray


@dataclass
class KneserNeyModel:
    """An estimated model: unigram arrays over the whole vocabulary (index =
    token id) and one :class:`OrderTable` per higher order."""

    order: int
    words: list[str]
    unigram_prob: np.ndarray  # (V,) p(w); 0 for <s>
    unigram_backoff: np.ndarray  # (V,)
    tables: dict[int, OrderTable] = field(default_factory=dict)  # order k >= 2
    discounts: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    count_of_counts: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)

    def ngram_counts(self) -> list[int]:
        """Number of n-grams per order as written in the ARPA header."""
        return [len(self.words)] + [len(self.tables[k].rows) for k in range(2, self.order + 1)]


def parse_prune(spec: str | None, order: int) -> list[int]:
    """``"0,1,1"`` (or ``"0 1 1"``) -> per-order thresholds, one per order 1..N;
    the last given value repeats for higher orders. The first must be 0."""
    if spec is None or not spec.strip():
        return [0] * order
    try:
        values = [int(v) for v in spec.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"--prune {spec!r}: expected integers, one per order, e.g. --prune 0,1,1") from None
    if any(v < 0 for v in values):
        raise UsageError(f"--prune {spec!r}: thresholds must be >= 0")
    if values[0] != 0:
        raise UsageError(f"--prune {spec!r}: unigrams cannot be pruned, the first threshold must be 0")
    if len(values) > order:
        raise UsageError(f"--prune {spec!r}: {len(values)} thresholds for an order-{order} model")
    return values + [values[-1]] * (order - len(values))


def _discounts(a: np.ndarray, k: int) -> tuple[tuple[float, float, float], tuple[int, int, int, int]]:
    """Modified KN discounts D1, D2, D3+ from the adjusted counts ``a`` of order ``k``."""
    n = [int(np.count_nonzero(a == c)) for c in (1, 2, 3, 4)]
    n1, n2, n3, n4 = n
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.float64(n1) / (n1 + 2 * n2)
        d = (
            1.0 - 2.0 * y * n2 / np.float64(n1),
            2.0 - 3.0 * y * n3 / np.float64(n2),
            3.0 - 4.0 * y * n4 / np.float64(n3),
        )
    if all(np.isfinite(x) and 0.0 <= x <= i + 1 for i, x in enumerate(d)):
        return (float(d[0]), float(d[1]), float(d[2])), (n1, n2, n3, n4)
    log.warn(
        f"{k}-grams: count-of-counts n1..n4 = {n1} {n2} {n3} {n4} give no valid Kneser-Ney discounts "
        f"(small or artificial text?); using {FALLBACK_DISCOUNTS[0]} {FALLBACK_DISCOUNTS[1]} {FALLBACK_DISCOUNTS[2]}"
    )
    return FALLBACK_DISCOUNTS, (n1, n2, n3, n4)


def _discount_of(a: np.ndarray, d: tuple[float, float, float]) -> np.ndarray:
    """D(a) per entry: D1 for a == 1, D2 for a == 2, D3+ for a >= 3, 0 for a == 0."""
    table = np.array([0.0, d[0], d[1], d[2]])
    return table[np.minimum(a, 3)]


class _Index:
    """Row -> position lookup in a lexicographically sorted table."""

    def __init__(self, rows: np.ndarray, bits: int) -> None:
        self.bits = bits
        self.keys = pack_rows(rows, bits)

    def find(self, query: np.ndarray) -> np.ndarray:
        q = pack_rows(query, self.bits)
        pos = np.searchsorted(self.keys, q)
        ok = pos < len(self.keys)
        ok[ok] = self.keys[pos[ok]] == q[ok]
        if not ok.all():  # an estimator invariant, not a user error
            raise AssertionError("n-gram table is missing a prefix or suffix")
        return pos


def estimate(
    rows: np.ndarray,
    counts: np.ndarray,
    words: list[str],
    order: int,
    keep_unk: bool = False,
    prune: list[int] | None = None,
) -> KneserNeyModel:
    """Estimate an interpolated modified Kneser-Ney model.

    ``rows`` (M, order) int32 / ``counts`` (M,) are the distinct padded windows
    from :class:`~asrkit.lm.counts.NgramCounter` in lexicographic order,
    ``words`` the vocabulary (index = id), ``prune`` per-order thresholds
    (see :func:`parse_prune`)."""
    n = order
    vsize = len(words)
    prune = prune or [0] * n
    if len(rows) == 0:
        raise DataError("the text has no sentences to estimate a language model from")
    bits = max(1, int(vsize - 1).bit_length())

    # U_k: distinct k-suffixes of the padded windows, raw counts and continuation counts.
    raw: dict[int, np.ndarray] = {n: counts.astype(np.int64)}
    cont: dict[int, np.ndarray] = {}
    urows: dict[int, np.ndarray] = {n: rows}
    for k in range(n - 1, 0, -1):
        urows[k], raw[k], cont[k] = unique_rows(np.ascontiguousarray(urows[k + 1][:, 1:]), raw[k + 1], bits)

    # The real n-grams of each order and their adjusted counts a_k.
    grams: dict[int, np.ndarray] = {}
    adj: dict[int, np.ndarray] = {}
    for k in range(1, n + 1):
        r = urows[k]
        keep = np.ones(len(r), dtype=bool)
        if k >= 2:
            keep &= ~((r[:, 0] == BOS_ID) & (r[:, 1] == BOS_ID))  # padding: really a lower order
        if not keep_unk:
            keep &= ~(r == UNK_ID).any(axis=1)
        a = raw[k] if k == n else np.where(r[:, 0] == BOS_ID, raw[k], cont[k])
        grams[k], adj[k] = r[keep], a[keep]

    model = KneserNeyModel(order=n, words=list(words), unigram_prob=np.zeros(vsize), unigram_backoff=np.ones(vsize))
    disc: dict[int, tuple[float, float, float]] = {}
    for k in range(1, n + 1):
        disc[k], model.count_of_counts[k] = _discounts(adj[k], k)
    model.discounts = dict(disc)

    # Pruning, closed under prefix and suffix.
    index = {k: _Index(grams[k], bits) for k in range(2, n + 1)}
    survive: dict[int, np.ndarray] = {k: adj[k] > prune[k - 1] for k in range(2, n + 1)}
    for k in range(n, 2, -1):
        kept = grams[k][survive[k]]
        if len(kept):
            survive[k - 1][index[k - 1].find(np.ascontiguousarray(kept[:, :-1]))] = True
            survive[k - 1][index[k - 1].find(np.ascontiguousarray(kept[:, 1:]))] = True

    # Unigrams: interpolate with the uniform distribution over V without <s>.
    a1 = np.zeros(vsize, dtype=np.int64)
    a1[grams[1][:, 0]] = adj[1]
    total = a1.sum()
    d1 = _discount_of(a1, disc[1])
    gamma0 = d1.sum() / total
    p1 = (a1 - d1) / total + gamma0 / (vsize - 1)
    p1[BOS_ID] = 0.0
    model.unigram_prob = p1

    lower_prob = p1
    for k in range(2, n + 1):
        g, a = grams[k], adj[k]
        if k == 2:
            ctx = g[:, 0].astype(np.int64)
            nctx = vsize
            low = p1[g[:, 1]]
        else:
            ctx = index[k - 1].find(np.ascontiguousarray(g[:, :-1]))
            nctx = len(grams[k - 1])
            low = lower_prob[index[k - 1].find(np.ascontiguousarray(g[:, 1:]))]
        d = _discount_of(a, disc[k])
        denom = np.bincount(ctx, weights=a, minlength=nctx)
        # Mass for the backoff: the discounts of kept n-grams, all of a pruned one's count.
        held = np.bincount(ctx, weights=np.where(survive[k], d, a), minlength=nctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(denom > 0, held / denom, 1.0)
        prob = (a - d) / denom[ctx] + gamma[ctx] * low
        if k == 2:
            model.unigram_backoff = gamma
        else:
            model.tables[k - 1].backoff = gamma[survive[k - 1]]
        model.tables[k] = OrderTable(rows=g[survive[k]], prob=prob[survive[k]], backoff=np.ones(int(survive[k].sum())))
        lower_prob = prob
    return model
