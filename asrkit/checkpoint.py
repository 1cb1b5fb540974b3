"""The checkpoint file: plain data, written atomically, read weights-only.

A checkpoint is a ``torch.save`` dict of tensors and plain containers only
(dict, list, tuple, str, int, float, bool, None), so it loads with
``torch.load(weights_only=True)``: a checkpoint is data and never runs code.
:func:`read_checkpoint` is the one way asrkit opens one; a file that the
weights-only loader refuses is refused with one line, never unpickled in full.
What a training checkpoint holds is described in :mod:`asrkit.train.checkpoint`;
:mod:`asrkit.models` reads the ``model`` entry through :func:`load_weights`.
"""
from __future__ import annotations

import importlib
import os
import pickle
import pickletools
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from asrkit.errors import InputError
from asrkit.io import atomic_write

__all__ = [
    "CheckpointWriteError",
    "copy_atomic",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
    "weights_mismatch",
]

class CheckpointWriteError(InputError):
    """A checkpoint could not be written (disk full, no permission); the file it
    would have replaced is untouched."""


# ------------------------------------------------------------------ saving
_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype, torch.device)


def _check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise TypeError for anything the weights-only loader would refuse (a bug
    in the code that built ``obj``: convert it to tensors / plain containers)."""
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, where)
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: {type(obj).__module__}.{type(obj).__qualname__} is not plain data; "
                    f"store it as tensors and plain containers")


def _interrupted_or_oserror(err: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or OSError behind ``err``: torch's zip writer
    replaces an exception raised while it writes by its own RuntimeError."""
    seen = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        if isinstance(e, (KeyboardInterrupt, OSError)):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _write(path: Path, write) -> None:
    try:
        with atomic_write(path, "wb") as f:
            write(f)
    except BaseException as err:  # the temp file is gone already (atomic_write unlinks it)
        root = _interrupted_or_oserror(err)
        if isinstance(root, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        if isinstance(root, OSError):
            raise CheckpointWriteError(f"{path}: cannot write the checkpoint: {root.strerror or root}") from None
        raise


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` through a temp file + rename: never a half-written file.
    ``obj`` must hold tensors and plain containers only (TypeError otherwise);
    a failed write (disk full) raises :class:`CheckpointWriteError`."""
    _check_plain(obj)
    _write(Path(path), lambda f: torch.save(obj, f))


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    with open(src, "rb") as f_in:
        _write(Path(dst), lambda f_out: shutil.copyfileobj(f_in, f_out, 1 << 20))


# ------------------------------------------------------------------ loading
#: numpy globals that checkpoints of earlier asrkit versions hold (numpy's RNG
#: state, a uint32 array). They only build arrays from bytes (an object array's
#: items go through the same weights-only unpickler), so allowing them, for one
#: load, cannot run code; what they build is converted to tensors at once.
_LEGACY_NUMPY = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
                 "numpy.dtype", "numpy.dtypes.UInt32DType")

#: pickle opcodes that look up or call a global: what the weights-only loader refuses
_CODE_OPS = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD", "EXT1", "EXT2",
             "EXT4"}


def _refusal(path: Path) -> InputError:
    return InputError(f"{path}: not a plain-data checkpoint (it would run code when loaded); refusing it")


def _legacy_globals(names: Iterable[str]) -> list[Any] | None:
    """The objects for ``names`` if every one is an allowed legacy numpy global."""
    objs = []
    for name in names:
        if name not in _LEGACY_NUMPY:
            return None
        module, _, attr = name.rpartition(".")
        try:
            objs.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            return None
    # the dtype of the RNG keys: rebuilt by BUILD, which names no global
    return objs + [type(np.dtype(np.uint32))]


def _pickle_wants_code(path: Path) -> bool:
    """Whether the pickle(s) at the start of a (non-zip) file look up globals;
    read with :mod:`pickletools`, which parses and never executes."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            for _ in range(8):  # torch's legacy format: a few pickles in a row, then raw bytes
                if f.tell() >= size:
                    return False
                for op, _, _ in pickletools.genops(f):
                    if op.name in _CODE_OPS:
                        return True
    except Exception:  # not (or no longer) a pickle
        return False
    return False


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Load a ``.pt`` file with ``torch.load(weights_only=True)`` on CPU.

    A file whose unpickling would look up code (a pickled class or function)
    raises :class:`InputError` ("not a plain-data checkpoint ...; refusing it")
    without running any of it. Checkpoints of earlier asrkit versions, whose
    only non-plain content is numpy's RNG state, are read with just those numpy
    array globals allowed and converted (see ``_LEGACY_NUMPY``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such checkpoint")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the line below says it all
            warnings.simplefilter("ignore")
            return _plain_rngs(torch.load(p, map_location="cpu", weights_only=True))
    except Exception as err:  # refused, truncated or foreign
        first = err
    if zipfile.is_zipfile(p):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(p)
        except Exception:
            unsafe = []
        if unsafe:
            allowed = _legacy_globals(unsafe)
            if allowed is None:
                raise _refusal(p) from None
            try:
                with torch.serialization.safe_globals(allowed):
                    ck = torch.load(p, map_location="cpu", weights_only=True)
            except Exception:
                raise _refusal(p) from None
            return _plain_rngs(ck)
    else:
        msg = str(first)
        if isinstance(first, pickle.UnpicklingError) and ("GLOBAL" in msg or _pickle_wants_code(p)):
            raise _refusal(p) from None
    detail = next((ln.strip() for ln in str(first).splitlines() if ln.strip()), "")
    raise InputError(f"{p}: not a readable checkpoint ({type(first).__name__}: {detail[:200]})") from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`read_checkpoint` of a file that must be an asrkit checkpoint (a dict with ``model``)."""
    p = Path(path)
    ck = read_checkpoint(p)
    if not isinstance(ck, dict) or "model" not in ck:
        raise InputError(f"{p}: not an asrkit checkpoint (no 'model' entry)")
    return ck


def weights_mismatch(model: torch.nn.Module, state: Mapping[str, Any]) -> str | None:
    """One line on how ``state`` does not fit ``model`` (counts of missing /
    unexpected keys and of other shapes, the first few named), or None."""
    want = model.state_dict()

    def first(names: list[str]) -> str:
        return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")

    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [f"{k} {tuple(getattr(state[k], 'shape', ()))} vs {tuple(want[k].shape)}" for k in want
              if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != want[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {first(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {first(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} of another shape (checkpoint vs model): {first(shapes)}")
    return "; ".join(parts) or None


def load_weights(model: torch.nn.Module, state: Mapping[str, Any], path: str | os.PathLike,
                 of: str | os.PathLike | None = None) -> None:
    """``model.load_state_dict(state)``; weights that do not fit raise one
    :class:`InputError` line: ``<path>: weights do not fit the model [of <of>] (...)``."""
    detail = weights_mismatch(model, state)
    if detail is None:
        try:
            model.load_state_dict(state)
            return
        except RuntimeError as err:
            lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
            detail = " ".join(lines[1:3]) or lines[0]
    raise InputError(f"{path}: weights do not fit the model{f' of {of}' if of else ''} ({detail})")



def _plain_rng(st: Any) -> Any:
    """An RNG state of an earlier asrkit version (python's tuple, numpy's
    ``(name, uint32 array, pos, has_gauss, cached)``) in today's plain form."""
    if not isinstance(st, dict):
        return st
    st = dict(st)
    py = st.get("python")
    if isinstance(py, (tuple, list)) and len(py) == 3:
        st["python"] = {"version": int(py[0]), "state": torch.tensor([int(x) for x in py[1]], dtype=torch.int64),
                        "gauss": None if py[2] is None else float(py[2])}
    npst = st.get("numpy")
    if isinstance(npst, (tuple, list)) and len(npst) == 5:
        st["numpy"] = {"name": str(npst[0]), "keys": torch.as_tensor(np.asarray(npst[1], dtype=np.int64)),
                       "pos": int(npst[2]), "has_gauss": int(npst[3]), "cached_gaussian": float(npst[4])}
    return st


def _plain_rngs(ck: Any) -> Any:
    if isinstance(ck, dict) and isinstance(ck.get("rng"), list):
        ck["rng"] = [_plain_rng(s) for s in ck["rng"]]
    return ck
