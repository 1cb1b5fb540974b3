"""Running a trained model over a feature store: batches by length, per-utterance outputs.

:func:`iter_outputs` is the one place where features meet the model at decode
time. It walks the store's utterances in chunks of consecutive utt-ids
(so results come out in the store's sorted order and can be streamed), sorts
each chunk by length into batches of ``batch_size`` utterances (little
padding), applies the CMVN the model was trained with, runs the model without
gradients and yields one :class:`ModelOutput` per utterance, in utt-id
order::

    for out in iter_outputs(model, store, cmvn="global", batch_size=16):
        out.utt, out.log_probs.shape          # (T', C) log-softmax of the logits, on the CPU

Greedy decoding, frame prediction and the beam search with an LM all
consume these outputs.

Saved emissions (``asrkit decode --save-emissions DIR``, :func:`save_emissions`)
are a feature store (:mod:`asrkit.data.feature_store`) of the model's
``(T', C)`` log-probabilities, one "feature" row per output frame, plus
``emissions.json`` (exp dir, checkpoint, unit kind, classes, subsampling,
source store), ``utt2frames`` (input frames per utterance) and the source
store's ``text``/``utt2spk``. :func:`load_emissions` reads them back as
:class:`ModelOutput`, so a search can be rerun (e.g. with other LM weights)
without the model::

    for hyp in beam_hypotheses(load_emissions("exp/ctc/emissions_dev"), decoder): ...
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from asrkit.errors import DataError, InputError, UsageError
from asrkit.io import atomic_write

__all__ = [
    "EMISSIONS_META", "UTT2FRAMES", "ModelOutput", "check_emissions", "iter_outputs", "length_batches",
    "load_emissions", "read_emissions_meta", "resolve_device", "save_emissions",
]

#: How many batches of consecutive utterances are sorted by length together.
CHUNK_BATCHES = 32


@dataclass
class ModelOutput:
    """The model's output for one utterance.

    Attributes:
        utt: utterance id.
        log_probs: ``(T', C)`` float32 log-softmax over the classes, CPU.
        frames: input frames ``T``.
    """

    utt: str
    log_probs: Tensor
    frames: int

    @property
    def out_frames(self) -> int:
        return int(self.log_probs.shape[0])


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cpu``; ``cuda``/``cuda:N``
    (a :class:`UsageError` when CUDA is not available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available here; use --device cpu or auto")
        return torch.device(device)
    raise UsageError(f"--device must be auto, cpu or cuda[:N], got '{device}'")


def length_batches(utts: Sequence[str], lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of ``utts`` grouped into batches of at most ``batch_size``
    utterances of similar length (longest first; ties keep the given order)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    order = sorted(range(len(utts)), key=lambda i: -int(lengths[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(feats: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """List of ``(T_i, D)`` arrays -> zero-padded ``(B, T_max, D)`` and lengths ``(B,)``."""
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
    out = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1], dtype=torch.float32)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32))
    return out, lengths


def iter_outputs(
    model: torch.nn.Module,
    store,
    *,
    cmvn: Optional[str] = None,
    norm_vars: bool = True,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    utts: Optional[Sequence[str]] = None,
    input_dim: Optional[int] = None,
    on_batch: Optional[Callable[[int], None]] = None,
) -> Iterator[ModelOutput]:
    """Yield the model's log-probabilities for every utterance, in utt-id order.

    Args:
        model: ``model(feats (B, T, D), lengths (B,)) -> (logits (B, T', C), out_lengths (B,))``,
            already on ``device`` and in eval mode.
        store: an :class:`asrkit.data.FeatureStore`.
        cmvn, norm_vars: the CMVN the model was trained with
            (``config["data"]["cmvn"]``, ``config["data"]["norm_vars"]``).
        batch_size: utterances per forward pass.
        utts: a subset of utt-ids (default: all, sorted).
        input_dim: the model's feature dimension, checked against the store
            before any work.
        on_batch: called with the number of utterances after each batch
            (progress bars).
    """
    keys = list(store.keys()) if utts is None else list(utts)
    if input_dim is not None and len(keys) and store.dim != input_dim:
        raise DataError(f"{store.path}: features are {store.dim}-dim but the model takes {input_dim}-dim "
                        f"(model.input_dim); featurize with the feature config the model was trained on")
    device = torch.device(device)
    chunk = max(1, batch_size) * CHUNK_BATCHES
    # no_grad, not inference_mode: inference tensors (and buffers a layer caches while
    # making them) could not be used by autograd later in the same process
    with torch.no_grad():
        for start in range(0, len(keys), chunk):
            part = keys[start:start + chunk]
            lens = [store.num_frames(u) for u in part]
            results: dict[str, ModelOutput] = {}
            for batch in length_batches(part, lens, batch_size):
                names = [part[i] for i in batch]
                feats, lengths = _pad([store.get(u, cmvn=cmvn, norm_vars=norm_vars) for u in names])  # (B, T, D), (B,)
                logits, out_lengths = model(feats.to(device), lengths.to(device))  # (B, T', C), (B,)
                log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()  # (B, T', C)
                out_lengths = out_lengths.cpu().tolist()
                for b, u in enumerate(names):
                    n = int(out_lengths[b])
                    results[u] = ModelOutput(u, log_probs[b, :n].clone(), int(lengths[b]))
                if on_batch is not None:
                    on_batch(len(names))
            for u in part:
                yield results[u]


def check_emissions(out: ModelOutput) -> None:
    """Raise :class:`DataError` when an utterance's log-probabilities hold NaN."""
    if torch.isnan(out.log_probs).any():
        bad = int(torch.isnan(out.log_probs).any(dim=-1).nonzero()[0, 0])
        raise DataError(f"utterance {out.utt}: the model's output is NaN (first at output frame {bad} of "
                        f"{out.out_frames}); the checkpoint or the features are broken (check them for NaN/inf)")


# -- saved emissions ---------------------------------------------------------------------------------

EMISSIONS_META = "emissions.json"
UTT2FRAMES = "utt2frames"


#: the command named in the marker of an emissions folder
SAVE_COMMAND = "decode --save-emissions"


def _prepare_emissions_dir(path: Path) -> None:
    """Make ``path`` ready for a new emissions store, by the output-folder
    rule (:func:`asrkit.io.prepare_output_dir`): created and marked if missing
    or empty; an emissions store saved before (complete, or cut short by a
    kill: the marker says so) is replaced; anything else is refused."""
    from asrkit.data.feature_store import INDEX
    from asrkit.io import MARKER, LOCK, prepare_output_dir, read_marker, write_marker

    if path.exists() and not path.is_dir():
        raise UsageError(f"--save-emissions {path}: exists and is not a folder")
    if path.is_dir() and (path / EMISSIONS_META).is_file() and read_marker(path) is None:
        write_marker(path, SAVE_COMMAND)  # saved by an asrkit that wrote no marker
    try:
        prepare_output_dir(path, SAVE_COMMAND)
    except UsageError:
        raise UsageError(f"--save-emissions {path}: folder exists and does not hold saved emissions; "
                         f"give a new or empty folder") from None
    (path / INDEX).unlink(missing_ok=True)  # first, so a half-rewritten store never looks complete
    for child in path.iterdir():
        if child.name not in (MARKER, LOCK):
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def save_emissions(outputs: Iterable[ModelOutput], path: str | os.PathLike, *, exp=None,
                   store=None) -> Iterator[ModelOutput]:
    """Pass ``outputs`` through while writing them to the emissions store
    ``path`` (see the module docstring); the store is complete (has its
    ``index.tsv``) only once every output went through. ``exp`` (a
    :class:`~asrkit.decode.exp.LoadedExp`) and ``store`` (the source
    :class:`~asrkit.data.FeatureStore`) fill ``emissions.json`` and the copied
    ``text`` / ``utt2spk``."""
    from asrkit.data.feature_store import ShardWriter, merge_shards
    from asrkit.data.table import write_table

    out_dir = Path(path)
    _prepare_emissions_dir(out_dir)
    utt2spk = store.utt2spk if store is not None else {}
    frames: dict[str, str] = {}
    with ShardWriter(out_dir, 0) as writer:  # an exception (or an abandoned generator) drops the partial shard
        for out in outputs:
            writer.add(out.utt, utt2spk.get(out.utt, out.utt), out.log_probs.numpy())
            frames[out.utt] = str(out.frames)
            yield out
    write_table(out_dir / UTT2FRAMES, frames)
    if store is not None:
        text = store.text
        if text is not None:
            write_table(out_dir / "text", {u: t for u, t in text.items() if u in frames})
        write_table(out_dir / "utt2spk", {u: utt2spk.get(u, u) for u in frames})
    meta = {"kind": "ctc-log-probs", "utterances": len(frames)}
    if exp is not None:
        meta.update({"exp": str(Path(exp.path).resolve()), "checkpoint": str(Path(exp.checkpoint).resolve()),
                     "units": exp.units.kind,
                     "num_classes": exp.units.num_classes, "subsampling": exp.subsampling})
    if store is not None:
        meta["feats"] = str(store.path)
    with atomic_write(out_dir / EMISSIONS_META) as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    merge_shards(out_dir, 1)  # writes index.tsv last


def load_emissions(path: str | os.PathLike, utts: Optional[Sequence[str]] = None) -> Iterator[ModelOutput]:
    """The :class:`ModelOutput` of every utterance saved by
    :func:`save_emissions` (utt-id order, or those of ``utts``)."""
    from asrkit.data import FeatureStore
    from asrkit.data.table import read_table

    p = Path(path)
    if not (p / EMISSIONS_META).is_file():
        raise InputError(f"{p}: no {EMISSIONS_META}; not a folder written by 'asrkit decode --save-emissions'")
    fs = FeatureStore(p)  # InputError when incomplete
    frames = read_table(p / UTT2FRAMES) if (p / UTT2FRAMES).is_file() else {}
    for u in (fs.keys() if utts is None else utts):
        if u not in fs:
            raise DataError(f"{p}: has no emissions for utterance {u}")
        lp = torch.from_numpy(np.array(fs[u], dtype=np.float32))  # (T', C), a copy off the memory map
        yield ModelOutput(u, lp, int(frames.get(u, lp.shape[0])))


def read_emissions_meta(data: str | os.PathLike) -> dict:
    """The ``emissions.json`` of saved emissions (:class:`InputError` when unreadable)."""
    data = Path(data)
    p = data / EMISSIONS_META
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{p}: cannot read: {e}; save the emissions again with 'asrkit decode --save-emissions'") \
            from None
    if not isinstance(meta, dict):
        raise InputError(f"{p}: not a JSON object; save the emissions again with 'asrkit decode --save-emissions'")
    return meta
