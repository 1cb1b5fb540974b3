"""Helpers shared by the importers."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

_BAD_ID = re.compile(r"\s+")


def clean_id(s: str) -> str:
    """An id without whitespace (Kaldi tables split on it)."""
    return _BAD_ID.sub("_", s.strip())


def walk_files(root: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files under ``root`` whose name ends (case-insensitively) in one of
    ``suffixes``, in sorted order; symlinked folders are followed."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(suffixes):
                yield Path(dirpath) / name


def split_name(name: str) -> str:
    """LibriSpeech-style split folder name -> data dir name (``dev-clean`` -> ``dev_clean``)."""
    return clean_id(name).replace("-", "_")
