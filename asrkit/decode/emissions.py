"""Running a trained model over a feature store: batches by length, per-utterance outputs.

:func:`map_batches` is the one place where features meet a model at decode
time (:func:`iter_outputs` for CTC models, :mod:`asrkit.decode.attention` for
attention models). It walks the store's utterances in chunks of consecutive utt-ids
(so results come out in the store's sorted order and can be streamed), sorts
each chunk by length into batches of ``batch_size`` utterances (little
padding), applies the CMVN the model was trained with, runs the model without
gradients and yields one result per utterance, in utt-id order;
:func:`iter_outputs` yields a :class:`ModelOutput`::

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
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

import numpy as np
import torch
from torch import Tensor

from asrkit.errors import DataError, InputError, UsageError
from asrkit.io import atomic_write

__all__ = [
    "EMISSIONS_META", "UTT2FRAMES", "ModelOutput", "check_batch_frames", "check_emissions", "check_input_dim",
    "check_warps",
    "chunked_batches", "check_emissions_belong", "is_emissions_store", "iter_outputs", "length_batches", "load_batch",
    "load_emissions", "map_batches", "open_saved_emissions", "pad_features", "read_emissions_meta",
    "resolve_device", "save_emissions", "SavedEmissions",
]

R = TypeVar("R")

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


def length_batches(utts: Sequence[str], lengths: Sequence[int], batch_size: int,
                   batch_frames: Optional[int] = None) -> list[list[int]]:
    """Indices of ``utts`` grouped into batches of utterances of similar length (longest first; ties
    keep the given order): at most ``batch_size`` utterances a batch, or with ``batch_frames`` as
    many as fit a budget of ``batch_frames`` padded frames (batch size x its longest utterance; an
    utterance longer than the budget is a batch of its own)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    check_batch_frames(batch_frames)
    order = sorted(range(len(utts)), key=lambda i: -int(lengths[i]))
    if batch_frames is None:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for i in order:  # longest first: a batch's first utterance sets its padded length
        if batches and (len(batches[-1]) + 1) * max(1, int(lengths[batches[-1][0]])) <= batch_frames:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def check_batch_frames(batch_frames: Optional[int]) -> None:
    """:class:`UsageError` unless ``batch_frames`` is None or a positive number of frames."""
    if batch_frames is not None and (isinstance(batch_frames, bool) or int(batch_frames) < 1):
        raise UsageError(f"--batch-frames must be >= 1 (padded frames per forward pass), got {batch_frames}")


def pad_features(feats: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """List of ``(T_i, D)`` arrays -> zero-padded ``(B, T_max, D)`` and lengths ``(B,)``."""
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
    out = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1], dtype=torch.float32)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32))
    return out, lengths


def check_input_dim(store, input_dim: Optional[int], keys: Sequence[str]) -> None:
    """:class:`DataError` when the store's features are not the model's ``input_dim`` (None: unknown)."""
    if input_dim is not None and len(keys) and store.dim != input_dim:
        raise DataError(f"{store.path}: features are {store.dim}-dim but the model takes {input_dim}-dim "
                        f"(model.input_dim); featurize with the feature config the model was trained on")


def chunked_batches(store, keys: Sequence[str], batch_size: int,
                    batch_frames: Optional[int] = None) -> Iterator[tuple[list[str], list[list[str]]]]:
    """The utt-ids ``keys`` in chunks of consecutive ids (:data:`CHUNK_BATCHES` batches' worth: of
    ``batch_size`` utterances, or of ``batch_frames`` frames), each with its batches: the chunk's
    names sorted by length (:func:`length_batches`)."""
    if batch_frames is None:
        chunk = max(1, batch_size) * CHUNK_BATCHES
        parts = (list(keys[start:start + chunk]) for start in range(0, len(keys), chunk))
    else:
        parts = _frame_chunks(store, keys, int(batch_frames) * CHUNK_BATCHES)
    for part in parts:
        lens = [store.num_frames(u) for u in part]
        yield part, [[part[i] for i in batch] for batch in length_batches(part, lens, batch_size, batch_frames)]


def _frame_chunks(store, keys: Sequence[str], frames: int) -> Iterator[list[str]]:
    """Consecutive utt-ids in chunks of about ``frames`` frames (at least one utterance each)."""
    part: list[str] = []
    total = 0
    for u in keys:
        part.append(u)
        total += store.num_frames(u)
        if total >= frames:
            yield part
            part, total = [], 0
    if part:
        yield part


def load_batch(store, names: Sequence[str], *, cmvn: Optional[str] = None,
               norm_vars: bool = True) -> tuple[Tensor, Tensor]:
    """The features of ``names`` with the model's CMVN, padded: ``(B, T_max, D)`` and lengths ``(B,)``."""
    return pad_features([store.get(u, cmvn=cmvn, norm_vars=norm_vars) for u in names])


def map_batches(
    store,
    fn: Callable[[list[str], Tensor, Tensor], Sequence[R]],
    *,
    cmvn: Optional[str] = None,
    norm_vars: bool = True,
    batch_size: int = 16,
    utts: Optional[Sequence[str]] = None,
    input_dim: Optional[int] = None,
    on_batch: Optional[Callable[[int], None]] = None,
    max_frames: Optional[int] = None,
    join: Optional[Callable[[str, list[R], list[int]], R]] = None,
    multiple: int = 1,
    batch_frames: Optional[int] = None,
    clock=None,
) -> Iterator[R]:
    """Run ``fn(names, feats (B, T, D), lengths (B,))`` -> one result per name over the store's
    utterances, batched by length (:func:`chunked_batches`), without gradients, and yield the results
    in utt-id order (of ``utts`` when given). The one place where a store's features meet a model at
    decode time: CTC log-probabilities (:func:`iter_outputs`) and attention searches
    (:mod:`asrkit.decode.attention`) both go through it.

    Long-form (:mod:`asrkit.decode.longform`): with ``max_frames`` and ``join``, an utterance longer
    than ``max_frames`` frames goes through ``fn`` as pieces cut at pauses (cuts at multiples of
    ``multiple``), batched with the other utterances under the utterance's name, and
    ``join(utt, piece results, piece start frames)`` makes its one result.

    ``batch_frames``: batches fill a budget of padded frames instead of ``batch_size`` utterances
    (:func:`length_batches`); the results and their order are the same. ``clock``: a
    :class:`~asrkit.decode.stopwatch.Stopwatch` that gets the seconds spent on the features
    (``features``) and in ``fn`` (``forward``)."""
    from asrkit.decode.longform import loudness, pause_cuts, piece_bounds

    keys = list(store.keys()) if utts is None else list(utts)
    check_input_dim(store, input_dim, keys)
    if max_frames is not None and join is None:
        raise ValueError("map_batches: max_frames needs a join")
    for part, batches in chunked_batches(store, keys, batch_size, batch_frames):
        long = [u for u in part if max_frames is not None and store.num_frames(u) > max_frames]
        cache = {u: store.get(u, cmvn=cmvn, norm_vars=norm_vars) for u in long}
        items: list[tuple[str, int, Optional[int]]] = []    # (utt, start, end); end None: the whole utterance
        # where the pauses are: on the store's own features (a warped view of a store cuts where the
        # store does, so test-time VTLP's passes line up frame by frame)
        unwarped = getattr(store, "unwarped", None)
        for u in part:
            if u in cache:
                x = cache[u] if unwarped is None else unwarped.get(u, cmvn=cmvn, norm_vars=norm_vars)
                cuts = pause_cuts(loudness(torch.from_numpy(np.asarray(x, dtype=np.float32))),
                                  int(max_frames), multiple=multiple)
                items += [(u, s, e) for s, e in piece_bounds(cuts, int(cache[u].shape[0]))]
            else:
                items.append((u, 0, None))
        if cache:  # every piece an item of its own, batched by length with the other utterances
            lens = [store.num_frames(u) if e is None else e - s for u, s, e in items]
            batches = [[items[i] for i in b]
                       for b in length_batches([u for u, _, _ in items], lens, batch_size, batch_frames)]
        else:
            batches = [[(u, 0, None) for u in names] for names in batches]
        left = {u: sum(1 for v, _, _ in items if v == u) for u in cache}  # pieces still to run
        pieces: dict[str, dict[int, R]] = {u: {} for u in cache}
        results: dict[str, R] = {}
        for batch in batches:
            names = [u for u, _, _ in batch]
            t0 = time.perf_counter()
            feats, lengths = pad_features([store.get(u, cmvn=cmvn, norm_vars=norm_vars) if e is None
                                           else cache[u][s:e] for u, s, e in batch])  # (B, T, D), (B,)
            t1 = time.perf_counter()
            # no_grad, not inference_mode: inference tensors (and buffers a layer caches while
            # making them) could not be used by autograd later in the same process; a process
            # that only decodes (asrkit decode) runs all of this under inference_mode
            with torch.no_grad():
                out = fn(names, feats, lengths)
            if clock is not None:
                clock.add("features", t1 - t0)
                clock.add("forward", time.perf_counter() - t1)
            done = 0
            for (u, s, e), r in zip(batch, out):
                if e is None:
                    results[u] = r
                    done += 1
                    continue
                pieces[u][s] = r
                left[u] -= 1
                if not left[u]:
                    starts = sorted(pieces[u])
                    results[u] = join(u, [pieces[u][k] for k in starts], starts)  # type: ignore[misc]
                    done += 1
            if on_batch is not None:
                on_batch(done)
        for u in part:
            yield results[u]


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
    max_frames: Optional[int] = None,
    batch_frames: Optional[int] = None,
    clock=None,
    warps: Sequence[float] = (),
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
        max_frames: utterances longer than this go through the model in
            pieces cut at pauses, their log-probabilities concatenated
            (:mod:`asrkit.decode.longform`); None: whole utterances.
        batch_frames, clock: as in :func:`map_batches`.
        warps: test-time VTLP (fbank features only): the model runs once per warp factor on
            the features with their mel axis warped by it (:func:`asrkit.features.perturb.vtlp`,
            before CMVN; 1.0 is the features as they are), and each utterance's
            log-probabilities are the renormalized mean over the runs (a product of experts).
            Empty: one plain run.
    """
    from asrkit.decode.longform import join_outputs

    device = torch.device(device)
    warps = check_warps(warps)
    if warps:
        yield from _warped_outputs(model, store, warps, cmvn=cmvn, norm_vars=norm_vars, batch_size=batch_size,
                                   device=device, utts=utts, input_dim=input_dim, on_batch=on_batch,
                                   max_frames=max_frames, batch_frames=batch_frames, clock=clock)
        return

    def run(names: list[str], feats: Tensor, lengths: Tensor) -> list[ModelOutput]:
        logits, out_lengths = model(feats.to(device), lengths.to(device))  # (B, T', C), (B,)
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()  # (B, T', C)
        n_out = out_lengths.cpu().tolist()
        return [ModelOutput(u, log_probs[b, :int(n_out[b])].clone(), int(lengths[b])) for b, u in enumerate(names)]

    yield from map_batches(store, run, cmvn=cmvn, norm_vars=norm_vars, batch_size=batch_size, utts=utts,
                           input_dim=input_dim, on_batch=on_batch, max_frames=max_frames, join=join_outputs,
                           multiple=int(getattr(model, "subsampling", 1)), batch_frames=batch_frames,
                           clock=clock)


def check_warps(warps: Sequence[float]) -> tuple[float, ...]:
    """The test-time warp factors, checked: each finite and in [0.5, 2] (UsageError); a lone 1
    (no warping) is ``()``, one plain pass."""
    out = tuple(float(a) for a in warps)
    for a in out:
        if not (math.isfinite(a) and 0.5 <= a <= 2.0):
            raise UsageError(f"--warps: each warp factor must be in [0.5, 2] (got {a:g}); e.g. 0.9,0.95,1,1.05,1.1")
    if len(set(out)) != len(out):
        raise UsageError(f"--warps: a warp factor is given twice ({','.join(f'{a:g}' for a in out)})")
    return () if out == (1.0,) else out


class _WarpedStore:
    """A feature store read through the VTLP warp ``alpha``: raw features warped, then CMVN as the
    store applies it (:meth:`asrkit.data.FeatureStore.normalize`); everything else is the store's."""

    def __init__(self, store, alpha: float, geom) -> None:
        self._store, self._alpha, self._geom = store, alpha, geom
        self.unwarped = store  # map_batches finds long utterances' pauses on it

    def get(self, utt: str, cmvn: Optional[str] = None, norm_vars: bool = True) -> np.ndarray:
        from asrkit.features.perturb import vtlp

        raw = torch.from_numpy(np.array(self._store[utt], dtype=np.float32))
        return self._store.normalize(utt, vtlp(raw, self._alpha, self._geom).numpy(), cmvn, norm_vars)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def _warped_outputs(model, store, warps: Sequence[float], *, on_batch=None, **kw) -> Iterator[ModelOutput]:
    """:func:`iter_outputs` with test-time VTLP (``warps`` checked): one pass per warp, in step,
    averaged per utterance."""
    from asrkit.features.perturb import MelGeometry

    kind = (store.conf or {}).get("type")
    if kind != "fbank":
        raise UsageError(f"--warps: test-time VTLP warps log-mel filterbank features, but {store.path} holds "
                         f"{kind or 'features of an unknown kind (no type in conf.yaml)'}")
    geom = MelGeometry.from_conf(store.conf, where=f"{store.path}/conf.yaml")
    if geom.dim != store.dim:
        raise DataError(f"{store.path}: {store.dim}-dim features, but its conf.yaml describes {geom.dim}-dim fbank")
    passes = [iter_outputs(model, store if a == 1.0 else _WarpedStore(store, a, geom),
                           on_batch=on_batch if i == 0 else None, **kw) for i, a in enumerate(warps)]
    for outs in zip(*passes):
        lp = torch.stack([o.log_probs for o in outs]).mean(0)  # (T', C): the same frames in every pass
        yield ModelOutput(outs[0].utt, torch.log_softmax(lp, dim=-1), outs[0].frames)


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
        shift = (store.conf or {}).get("frame_shift")
        if shift is not None:
            meta["frame_shift"] = float(shift)  # ms: word times of a decode of the saved emissions
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


def is_emissions_store(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder of saved emissions (has ``emissions.json``), not a feature store."""
    return (Path(path) / EMISSIONS_META).is_file()


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_emissions_belong(exp: str | os.PathLike, data: str | os.PathLike, units, meta: dict, dim: int) -> None:
    """:class:`DataError` (one line) when the emissions in ``data`` were saved from another exp dir than
    ``exp`` or for other units than ``units`` (another kind, another number of classes in
    ``emissions.json`` or in the saved rows, ``dim``; 0: unknown)."""
    exp, data = Path(exp), Path(data)
    where = f"{data}: emissions"
    saved_exp = meta.get("exp")
    if saved_exp is not None:
        saved = Path(saved_exp)
        # a relative path was relative to where 'asrkit decode' ran; it is checked when it exists from here
        if saved.exists() and not _same_path(saved, exp):
            raise DataError(f"{where} were saved from exp dir {saved_exp}, not {exp}; use that exp dir "
                            f"or save the emissions of this one ('asrkit decode {exp} FEATS --save-emissions DIR')")
    kind = meta.get("units")
    if kind is not None and kind != units.kind:
        raise DataError(f"{where} are of {kind} units but {exp} has {units.kind} units; they were saved from "
                        f"another exp dir")
    for classes, what in ((meta.get("num_classes"), "emissions.json says"), (dim, "the saved rows have")):
        if classes and int(classes) != units.num_classes:
            raise DataError(f"{where}: {what} {classes} classes but {exp} has {units.num_classes} units; "
                            f"they were saved from another exp dir")


@dataclass
class SavedEmissions:
    """An emissions store checked against the exp dir that reads it (:func:`open_saved_emissions`).

    Attributes:
        path: the folder.
        meta: its ``emissions.json``.
        store: the :class:`~asrkit.data.FeatureStore` of its rows.
    """

    path: Path
    meta: dict
    store: object

    def keys(self) -> list[str]:
        return self.store.keys()

    def __len__(self) -> int:
        return len(self.store)

    @property
    def text(self) -> Optional[dict]:
        return self.store.text

    @property
    def subsampling(self) -> int:
        return int(self.meta.get("subsampling") or 1)

    @property
    def frame_shift(self) -> Optional[float]:
        """The source features' frame shift in ms (saved since it is recorded; else the source store's
        config when it is still there; None: unknown, 10 ms is assumed)."""
        shift = self.meta.get("frame_shift")
        if shift is None and self.meta.get("feats"):
            try:
                from asrkit.data import FeatureStore

                shift = (FeatureStore(self.meta["feats"]).conf or {}).get("frame_shift")
            except Exception:  # the source store moved or is gone: the default
                shift = None
        return None if shift is None else float(shift)

    def outputs(self, utts: Optional[Sequence[str]] = None,
                on_output: Optional[Callable[[], None]] = None) -> Iterator[ModelOutput]:
        """The saved :class:`ModelOutput` of every utterance (or of ``utts``), in order, NaN checked."""
        for out in load_emissions(self.path, utts):
            check_emissions(out)
            if on_output is not None:
                on_output()
            yield out


def open_saved_emissions(exp: str | os.PathLike, data: str | os.PathLike, units) -> SavedEmissions:
    """The emissions saved in ``data`` (``asrkit decode --save-emissions``) for a search with ``exp``'s
    ``units``: what ``asrkit decode EXP DIR`` and ``asrkit tune EXP DIR`` both read. Raises
    :class:`InputError` for an unreadable or incomplete folder, :class:`DataError` for emissions of
    another exp dir (:func:`check_emissions_belong`)."""
    from asrkit.data import FeatureStore

    data = Path(data)
    meta = read_emissions_meta(data)
    store = FeatureStore(data)  # InputError when incomplete
    check_emissions_belong(exp, data, units, meta, store.dim if len(store) else 0)
    return SavedEmissions(data, meta, store)
