"""Training checkpoints: what they hold, RNG states, stale temp files, and weight averaging.

The file format (plain data, atomic save, weights-only load) is :mod:`asrkit.checkpoint`;
its names are re-exported here.

A checkpoint is a ``torch.save`` dict of tensors and plain containers only
(dict, list, tuple, str, int, float, bool, None), so it loads with
``torch.load(weights_only=True)``: a checkpoint is data and never runs code.
:func:`read_checkpoint` is the one way asrkit opens one; a file that the
weights-only loader refuses is refused with one line, never unpickled in full.

    model, optimizer, scheduler, scaler   state_dicts (scaler None without fp16)
    rng        list over ranks of {python, numpy, torch, cuda} generator states
               as tensors and numbers (see :func:`rng_state`)
    epoch      the epoch the data position refers to (0-based)
    position   global batches of that epoch already done (0 at an epoch start)
    step       optimizer updates so far
    best, best_epoch, bad_epochs, nan_streak, nan_total
    sums       mid-epoch: the loss / norm / frame sums of the log window and the
               epoch so far (the logged means of a resumed epoch are those of a
               run never stopped); None at an epoch end
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
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from asrkit import log
from asrkit.checkpoint import (CheckpointWriteError, copy_atomic, load_checkpoint, load_weights, read_checkpoint,
                               save_checkpoint, weights_mismatch)
from asrkit.errors import InputError, UsageError

__all__ = [
    "CheckpointWriteError",
    "average_checkpoints",
    "copy_atomic",
    "epoch_checkpoints",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "remove_stale_temps",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "weights_mismatch",
]



# ------------------------------------------------------------------ RNG states
def rng_state() -> dict[str, Any]:
    """Every generator the training loop draws from (dropout, torch init), as
    tensors and numbers (plain data, see :func:`set_rng_state`)."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    st: dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(words, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    py, npst = st["python"], st["numpy"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(st["cuda"])
        except (RuntimeError, IndexError):
            pass  # another GPU count than when saved: dropout masks on GPU are not reproduced



# ------------------------------------------------------------------ temp files of interrupted writes
#: the names :func:`asrkit.io.atomic_write` gives its temp files: ``.NAME.<8 random chars>.tmp``
_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temps(folders: Iterable[str | os.PathLike], before: float) -> list[Path]:
    """Delete the temp files of atomic writes (``.NAME.xxxxxxxx.tmp``) in
    ``folders`` that were last written before the time ``before`` (a
    ``time.time()``): leftovers of a process killed while saving. Returns them."""
    removed = []
    for folder in folders:
        d = Path(folder)
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if not _TEMP.match(p.name):
                continue
            try:
                if p.is_file() and not p.is_symlink() and p.stat().st_mtime < before:
                    p.unlink()
                    removed.append(p)
            except FileNotFoundError:
                pass
    return removed


# ------------------------------------------------------------------ epoch checkpoints and averaging
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

    With fewer than ``last`` epoch checkpoints there (``train.keep_epochs``
    keeps only the newest), the ones there are averaged and a warning says so,
    as ESPnet's averaging does; the file keeps the name asked for.
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
        log.warn(f"{exp}: --last {last} but only {len(found)} epoch checkpoint(s) are there "
                 f"({', '.join(p.name for _, p in found)}; train.keep_epochs keeps more); averaging those")
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
