"""Importer for the CMU 11-785 course's Kaggle data (npy layouts).

Per-utterance layout (HW1P2/HW3P2/HW4P2 from 2021 on)::

    SRC/train-clean-100/mfcc/103-1240-0000.npy        (T, D) features
    SRC/train-clean-100/transcript/103-1240-0000.npy  labels (str or int array)
    SRC/test-clean/mfcc/*.npy                         (no labels)

Feature folders: ``mfcc``, ``fbank``, ``feats``, ``features``; label
folders: ``transcript/raw`` (a HW4P2 year's character transcripts),
``transcript``, ``transcripts``, ``text``, ``labels``, ``ali``.
Whole-split layout (HW1P2 up to 2020)::

    SRC/train.npy  SRC/train_labels.npy  SRC/dev.npy ...   (object arrays)

Each split becomes ``DST/SPLIT`` (``-`` -> ``_``) with a feature store in
``DST/SPLIT/feats`` (the course's features as they are), ``utt2spk``,
``spk2utt`` and either ``ali`` (frame labels: when every utterance has one
label per frame, after dropping ``[SOS]``/``[EOS]``/``<sos>``/``<eos>``)
or ``text`` (label sequences: characters are joined into words, other
tokens are joined with spaces). The speaker is ``READER-CHAPTER`` when ids
look like LibriSpeech's (``103-1240-0000``), else the utterance itself.

Whole-split object arrays need ``allow_pickle``; only those files are
loaded with it (the per-utterance files are plain arrays).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from asrkit import log
from asrkit.corpora.importers._common import clean_id, split_name
from asrkit.data.datadir import DataDir
from asrkit.data.feature_store import CONF, ShardWriter, merge_shards
from asrkit.errors import DataError, InputError
from asrkit.io import atomic_write

FEATURE_DIRS = ("mfcc", "fbank", "feats", "features")
LABEL_DIRS = ("transcript/raw", "transcript", "transcripts", "text", "labels", "ali")
_MARKERS = {"[SOS]", "[EOS]", "<sos>", "<eos>", "<SOS>", "<EOS>", "[sos]", "[eos]"}
_LIBRI = re.compile(r"^\d+-\d+-\d+$")


def _load(path: Path, pickle: bool = False) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=pickle)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot load npy: {e}") from None


def _labels(arr: np.ndarray) -> list[str]:
    toks = [str(x) for x in np.asarray(arr).reshape(-1).tolist()]
    return [t for t in toks if t not in _MARKERS]


def _split_dirs(src: Path) -> list[Path]:
    def is_split(p: Path) -> bool:
        return any((p / f).is_dir() for f in FEATURE_DIRS)

    if is_split(src):
        return [src]
    return sorted(p for p in src.iterdir() if p.is_dir() and is_split(p))


def _write_split(out: Path, utts: list[tuple[str, np.ndarray, list[str] | None]], source: str) -> Path:
    """Write one split: feature store + tables. ``utts``: (id, feats (T, D), labels|None)."""
    ids = [u for u, _, _ in utts]
    speakers = {u: (u.rsplit("-", 1)[0] if all(_LIBRI.match(x) for x in ids) else u) for u in ids}
    labelled = [x for x in utts if x[2] is not None]
    if labelled and len(labelled) != len(utts):
        log.warn(f"{out.name}: {len(utts) - len(labelled)} utterance(s) without labels")
    frame_level = bool(labelled) and all(len(lab) == f.shape[0] for _, f, lab in labelled)
    store = out / "feats"
    dim = None
    with ShardWriter(store, 0) as w:
        for u, feats, _ in sorted(utts, key=lambda x: x[0].encode()):
            feats = np.asarray(feats, dtype=np.float32)
            if feats.ndim != 2 or feats.shape[0] == 0:
                raise DataError(f"{source}: utterance '{u}' features have shape {feats.shape}, expected (T, D)")
            dim = feats.shape[1]
            w.add(u, speakers[u], feats)
    with atomic_write(store / CONF) as f:
        f.write(f"type: precomputed\nsource: kaggle-11785\ndim: {dim}\n")
    merge_shards(store, 1)
    d = DataDir(utt2spk=speakers)
    if labelled:
        table = {}
        for u, _, lab in labelled:
            if frame_level:
                table[u] = " ".join(lab)
            elif lab and all(len(t) == 1 for t in lab):
                table[u] = " ".join("".join(lab).split())
            else:
                table[u] = " ".join(lab)
        if frame_level:
            d.ali = table
        else:
            d.text = table
    d.save(out)
    for name in ("utt2spk", "spk2utt", "text", "ali"):
        if (out / name).exists():
            (store / name).write_bytes((out / name).read_bytes())
    return out


def import_kaggle_11785(src: Path, dst: Path) -> dict[str, Path]:
    written: dict[str, Path] = {}
    for split in _split_dirs(src):
        feat_dir = next(split / f for f in FEATURE_DIRS if (split / f).is_dir())
        label_dir = next((split / f for f in LABEL_DIRS if (split / f).is_dir()), None)
        utts = []
        for fp in sorted(feat_dir.glob("*.npy")):
            u = clean_id(fp.stem)
            labels = None
            if label_dir is not None:
                lp = label_dir / fp.name
                if lp.exists():
                    labels = _labels(_load(lp))
            utts.append((u, _load(fp), labels))
        if not utts:
            log.warn(f"{feat_dir}: no .npy files")
            continue
        name = split_name(split.name) if split != src else dst.name
        out = dst / name if split != src else dst
        written[name] = _write_split(out, utts, str(feat_dir))
    # whole-split object arrays: NAME.npy + NAME_labels.npy
    for fp in sorted(src.glob("*.npy")):
        if fp.stem.endswith("_labels"):
            continue
        feats = _load(fp, pickle=True)
        lp = fp.with_name(fp.stem + "_labels.npy")
        labels = _load(lp, pickle=True) if lp.exists() else None
        if labels is not None and len(labels) != len(feats):
            raise DataError(f"{lp}: {len(labels)} label arrays for {len(feats)} utterances in {fp}")
        name = split_name(fp.stem)
        utts = [(f"{name}-{i:06d}", np.asarray(x), None if labels is None else _labels(labels[i]))
                for i, x in enumerate(feats)]
        written[name] = _write_split(dst / name, utts, str(fp))
    if not written:
        raise InputError(f"{src}: no 11-785 data found (want SPLIT/{{{','.join(FEATURE_DIRS)}}}/*.npy "
                         f"or SPLIT.npy + SPLIT_labels.npy)")
    return written
