"""Blank skipping: frames the model is sure are blank, merged before the LM search.

A CTC model says "blank" on most of its output frames, and on most of those
it is nearly certain. The search pays for every frame (each hypothesis is
extended by the best units of the frame and rescored), so frames whose blank
posterior is above a threshold ``P`` are merged before it runs: every run of
such frames is replaced by its first frame (:func:`skip_blanks`). One frame
of the run is kept, not none, so a unit repeated across the run ("l _ l")
stays two units, and a word can still end in the run.

Each kept frame remembers where it came from (``index``), so word times from
the search (``--format ctm``) are mapped back to the model's output frames
(:func:`frames_back`). With ``P = 1`` nothing is merged (a posterior is
never above 1), and the search is the one without skipping.

    lp, index = skip_blanks(out.log_probs, blank=0, threshold=0.999)    # (T2, C), (T2,) or None
    spans = frames_back(spans, index)                                    # [(start, end), ...] in T frames
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from asrkit.errors import UsageError

__all__ = ["check_blank_skip", "frames_back", "skip_blanks"]


def check_blank_skip(threshold: float) -> float:
    """``threshold`` when ``0 < threshold <= 1`` (1: off), else :class:`UsageError` naming ``--blank-skip``."""
    if not math.isfinite(threshold) or not 0.0 < threshold <= 1.0:
        raise UsageError(f"--blank-skip must be a blank probability in (0, 1] (1: no skipping), got {threshold:g}")
    return float(threshold)


def skip_blanks(log_probs: Tensor, blank: int, threshold: float) -> tuple[Tensor, Optional[Tensor]]:
    """``log_probs (T, C)`` with every run of frames whose blank probability is above ``threshold``
    merged into the run's first frame: ``(log_probs (T2, C), index (T2,))`` where ``index[k]`` is the
    frame kept as ``k``; ``(log_probs, None)`` unchanged when nothing is merged."""
    T = int(log_probs.shape[0])
    if threshold >= 1.0 or T < 2:
        return log_probs, None
    sure = log_probs[:, blank] > math.log(threshold)  # (T,)
    merged = sure[1:] & sure[:-1]  # (T - 1,) frame t + 1 continues a run of sure blanks
    if not bool(merged.any()):
        return log_probs, None
    keep = torch.ones(T, dtype=torch.bool)
    keep[1:] = ~merged
    index = keep.nonzero().squeeze(1)  # (T2,)
    return log_probs.index_select(0, index), index


def frames_back(spans: Sequence[tuple[int, int]], index: Optional[Tensor]) -> list[tuple[int, int]]:
    """``(start, end)`` frame spans (end exclusive) of the merged frames -> the model's output frames."""
    if index is None:
        return [(int(s), int(e)) for s, e in spans]
    idx = index.tolist()
    return [(idx[s], idx[e - 1] + 1) if e > s else (idx[s], idx[s]) for s, e in spans]
