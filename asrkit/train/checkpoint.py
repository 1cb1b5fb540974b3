"""Checkpoints: atomic save/load, RNG states, and weight averaging.

A checkpoint is a ``torch.save`` dict::

    model, optimizer, scheduler, scaler   state_dicts (scaler None without fp16)
    rng        list over ranks of {python, numpy, torch, cuda} generator states
    epoch      the epoch the data position refers to (0-based)
    position   global batches of that epoch already done (0 at an epoch start)
    step       optimizer updates so far
    best, best_epoch, bad_epochs, nan_streak, nan_total
    config     the resolved config

``checkpoints/epoch-N.pt`` (N counted from 1) is written after epoch N with
``epoch=N, position=0``; ``last.pt`` is the latest state (also written
mid-epoch, see ``train.save_every_steps`` / ``train.save_every_min``);
``best.pt`` the epoch with the best dev metric.
"""
from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrkit.errors import InputError, UsageError
from asrkit.io import atomic_write

__all__ = [
    "average_checkpoints",
    "copy_atomic",
    "epoch_checkpoints",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` through a temp file + rename: never a half-written file."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    with open(src, "rb") as f_in, atomic_write(dst, "wb") as f_out:
        shutil.copyfileobj(f_in, f_out, 1 << 20)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such checkpoint")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated / foreign file
        raise InputError(f"{p}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ck, dict) or "model" not in ck:
        raise InputError(f"{p}: not an asrkit checkpoint (no 'model' entry)")
    return ck


def rng_state() -> dict[str, Any]:
    """Every generator the training loop draws from (dropout, torch init)."""
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(st["cuda"])
        except (RuntimeError, IndexError):
            pass  # another GPU count than when saved: dropout masks on GPU are not reproduced


_EPOCH = re.compile(r"^epoch-(\d+)\.pt$")


def epoch_checkpoints(exp: str | os.PathLike) -> list[tuple[int, Path]]:
    """``[(N, path)]`` of ``exp/checkpoints/epoch-N.pt``, by N."""
    d = Path(exp) / "checkpoints"
    found = []
    if d.is_dir():
        for p in d.iterdir():
            m = _EPOCH.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found)


def average_checkpoints(exp: str | os.PathLike, last: int, out: str | os.PathLike | None = None) -> Path:
    """Average the model weights of the last ``last`` epoch checkpoints of
    ``exp`` into ``out`` (default ``exp/checkpoints/avg-last-N.pt``).

    Floating-point tensors are averaged (in float64, stored in their dtype);
    integer buffers (BatchNorm's ``num_batches_tracked``) come from the newest.
    The result has ``model``, ``config``, ``averaged`` (the epochs) and loads
    with :func:`asrkit.models.load_model` (``checkpoint="avg-last-N"``).
    """
    if last < 1:
        raise UsageError(f"--last must be >= 1 (got {last})")
    found = epoch_checkpoints(exp)
    if not found:
        raise InputError(f"{exp}/checkpoints: no epoch-N.pt checkpoints to average")
    if len(found) < last:
        raise UsageError(f"{exp}: --last {last} but only {len(found)} epoch checkpoint(s) "
                         f"({', '.join(p.name for _, p in found)})")
    chosen = found[-last:]
    acc: dict[str, torch.Tensor] = {}
    newest = None
    for _, p in chosen:
        ck = load_checkpoint(p)
        sd = ck["model"]
        if acc and set(sd) != set(acc):
            raise InputError(f"{p}: has other weights than {chosen[0][1].name}; cannot average them")
        for k, v in sd.items():
            if torch.is_floating_point(v):
                acc[k] = acc[k] + v.double() if k in acc else v.double().clone()
            else:
                acc[k] = v.clone()
        newest = ck
    assert newest is not None
    avg = {k: (v / len(chosen)).to(newest["model"][k].dtype) if torch.is_floating_point(newest["model"][k]) else v
           for k, v in acc.items()}
    dst = Path(out) if out is not None else Path(exp) / "checkpoints" / f"avg-last-{last}.pt"
    save_checkpoint({"model": avg, "config": newest.get("config"), "averaged": [n for n, _ in chosen],
                     "epoch": newest.get("epoch")}, dst)
    return dst
