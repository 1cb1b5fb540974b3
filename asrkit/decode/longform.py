"""Long utterances decoded in pieces cut at pauses.

A model trained on prompts of a few seconds decodes a minute-long recording
badly in one pass: an attention decoder loses its place (it repeats or skips
stretches), positions run past any length seen in training, and self-attention
costs grow with the square of the length. Decoding therefore splits every
utterance longer than ``max_frames`` input frames into pieces of at most that
length, cut at pauses, runs the pieces through the model as utterances of
their own and joins their results in order (:func:`asrkit.decode.emissions.map_batches`
with a ``join``):

- CTC models: the pieces' log-probabilities are concatenated
  (:func:`join_outputs`), so the search, the LM, word times and forced
  alignment run over the whole utterance as before;
- attention models: the pieces' hypotheses are joined (:func:`join_hypotheses`).

**Where to cut** (:func:`pause_cuts`): a voice-activity measure over the
features (no extra model): the frame loudness is the mean of the frame's
features after CMVN (for fbank features the log-mel energy, up to a scale),
smoothed over a :data:`PAUSE_WINDOW`-frame window. Each cut goes to the
quietest window between half the maximum and the maximum piece length after
the previous cut, so pieces hold between ``max_frames / 2`` and ``max_frames``
frames (the last one may be shorter) and a cut falls in a pause whenever the
stretch has one. Cuts are rounded to a multiple of the model's subsampling, so
the pieces' output frames line up with the whole utterance's.

    cuts = pause_cuts(loudness(feats), max_frames=2000, multiple=4)    # [1852, 3710, ...]
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from asrkit.errors import UsageError

__all__ = ["DEFAULT_CHUNK_SECONDS", "PAUSE_WINDOW", "chunk_frames", "join_hypotheses",
           "join_outputs", "loudness", "pause_cuts", "piece_bounds"]

#: Utterances longer than this are decoded in pieces (``asrkit decode --chunk-seconds``; 0: never).
DEFAULT_CHUNK_SECONDS = 20.0
#: Frames over which the loudness is averaged when looking for a pause (0.3 s at a 10 ms shift).
PAUSE_WINDOW = 30


def chunk_frames(seconds: Optional[float], store=None) -> Optional[int]:
    """``--chunk-seconds`` (None: :data:`DEFAULT_CHUNK_SECONDS`) in input frames of ``store`` (the
    frame shift of its feature config, 10 ms without one or without a store); ``None`` for 0 (whole
    utterances). :class:`UsageError` unless it is 0 or a finite number >= 1."""
    seconds = DEFAULT_CHUNK_SECONDS if seconds is None else float(seconds)
    if not math.isfinite(seconds) or (seconds != 0 and seconds < 1):
        raise UsageError(f"--chunk-seconds must be 0 (decode whole utterances) or a number of seconds >= 1, "
                         f"got {seconds:g}")
    if seconds == 0:
        return None
    shift = (getattr(store, "conf", None) or {}).get("frame_shift")
    return max(2, int(round(seconds * 1000.0 / (10.0 if shift is None else float(shift)))))


def loudness(feats: Tensor) -> Tensor:
    """``(T, D)`` features -> ``(T,)``: the mean over the feature dimension (log-mel energy for fbank)."""
    return feats.float().mean(dim=-1)


def _smooth(x: Tensor, window: int) -> Tensor:
    """Centred moving average of ``x (T,)`` over ``window`` frames (shorter at the ends)."""
    if window <= 1:
        return x
    c = torch.cat([x.new_zeros(1), torch.cumsum(x.double(), 0)])          # (T + 1,)
    t = torch.arange(x.shape[0])
    lo = (t - window // 2).clamp(min=0)
    hi = (t + (window + 1) // 2).clamp(max=x.shape[0])
    return ((c[hi] - c[lo]) / (hi - lo).double()).float()


def pause_cuts(loud: Tensor, max_frames: int, *, window: int = PAUSE_WINDOW, multiple: int = 1) -> list[int]:
    """Cut frames ``0 < c_1 < ... < c_k < T`` of an utterance with loudness ``loud (T,)`` such that
    every piece ``[c_i, c_{i+1})`` holds at most ``max_frames`` frames; none when ``T <= max_frames``.

    Each cut is at the middle of the quietest stretch (moving average over ``window`` frames, at
    most a quarter of ``max_frames``) between ``max_frames / 2`` and ``max_frames`` frames after the previous
    cut, rounded down to a multiple of ``multiple`` (the model's subsampling) when that keeps the
    piece within those bounds."""
    if max_frames < 2:
        raise UsageError(f"pieces must be at least 2 frames long, got {max_frames}")
    total = int(loud.shape[0])
    if total <= max_frames:
        return []
    smooth = _smooth(loud, max(1, min(window, max_frames // 4)))
    multiple = max(1, int(multiple))
    cuts: list[int] = []
    start = 0
    while total - start > max_frames:
        lo, hi = start + max(1, max_frames // 2), start + max_frames
        cut = lo + _quietest(smooth[lo:hi + 1])
        rounded = cut - cut % multiple
        if rounded > start and rounded >= lo - multiple:
            cut = rounded
        cuts.append(cut)
        start = cut
    return cuts


def _quietest(x: Tensor) -> int:
    """The middle of the first run of ``x``'s minimum (a pause's centre, not its edge)."""
    at = torch.nonzero(x <= x.min() + 1e-6).flatten().tolist()
    end = 0
    while end + 1 < len(at) and at[end + 1] == at[end] + 1:
        end += 1
    return (at[0] + at[end]) // 2


def piece_bounds(cuts: Sequence[int], total: int) -> list[tuple[int, int]]:
    """``[(start, end)]`` of the pieces that ``cuts`` make of ``total`` frames."""
    edges = [0, *cuts, total]
    return list(zip(edges[:-1], edges[1:]))


def join_outputs(utt: str, pieces: Sequence, starts: Sequence[int]):
    """One :class:`~asrkit.decode.emissions.ModelOutput` of the pieces' (in order): their
    log-probabilities concatenated over time, their input frames summed."""
    from asrkit.decode.emissions import ModelOutput

    del starts
    return ModelOutput(utt, torch.cat([p.log_probs for p in pieces], dim=0), sum(int(p.frames) for p in pieces))


def join_hypotheses(utt: str, pieces: Sequence, starts: Sequence[int]):
    """One :class:`~asrkit.decode.output.Hypothesis` of the pieces' (in order): tokens and units
    concatenated, scores and frames summed, token frames shifted by the output frames before them,
    per-piece ``extra`` numbers summed (``*_score``, ``length``), ``attention_max`` averaged over
    tokens, ``hit_max_len`` when any piece hit it. With n-best lists, entry ``k`` joins the
    pieces' ``k``-th best (a piece's last when it has fewer), scores summed; ``pieces`` in
    ``extra`` records the piece count."""
    from asrkit.decode.output import Hypothesis

    del starts
    if len(pieces) == 1:
        return pieces[0]
    first = pieces[0]
    tokens = [t for p in pieces for t in p.tokens]
    units = [u for p in pieces for u in p.units]
    token_frames = None
    if all(p.token_frames is not None for p in pieces):
        token_frames, offset = [], 0
        for p in pieces:
            token_frames += [(s + offset, e + offset) for s, e in p.token_frames]
            offset += int(p.out_frames)
    extra: dict = {}
    for key, value in first.extra.items():
        if key.endswith("_score") or key == "length":
            vals = [p.extra.get(key) for p in pieces]
            extra[key] = None if any(v is None for v in vals) else round(sum(vals), 4)
        elif key not in ("attention_max", "hit_max_len", "nbest"):
            extra[key] = value
    att = [(p.extra.get("attention_max"), len(p.tokens)) for p in pieces]
    weighted = [(a, n) for a, n in att if a is not None and n]
    if "attention_max" in first.extra:
        n = sum(n for _, n in weighted)
        extra["attention_max"] = round(sum(a * n for a, n in weighted) / n, 4) if n else None
    if "hit_max_len" in first.extra:
        extra["hit_max_len"] = any(bool(p.extra.get("hit_max_len")) for p in pieces)
    if all("nbest" in p.extra for p in pieces):
        extra["nbest"] = _join_nbest([p.extra["nbest"] for p in pieces])
    extra["pieces"] = len(pieces)
    return Hypothesis(utt=utt, tokens=tokens, score=sum(p.score for p in pieces),
                      frames=sum(int(p.frames) for p in pieces), out_frames=sum(int(p.out_frames) for p in pieces),
                      units=units, extra=extra, token_frames=token_frames, frame_seconds=first.frame_seconds)


def _join_nbest(lists: Sequence[Sequence[dict]]) -> list[dict]:
    out = []
    for k in range(max(len(entries) for entries in lists)):
        picked = [entries[min(k, len(entries) - 1)] for entries in lists]
        entry: dict = {"hyp": " ".join(e["hyp"] for e in picked if e["hyp"])}
        for key in picked[0]:
            if key == "hyp":
                continue
            vals = [e.get(key) for e in picked]
            if key == "lm_weight":
                entry[key] = vals[0]
            else:
                entry[key] = None if any(v is None for v in vals) else round(sum(vals), 4)
        out.append(entry)
    return out
