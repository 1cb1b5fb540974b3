"""The data side of the image tasks (``face``, ``gan``): :class:`ImageTask`.

Input: ``--train DIR`` and ``--dev DIR``, image folders of one sub-folder per
class (``DIR/<class>/*.png``, :func:`asrkit.data.images.open_image_folder`),
read into memory. The dev folder is opened with the training folder's
classes (a dev class the training set lacks is an error; one it does not
have is fine) and its images must have the training images' size and
channels. ``data.channels`` (1 | 3) converts every image on reading; null
keeps what the files hold.

Units (``units.kind`` ``class``): the training classes in sorted order, one
``class id`` line each in ``EXP/units/units.txt`` (no blank, no specials);
``units.num_classes`` is the number of classes, the model's ``num_classes``.
:meth:`ImageTask.open_data` fills in the model's ``in_channels`` and
``image_size`` (``H``, or ``[H, W]`` for non-square images) from the
training images (a config that gives other values is refused), and
:meth:`ImageTask.build_model` builds it with them.

Training batches (:class:`ImageBatchPlan`): ``data.batch_size`` images per
global batch, shuffled by ``(seed, epoch)`` (``data.shuffle``); under DDP
every rank takes every ``world_size``-th image of each global batch, and the
global normalizer is the global batch's image count (the loss is the mean
over the images of the global batch). A last batch of fewer images than
processes joins the one before it. Each batch (:class:`ImageBatch`) holds
``float32 (N, C, H, W)`` images in [-1, 1] (:func:`asrkit.data.images.to_float`),
augmented when ``data.augment_crop`` (pixels of reflect padding for a random
crop), ``data.augment_flip`` (left-right, p = 0.5) or ``data.augment_jitter``
(brightness/contrast factors in ``[1 - j, 1 + j]``) are set (all off by
default). The augmentation choices of an epoch are drawn at once, for every
image, from a generator seeded by ``(seed, epoch)``: an image's augmentation
depends only on the seed, the epoch and its index, never on the batch it
lands in, the number of processes or loader workers, so a resumed run sees
exactly the batches of one never stopped.

A subclass (``@register_task``) gives ``name``, ``model_types``, the model
defaults, :meth:`~asrkit.tasks.base.Task.loss` and
:meth:`~asrkit.tasks.base.Task.evaluate`; the dev set is the dev
:class:`~asrkit.data.images.ImageSet`, batched with :func:`image_batches`
and :func:`eval_batch`.
"""
from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrkit.errors import ConfigError, DataError, InputError
from asrkit.tasks.base import BatchPlan, Task, TaskData, TrainData

if TYPE_CHECKING:
    import torch

    from asrkit.data.images import Augment, AugmentDraw, ImageSet
    from asrkit.data.units import UnitMap

__all__ = ["CLASS_UNITS", "ImageBatch", "ImageBatchPlan", "ImageCollate", "ImageItems", "ImageTask", "eval_batch",
           "image_batches", "load_class_units", "write_class_units"]

#: the ``units.kind`` of the image tasks: one unit per class folder
CLASS_UNITS = "class"


# ------------------------------------------------------------------ units
def write_class_units(classes: Sequence[str], units_dir: Path) -> None:
    """Write the units folder ``units_dir`` (``units.txt``: ``class id`` lines),
    made beside it and renamed into place (a kill leaves no half-made folder)."""
    from asrkit.data.tokenizer import UNITS_FILE, write_units

    units_dir = Path(units_dir)
    tmp = units_dir.parent / f".{units_dir.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_units(tmp / UNITS_FILE, list(classes))
    shutil.rmtree(units_dir, ignore_errors=True)
    os.replace(tmp, units_dir)


def load_class_units(units_dir: str | os.PathLike) -> UnitMap:
    """The class units of an image task's ``units`` folder (:func:`write_class_units`)."""
    from asrkit.data.units import load_units_dir

    return load_units_dir(units_dir, CLASS_UNITS)


# ------------------------------------------------------------------ batches
@dataclass
class ImageBatch:
    """A batch of images: ``images`` ``float32 (N, C, H, W)`` in [-1, 1],
    ``labels`` ``int64 (N,)`` (class indices, -1 unlabelled), ``utts`` the
    images' names (for messages)."""

    images: torch.Tensor
    labels: torch.Tensor
    utts: list[str]

    def to(self, device: torch.device | str) -> ImageBatch:
        return ImageBatch(self.images.to(device, non_blocking=True), self.labels.to(device, non_blocking=True),
                          self.utts)

    @property
    def num_frames(self) -> int:
        """The images of the batch (what the trainer counts for images/s)."""
        return int(self.images.shape[0])

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class ImageItem:
    """Item ``i`` of :class:`ImageItems`: its image ``uint8 (C, H, W)``, label,
    name and index (the augmentation choices of the epoch are looked up by it)."""

    image: torch.Tensor
    label: int
    name: str
    index: int
    draw: Any = None  # AugmentDraw of this one image, or None


class ImageItems:
    """The training images as a dataset: ``items[i]`` is an :class:`ImageItem`.

    :meth:`set_epoch` draws the augmentation choices of every image for that
    epoch from a generator seeded by ``(seed, epoch)``."""

    def __init__(self, ds: ImageSet, augment: Augment, seed: int) -> None:
        self.ds, self.augment, self.seed = ds, augment, seed
        self.epoch = 0
        self.draws: AugmentDraw | None = None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        import torch

        from asrkit.features.specaugment import seed_of

        self.epoch = epoch
        if self.augment.active:
            gen = torch.Generator().manual_seed(seed_of((self.seed, epoch, "augment")))
            self.draws = self.augment.draw(len(self.ds), gen)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> ImageItem:
        draw = None
        if self.draws is not None:
            d = self.draws
            from asrkit.data.images import AugmentDraw

            draw = AugmentDraw(d.offsets[i:i + 1], d.flips[i:i + 1], d.brightness[i:i + 1], d.contrast[i:i + 1])
        return ImageItem(self.ds.images[i], int(self.ds.labels[i]), self.ds.names[i], i, draw)


@dataclass
class ImageCollate:
    """Items -> an :class:`ImageBatch`: the images stacked, scaled to [-1, 1]
    and augmented with each item's choices (picklable, for loader workers)."""

    augment: Augment

    def __call__(self, items: list[ImageItem]) -> ImageBatch:
        import torch

        from asrkit.data.images import AugmentDraw, to_float

        x = to_float(torch.stack([it.image for it in items]))                    # (N, C, H, W)
        if self.augment.active:
            x = self.augment.apply(x, AugmentDraw.cat([it.draw for it in items]))
        labels = torch.tensor([it.label for it in items], dtype=torch.int64)     # (N,)
        return ImageBatch(x.contiguous(), labels, [it.name for it in items])


class ImageBatchPlan(BatchPlan):
    """The global batches of an epoch: ``batch_size`` images each, in an order
    shuffled by ``(seed, epoch)`` (``shuffle``) or in set order; a last batch
    of fewer images than ``world_size`` joins the one before it. Iterating
    yields ``(this rank's image indices, the global batch's image count)``
    from global batch ``start`` on."""

    def __init__(self, num_images: int, batch_size: int, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        if batch_size < world_size:
            raise ValueError(f"batch_size={batch_size} is less than world_size={world_size}")
        self.num_images, self.batch_size, self.shuffle = int(num_images), int(batch_size), shuffle
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self.start = 0, 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def global_batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            order = list(range(self.num_images))
            if self.shuffle:
                random.Random(f"{self.seed}/{self.epoch}/images").shuffle(order)
            batches = [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)]
            if len(batches) > 1 and len(batches[-1]) < self.world_size:
                batches[-2].extend(batches.pop())
            self._cache = (self.epoch, batches)
        return self._cache[1]

    def __len__(self) -> int:
        return len(self.global_batches())

    def __iter__(self) -> Iterator[tuple[list[int], float]]:
        for b in self.global_batches()[self.start:]:
            yield b[self.rank::self.world_size], float(len(b))


def image_batches(ds: ImageSet, batch_size: int, dist=None) -> list[list[int]]:
    """This rank's share of the dev batches: every ``world_size``-th of the
    batches of ``batch_size`` images in set order (all of them when ``dist``
    is None: one process, e.g. ``asrkit verify``)."""
    batches = [list(range(k, min(k + batch_size, len(ds)))) for k in range(0, len(ds), batch_size)]
    return batches if dist is None else batches[dist.rank::dist.world_size]


def eval_batch(ds: ImageSet, indices: Sequence[int]) -> ImageBatch:
    """The images ``indices`` of ``ds`` as a batch, not augmented."""
    import torch

    from asrkit.data.images import to_float

    idx = torch.as_tensor(list(indices), dtype=torch.int64)
    return ImageBatch(to_float(ds.images[idx]), ds.labels[idx], [ds.names[i] for i in indices])


def _num_images(batch: ImageBatch) -> float:
    return float(len(batch))


# ------------------------------------------------------------------ the task
class ImageTask(Task):
    """The data hooks of a task that learns from image folders (see the module
    docstring); abstract: ``face`` and ``gan`` subclass it."""

    placeholder_dims = {"in_channels": 3, "image_size": 64, "num_classes": 2}

    train_needs = "one sub-folder of images per class"
    train_help = "Training image folder: DIR/<class>/*.png (or jpg, bmp, webp)."
    dev_help = "Dev image folder (the training set's classes), evaluated after each epoch."
    unit_kinds = (CLASS_UNITS,)
    percent_metrics = ("acc",)

    def __init__(self, cfg: dict) -> None:
        super().__init__(cfg)
        #: ``(C, H, W)`` of the training images, known after :meth:`open_data`
        self.image_shape: tuple[int, int, int] | None = None

    @classmethod
    def defaults(cls) -> dict:
        return {"model": {}, "units": {"kind": CLASS_UNITS}, "features": {"specaugment": False}}

    @classmethod
    def config_keys(cls) -> dict:
        return {"data": {
            "batch_size": (64, (int,), None),               # images per global batch
            "channels": (None, (int, type(None)), (None, 1, 3)),  # convert images to 1 or 3 channels
            "augment_crop": (0, (int,), None),              # random crop after this many pixels of padding
            "augment_flip": (False, (bool,), None),         # left-right flip with p = 0.5
            "augment_jitter": (0.0, (int, float), None),    # brightness/contrast factors in [1 - j, 1 + j]
        }}

    # ------------------------------------------------------------------ config
    def validate(self) -> None:
        super().validate()
        d = self.cfg["data"]
        if d["batch_size"] < 1:
            raise ConfigError(f"config key 'data.batch_size': must be >= 1 (got {d['batch_size']})")
        if d["augment_crop"] < 0:
            raise ConfigError(f"config key 'data.augment_crop': must be >= 0 (got {d['augment_crop']})")
        if not 0 <= d["augment_jitter"] < 1:
            raise ConfigError(f"config key 'data.augment_jitter': must be in [0, 1) (got {d['augment_jitter']})")
        if self.cfg["units"]["dir"] is not None:
            raise ConfigError(f"config key 'units.dir': the {self.name} task makes its units from the training "
                              f"folder's classes; leave units.dir out")

    def augment(self) -> Augment:
        """The training augmentation of the ``data`` section."""
        from asrkit.data.images import Augment

        d = self.cfg["data"]
        return Augment(d["augment_crop"], d["augment_flip"], float(d["augment_jitter"]))

    # ------------------------------------------------------------------ data
    def open_data(self, train: str, dev: str) -> TaskData:
        from asrkit.data.images import open_image_folder

        ch = self.cfg["data"]["channels"]
        tr = open_image_folder(train, what="training image folder", channels=ch)
        dv = open_image_folder(dev, tr.classes, what="dev image folder", channels=ch)
        if dv.shape != tr.shape:
            c, h, w = tr.shape
            dc, dh, dw = dv.shape
            raise DataError(f"{dev}: the dev images are {dw}x{dh} with {dc} channel(s) ({dv.names[0]}), the training "
                            f"images {w}x{h} with {c} ({tr.names[0]}); give images of one size (data.channels "
                            f"converts channels)")
        crop = self.cfg["data"]["augment_crop"]
        if crop >= min(tr.shape[1:]):
            raise ConfigError(f"config key 'data.augment_crop': {crop} pixels must be less than the image size "
                              f"{tr.shape[2]}x{tr.shape[1]}")
        self.image_shape = tr.shape
        # the trainer builds the model with another task object: the model section carries the shape to it
        c, h, w = tr.shape
        m = self.cfg["model"]
        for key, value in (("in_channels", c), ("image_size", h if h == w else [h, w])):
            given = m.get(key)
            if given is not None and given != value:
                raise DataError(f"model.{key}={given!r} but the images of {train} give {value!r}; leave "
                                f"model.{key} out (the task fills it in)")
            m[key] = value
        return TaskData(tr, dv, str(train), str(dev), input_dim=None)

    def train_data(self, data: TaskData, units: UnitMap, model: torch.nn.Module, *, seed: int,
                   dist) -> TrainData:
        d = self.cfg["data"]
        if d["batch_size"] < dist.world_size:
            raise ConfigError(f"data.batch_size={d['batch_size']} is less than the {dist.world_size} processes; "
                              f"every process needs an image of every batch")
        tr: ImageSet = data.train
        if list(units.units) != list(tr.classes):
            raise DataError(f"{units.source}: the units are not the classes of {data.train_path} "
                            f"({units.num_classes} units, {len(tr.classes)} classes); start a new run")
        aug = self.augment()
        items = ImageItems(tr, aug, seed)
        plan = ImageBatchPlan(len(tr), d["batch_size"], d["shuffle"], seed, dist.rank, dist.world_size)
        return TrainData(items, plan, ImageCollate(aug), data.dev, None, train_items=tr.describe(),
                         dev_items=data.dev.describe(), item="image", unit="images", count=_num_images,
                         nan_hint="try a lower optim.lr (or optim.grad_clip)")

    # ------------------------------------------------------------------ units
    def make_units(self, train: ImageSet, units_dir: Path) -> None:
        write_class_units(train.classes, units_dir)

    def load_units(self, units_dir: Path) -> UnitMap:
        return load_class_units(units_dir)

    # ------------------------------------------------------------------ model
    def build_model(self, model_cfg: dict) -> torch.nn.Module:
        """The model of ``model_cfg`` with ``in_channels`` and ``image_size``
        (``H``, or ``[H, W]``) filled in from the training images."""
        from asrkit.models import build_model

        if self.image_shape is not None:
            c, h, w = self.image_shape
            model_cfg["in_channels"] = c
            model_cfg["image_size"] = h if h == w else [h, w]
        elif "in_channels" not in model_cfg or "image_size" not in model_cfg:
            raise ConfigError(f"the {self.name} model needs model.in_channels and model.image_size "
                              f"(open_data fills them in from the training images)")
        return build_model(model_cfg)
