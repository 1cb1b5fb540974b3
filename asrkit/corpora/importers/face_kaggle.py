"""Importer for the 11-785 course's face data (HW2P2, Kaggle): ``asrkit data import faces-11785 SRC DST``.

The layouts of the semesters, each found by its folder names::

    SRC/train_data/<id>/*.jpg  SRC/val_data/<id>/  SRC/test_data/*.jpg        (2021)
    SRC/verification_pairs_val.txt   'img1 img2 label' (paths relative to SRC)
    SRC/verification_pairs_test.txt  'img1 img2'

    SRC/classification/{train,dev}/<id>/*.jpg  SRC/classification/test/        (2022 on)
    SRC/train/<id>/  SRC/dev/<id>/  SRC/test/                                  (any of these names)
    SRC/cls_data/{train,val,test}/images/ + labels.txt ('image label' lines)
    SRC/ver_data/val_pairs.txt  SRC/ver_data/test_pairs.txt
    SRC/verification/verification_dev.csv ... (img1,img2[,label]; a header line is skipped)

into the faces layout (:mod:`asrkit.corpora.importers.face_layout`):
``DST/train``, ``DST/dev``, ``DST/test`` and ``DST/verify`` (the labelled
pairs) / ``DST/verify_test`` (the unlabelled ones), linked to SRC. A pair
list's image paths are looked up relative to its folder, then to SRC. The
training folder is required; a layout without one is refused naming what
was looked for.
"""
from __future__ import annotations

from pathlib import Path

from asrkit import log
from asrkit.corpora.importers.face_layout import class_folders, image_files, link, link_classes, link_pairs, pick
from asrkit.errors import InputError

SPLIT_DIRS = {
    "train": ("train", "train_data", "classification/train", "classification_data/train_data", "cls_data/train"),
    "dev": ("dev", "val", "val_data", "classification/dev", "classification/val", "classification_data/val_data",
            "cls_data/val"),
    "test": ("test", "test_data", "classification/test", "classification_data/test_data", "cls_data/test"),
}
PAIR_FILES = {
    "verify": ("verification_pairs_val.txt", "ver_data/val_pairs.txt", "verification/verification_dev.csv",
               "verification_dev.csv", "verification/dev_pairs.txt"),
    "verify_test": ("verification_pairs_test.txt", "ver_data/test_pairs.txt", "verification/verification_test.csv",
                    "verification_test.csv", "verification/test_pairs.txt"),
}


def _labels_txt(folder: Path, dst: Path, split: str) -> int:
    """``folder/images/`` + ``folder/labels.txt`` ('image label' lines) -> ``dst/<label>/<image>`` links
    (``dst/<image>`` for lines without a label)."""
    from asrkit.data.images import find_image
    from asrkit.io import iter_lines

    n = 0
    for lineno, line in iter_lines(folder / "labels.txt"):
        parts = line.split()
        if len(parts) not in (1, 2):
            raise InputError(f"{folder / 'labels.txt'}:{lineno}: expected 'image label', got {line!r}")
        img = find_image(parts[0], (folder / "images", folder))
        if img is None:
            raise InputError(f"{folder / 'labels.txt'}:{lineno}: no such image {parts[0]!r}")
        link(img, dst / split / (parts[1] if len(parts) == 2 else "") / img.name)
        n += 1
    return n


def import_split(folder: Path, dst: Path, split: str) -> int:
    """One classification split folder -> ``dst/split`` (class folders linked; a
    test split's loose images too); returns its images."""
    if (folder / "labels.txt").is_file() and (folder / "images").is_dir():
        return _labels_txt(folder, dst, split)
    if split == "test":
        n = 0
        if class_folders(folder):  # the course's test folder sometimes holds one sub-folder
            for c in class_folders(folder):
                for f in image_files(folder / c):
                    link(folder / c / f, dst / "test" / f)
                    n += 1
        for f in image_files(folder):
            link(folder / f, dst / "test" / f)
            n += 1
        if n == 0:
            raise InputError(f"{folder}: the test folder has no images")
        return n
    return link_classes(folder, dst / split, split)


def import_face_kaggle(src: Path, dst: Path) -> dict[str, Path]:
    from asrkit.data.images import read_pairs

    found = {split: pick(src, names) for split, names in SPLIT_DIRS.items()}
    pair_files = {name: pick(src, files) for name, files in PAIR_FILES.items()}
    if found["train"] is None or not found["train"].is_dir():
        raise InputError(f"{src}: not the 11-785 face layout: no training folder (looked for "
                         f"{', '.join(SPLIT_DIRS['train'])})")
    # every pair list is read (and its images checked) before anything is written
    pairs = {name: read_pairs(path, roots=(path.parent, src)) for name, path in pair_files.items() if path is not None}
    written: dict[str, Path] = {}
    for split, folder in found.items():
        if folder is None:
            if split == "dev":
                log.warn(f"{src}: no dev folder (looked for {', '.join(SPLIT_DIRS['dev'])}); train with another "
                         f"dev set")
            continue
        import_split(folder, dst, split)
        written[split] = dst / split
    for name, plist in pairs.items():
        path = pair_files[name]
        labelled = all(p.label is not None for p in plist)
        if name == "verify" and not labelled:
            raise InputError(f"{path}: the validation pairs need a label (img1 img2 label) on every line")
        link_pairs(plist, (path.parent, src), dst / name, labelled)
        written[name] = dst / name
    return written
