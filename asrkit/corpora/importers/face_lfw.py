"""Importer for Labeled Faces in the Wild: ``asrkit data import lfw SRC DST``.

    SRC/lfw/<Name>/<Name>_0001.jpg     (or lfw-deepfunneled/, lfw_funneled/, lfw-funneled/, lfwa/,
                                        or the person folders in SRC itself)
    SRC/pairs.txt                      the 10-fold protocol: '10 300', then 'name n1 n2' (same person)
                                       and 'name1 n1 name2 n2' (two people) lines
                                       (or pairsDevTest.txt, pairsDevTrain.txt; also inside the image folder)

becomes ``DST/verify/<Name>/`` (the person folders of the pairs, linked),
``DST/verify/pairs.txt`` and ``pairs_labels.txt`` (6,000 pairs in protocol
order: fold k is pairs 600k .. 600k+599). LFW is a verification set: there
is no training split (train a face model on other identities).
"""
from __future__ import annotations

from pathlib import Path

from asrkit.corpora.importers.face_layout import class_folders, link, link_pairs, pick
from asrkit.errors import InputError

IMAGE_DIRS = ("lfw", "lfw-deepfunneled", "lfw_funneled", "lfw-funneled", "lfwa")
PAIR_FILES = ("pairs.txt", "pairsDevTest.txt", "pairsDevTrain.txt")


def import_lfw(src: Path, dst: Path) -> dict[str, Path]:
    from asrkit.data.images import read_lfw_pairs

    images = pick(src, IMAGE_DIRS)
    if images is None:
        if not class_folders(src):
            raise InputError(f"{src}: not the LFW layout: no image folder (looked for {', '.join(IMAGE_DIRS)}, "
                             f"or <Name>/ folders of images in it)")
        images = src
    pairs_file = pick(src, PAIR_FILES) or pick(images, PAIR_FILES)
    if pairs_file is None:
        raise InputError(f"{src}: not the LFW layout: no pairs file (looked for {', '.join(PAIR_FILES)} in {src} "
                         f"and {images})")
    pairs = read_lfw_pairs(pairs_file, images)  # every image checked before anything is written
    people = sorted({p.a.split("/")[0] for p in pairs} | {p.b.split("/")[0] for p in pairs})
    for name in people:  # whole person folders (one link each), not one link per image
        link(images / name, dst / "verify" / name)
    link_pairs(pairs, (images,), dst / "verify", labelled=True)
    return {"verify": dst / "verify"}
