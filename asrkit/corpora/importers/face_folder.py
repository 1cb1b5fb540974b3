"""Importer for a plain image folder: ``asrkit data import image-folder SRC DST``.

    SRC/<class>/*.jpg|png|...          one folder per class (identity)
    SRC/train/<class>/ SRC/dev/<class>/ [SRC/test/]   or already split

becomes the faces layout (:mod:`asrkit.corpora.importers.face_layout`),
linked to SRC: already split folders as they are; otherwise
``DST/train/<class>/`` and ``DST/dev/<class>/``, where every fifth image of
a class (the 5th, 10th, ... in sorted order) goes to dev, so a class of
five or more images has dev images (one of fewer has none).
"""
from __future__ import annotations

from pathlib import Path

from asrkit.corpora.importers._common import clean_id
from asrkit.corpora.importers.face_kaggle import SPLIT_DIRS, import_split
from asrkit.corpora.importers.face_layout import class_folders, image_files, link, pick
from asrkit.errors import InputError

#: every DEV_EVERY-th image of a class goes to dev
DEV_EVERY = 5


def import_image_folder(src: Path, dst: Path) -> dict[str, Path]:
    train = pick(src, SPLIT_DIRS["train"][:2])
    if train is not None and train.is_dir():
        written = {}
        for split in ("train", "dev", "test"):
            folder = pick(src, SPLIT_DIRS[split][:3])
            if folder is not None and folder.is_dir():
                import_split(folder, dst, split)
                written[split] = dst / split
        return written
    classes = class_folders(src)
    if not classes:
        loose = image_files(src)
        hint = f" (found images directly in it, e.g. {loose[0]})" if loose else ""
        raise InputError(f"{src}: not an image folder: no <class>/ sub-folders of images, and no train/ folder{hint}")
    dev = False
    for c in classes:
        for k, f in enumerate(image_files(src / c)):
            to_dev = k % DEV_EVERY == DEV_EVERY - 1
            dev |= to_dev
            link(src / c / f, dst / ("dev" if to_dev else "train") / clean_id(c) / f)
    return {"train": dst / "train", **({"dev": dst / "dev"} if dev else {})}
