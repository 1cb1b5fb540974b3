"""What the face importers share: the faces layout they normalize into.

    DST/train/<class>/<image>     labelled image folders (a class folder, or its images, linked)
    DST/dev/<class>/<image>
    DST/test/<image>              unlabelled images (optional)
    DST/verify/...                the images of a labelled pair list, linked under their paths
    DST/verify/pairs.txt          'img1 img2', paths relative to verify/
    DST/verify/pairs_labels.txt   1 (same) or 0 per pair
    DST/verify_test/...           an unlabelled pair list (pairs.txt only)

The layout of ``asrkit corpus faces``, so ``asrkit train face`` and
``asrkit verify`` take either. Files and folders are symbolic links to the
source (absolute), or copies where the file system refuses links.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from asrkit.corpora.importers._common import clean_id
from asrkit.data.images import Pair, find_image, is_image_name
from asrkit.errors import InputError

__all__ = ["class_folders", "image_files", "link", "link_classes", "link_pairs", "pick"]


def pick(src: Path, candidates: Sequence[str]) -> Path | None:
    """The first ``src/candidate`` that exists (folder or file), or None."""
    for c in candidates:
        if (src / c).exists():
            return src / c
    return None


def image_files(folder: Path) -> list[str]:
    """The image file names directly in ``folder``, sorted."""
    return sorted(e.name for e in os.scandir(folder) if is_image_name(e.name) and e.is_file())


def class_folders(folder: Path) -> list[str]:
    """The sub-folders of ``folder`` that hold images, sorted (hidden ones left out)."""
    return sorted(e.name for e in os.scandir(folder)
                  if e.is_dir() and not e.name.startswith(".") and image_files(Path(e.path)))


def link(src: Path, dst: Path) -> None:
    """``dst`` -> ``src`` (absolute) as a symbolic link, or a copy where links fail."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    target = src.resolve()
    try:
        os.symlink(target, dst, target_is_directory=target.is_dir())
    except OSError:
        if target.is_dir():
            shutil.copytree(target, dst)
        else:
            shutil.copy2(target, dst)


def link_classes(folder: Path, dst: Path, what: str) -> int:
    """Link every class folder of ``folder`` as ``dst/<class>`` (white space in
    names turned into ``_``); returns the images. A folder without class
    folders of images raises one line naming it."""
    classes = class_folders(folder)
    if not classes:
        raise InputError(f"{folder}: the {what} folder has no <class>/ sub-folders of images")
    seen: dict[str, str] = {}
    n = 0
    for c in classes:
        name = clean_id(c)
        if name in seen:
            raise InputError(f"{folder / c}: class folder name {c!r} becomes {name!r}, as {seen[name]!r} does; "
                             f"rename one")
        seen[name] = c
        link(folder / c, dst / name)
        n += len(image_files(folder / c))
    return n


def link_pairs(pairs: list[Pair], roots: Sequence[Path], dst: Path, labelled: bool) -> int:
    """Link the images of ``pairs`` (found relative to ``roots``, see
    :func:`asrkit.data.images.read_pairs`) under ``dst`` keeping their relative
    paths, and write ``dst/pairs.txt`` (+ ``pairs_labels.txt`` when
    ``labelled``); returns the images linked."""
    from asrkit.io import atomic_write

    where: dict[str, str] = {}
    for p in pairs:
        for name in (p.a, p.b):
            if name in where:
                continue
            found = find_image(name, roots)
            assert found is not None  # read_pairs checked it
            rel = Path(name)
            if rel.is_absolute() or ".." in rel.parts:
                rel = Path(found.parent.name) / found.name
            if not (dst / rel).exists():
                link(found, dst / rel)
            where[name] = rel.as_posix()
    with atomic_write(dst / "pairs.txt") as f:
        f.writelines(f"{where[p.a]} {where[p.b]}\n" for p in pairs)
    if labelled:
        with atomic_write(dst / "pairs_labels.txt") as f:
            f.writelines(f"{p.label}\n" for p in pairs)
    return len(where)
