"""``asrkit lm interpolate``: linear interpolation of ARPA models, merged into one
ARPA, with the weights tuned on a dev text by EM (SRILM's ``ngram -mix-lm``
static merge with ``compute-best-mix`` weights).

**Weights.** Every dev token (each line's words and ``</s>``, from ``<s>``)
gets its probability under each model, ``p_i``; a word outside model i's
vocabulary has ``p_i = 0`` there (so the mixture still sums to 1 over the
union of the vocabularies) and a word outside every model is left out, as
``asrkit lm ppl`` leaves OOVs out. EM then maximizes the dev likelihood of
``sum_i l_i p_i``: ``l_i <- mean over tokens of l_i p_i / sum_j l_j p_j``,
from equal weights, until no weight moves by more than 1e-7.

**Merging.** The merged model lists the union of the models' n-grams; each
gets ``p(w | h) = sum_i l_i p_i(w | h)``, every ``p_i`` computed with model
i's own backoff. The backoff weights are then recomputed bottom-up so that
every history sums to 1. Where no model lists an n-gram the merged model
backs off as a backoff model does, so it approximates the exact mixture
(which is not a backoff model) there: its dev perplexity is printed beside
the exact mixture's.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from asrkit import log
from asrkit.errors import DataError, InputError, UsageError
from asrkit.io import display_name
from asrkit.lm.arpa import BOS_LOGPROB, ArpaLM, read_arpa, recompute_backoffs, write_arpa_lm
from asrkit.lm.counts import BOS, EOS, UNK, iter_sentences


@dataclass
class MixResult:
    weights: list[float]
    tokens: int  # dev tokens scored (words in some model + </s>)
    component_ppl: list[float]  # each model alone on the tokens it knows
    mixture_ppl: float  # the exact mixture on the dev tokens
    em_iterations: int


def _knows(lm: ArpaLM, w: str) -> bool:
    return (w,) in lm.ngrams[1]


def _prob(lm: ArpaLM, w: str, hist: Sequence[str]) -> float:
    if not _knows(lm, w):
        return 0.0
    return 10.0 ** lm.logprob(w, hist)


def dev_probabilities(models: Sequence[ArpaLM], dev: str | os.PathLike) -> np.ndarray:
    """``(T, K)`` probabilities of the dev tokens known to some model under each model."""
    rows = []
    for _, words in iter_sentences(dev):
        hist = [BOS]
        for w in words + [EOS]:
            p = [_prob(m, w, hist) for m in models]
            if any(x > 0 for x in p):
                rows.append(p)
            hist.append(w)
    if not rows:
        raise InputError(f"{display_name(dev)}: no dev words that any model knows")
    return np.asarray(rows, dtype=np.float64)


def em_weights(p: np.ndarray, tol: float = 1e-7, max_iter: int = 1000) -> tuple[np.ndarray, int]:
    """EM weights maximizing ``sum_t log sum_i l_i p[t, i]``; returns ``(weights, iterations)``."""
    k = p.shape[1]
    lam = np.full(k, 1.0 / k)
    for it in range(1, max_iter + 1):
        mix = p @ lam
        post = p * lam / mix[:, None]
        new = post.mean(axis=0)
        done = np.abs(new - lam).max() < tol
        lam = new
        if done:
            return lam, it
    return lam, max_iter


def merge(models: Sequence[ArpaLM], weights: Sequence[float]) -> ArpaLM:
    """One ARPA model: the union of the n-grams, mixed probabilities, recomputed backoffs."""
    order = max(m.order for m in models)
    out = ArpaLM(order=order)
    for k in range(1, order + 1):
        keys: dict[tuple[str, ...], None] = {}
        for m in models:
            keys.update(dict.fromkeys(m.ngrams.get(k, {})))
        table: dict[tuple[str, ...], tuple[float, float]] = {}
        for g in keys:
            w, h = g[-1], g[:-1]
            if w == BOS:
                table[g] = (BOS_LOGPROB, 0.0)
                continue
            p = math.fsum(lam * _prob(m, w, h) for m, lam in zip(models, weights) if lam > 0)
            table[g] = (math.log10(p) if p > 0 else BOS_LOGPROB, 0.0)
        out.ngrams[k] = table
    recompute_backoffs(out)
    return out


def interpolate(paths: Sequence[str | os.PathLike], dev: str | os.PathLike | None, output: str | os.PathLike,
                weights: Sequence[float] | None = None) -> MixResult:
    """Mix the ARPA files ``paths`` with ``weights`` (tuned on ``dev`` by EM when
    None), write the merged ARPA to ``output``; returns the weights and dev scores."""
    if len(paths) < 2:
        raise UsageError("give at least two ARPA models to interpolate")
    if weights is None and dev is None:
        raise UsageError("give --dev TEXT to tune the weights on, or --weights")
    if weights is not None:
        if len(weights) != len(paths):
            raise UsageError(f"--weights: {len(weights)} weights for {len(paths)} models")
        if any(not (w >= 0) or math.isinf(w) for w in weights) or sum(weights) <= 0:
            raise UsageError("--weights: finite numbers >= 0, not all 0")
    models = [read_arpa(p) for p in paths]
    for p, m in zip(paths, models):
        if m.order < 1 or not m.ngrams.get(1):
            raise DataError(f"{display_name(p)}: the model has no unigrams")
    result = MixResult(weights=[], tokens=0, component_ppl=[], mixture_ppl=float("nan"), em_iterations=0)
    if dev is not None:
        probs = dev_probabilities(models, dev)
        if weights is None:
            lam, its = em_weights(probs)
            result.em_iterations = its
        else:
            lam = np.asarray(weights, dtype=np.float64) / sum(weights)
        result.tokens = len(probs)
        for i in range(len(models)):
            known = probs[:, i] > 0
            result.component_ppl.append(float(np.exp(-np.log(probs[known, i]).mean())))
        result.mixture_ppl = float(np.exp(-np.log(probs @ lam).mean()))
    else:
        lam = np.asarray(weights, dtype=np.float64) / sum(weights)
    result.weights = [float(x) for x in lam]
    log.info("weights " + " ".join(f"{x:.4f}" for x in result.weights))
    merged = merge(models, result.weights)
    if UNK not in {w for (w,) in merged.ngrams[1]}:
        log.warn("no model has <unk>; the merged model has none either")
    write_arpa_lm(merged, output)
    return result
