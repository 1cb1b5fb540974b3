"""``asrkit lm prune``: relative-entropy pruning of an ARPA model (Stolcke 1998,
what SRILM's ``ngram -prune`` does).

Removing the n-gram ``(h, w)`` makes the model back off for it:
``p(w | h)`` becomes ``bo'(h) p(w | h')`` (``h'``: ``h`` without its first
word), where the new backoff weight ``bo'(h)`` takes the freed mass. The
change of the model's entropy (the Kullback-Leibler divergence of the pruned
model from the original) that this one removal causes is::

    D(h, w) = -P(h) [ p(w|h) (ln p(w|h') + ln bo'(h) - ln p(w|h))
                      + (1 - sum_{v in S(h)} p(v|h)) (ln bo'(h) - ln bo(h)) ]

    bo(h)  = (1 - sum_S p(v|h)) / (1 - sum_S p(v|h'))
    bo'(h) = (1 - sum_S p(v|h) + p(w|h)) / (1 - sum_S p(v|h') + p(w|h'))

``S(h)`` the words with an explicit n-gram after ``h``, ``P(h)`` the
probability of the history under the model itself (the chain rule over its
words, ``<s>`` counting 1). An n-gram is pruned when the relative change of
perplexity it causes, ``exp(D) - 1``, is below the threshold: 0 keeps
everything, SRILM's usual values are 1e-8 to 1e-7.

As in SRILM, each n-gram is judged against the unpruned model of its order,
orders go from the highest down to bigrams (unigrams are never pruned), an
n-gram that is the history of a kept longer n-gram is kept, and after each
order the backoff weights of its histories are recomputed; at the end every
backoff weight is recomputed bottom-up, so the pruned model sums to 1 for
every history.

The model is held in memory as Python dicts (:func:`asrkit.lm.arpa.read_arpa`):
meant for models of up to a few million n-grams.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from asrkit import log
from asrkit.errors import UsageError
from asrkit.lm.arpa import ArpaLM, history_groups, backoff_weight, read_arpa, recompute_backoffs, write_arpa_lm
from asrkit.lm.counts import BOS

LN10 = math.log(10.0)


@dataclass
class PruneStats:
    before: list[int]
    after: list[int] = field(default_factory=list)


def _history_logprob(lm: ArpaLM, h: tuple[str, ...], cache: dict) -> float:
    """log10 P(h): the chain rule over h's words, a leading ``<s>`` with probability 1."""
    got = cache.get(h)
    if got is not None:
        return got
    if not h:
        return 0.0
    if h == (BOS,):
        lp = 0.0
    else:
        lp = _history_logprob(lm, h[:-1], cache) + lm.logprob(h[-1], h[:-1])
    cache[h] = lp
    return lp


def prune_scores(lm: ArpaLM, k: int, hist_cache: dict | None = None) -> dict[tuple[str, ...], float]:
    """``D(h, w)`` (nats, see the module doc) of every ``k``-gram of ``lm`` that
    may be pruned (those that are no history of a ``k+1``-gram)."""
    hist_cache = {} if hist_cache is None else hist_cache
    table = lm.ngrams[k]
    contexts = set(g[:-1] for g in lm.ngrams.get(k + 1, {}))
    out: dict[tuple[str, ...], float] = {}
    for h, words in history_groups(lm, k).items():
        ph = 10.0 ** _history_logprob(lm, h, hist_cache)
        p = [10.0 ** table[h + (w,)][0] for w in words]
        q = [10.0 ** lm.logprob(w, h[1:]) for w in words]
        numer = 1.0 - math.fsum(p)
        denom = 1.0 - math.fsum(q)
        old_bo = numer / denom if numer > 0 and denom > 0 else None
        for w, pw, qw in zip(words, p, q):
            if h + (w,) in contexts:
                continue
            new_bo = (numer + pw) / (denom + qw)
            delta = pw * (math.log(qw) + math.log(new_bo) - math.log(pw))
            if old_bo is not None:
                delta += numer * (math.log(new_bo) - math.log(old_bo))
            out[h + (w,)] = -ph * delta
    return out


def prune_lm(lm: ArpaLM, threshold: float) -> PruneStats:
    """Prune ``lm`` in place (see the module doc); returns the n-gram counts before and after."""
    if not threshold >= 0 or math.isinf(threshold):
        raise UsageError(f"--threshold {threshold}: a finite number >= 0")
    stats = PruneStats(before=[len(lm.ngrams.get(k, {})) for k in range(1, lm.order + 1)])
    hist_cache: dict[tuple[str, ...], float] = {}
    for k in range(lm.order, 1, -1):
        table = lm.ngrams[k]
        scores = prune_scores(lm, k, hist_cache)
        drop = [g for g, d in scores.items() if math.expm1(d) < threshold]
        for g in drop:
            del table[g]
        # the histories of order k-1 lost continuations: new backoff weights
        lower = lm.ngrams[k - 1]
        affected = {g[:-1] for g in drop}
        if affected:
            remaining = history_groups(lm, k)
            for h in affected:
                lp, _ = lower[h]
                words = remaining.get(h)
                lower[h] = (lp, backoff_weight(lm, h, words) if words else 0.0)
        log.info(f"{k}-grams: pruned {len(drop)} of {stats.before[k - 1]}")
    recompute_backoffs(lm)
    stats.after = [len(lm.ngrams.get(k, {})) for k in range(1, lm.order + 1)]
    return stats


def prune_arpa(src: str | os.PathLike, dst: str | os.PathLike, threshold: float) -> PruneStats:
    """Read the ARPA file ``src``, prune it with ``threshold`` and write ``dst`` (atomically)."""
    if not threshold >= 0 or math.isinf(threshold):
        raise UsageError(f"--threshold {threshold}: a finite number >= 0")
    lm = read_arpa(src)
    stats = prune_lm(lm, threshold)
    write_arpa_lm(lm, dst)
    return stats
