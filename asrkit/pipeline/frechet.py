"""The quality table of a generator (``asrkit frechet``, ``asrkit sample``).

Features: the embedding (``model.embed``) of an image classifier trained on
the real training images with ``asrkit train face`` (the face task is a
generic N-way classifier: identities, or Fashion-MNIST's ten classes). Every
row is the Fréchet distance (:mod:`asrkit.score.frechet`) between the
Gaussian of ``num`` real training images' features (a seeded choice of
``REAL_DIR``) and that of ``num`` images of a source, and the mode coverage
of those images (the share of the classifier's classes it gives at least one
image with probability >= ``confidence``)::

    generator            the trained GAN's samples (or the images of a folder)
    held-out real        --heldout DIR: real images never trained on: the floor
    untrained generator  the GAN exp's model freshly initialized as its run was: a ceiling
    per-pixel Gaussian   independent per-pixel normals fitted to the real images: a ceiling

and ``ratio = (ceiling - generator) / (generator - floor)`` with the lower
(better) of the two ceilings: how many times closer the generator is to the
floor than to the ceiling.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from asrkit.errors import DataError, InputError, UsageError

__all__ = ["FrechetRow", "FrechetTable", "frechet_table", "load_generator", "pick_images"]


@dataclass
class FrechetRow:
    name: str
    #: floor | ceiling | generator
    role: str
    images: int
    fd: float
    coverage: float
    #: confident images per class
    counts: list[int] = field(default_factory=list)


@dataclass
class FrechetTable:
    rows: list[FrechetRow]
    classes: list[str]
    #: (min ceiling - generator) / (generator - floor); None without a floor
    ratio: float | None

    def as_dict(self) -> dict:
        return {"classes": self.classes, "ratio": self.ratio,
                "rows": [{"name": r.name, "role": r.role, "images": r.images, "frechet": r.fd,
                          "coverage": r.coverage, "counts": r.counts} for r in self.rows]}


def load_generator(exp: str | os.PathLike, checkpoint: str = "last", device: str = "auto",
                   impl: str | None = None) -> tuple[torch.nn.Module, dict]:
    """The DCGAN of a ``asrkit train gan`` exp (eval mode); a UsageError for any other exp."""
    from asrkit.config import load_saved_config
    from asrkit.decode.emissions import resolve_device
    from asrkit.models import load_model

    exp = Path(exp)
    if not exp.is_dir():
        raise InputError(f"{exp}: no such exp dir")
    task = load_saved_config(exp).get("task")
    if task != "gan":
        raise UsageError(f"{exp}: is a '{task}' exp, not a GAN; give an exp written by 'asrkit train gan'")
    return load_model(exp, checkpoint=checkpoint, device=resolve_device(device), impl=impl)


def _image_names(root: Path) -> list[str]:
    from asrkit.data.images import is_image_name

    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        found.extend((rel / f).as_posix() for f in filenames if is_image_name(f))
    return sorted(found)


def pick_images(root: str | os.PathLike, num: int, seed: int, channels: int | None = None) -> torch.Tensor:
    """``min(num, all)`` images of the folder ``root`` (any depth), a choice seeded by ``seed``,
    as ``float32 (N, C, H, W)`` in [-1, 1]."""
    from asrkit.data.images import open_images, to_float

    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: no such image folder")
    names = _image_names(root)
    if len(names) > num:
        keep = torch.randperm(len(names), generator=torch.Generator().manual_seed(int(seed)))[:num]
        names = [names[i] for i in sorted(keep.tolist())]
    return to_float(open_images(root, names or None, channels=channels).images)


@torch.no_grad()
def _classify(model: torch.nn.Module, images: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, C, H, W)`` -> ``(features (N, D), probabilities (N, K))`` on the CPU."""
    dev = next(model.parameters()).device
    feats, probs = [], []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].to(dev)
        feats.append(model.embed(x).double().cpu())
        probs.append(torch.softmax(model(x).double(), -1).cpu())
    return torch.cat(feats), torch.cat(probs)


def _pixel_gaussian(real: torch.Tensor, num: int, seed: int) -> torch.Tensor:
    """``num`` images of independent per-pixel normals with the real images' mean and std, clamped to [-1, 1]."""
    gen = torch.Generator().manual_seed(int(seed) + 1)
    mean, std = real.mean(0), real.std(0)                          # (C, H, W)
    return (mean + std * torch.randn(num, *real.shape[1:], generator=gen)).clamp(-1, 1)


def frechet_table(classifier: str | os.PathLike, real_dir: str | os.PathLike, gen: str | os.PathLike, *,
                  heldout: str | os.PathLike | None = None, num: int = 1000, seed: int = 0, batch: int = 256,
                  device: str = "auto", confidence: float = 0.5, checkpoint: str = "last",
                  on_row=None) -> FrechetTable:
    """The rows of the module docstring. ``gen``: a GAN exp dir (its ``checkpoint``) or an
    image folder. ``on_row(row)`` is called as each row is done."""
    from asrkit.models import build_model
    from asrkit.score.frechet import fit_gaussian, frechet_distance, mode_coverage

    if num < 2:
        raise UsageError(f"--num must be >= 2, got {num}")
    from asrkit.tasks.face import load_face_exp

    clf = load_face_exp(classifier, device=device, command="asrkit frechet (its features)")
    model, config, classes = clf.model, clf.config, clf.classes
    c, size = int(config["model"]["in_channels"]), config["model"]["image_size"]
    hw = list(size) if isinstance(size, (list, tuple)) else [size, size]
    real = pick_images(real_dir, num, seed, channels=c)
    if list(real.shape[2:]) != hw:
        raise DataError(f"{real_dir}: the images are {real.shape[3]}x{real.shape[2]}, the classifier "
                        f"{classifier} takes {hw[1]}x{hw[0]}")
    ref = fit_gaussian(_classify(model, real, batch)[0])
    rows: list[FrechetRow] = []

    def add(name: str, role: str, images: torch.Tensor) -> None:
        if tuple(images.shape[1:]) != tuple(real.shape[1:]):
            raise DataError(f"{name}: images of shape {tuple(images.shape[1:])}, the real ones "
                            f"{tuple(real.shape[1:])}")
        feats, probs = _classify(model, images, batch)
        share, counts = mode_coverage(probs, confidence)
        rows.append(FrechetRow(name, role, int(images.shape[0]), frechet_distance(ref, fit_gaussian(feats)), share,
                               counts.tolist()))
        if on_row is not None:
            on_row(rows[-1])

    gen = Path(gen)
    if (gen / "config.yaml").is_file():
        g, gcfg = load_generator(gen, checkpoint, device)
        add(f"generator ({gen})", "generator", g.sample(num, seed + 2, batch))
    else:
        gcfg = None
        add(f"images ({gen})", "generator", pick_images(gen, num, seed + 2, channels=c))
    if heldout is not None:
        add(f"held-out real ({heldout})", "floor", pick_images(heldout, num, seed + 3, channels=c))
    if gcfg is not None:
        torch.manual_seed(int(gcfg["train"]["seed"]))  # the trainer's initial weights
        fresh = build_model(gcfg["model"]).to(next(model.parameters()).device).eval()
        add("untrained generator", "ceiling", fresh.sample(num, seed + 2, batch))
    add("per-pixel Gaussian", "ceiling", _pixel_gaussian(real, num, seed))
    gen_fd = rows[0].fd
    floors = [r.fd for r in rows if r.role == "floor"]
    ceiling = min(r.fd for r in rows if r.role == "ceiling")
    ratio = None
    if floors:
        ratio = (ceiling - gen_fd) / max(gen_fd - floors[0], 1e-12)
    return FrechetTable(rows, classes, ratio)
