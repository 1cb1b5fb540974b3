"""Scoring: WER / CER / SER with alignments, per-speaker breakdowns,
confusions and bootstrap statistics.

    from asrkit.score import score
    result = score({"u1": ["a", "b"]}, {"u1": ["a", "c"]})
    result.wer, result.words.sub, result.alignment("u1").ops   # 50.0, 1, "CS"

The CLI (``asrkit score``) reads files with :mod:`asrkit.score.readers` and
prints with :mod:`asrkit.score.report`; training's dev evaluation calls
:func:`score` directly.
"""
from __future__ import annotations

from asrkit.score.align import BatchAlignment, align_batch
from asrkit.score.normalize import Normalizer
from asrkit.score.readers import Transcripts, read_transcripts
from asrkit.score.result import (
    Alignment,
    Confusions,
    Counts,
    ScoreResult,
    SpeakerStats,
    score,
    speaker_of,
)
from asrkit.score.stats import Comparison, Interval, bootstrap_ci, paired_bootstrap

__all__ = [
    "Alignment",
    "BatchAlignment",
    "Comparison",
    "Confusions",
    "Counts",
    "Interval",
    "Normalizer",
    "ScoreResult",
    "SpeakerStats",
    "Transcripts",
    "align_batch",
    "bootstrap_ci",
    "paired_bootstrap",
    "read_transcripts",
    "score",
    "speaker_of",
]
