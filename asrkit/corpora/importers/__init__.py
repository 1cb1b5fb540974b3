"""Corpus importers: a corpus as it comes off the disk -> Kaldi-style data dirs.

    asrkit data import wsj /corpora/wsj data/wsj
    asrkit data import librispeech /corpora/LibriSpeech data/libri
    asrkit data import kaggle-11785 /corpora/11785-hw1 data/hw1
    asrkit data import folder /my/recordings data/mine
    asrkit data import faces-11785 /corpora/11785-hw2p2 data/faces   # image formats: the faces layout
    asrkit data import lfw /corpora/lfw data/lfw
    asrkit data import image-folder /my/photos data/photos

:func:`import_corpus` dispatches on the format name; each importer returns
the data dirs it wrote (name -> path).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from asrkit.errors import UsageError

FORMATS = ("wsj", "librispeech", "kaggle-11785", "folder", "faces-11785", "lfw", "image-folder")
#: the formats that write image folders (the faces layout), not data dirs
IMAGE_FORMATS = ("faces-11785", "lfw", "image-folder")


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
    if fmt == "faces-11785":
        from asrkit.corpora.importers.face_kaggle import import_face_kaggle

        return import_face_kaggle
    if fmt == "lfw":
        from asrkit.corpora.importers.face_lfw import import_lfw

        return import_lfw
    if fmt == "image-folder":
        from asrkit.corpora.importers.face_folder import import_image_folder

        return import_image_folder
    raise UsageError(f"unknown corpus format '{fmt}' (use one of {', '.join(FORMATS)})")


def import_corpus(fmt: str, src: str | os.PathLike, dst: str | os.PathLike, **options) -> dict[str, Path]:
    """Import corpus ``src`` in format ``fmt`` into ``dst``; returns the data
    dirs written (split name -> path)."""
    from asrkit.errors import InputError

    if not Path(src).is_dir():
        raise InputError(f"{src}: no such corpus folder")
    return _get(fmt)(Path(src), Path(dst), **options)


__all__ = ["FORMATS", "IMAGE_FORMATS", "import_corpus"]
