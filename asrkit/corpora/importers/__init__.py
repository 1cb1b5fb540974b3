"""Corpus importers: a corpus as it comes off the disk -> Kaldi-style data dirs.

    asrkit data import wsj /corpora/wsj data/wsj
    asrkit data import librispeech /corpora/LibriSpeech data/libri
    asrkit data import kaggle-11785 /corpora/11785-hw1 data/hw1
    asrkit data import folder /my/recordings data/mine

:func:`import_corpus` dispatches on the format name; each importer returns
the data dirs it wrote (name -> path).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from asrkit.errors import UsageError

FORMATS = ("wsj", "librispeech", "kaggle-11785", "folder")


def _get(fmt: str) -> Callable[..., dict[str, Path]]:
    if fmt == "wsj":
        from asrkit.corpora.importers.wsj import import_wsj

        return import_wsj
    if fmt == "librispeech":
        from asrkit.corpora.importers.librispeech import import_librispeech

        return import_librispeech
    if fmt in ("kaggle-11785", "kaggle_11785"):
        from asrkit.corpora.importers.kaggle_11785 import import_kaggle_11785

        return import_kaggle_11785
    if fmt == "folder":
        from asrkit.corpora.importers.folder import import_folder

        return import_folder
    raise UsageError(f"unknown corpus format '{fmt}' (use one of {', '.join(FORMATS)})")


def import_corpus(fmt: str, src: str | os.PathLike, dst: str | os.PathLike, **options) -> dict[str, Path]:
    """Import corpus ``src`` in format ``fmt`` into ``dst``; returns the data
    dirs written (split name -> path)."""
    from asrkit.errors import InputError

    if not Path(src).is_dir():
        raise InputError(f"{src}: no such corpus folder")
    return _get(fmt)(Path(src), Path(dst), **options)


__all__ = ["FORMATS", "import_corpus"]
