"""The feature store: raw float32 features on disk, memory-mapped on read.

Layout of a store folder ``OUT/``::

    conf.yaml            the feature config it was made with
    plan.json            shard count and a fingerprint of the input (for resume)
    feats.N.f32          shard N: the frames of its utterances, float32 little-endian, row-major
    shards/N.index.tsv   per-shard index, shards/N.stats.npz per-shard CMVN stats,
    shards/N.skipped.txt skipped utterances, shards/N.done  marker written last
    index.tsv            merged index: utt-id, shard, byte offset, frames, dim (tab separated, sorted)
    cmvn.npz             CMVN stats: global_count/global_sum/global_sumsq,
                         speakers, spk_count (S,), spk_sum (S, D), spk_sumsq (S, D)
    utt2spk, text, ali   copied from the data dir (only the utterances in the store)
    skipped.txt          ``utt-id reason`` for utterances left out by --skip-bad
    .asrkit              which command made the folder (see asrkit.io.prepare_output_dir)
    .lock                flock'ed by a running featurize (.lock.prepare: while one prepares OUT)

``index.tsv`` is written last by the merge: a store without it is not
complete. The store keeps raw features; CMVN is applied on read
(:meth:`FeatureStore.get`).
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from asrkit.errors import DataError, InputError, quote
from asrkit.io import atomic_write

INDEX = "index.tsv"
CMVN = "cmvn.npz"
CONF = "conf.yaml"
PLAN = "plan.json"
SHARDS = "shards"
CMVN_MODES = ("global", "speaker", "utterance", None)
_MAX_OPEN_SHARDS = 64  # arrays already handed out stay valid when a map is dropped


def shard_file(out: Path, i: int) -> Path:
    return out / f"feats.{i}.f32"


def _shard_meta(out: Path, i: int, kind: str) -> Path:
    return out / SHARDS / f"{i}.{kind}"


# ====================================================================== writing
class ShardWriter:
    """Writes one shard: frames appended to one open file, index rows and
    CMVN stats kept in memory (a few numbers per utterance), everything
    renamed into place by :meth:`finish` with the done-marker last.

    Use as a context manager; an exception removes the partial shard.
    """

    def __init__(self, out: str | os.PathLike, shard: int):
        self.out = Path(out)
        self.shard = shard
        (self.out / SHARDS).mkdir(parents=True, exist_ok=True)
        self._final = shard_file(self.out, shard)
        self._tmp = self._final.with_name(self._final.name + ".partial")
        self._f = open(self._tmp, "wb", buffering=1 << 20)
        self._offset = 0
        self.rows: list[tuple[str, int, int, int]] = []  # (utt, byte offset, frames, dim)
        self.skipped: list[tuple[str, str]] = []
        self.dim: int | None = None
        self.spk_stats: dict[str, list] = {}  # spk -> [count, sum (D,), sumsq (D,)]
        self.seconds = 0.0
        self._cur: list | None = None

    def add(self, utt: str, spk: str, feats: np.ndarray, seconds: float = 0.0) -> None:
        """Append ``feats`` (T, D) of utterance ``utt`` (speaker ``spk``)."""
        self.begin(utt, spk)
        try:
            self.extend(feats)
        except BaseException:
            self.rollback()
            raise
        self.commit(seconds)

    # An utterance in pieces (long audio computed block by block):
    # begin(), extend() per block, then commit() or rollback().
    def begin(self, utt: str, spk: str) -> None:
        self._cur = [utt, spk, self._offset, 0, None, 0.0, None, None]  # utt spk start frames dim count sum sumsq

    def extend(self, feats: np.ndarray) -> None:
        """Append a block ``(t, D)`` of the utterance begun last."""
        cur = self._cur
        feats = np.ascontiguousarray(feats, dtype="<f4")
        t, d = feats.shape
        if self.dim is not None and d != self.dim or cur[4] is not None and d != cur[4]:
            raise DataError(f"utterance {quote(cur[0])}: feature dim {d} differs from {self.dim or cur[4]} "
                            f"of earlier utterances")
        if cur[4] is None:
            cur[4], cur[6], cur[7] = d, np.zeros(d), np.zeros(d)
        self._f.write(feats.data)
        self._offset += feats.nbytes
        f64 = feats.astype(np.float64)
        cur[3] += t
        cur[5] += t
        cur[6] += f64.sum(axis=0)
        cur[7] += np.einsum("td,td->d", f64, f64)

    def commit(self, seconds: float = 0.0) -> None:
        utt, spk, start, t, d, count, s1, s2 = self._cur
        self._cur = None
        if d is None:  # no block: a (0, D) utterance of an unknown dim
            d = self.dim or 0
            s1, s2 = np.zeros(d), np.zeros(d)
        if self.dim is None:
            self.dim = d
        self.rows.append((utt, start, t, d))
        st = self.spk_stats.get(spk)
        if st is None:
            st = self.spk_stats[spk] = [0.0, np.zeros(d), np.zeros(d)]
        st[0] += count
        st[1] += s1
        st[2] += s2
        self.seconds += seconds

    def rollback(self) -> None:
        """Drop what was written of the utterance begun last."""
        start = self._cur[2]
        self._cur = None
        self._f.seek(start)
        self._f.truncate()
        self._offset = start

    def skip(self, utt: str, reason: str) -> None:
        self.skipped.append((utt, " ".join(reason.split())))

    def finish(self) -> dict:
        """Make the shard final; returns the done-marker content.

        The frames are flushed to the disk (fsync) before their file is
        renamed into place. The small index, stats and skipped files and the
        marker are not (each fsync costs milliseconds, more than a shard's
        share of the work on a small corpus); the marker holds a CRC-32 of
        each of the three instead, so :func:`shard_done` takes a shard whose
        files a power cut lost or cut short as not done, and it is redone."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self._final)
        crcs = {}
        index = "".join(f"{u}\t{self.shard}\t{o}\t{t}\t{d}\n" for u, o, t, d in self.rows)
        with atomic_write(_shard_meta(self.out, self.shard, "index.tsv"), fsync=False) as f:
            f.write(index)
        crcs["index.tsv"] = zlib.crc32(index.encode("utf-8"))
        spks = sorted(self.spk_stats)
        d = self.dim or 0
        stats = {"speakers": np.array(spks, dtype=str),
                 "spk_count": np.array([self.spk_stats[s][0] for s in spks], dtype=np.float64),
                 "spk_sum": np.array([self.spk_stats[s][1] for s in spks]).reshape(len(spks), d),
                 "spk_sumsq": np.array([self.spk_stats[s][2] for s in spks]).reshape(len(spks), d)}
        with atomic_write(_shard_meta(self.out, self.shard, "stats.npz"), "wb", fsync=False) as f:
            np.savez(f, **stats)
        crcs["stats.npz"] = _arrays_crc(stats)
        skipped = "".join(f"{u} {r}\n" for u, r in self.skipped)
        with atomic_write(_shard_meta(self.out, self.shard, "skipped.txt"), fsync=False) as f:
            f.write(skipped)
        crcs["skipped.txt"] = zlib.crc32(skipped.encode("utf-8"))
        marker = {"utterances": len(self.rows), "skipped": len(self.skipped), "bytes": self._offset,
                  "dim": self.dim, "seconds": round(self.seconds, 3), "crc32": crcs}
        with atomic_write(_shard_meta(self.out, self.shard, "done"), fsync=False) as f:
            json.dump(marker, f)
        return marker

    def abort(self) -> None:
        try:
            self._f.close()
        finally:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()


def shard_done(out: str | os.PathLike, i: int) -> bool:
    """True when shard ``i`` finished: its marker exists and its files agree
    with it (a partial or tampered shard is never trusted)."""
    out = Path(out)
    m = _shard_meta(out, i, "done")
    if not m.exists():
        return False
    try:
        marker = json.loads(m.read_text())
        if shard_file(out, i).stat().st_size != marker["bytes"]:
            return False
        crcs = marker.get("crc32")  # absent in markers of stores made before it
        for kind in ("index.tsv", "stats.npz", "skipped.txt"):
            p = _shard_meta(out, i, kind)
            if crcs is None:
                if not p.exists():
                    return False
            elif kind == "stats.npz":
                with np.load(p, allow_pickle=False) as z:
                    if _arrays_crc({k: z[k] for k in z.files}) != crcs[kind]:
                        return False
            elif zlib.crc32(p.read_bytes()) != crcs[kind]:
                return False
    except Exception:  # noqa: BLE001 -- unreadable, cut short, not JSON, not an npz: not done
        return False
    return True


def _arrays_crc(arrays: dict[str, np.ndarray]) -> int:
    """CRC-32 of named arrays' names, dtypes, shapes and bytes (an npz file's
    own bytes hold a time stamp)."""
    crc = 0
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        crc = zlib.crc32(f"{k}:{a.dtype.str}:{a.shape};".encode(), crc)
        crc = zlib.crc32(a.tobytes(), crc)
    return crc


def clear_shard(out: str | os.PathLike, i: int) -> None:
    """Remove whatever a previous run left of shard ``i``."""
    out = Path(out)
    for p in (_shard_meta(out, i, "done"), shard_file(out, i), shard_file(out, i).with_suffix(".f32.partial"),
              _shard_meta(out, i, "index.tsv"), _shard_meta(out, i, "stats.npz"), _shard_meta(out, i, "skipped.txt")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def merge_shards(out: str | os.PathLike, num_shards: int) -> dict:
    """Join finished shards into ``index.tsv``, ``cmvn.npz`` and
    ``skipped.txt``. Raises :class:`DataError` naming unfinished shards."""
    out = Path(out)
    missing = [i for i in range(num_shards) if not shard_done(out, i)]
    if missing:
        shown = ", ".join(str(i) for i in missing[:20])
        raise DataError(f"{out}: shard(s) {shown} of {num_shards} are not finished; "
                        f"run them (asrkit featurize ... --shard I/{num_shards}) before --merge")
    rows: list[str] = []
    skipped: list[str] = []
    dim = None
    spk: dict[str, list] = {}
    total = {"utterances": 0, "skipped": 0, "frames": 0, "seconds": 0.0}
    for i in range(num_shards):
        marker = json.loads(_shard_meta(out, i, "done").read_text())
        if marker["dim"] is not None:
            if dim is not None and marker["dim"] != dim:
                raise DataError(f"{out}: shard {i} has dim {marker['dim']}, others {dim}")
            dim = marker["dim"]
        total["utterances"] += marker["utterances"]
        total["skipped"] += marker["skipped"]
        total["seconds"] += marker.get("seconds", 0.0)
        text = _shard_meta(out, i, "index.tsv").read_text(encoding="utf-8")
        rows.append(text)
        total["frames"] += sum(int(line.split("\t")[3]) for line in text.splitlines())
        skipped.append(_shard_meta(out, i, "skipped.txt").read_text(encoding="utf-8"))
        with np.load(_shard_meta(out, i, "stats.npz")) as z:
            for s, c, a, b in zip(z["speakers"], z["spk_count"], z["spk_sum"], z["spk_sumsq"]):
                st = spk.get(str(s))
                if st is None:
                    spk[str(s)] = [float(c), a.copy(), b.copy()]
                else:
                    st[0] += c
                    st[1] += a
                    st[2] += b
    d = dim or 0
    names = sorted(spk, key=lambda s: s.encode())
    sc = np.array([spk[s][0] for s in names], dtype=np.float64)
    ss = np.array([spk[s][1] for s in names]).reshape(len(names), d)
    sq = np.array([spk[s][2] for s in names]).reshape(len(names), d)
    with atomic_write(out / CMVN, "wb") as f:
        np.savez(f, global_count=np.array(sc.sum()), global_sum=ss.sum(axis=0), global_sumsq=sq.sum(axis=0),
                 speakers=np.array(names, dtype=str), spk_count=sc, spk_sum=ss, spk_sumsq=sq)
    with atomic_write(out / "skipped.txt") as f:
        f.writelines(skipped)
    all_rows = "".join(rows).splitlines()
    all_rows.sort(key=lambda r: r.split("\t", 1)[0].encode())
    with atomic_write(out / INDEX) as f:
        f.write("#utt\tshard\toffset\tframes\tdim\n")
        f.writelines(r + "\n" for r in all_rows)
    total["dim"] = dim
    return total


# ====================================================================== reading
class FeatureStore:
    """Read a feature store (memory-mapped).

    ``len(store)``, ``store.keys()``, ``utt in store``, ``store[utt]`` ->
    raw ``(T, D)`` float32 (a read-only view of the mapped shard),
    ``store.get(utt, cmvn="global"|"speaker"|"utterance"|None)``,
    ``store.dim``, ``store.num_frames(utt)``, ``store.conf`` (the feature
    config dict), ``store.utt2spk``, ``store.text``, ``store.ali``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        index = self.path / INDEX
        if not index.exists():
            if (self.path / PLAN).exists():
                raise InputError(f"{self.path}: feature store is not complete (no {INDEX}); "
                                 f"re-run 'asrkit featurize' (it resumes) or '--merge' after sharded runs")
            raise InputError(f"{self.path}: not a feature store (no {INDEX})")
        self._row: dict[str, int] = {}
        shard, off, frames, dims = [], [], [], []
        with open(index, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise InputError(f"{index}:{lineno}: invalid UTF-8; the store is damaged") from None
                if line.startswith("#") or not line.strip():
                    continue
                parts = line.rstrip("\r\n").split("\t")
                try:
                    u, s, o, t, d = parts[0], int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4])
                except (IndexError, ValueError):
                    raise InputError(f"{index}:{lineno}: bad index line") from None
                if min(s, o, t) < 0 or d <= 0 or o % 4 or max(s, t, d) >= 2**31 or o >= 2**62:
                    raise InputError(f"{index}:{lineno}: bad index line (shard, offset, frames, dim out of range)")
                self._row[u] = len(shard)
                shard.append(s); off.append(o); frames.append(t); dims.append(d)
        self._shard = np.array(shard, dtype=np.int32)
        self._off = np.array(off, dtype=np.int64)
        self._frames = np.array(frames, dtype=np.int64)
        self._dims = np.array(dims, dtype=np.int32)
        self._maps: dict[int, np.memmap] = {}
        self._cmvn = None
        self._conf = None
        self._tables: dict[str, dict[str, str] | None] = {}

    # --- mapping interface
    def __len__(self) -> int:
        return len(self._row)

    def keys(self) -> list[str]:
        """Utterance ids in sorted order."""
        return list(self._row)

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __contains__(self, utt: object) -> bool:
        return utt in self._row

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for u in self._row:
            yield u, self[u]

    def _map(self, s: int) -> np.memmap:
        m = self._maps.get(s)
        if m is None:
            p = shard_file(self.path, s)
            try:
                m = np.memmap(p, dtype="<f4", mode="r")
            except FileNotFoundError:
                raise InputError(f"{p}: shard file missing from the feature store") from None
            if len(self._maps) >= _MAX_OPEN_SHARDS:  # bound open file descriptors
                self._maps.pop(next(iter(self._maps)))
            self._maps[s] = m
        return m

    def _index(self, utt: str) -> int:
        try:
            return self._row[utt]
        except KeyError:
            raise DataError(f"{self.path}: no utterance {quote(utt)} in the feature store") from None

    def __getitem__(self, utt: str) -> np.ndarray:
        i = self._index(utt)
        t, d = int(self._frames[i]), int(self._dims[i])
        start = int(self._off[i]) // 4
        m = self._map(int(self._shard[i]))
        if start + t * d > m.shape[0]:
            raise InputError(f"{shard_file(self.path, int(self._shard[i]))}: shorter than its index says "
                             f"(utterance {quote(utt)}); the store is damaged, re-run featurize into a new folder")
        return m[start:start + t * d].reshape(t, d)

    @property
    def dim(self) -> int:
        if len(self._dims):
            return int(self._dims[0])
        return int(self.conf.get("dim", 0))

    def num_frames(self, utt: str) -> int:
        return int(self._frames[self._index(utt)])

    @property
    def total_frames(self) -> int:
        return int(self._frames.sum())

    # --- side files
    @property
    def conf(self) -> dict:
        if self._conf is None:
            import yaml

            p = self.path / CONF
            self._conf = yaml.safe_load(p.read_text(encoding="utf-8")) if p.exists() else {}
        return self._conf

    def _table(self, name: str) -> dict[str, str] | None:
        if name not in self._tables:
            from asrkit.data.table import read_table

            p = self.path / name
            self._tables[name] = read_table(p) if p.exists() else None
        return self._tables[name]

    @property
    def utt2spk(self) -> dict[str, str]:
        """utt -> speaker (each utterance its own speaker if unknown)."""
        return self._table("utt2spk") or {u: u for u in self._row}

    @property
    def text(self) -> dict[str, str] | None:
        return self._table("text")

    @property
    def ali(self) -> dict[str, str] | None:
        return self._table("ali")

    def speaker(self, utt: str) -> str:
        return self.utt2spk.get(utt, utt)

    # --- CMVN
    def cmvn_stats(self, speaker: str | None = None):
        """:class:`asrkit.data.cmvn.CmvnStats`, global or of one speaker."""
        from asrkit.data.cmvn import CmvnStats

        if self._cmvn is None:
            p = self.path / CMVN
            if not p.exists():
                raise InputError(f"{p}: no CMVN statistics in the feature store")
            with np.load(p) as z:
                self._cmvn = {k: z[k] for k in z.files}
                self._spk_row = {str(s): i for i, s in enumerate(self._cmvn["speakers"])}
        z = self._cmvn
        if speaker is None:
            return CmvnStats(float(z["global_count"]), z["global_sum"], z["global_sumsq"])
        i = self._spk_row.get(speaker)
        if i is None:
            raise DataError(f"{self.path}: no CMVN statistics for speaker '{speaker}'")
        return CmvnStats(float(z["spk_count"][i]), z["spk_sum"][i], z["spk_sumsq"][i])

    def get(self, utt: str, cmvn: str | None = None, norm_vars: bool = True) -> np.ndarray:
        """Features of ``utt`` (T, D) float32 with CMVN applied on read:
        ``"global"`` (corpus stats), ``"speaker"`` (the utterance's
        speaker's stats), ``"utterance"`` (its own) or None (raw copy).
        Means are subtracted; with ``norm_vars`` also divided by the std."""
        return self.normalize(utt, self[utt], cmvn, norm_vars)

    def normalize(self, utt: str, x, cmvn: str | None = None, norm_vars: bool = True) -> np.ndarray:
        """Features ``x`` (T, D) of ``utt`` (e.g. perturbed) with CMVN applied as
        :meth:`get` does (a new float32 array)."""
        from asrkit.data.cmvn import utterance_cmvn

        if cmvn is None:
            return np.array(x)
        if cmvn == "global":
            return self.cmvn_stats().apply(x, norm_vars)
        if cmvn == "speaker":
            return self.cmvn_stats(self.speaker(utt)).apply(x, norm_vars)
        if cmvn == "utterance":
            return utterance_cmvn(np.asarray(x), norm_vars)
        raise DataError(f"cmvn must be one of global, speaker, utterance or None (got {cmvn!r})")

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, utterances={len(self)}, dim={self.dim})"
