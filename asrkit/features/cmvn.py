"""CMVN statistics: they are part of the feature store format, so they live in
:mod:`asrkit.data.cmvn` (``data`` never imports ``features``); named here for
the feature pipeline."""
from __future__ import annotations

from asrkit.data.cmvn import CmvnStats, utterance_cmvn

__all__ = ["CmvnStats", "utterance_cmvn"]
