"""Image data: image folders, verification pairs, image tensors, augmentation.

The on-disk formats of the face and GAN tasks (the course's face layout)::

    ROOT/<class>/<image>.png|jpg|jpeg|bmp|webp     an image folder: one sub-folder per class
    PAIRS: img1 img2 [label]                       verification pairs, paths relative to the
                                                   pairs file's folder (or absolute); label 0 | 1
    LABELS: one 0|1 per line (or img1 img2 label)  the labels of a pairs file, in pair order

* :func:`read_image` — one image file -> ``uint8 (C, H, W)`` (Pillow).
* :class:`ImageSet`, :func:`open_image_folder` (labelled by class folder),
  :func:`open_images` (unlabelled: given names or every image under a folder),
  :func:`open_pair_images` (the images a pairs list names).
* :class:`Pair`, :func:`read_pairs`, :func:`read_lfw_pairs` (LFW's ``pairs.txt`` protocol).
* :func:`to_float` / :func:`to_uint8` — ``uint8 [0, 255]`` <-> ``float32 [-1, 1]``.
* :class:`Augment` — random crop after reflect padding, horizontal flip,
  brightness/contrast jitter, drawn from a ``torch.Generator``.
* :func:`save_image`, :func:`save_grid` — atomic PNG writes; :func:`write_image_file`
  for the many files of a corpus (renamed into place, no fsync each).

Every set is held in memory as one ``uint8 (N, C, H, W)`` tensor (500
identities x 20 images x 64 x 64 x 3 is 123 MB). All images of a set must
share one size and channel count (mixed ones: a :class:`DataError` naming
the first odd image); ``channels`` converts every image to 1 (L) or 3 (RGB)
channels on reading. Names are posix paths relative to the root, sorted by
code point (the C locale), so a set's order is the same everywhere.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from asrkit.errors import DataError, InputError, quote

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["IMAGE_SUFFIXES", "Augment", "AugmentDraw", "ImageSet", "Pair", "encode_image", "find_image",
           "is_image_name", "lfw_image", "make_grid", "open_image_folder", "open_images", "open_pair_images",
           "read_image", "read_lfw_pairs", "read_pairs", "save_grid", "save_image", "to_float", "to_uint8",
           "write_image_file"]

#: the file name endings of images (any case)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

#: Pillow modes kept as they are when no channel count is asked for; other modes become RGB
_MODES = {"L": 1, "RGB": 3}


def is_image_name(name: str) -> bool:
    """Whether a file name ends in one of :data:`IMAGE_SUFFIXES` (any case) and is not hidden."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


# ------------------------------------------------------------------ one image
def _to_mode(img: PILImage.Image, channels: int | None) -> PILImage.Image:
    if channels is None:
        if img.mode in _MODES:
            return img
        if img.mode in ("LA", "I", "I;16", "F") or (img.mode == "P" and _palette_is_gray(img)):
            return img.convert("L")
        return img.convert("RGB")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None (got {channels})")
    return img.convert("L" if channels == 1 else "RGB")


def _palette_is_gray(img: PILImage.Image) -> bool:
    pal = img.getpalette() or []
    rgb = np.asarray(pal[:768], dtype=np.int32).reshape(-1, 3) if len(pal) >= 3 else np.zeros((0, 3))
    return bool(len(rgb)) and bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())


def read_image(path: str | os.PathLike, channels: int | None = None) -> torch.Tensor:
    """The image file ``path`` as ``uint8 (C, H, W)``: 1 channel for grayscale
    files and 3 for colour ones (alpha dropped), or ``channels`` (1 | 3)
    whatever the file holds. A missing file, a file that is not an image and
    a truncated one raise :class:`InputError` naming it."""
    from PIL import Image, UnidentifiedImageError

    name = str(path)
    try:
        with Image.open(path) as img:
            img.load()  # decodes now: a truncated file fails here, not later
            arr = np.asarray(_to_mode(img, channels))
    except FileNotFoundError:
        raise InputError(f"{name}: no such image") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a folder, expected an image file") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image (Pillow cannot identify its format)") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"{name}: not an image asrkit reads ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise InputError(f"{name}: not an image ({e})") from None
    if arr.ndim == 2:
        arr = arr[None]                               # (1, H, W)
    else:
        arr = arr.transpose(2, 0, 1)                  # (H, W, C) -> (C, H, W)
    return torch.from_numpy(np.array(arr, dtype=np.uint8, order="C"))  # a writable copy


# ------------------------------------------------------------------ sets of images
@dataclass
class ImageSet:
    """Images of one shape held in memory.

    ``images`` ``uint8 (N, C, H, W)``; ``labels`` ``int64 (N,)``: the index of
    the image's class in ``classes``, -1 for an unlabelled image; ``names``:
    each image's path relative to ``root`` (posix), for messages and outputs."""

    root: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    names: list[str]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def describe(self) -> str:
        """``"1000 images (3x64x64) of 50 classes"`` for log lines."""
        c, h, w = self.shape
        of = f" of {len(self.classes)} classes" if self.classes else ""
        return f"{len(self)} images ({c}x{h}x{w}){of}"


def _shape_text(shape: Sequence[int]) -> str:
    c, h, w = shape
    return f"{w}x{h} with {c} channel{'s' if c != 1 else ''}"


def _stack(root: Path, names: Sequence[str], channels: int | None, what: str) -> torch.Tensor:
    """Read ``root/name`` for every name into one ``uint8 (N, C, H, W)``; the
    first image sets the shape, an image of another one is a DataError.
    Pillow decodes outside the GIL, so a few threads read at once."""
    from concurrent.futures import ThreadPoolExecutor

    from asrkit import log

    first: torch.Tensor | None = None
    out: torch.Tensor | None = None
    show = len(names) >= 2000
    threads = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
    with log.progress(transient=True) if show else _NoBar() as bar, ThreadPoolExecutor(threads) as pool:
        task = bar.add_task(f"reading {what}", total=len(names))
        try:
            for i, x in enumerate(pool.map(lambda n: read_image(root / n, channels), names)):
                if first is None:
                    first = x
                    out = torch.empty((len(names), *x.shape), dtype=torch.uint8)
                elif x.shape != first.shape:
                    raise DataError(f"{root / names[i]}: the image is {_shape_text(x.shape)}, but {root / names[0]} "
                                    f"(the first of the {what}) is {_shape_text(first.shape)}; all images of a set "
                                    f"must have one size (resize them, or give channels to convert)")
                out[i] = x
                if show and i % 256 == 255:
                    bar.update(task, completed=i + 1)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # the first bad image ends the reading
            raise
    assert out is not None
    return out


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, *a, **k) -> int:
        return 0

    def update(self, *a, **k) -> None:
        return None


def _need_folder(root: Path, what: str) -> None:
    if not root.exists():
        raise InputError(f"{root}: no such {what}")
    if not root.is_dir():
        raise InputError(f"{root}: is a file; the {what} must be a folder")


def open_image_folder(root: str | os.PathLike, classes: list[str] | None = None, *, what: str = "image folder",
                      channels: int | None = None) -> ImageSet:
    """The labelled images ``root/<class>/*.<suffix>`` (:data:`IMAGE_SUFFIXES`),
    classes and images sorted by code point (C locale); hidden files and
    folders, and class folders without images, are left out.

    ``classes`` (a dev set opened with the training set's classes): the labels
    are indices into it, and a class folder with images that is not in it is
    a :class:`DataError` naming it. A missing or empty folder, images of
    mixed sizes, and a class name with white space (class names are
    ``units.txt`` lines) raise one line naming the path."""
    root = Path(root)
    _need_folder(root, what)
    found: dict[str, list[str]] = {}
    loose: list[str] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = sorted(e.name for e in os.scandir(entry.path) if is_image_name(e.name) and e.is_file())
            if files:
                found[entry.name] = [f"{entry.name}/{f}" for f in files]
        elif is_image_name(entry.name):
            loose.append(entry.name)
    if not found:
        hint = (f" (found images directly in it, e.g. {loose[0]}; put each class's images in a sub-folder "
                f"named after the class)") if loose else ""
        raise InputError(f"{root}: no images in class folders; the {what} must hold {root}/<class>/*.png "
                         f"(or {', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES[1:])}){hint}")
    if loose:
        from asrkit import log

        log.warn(f"{root}: {len(loose)} image(s) outside the class folders left out (e.g. {loose[0]})")
    for name in found:
        if name != name.strip() or len(name.split()) != 1:
            raise DataError(f"{root / name}: a class folder name with white space ({quote(name)}); class names "
                            f"become units.txt lines, rename the folder")
    if classes is None:
        classes = list(found)
    else:
        index = set(classes)
        odd = [c for c in found if c not in index]
        if odd:
            raise DataError(f"{root / odd[0]}: class {quote(odd[0])} of the {what} is not a class of the training "
                            f"set ({len(odd)} such class folder{'s' if len(odd) > 1 else ''}); the {what} must "
                            f"use the training set's classes")
    ids = {c: i for i, c in enumerate(classes)}
    names = [n for c in found for n in found[c]]
    labels = torch.tensor([ids[c] for c in found for _ in found[c]], dtype=torch.int64)
    images = _stack(root, names, channels, what)
    return ImageSet(str(root), images, labels, list(classes), names)


def open_images(root: str | os.PathLike, names: Sequence[str] | None = None, *, channels: int | None = None,
                what: str = "image folder") -> ImageSet:
    """Unlabelled images (labels -1, no classes): ``root/name`` for the given
    relative (or absolute) ``names``, in that order, or every image under
    ``root`` at any depth, sorted by relative path. For prediction,
    verification and sample scoring."""
    root = Path(root)
    _need_folder(root, what)
    if names is None:
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(root)
            found.extend((rel / f).as_posix() for f in filenames if is_image_name(f))
        names = sorted(found)
        if not names:
            raise InputError(f"{root}: no images in the {what} (looked for "
                             f"{', '.join('*' + s for s in IMAGE_SUFFIXES)} at any depth)")
    names = list(names)
    if not names:
        raise InputError(f"{root}: no images named")
    images = _stack(root, names, channels, what)
    return ImageSet(str(root), images, torch.full((len(names),), -1, dtype=torch.int64), [], names)


# ------------------------------------------------------------------ verification pairs
@dataclass
class Pair:
    """Two images to compare: paths as written in the pairs file (relative to its
    folder, or absolute), and 1 (same identity) / 0 (different) / None (unknown)."""

    a: str
    b: str
    label: int | None = None


def _label(text: str, where: str) -> int:
    if text not in ("0", "1"):
        raise InputError(f"{where}: a pair label must be 0 or 1, got {quote(text)}")
    return int(text)


def find_image(name: str, roots: Sequence[str | os.PathLike]) -> Path | None:
    """``root/name`` for the first root where that file exists (``name`` absolute: itself), or None."""
    for r in roots:
        p = Path(r) / name
        if p.is_file():
            return p
    return None


def read_pairs(path: str | os.PathLike, labels_path: str | os.PathLike | None = None, *,
               roots: Sequence[str | os.PathLike] | None = None) -> list[Pair]:
    """The pairs of ``path``: ``img1 img2`` or ``img1 img2 label`` lines (white
    space or commas between the fields; a header line such as
    ``img1,img2,label`` is skipped), image paths relative to the pairs
    file's folder (or to the first of ``roots`` that has them), or absolute.
    ``labels_path``: the labels in pair order, a ``0``/``1`` or an
    ``img1 img2 label`` line per pair (naming the same images). A line
    naming a missing image (``PAIRS:LINE: no such image 'x'``), a bad line
    or label, and a labels file whose count or images do not match raise
    one line."""
    from asrkit.io import iter_lines

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; expected a pairs file ('img1 img2 [label]' lines)")
    bases = [path.parent] if roots is None else list(roots)
    pairs: list[Pair] = []
    for lineno, line in iter_lines(path):
        parts = line.replace(",", " ").split()
        where = f"{path}:{lineno}"
        if not pairs and len(parts) in (2, 3) and not any(is_image_name(Path(p).name) for p in parts[:2]) \
                and find_image(parts[0], bases) is None:
            continue  # a header line
        if len(parts) not in (2, 3):
            raise InputError(f"{where}: expected 'img1 img2' or 'img1 img2 label', got {quote(line)}")
        for p in parts[:2]:
            if find_image(p, bases) is None:
                raise InputError(f"{where}: no such image {quote(p)}")
        pairs.append(Pair(parts[0], parts[1], _label(parts[2], where) if len(parts) == 3 else None))
    if not pairs:
        raise InputError(f"{path}: no pairs (expected 'img1 img2 [label]' lines)")
    if labels_path is None:
        return pairs
    labels_path = Path(labels_path)
    given = list(iter_lines(labels_path))
    if len(given) != len(pairs):
        raise DataError(f"{labels_path}: {len(given)} labels for the {len(pairs)} pairs of {path}; "
                        f"give one label per pair, in pair order")
    for k, (pair, (lineno, line)) in enumerate(zip(pairs, given)):
        parts = line.replace(",", " ").split()
        where = f"{labels_path}:{lineno}"
        if len(parts) == 3:
            if parts[:2] != [pair.a, pair.b]:
                raise DataError(f"{where}: names {quote(' '.join(parts[:2]))}, but pair {k + 1} "
                                f"of {path} is {quote(pair.a + ' ' + pair.b)}; the labels must be in pair order")
        elif len(parts) != 1:
            raise InputError(f"{where}: expected a label (0 or 1) or 'img1 img2 label', got {quote(line)}")
        label = _label(parts[-1], where)
        if pair.label is not None and pair.label != label:
            raise DataError(f"{where}: label {label}, but {path} gives {pair.label} for the pair "
                            f"{quote(pair.a + ' ' + pair.b)}")
        pair.label = label
    return pairs


def lfw_image(name: str, number: int) -> str:
    """LFW's file of image ``number`` of person ``name``: ``name/name_0001.jpg``."""
    return f"{name}/{name}_{number:04d}.jpg"


def read_lfw_pairs(path: str | os.PathLike, images: str | os.PathLike) -> list[Pair]:
    """The pairs of an LFW ``pairs.txt`` (``pairsDevTrain.txt``, ``pairsDevTest.txt``):
    a header line (``10 300``: folds and same pairs per fold, or one number),
    then ``name n1 n2`` (one person, label 1) and ``name1 n1 name2 n2``
    (two people, label 0) lines; the images are
    ``images/<name>/<name>_<nnnn>.jpg``. In the 10-fold protocol the folds
    are consecutive: 300 same then 300 different pairs each. The pairs'
    paths are relative to ``images``; a missing image raises
    ``PAIRS:LINE: no such image 'x'``."""
    from asrkit.io import iter_lines

    path, images = Path(path), Path(images)
    pairs: list[Pair] = []
    header = True
    for lineno, line in iter_lines(path):
        parts = line.split()
        where = f"{path}:{lineno}"
        if header:
            header = False
            if all(p.isdigit() for p in parts) and len(parts) in (1, 2):
                continue
        try:
            if len(parts) == 3:
                pair = Pair(lfw_image(parts[0], int(parts[1])), lfw_image(parts[0], int(parts[2])), 1)
            elif len(parts) == 4:
                pair = Pair(lfw_image(parts[0], int(parts[1])), lfw_image(parts[2], int(parts[3])), 0)
            else:
                raise ValueError
        except ValueError:
            raise InputError(f"{where}: expected 'name n1 n2' or 'name1 n1 name2 n2' (LFW pairs.txt), "
                             f"got {quote(line)}") from None
        for p in (pair.a, pair.b):
            if not (images / p).is_file():
                raise InputError(f"{where}: no such image {quote(p)} (in {images})")
        pairs.append(pair)
    if not pairs:
        raise InputError(f"{path}: no pairs (an LFW pairs.txt has 'name n1 n2' / 'name1 n1 name2 n2' lines)")
    return pairs


def open_pair_images(root: str | os.PathLike, pairs: Sequence[Pair], *,
                     channels: int | None = None) -> tuple[ImageSet, list[tuple[int, int]]]:
    """The images ``pairs`` name (each once, in first-use order; relative to
    ``root``, the pairs file's folder) and, per pair, the indices of its two
    images in that set."""
    index: dict[str, int] = {}
    for p in pairs:
        for n in (p.a, p.b):
            index.setdefault(n, len(index))
    ds = open_images(root, list(index), channels=channels, what="pair images")
    return ds, [(index[p.a], index[p.b]) for p in pairs]


# ------------------------------------------------------------------ tensors
def to_float(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` in [0, 255] -> ``float32`` in [-1, 1]: ``(x / 255 - 0.5) / 0.5``."""
    return (images.to(torch.float32) / 255.0 - 0.5) / 0.5


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """``float`` in [-1, 1] (clamped) -> ``uint8`` in [0, 255], rounded; the inverse of :func:`to_float`."""
    return ((images.detach().float().clamp(-1, 1) * 0.5 + 0.5) * 255.0).round().to(torch.uint8)


@dataclass
class AugmentDraw:
    """The random choices of :class:`Augment` for N images: crop offsets
    ``(N, 2)`` (top, left) into the padded image, flips ``(N,)`` bool,
    brightness and contrast factors ``(N,)``."""

    offsets: torch.Tensor
    flips: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor

    @staticmethod
    def cat(draws: Sequence[AugmentDraw]) -> AugmentDraw:
        return AugmentDraw(*(torch.cat([getattr(d, f) for d in draws]) for f in
                             ("offsets", "flips", "brightness", "contrast")))


@dataclass
class Augment:
    """Training augmentation of float images in [-1, 1]:

    - ``crop`` > 0: pad by ``crop`` pixels on every side (reflect) and take a
      random window of the original size (a shift of up to ``crop`` pixels);
    - ``flip``: mirror left-right with probability 0.5;
    - ``jitter`` > 0: scale the brightness by a factor in ``[1 - j, 1 + j]``
      and the contrast (around the image's mean) by another, on [0, 1]
      intensities, clamped back into range.

    Every choice comes from the ``torch.Generator`` given (:meth:`draw`), so
    the same generator state gives the same images."""

    crop: int = 0
    flip: bool = False
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.crop < 0 or self.jitter < 0:
            raise ValueError(f"crop and jitter must be >= 0 (got {self.crop}, {self.jitter})")

    @property
    def active(self) -> bool:
        return self.crop > 0 or self.flip or self.jitter > 0

    def draw(self, n: int, gen: torch.Generator) -> AugmentDraw:
        """The choices for ``n`` images, in a fixed order from ``gen``."""
        offsets = torch.randint(0, 2 * self.crop + 1, (n, 2), generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5
        bc = 1 + self.jitter * (2 * torch.rand(2, n, generator=gen) - 1)
        if not self.flip:
            flips = torch.zeros(n, dtype=torch.bool)
        return AugmentDraw(offsets, flips, bc[0], bc[1])

    def apply(self, x: torch.Tensor, d: AugmentDraw) -> torch.Tensor:
        """``x`` ``(N, C, H, W)`` in [-1, 1] with the choices ``d`` -> ``(N, C, H, W)``."""
        n, _, h, w = x.shape
        if self.crop > 0:
            k = self.crop
            if k >= min(h, w):
                raise ValueError(f"augment crop {k} must be less than the image size {h}x{w}")
            padded = torch.nn.functional.pad(x, (k, k, k, k), mode="reflect")   # (N, C, H+2k, W+2k)
            x = torch.stack([padded[i, :, t:t + h, l:l + w]
                             for i, (t, l) in enumerate(d.offsets.tolist())])  # (N, C, H, W)
        if self.flip and bool(d.flips.any()):
            x = torch.where(d.flips[:, None, None, None], x.flip(-1), x)
        if self.jitter > 0:
            # on [0, 1] intensities y = (x + 1) / 2: y' = clamp((b y - m) c + m, 0, 1), m = mean(b y);
            # in [-1, 1] that is one affine map per image: x' = clamp(s x + t, -1, 1)
            b, c = d.brightness.to(x.dtype), d.contrast.to(x.dtype)               # (N,)
            m = b * (x.mean(dim=(1, 2, 3)) + 1) * 0.5                              # (N,)
            s = b * c
            t = s + 2 * m * (1 - c) - 1
            x = torch.addcmul(t[:, None, None, None], x, s[:, None, None, None]).clamp_(-1, 1)
        return x

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``x`` ``float (N, C, H, W)`` in [-1, 1] augmented with choices drawn from ``gen``."""
        if not self.active:
            return x
        return self.apply(x, self.draw(x.shape[0], gen))


# ------------------------------------------------------------------ writing
def _pil(image: torch.Tensor) -> PILImage.Image:
    """``uint8`` or float in [-1, 1], ``(C, H, W)`` with C 1 or 3 (or ``(H, W)``) -> a Pillow image."""
    from PIL import Image

    x = image if image.dtype == torch.uint8 else to_uint8(image)
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"an image is (C, H, W) with 1 or 3 channels (got shape {tuple(image.shape)})")
    arr = x.cpu().numpy()
    return Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")


def encode_image(image: torch.Tensor | np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """The bytes of an image file (``fmt`` as Pillow names it): ``uint8`` or float
    in [-1, 1] ``(C, H, W)``, or a numpy ``uint8 (H, W[, 3])``."""
    from PIL import Image

    img = Image.fromarray(image) if isinstance(image, np.ndarray) else _pil(image)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _format_of(path: Path) -> str:
    ext = path.suffix.lower()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}.get(ext)
    if fmt is None:
        raise InputError(f"{path}: cannot write an image of this kind (use a name ending in "
                         f"{', '.join(IMAGE_SUFFIXES)})")
    return fmt


def save_image(image: torch.Tensor, path: str | os.PathLike) -> None:
    """Write ``image`` (``uint8``, or float in [-1, 1]; ``(C, H, W)``) to
    ``path`` atomically, in the format of its ending (PNG for ``.png``)."""
    from asrkit.io import atomic_write

    path = Path(path)
    data = encode_image(image, _format_of(path))
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_image_file(image: torch.Tensor | np.ndarray, path: str | os.PathLike) -> None:
    """Write one image of a corpus of many (:func:`encode_image`, the format of
    the name's ending): to a temp name beside ``path``, then renamed, so no
    file looks whole before it is; without an fsync per file (the corpus
    writes its completion marker last)."""
    path = Path(path)
    fmt = _format_of(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(encode_image(image, fmt, **({"compress_level": 1} if fmt == "PNG" else {})))  # fast, a bit larger
    os.replace(tmp, path)


def make_grid(images: torch.Tensor, nrow: int = 8, pad: int = 2, fill: int = 255) -> torch.Tensor:
    """``(N, C, H, W)`` (``uint8``, or float in [-1, 1]) -> one ``uint8 (C, H', W')``
    image: ``nrow`` images per row, ``pad`` pixels of ``fill`` between and around them."""
    x = images if images.dtype == torch.uint8 else to_uint8(images)
    n, c, h, w = x.shape
    nrow = max(1, min(nrow, n))
    rows = (n + nrow - 1) // nrow
    grid = torch.full((c, pad + rows * (h + pad), pad + nrow * (w + pad)), fill, dtype=torch.uint8)
    for k in range(n):
        r, q = divmod(k, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top:top + h, left:left + w] = x[k]
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8, pad: int = 2) -> None:
    """Write ``images`` ``(N, C, H, W)`` as one grid image (:func:`make_grid`) to ``path``, atomically."""
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"save_grid takes (N, C, H, W) with N >= 1 (got shape {tuple(images.shape)})")
    save_image(make_grid(images, nrow, pad), path)

