"""CTC decoders without a language model: greedy and prefix beam search.

Both take CTC log-probabilities ``(B, T, C)`` (batch first; a single
utterance ``(T, C)`` is accepted too), optional ``lengths (B,)`` in frames and
the ``blank`` index, and return the best label sequences (lists of ints,
blanks removed and repeats collapsed) with their log scores. The LM-fused
decoder lives in ``asrkit.decode``.

* :func:`ctc_greedy` picks the best class per frame; its score is the log
  probability of that single best path.
* :func:`ctc_prefix_beam_search` keeps the ``beam`` best label prefixes,
  each with the log probability of all paths ending in blank (``p_b``) and
  in a label (``p_nb``); its score is ``logsumexp(p_b, p_nb)``, the total
  probability of the label sequence summed over its alignments (within the
  beam). Greedy and beam can differ: with frames ``[.5, .4, .1]`` twice
  (blank, a, b), greedy says "" (0.25) but "a" has 0.16 + 0.2 + 0.2 = 0.56.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

__all__ = ["ctc_greedy", "ctc_prefix_beam_search", "ctc_prefix_beam_search_nbest"]

_NINF = float("-inf")


def _lse(a: float, b: float) -> float:
    if a == _NINF:
        return b
    if b == _NINF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


def _prep(log_probs: Tensor, lengths: Optional[Union[Tensor, Sequence[int]]]):
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(0)
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, C) or (T, C), got shape {tuple(log_probs.shape)}")
    B, T, _ = log_probs.shape
    if lengths is None:
        lens = [T] * B
    else:
        lens = [int(n) for n in torch.as_tensor(lengths).reshape(-1).tolist()]
        if len(lens) != B:
            raise ValueError(f"lengths has {len(lens)} entries for a batch of {B}")
        if any(n < 0 or n > T for n in lens):
            raise ValueError(f"lengths must be in [0, {T}]")
    return log_probs.detach(), lens


def ctc_greedy(log_probs: Tensor, lengths: Optional[Union[Tensor, Sequence[int]]] = None,
               blank: int = 0) -> tuple[list[list[int]], Tensor]:
    """Best path decoding: ``(B, T, C) -> (labels per utterance, scores (B,))``.

    The score is the summed log probability of the best class of each frame.
    """
    lp, lens = _prep(log_probs, lengths)
    B, T, _ = lp.shape
    best, arg = lp.max(-1)  # (B, T)
    valid = torch.arange(T, device=lp.device)[None, :] < torch.tensor(lens, device=lp.device)[:, None]
    scores = torch.where(valid, best, torch.zeros_like(best)).sum(1)  # (B,)
    # keep a frame if it is not blank and differs from the previous frame
    prev = torch.cat([torch.full_like(arg[:, :1], -1), arg[:, :-1]], 1)  # (B, T)
    keep = valid & (arg != blank) & (arg != prev)
    arg_l, keep_l = arg.cpu().tolist(), keep.cpu().tolist()
    hyps = [[a for a, k in zip(arg_l[b], keep_l[b]) if k] for b in range(B)]
    return hyps, scores.cpu()


def ctc_prefix_beam_search_nbest(log_probs: Tensor, beam: int = 10, blank: int = 0,
                                 prune: Optional[float] = None) -> list[tuple[list[int], float]]:
    """Prefix beam search on one utterance ``(T, C)``: the final beam, best first.

    ``prune``: skip a class at a frame when its log probability is more than
    ``prune`` below that frame's best (``None`` considers every class).
    Returns ``[(labels, log score), ...]`` (at most ``beam`` entries).
    """
    if beam < 1:
        raise ValueError("beam must be >= 1")
    lp = log_probs.detach().to(torch.float64).cpu()
    T, C = lp.shape
    rows = lp.tolist()
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, _NINF)}  # prefix -> (p_b, p_nb)
    for t in range(T):
        row = rows[t]
        if prune is not None:
            top = max(row)
            classes = [c for c in range(C) if c != blank and row[c] >= top - prune]
        else:
            classes = [c for c in range(C) if c != blank]
        p_blank = row[blank]
        nxt: dict[tuple[int, ...], list[float]] = {}

        def add(prefix: tuple[int, ...], which: int, value: float) -> None:
            cur = nxt.get(prefix)
            if cur is None:
                cur = nxt[prefix] = [_NINF, _NINF]
            cur[which] = _lse(cur[which], value)

        for prefix, (pb, pnb) in beams.items():
            total = _lse(pb, pnb)
            add(prefix, 0, total + p_blank)  # blank: the prefix stays, now ending in blank
            last = prefix[-1] if prefix else None
            for c in classes:
                p = row[c]
                if c == last:
                    add(prefix, 1, pnb + p)  # repeat without a blank: collapses into the prefix
                    add(prefix + (c,), 1, pb + p)  # repeat after a blank: a new label
                else:
                    add(prefix + (c,), 1, total + p)
        ranked = sorted(nxt.items(), key=lambda kv: _lse(kv[1][0], kv[1][1]), reverse=True)[:beam]
        beams = {k: (v[0], v[1]) for k, v in ranked}
    out = [(list(k), _lse(pb, pnb)) for k, (pb, pnb) in beams.items()]
    out.sort(key=lambda kv: kv[1], reverse=True)
    return out


def ctc_prefix_beam_search(log_probs: Tensor, lengths: Optional[Union[Tensor, Sequence[int]]] = None,
                           beam: int = 10, blank: int = 0,
                           prune: Optional[float] = None) -> tuple[list[list[int]], Tensor]:
    """CTC prefix beam search: ``(B, T, C) -> (best labels per utterance, scores (B,))``.

    The score is the log probability of the label sequence (summed over the
    alignments kept in the beam). See :func:`ctc_prefix_beam_search_nbest`.
    """
    lp, lens = _prep(log_probs, lengths)
    hyps, scores = [], []
    for b, n in enumerate(lens):
        best_labels, best_score = ctc_prefix_beam_search_nbest(lp[b, :n], beam, blank, prune)[0]
        hyps.append(best_labels)
        scores.append(best_score)
    return hyps, torch.tensor(scores, dtype=torch.float64)
