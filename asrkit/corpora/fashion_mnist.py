"""Fashion-MNIST as image folders (``asrkit corpus fashion-mnist OUT``).

Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, MIT license): 70,000 28x28
grayscale images of clothing in 10 classes, 60,000 for training and 10,000
for testing. Debian's ``dataset-fashion-mnist`` package installs its idx
files under ``/usr/share/datasets/fashion-mnist/``::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

:func:`write_fashion_mnist` writes them as the image folders the image tasks
read: ``OUT/train/<class>/<class>_NNNNN.png`` from the training split and
``OUT/dev/<class>/...`` from the test split (NNNNN: the image's index in its
split), the first ``per_class`` images of each class when given. Class
folders are ``0-tshirt`` ... ``9-ankle_boot``: the label first, so their
sorted order is the label order. ``OUT/fashion_mnist.yaml`` is written last.
"""
from __future__ import annotations

import gzip
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asrkit.errors import InputError, UsageError

__all__ = ["CLASSES", "DEBIAN_DIR", "FashionResult", "read_idx", "write_fashion_mnist"]

#: where Debian's dataset-fashion-mnist puts the idx files
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: class folder names, in label order
CLASSES = ("0-tshirt", "1-trouser", "2-pullover", "3-dress", "4-coat", "5-sandal", "6-shirt", "7-sneaker", "8-bag",
           "9-ankle_boot")
#: split folder -> the idx files' prefix
SPLITS = {"train": "train", "dev": "t10k"}
INSTALL = "install it: apt-get install dataset-fashion-mnist (or give --from DIR with its idx files)"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An idx file (gzipped or not): ``uint8`` images ``(N, rows, cols)`` (magic
    2051) or labels ``(N,)`` (magic 2049). A missing, short or malformed file
    raises :class:`InputError` naming it."""
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; {INSTALL}") from None
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: cannot read it ({e})") from None
    if len(data) < 8:
        raise InputError(f"{path}: not an idx file (only {len(data)} bytes)")
    magic, n = int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big")
    if magic == 2049:
        shape, start = (n,), 8
    elif magic == 2051 and len(data) >= 16:
        shape, start = (n, int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")), 16
    else:
        raise InputError(f"{path}: not an idx file of uint8 images or labels (magic number {magic})")
    size = int(np.prod(shape))
    if len(data) - start != size:
        raise InputError(f"{path}: holds {len(data) - start} bytes of data, its header says {size}; the file is "
                         f"truncated or damaged")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape)


def _find(source: Path, prefix: str, kind: str) -> Path:
    """``SOURCE/PREFIX-KIND-idxN-ubyte[.gz]``; an InputError naming the file when neither is there."""
    name = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for p in (source / f"{name}.gz", source / name):
        if p.is_file():
            return p
    what = "Fashion-MNIST is not installed" if source == DEBIAN_DIR else "no Fashion-MNIST idx file there"
    raise InputError(f"{source / name}.gz: no such file ({what}); {INSTALL}")


@dataclass
class FashionResult:
    """What :func:`write_fashion_mnist` wrote: images per split, wall seconds."""

    out: Path
    images: dict[str, int]
    seconds: float


def write_fashion_mnist(out: str | os.PathLike, per_class: int | None = None, dev_per_class: int | None = None,
                        source: str | os.PathLike | None = None) -> FashionResult:
    """Write ``out/train`` and ``out/dev`` (see the module docstring) from the idx
    files in ``source`` (default Debian's folder); ``out`` made ready by the caller."""
    import yaml

    from asrkit import log
    from asrkit.data.images import write_image_file
    from asrkit.io import atomic_write

    for name, v in (("--per-class", per_class), ("--dev-per-class", dev_per_class)):
        if v is not None and v < 1:
            raise UsageError(f"{name} must be >= 1 (got {v})")
    src = Path(source) if source is not None else DEBIAN_DIR
    if not src.is_dir():
        what = "Fashion-MNIST is not installed" if source is None else "no such folder"
        raise InputError(f"{src}: {what}; {INSTALL}")
    data = {}
    for split, prefix in SPLITS.items():  # every input is read and checked before anything is written
        images, labels = read_idx(_find(src, prefix, "images")), read_idx(_find(src, prefix, "labels"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise InputError(f"{src}: the {prefix} images and labels do not match ({images.shape}, {labels.shape})")
        if labels.size and int(labels.max()) >= len(CLASSES):
            raise InputError(f"{src}: a {prefix} label is {int(labels.max())}; Fashion-MNIST has labels 0-9")
        data[split] = (images, labels)
    out = Path(out)
    t0 = time.monotonic()
    (out / "fashion_mnist.yaml").unlink(missing_ok=True)
    counts: dict[str, int] = {}
    with log.progress() as bar:
        for split, (images, labels) in data.items():
            shutil.rmtree(out / split, ignore_errors=True)
            cap = per_class if split == "train" else dev_per_class
            keep = np.concatenate([np.flatnonzero(labels == c)[:cap] for c in range(len(CLASSES))])
            keep.sort()
            task = bar.add_task(f"writing {split}", total=len(keep))
            for c in CLASSES:
                (out / split / c).mkdir(parents=True, exist_ok=True)
            for k, i in enumerate(keep):
                c = CLASSES[int(labels[i])]
                write_image_file(images[i], out / split / c / f"{c}_{int(i):05d}.png")
                if k % 1000 == 999:
                    bar.update(task, completed=k + 1)
            bar.update(task, completed=len(keep))
            counts[split] = int(len(keep))
    with atomic_write(out / "fashion_mnist.yaml") as f:
        yaml.safe_dump({"command": "asrkit corpus fashion-mnist", "source": str(src.resolve()), "per_class": per_class,
                        "dev_per_class": dev_per_class, "classes": list(CLASSES), "images": counts}, f, sort_keys=False)
    return FashionResult(out, counts, time.monotonic() - t0)
