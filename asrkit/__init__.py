"""asrkit: speech recognition experiments from raw audio to a scored WER.

See README.md for the command line, docs/ for the manual and docs/design.md for the layout.
"""
from __future__ import annotations

__version__ = "0.1.0"
