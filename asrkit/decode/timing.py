"""Where units and words sit in time: CTC frame paths, unit segments, token spans.

A CTC *frame path* gives every output frame a class (``<blank>`` or a unit).
For a hypothesis (or a reference transcript) the best path through the
model's log-probabilities is its Viterbi alignment
(:func:`torchaudio.functional.forced_align`, :func:`best_path`); greedy
decoding's path is simply the argmax of each frame.

- :func:`unit_segments`: the path's emitted units, each as ``(id, start, end)``
  output frames (``end`` exclusive): one segment per run of the same non-blank
  class (a repeated unit is two runs with a blank between them).
- :func:`token_spans`: the segments grouped into output tokens the way
  :meth:`asrkit.data.units.UnitMap.tokens` groups units: words between
  ``|`` units (char), words that start at a ``▁`` piece (bpe), one token per
  phone (phone units; ``sil`` dropped). A token spans from its first unit's
  start to its last unit's end.

Times in seconds are frames x the seconds per output frame
(``frame_shift x subsampling``, :func:`output_frame_seconds`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from asrkit.errors import DataError

__all__ = ["best_path", "output_frame_seconds", "token_spans", "unit_segments"]

#: unit symbols that never start or continue an output token
_NOT_TOKENS = {"<blank>", "sil"}


def best_path(log_probs: Tensor, ids: Sequence[int], blank: int = 0, utt: str = "") -> Tensor:
    """The most likely CTC frame path ``(T',)`` (int64) of the unit sequence
    ``ids`` through ``log_probs`` ``(T', C)``: Viterbi forced alignment.

    Raises :class:`DataError` when the sequence cannot fit (more units, plus a
    blank between each repeated pair, than frames)."""
    import torchaudio.functional as F

    ids = [int(i) for i in ids]
    T = int(log_probs.shape[0])
    if not ids:
        return torch.full((T,), blank, dtype=torch.int64)
    need = len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)
    if need > T:
        raise DataError(f"utterance {utt or '?'}: {len(ids)} units need at least {need} output frames, the model "
                        f"gave {T}; the transcript is too long for the audio (or for the model's subsampling)")
    lp = log_probs.detach().to(torch.float32).cpu().unsqueeze(0)
    path, _ = F.forced_align(lp, torch.tensor([ids], dtype=torch.int32), blank=blank)
    return path[0].to(torch.int64)


def unit_segments(path: Sequence[int] | Tensor, blank: int = 0) -> list[tuple[int, int, int]]:
    """``(id, start, end)`` per run of the same non-blank class in a frame path."""
    p = path.tolist() if isinstance(path, Tensor) else [int(x) for x in path]
    segs: list[tuple[int, int, int]] = []
    start = 0
    for t in range(1, len(p) + 1):
        if t == len(p) or p[t] != p[start]:
            if p[start] != blank:
                segs.append((p[start], start, t))
            start = t
    return segs


def token_spans(units, segments: Sequence[tuple[int, int, int]]) -> list[tuple[str, int, int]]:
    """``(token, start, end)`` per output token of the unit segments, for a
    :class:`~asrkit.data.units.UnitMap` of kind phone, char or bpe."""
    groups: list[list[tuple[int, int, int]]] = []
    for seg in segments:
        sym = units.units[seg[0]]
        if units.kind == "char" and sym == "|":
            groups.append([])
        elif units.kind == "phone" or not groups or (units.kind == "bpe" and sym.startswith("▁")):
            groups.append([seg])
        else:
            groups[-1].append(seg)
    spans: list[tuple[str, int, int]] = []
    for g in groups:
        g = [s for s in g if units.units[s[0]] not in _NOT_TOKENS]
        if not g:
            continue
        for tok in units.tokens([s[0] for s in g]):  # one token per group (several only for odd units)
            spans.append((tok, g[0][1], g[-1][2]))
    return spans


def output_frame_seconds(frame_shift_ms: Optional[float], subsampling: int) -> float:
    """Seconds per model output frame (default frame shift 10 ms)."""
    shift = 10.0 if frame_shift_ms is None else float(frame_shift_ms)
    return shift * max(1, int(subsampling)) / 1000.0
