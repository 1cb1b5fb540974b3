"""Reading transcripts for scoring: Kaldi text (``utt-id w1 w2 ...``) and
sclite trn (``w1 w2 ... (utt-id)``), auto-detected or forced.

The reader is :mod:`asrkit.data.transcripts` (one transcript reader for every
command); this module names it for :mod:`asrkit.score`.
"""
from __future__ import annotations

from asrkit.data.transcripts import FORMATS, Transcripts, detect_format, parse_transcripts, read_transcripts

__all__ = ["FORMATS", "Transcripts", "detect_format", "parse_transcripts", "read_transcripts"]
