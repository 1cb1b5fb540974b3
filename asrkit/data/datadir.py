"""Kaldi-style data dirs: ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``,
``segments``, ``utt2dur``, ``ali``.

A :class:`DataDir` holds the tables in memory as dicts keyed by id (utt-id,
or recording-id for ``wav.scp`` when ``segments`` exists). :meth:`DataDir.save`
writes them sorted in C-locale order and derives ``spk2utt`` from
``utt2spk``. :func:`asrkit.data.validate` checks a dir on disk.

File formats (one record per line, ``id value...``):

- ``wav.scp``   ``reco-id path`` or ``reco-id command args |`` (piped)
- ``text``      ``utt-id word word ...``
- ``utt2spk``   ``utt-id spk-id`` (speaker ids prefix utt ids)
- ``spk2utt``   ``spk-id utt-id utt-id ...``
- ``segments``  ``utt-id reco-id start-seconds end-seconds`` (end -1 = to the end)
- ``utt2dur``   ``utt-id seconds``
- ``ali``       ``utt-id label label ...`` (one label per frame)
- ``text.*``, ``ali.*``  more per-utterance tables (e.g. ``text.phones`` of
  the synthesized corpora): kept in :attr:`DataDir.extra`, subset and
  combined with the rest
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from asrkit.data.table import read_table, sorted_keys, write_table
from asrkit.errors import DataError, InputError, quote

TABLES = ("wav.scp", "text", "utt2spk", "spk2utt", "segments", "utt2dur", "ali")


@dataclass(frozen=True)
class Segment:
    """One ``segments`` line: a time span of a recording (seconds; ``end``
    <= 0 means to the end of the recording)."""

    reco: str
    start: float
    end: float

    def __str__(self) -> str:
        return f"{self.reco} {_fmt_time(self.start)} {_fmt_time(self.end)}"


def _fmt_time(t: float) -> str:
    return f"{t:.3f}".rstrip("0").rstrip(".") if t != int(t) else f"{t:.2f}"


def _fmt_dur(t: float) -> str:
    return f"{t:.4f}".rstrip("0").rstrip(".") or "0"


@dataclass
class DataDir:
    """A data dir in memory.

    ``wav_scp`` maps recording ids to sources (path or piped command);
    without ``segments`` a recording id is the utt-id. ``text``, ``ali``,
    ``utt2dur`` and ``segments`` are None when the dir has no such file.
    """

    wav_scp: dict[str, str] = field(default_factory=dict)
    utt2spk: dict[str, str] = field(default_factory=dict)
    text: dict[str, str] | None = None
    segments: dict[str, Segment] | None = None
    utt2dur: dict[str, float] | None = None
    ali: dict[str, str] | None = None
    extra: dict[str, dict[str, str]] = field(default_factory=dict)
    path: Path | None = None

    # ---------------------------------------------------------------- reading
    @classmethod
    def load(cls, path: str | os.PathLike) -> "DataDir":
        """Read a data dir. Needs ``utt2spk`` (or ``spk2utt``); every other
        file is optional. Malformed lines raise :class:`InputError` with
        file:line."""
        p = Path(path)
        if not p.is_dir():
            raise InputError(f"{p}: no such data dir")
        d = cls(path=p)
        if (p / "wav.scp").exists():
            d.wav_scp = read_table(p / "wav.scp", allow_empty_value=False)
        if (p / "utt2spk").exists():
            d.utt2spk = read_utt2spk(p / "utt2spk")
        elif (p / "spk2utt").exists():
            d.utt2spk = {u: s for s, us in read_spk2utt(p / "spk2utt").items() for u in us}
        else:
            raise InputError(f"{p}: no utt2spk (or spk2utt) file; every data dir needs one")
        if (p / "text").exists():
            d.text = read_table(p / "text")
        if (p / "segments").exists():
            d.segments = read_segments(p / "segments")
        if (p / "utt2dur").exists():
            d.utt2dur = read_utt2dur(p / "utt2dur")
        if (p / "ali").exists():
            d.ali = read_table(p / "ali")
        for f in sorted(p.iterdir()):
            if f.is_file() and is_extra_table(f.name):
                d.extra[f.name] = read_table(f)
        return d

    # ---------------------------------------------------------------- writing
    def save_output(self, path: str | os.PathLike, command: str, overwrite: bool = False,
                    inputs: tuple = ()) -> Path:
        """:meth:`save` as the output of ``command`` (``"data subset"``...),
        by the output-folder rule (:func:`asrkit.io.prepare_output_dir`: a
        non-empty folder another command made needs ``overwrite``); a failed
        write (disk full, read-only) is one :class:`~asrkit.errors.OutputError` line."""
        from asrkit.errors import OutputError
        from asrkit.io import os_error_line, prepare_output_dir

        prepare_output_dir(path, command, overwrite, inputs=inputs)
        try:
            return self.save(path)
        except OSError as e:
            raise OutputError(os_error_line(path, e)) from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write every table this dir has (sorted, atomically) plus
        ``spk2utt``. Tables this dir lacks are removed from ``path`` so the
        folder never mixes old and new files."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        if self.wav_scp:
            write_table(p / "wav.scp", self.wav_scp)
        write_table(p / "utt2spk", self.utt2spk)
        write_table(p / "spk2utt", self.spk2utt)
        for name, table in (("text", self.text), ("ali", self.ali)):
            if table is not None:
                write_table(p / name, table)
        if self.segments is not None:
            write_table(p / "segments", {u: str(s) for u, s in self.segments.items()})
        if self.utt2dur is not None:
            write_table(p / "utt2dur", {u: _fmt_dur(v) for u, v in self.utt2dur.items()})
        for name, table in self.extra.items():
            write_table(p / name, table)
        for f in p.iterdir():
            if f.is_file() and is_extra_table(f.name) and f.name not in self.extra:
                f.unlink()
        for name, have in (("wav.scp", bool(self.wav_scp)), ("text", self.text is not None),
                           ("ali", self.ali is not None), ("segments", self.segments is not None),
                           ("utt2dur", self.utt2dur is not None)):
            if not have and (p / name).exists():
                (p / name).unlink()
        self.path = p
        return p

    # ---------------------------------------------------------------- queries
    @property
    def utt_ids(self) -> list[str]:
        """Utterance ids, C-locale sorted."""
        return sorted_keys(self.utt2spk)

    def __len__(self) -> int:
        return len(self.utt2spk)

    def __contains__(self, utt: str) -> bool:
        return utt in self.utt2spk

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        """Speaker -> sorted utt-ids (derived from ``utt2spk``)."""
        out: dict[str, list[str]] = {}
        for u in self.utt_ids:
            out.setdefault(self.utt2spk[u], []).append(u)
        return out

    def source(self, utt: str) -> tuple[str, float | None, float | None]:
        """``(wav.scp source, start, end)`` of an utterance (start/end are
        None without ``segments``)."""
        if self.segments is not None:
            seg = self.segments.get(utt)
            if seg is None:
                raise DataError(f"{self._name('segments')}: no line for utterance {quote(utt)}")
            src = self.wav_scp.get(seg.reco)
            if src is None:
                raise DataError(f"{self._name('wav.scp')}: no recording {quote(seg.reco)} (utterance {quote(utt)})")
            return src, seg.start, (seg.end if seg.end > 0 else None)
        src = self.wav_scp.get(utt)
        if src is None:
            raise DataError(f"{self._name('wav.scp')}: no line for utterance {quote(utt)}")
        return src, None, None

    def audio(self, utt: str, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
        """Load an utterance's samples: ``((T,) float32 in [-1, 1], rate)``."""
        from asrkit.audio import load

        src, start, end = self.source(utt)
        return load(src, sample_rate, start=start, end=end)

    def duration(self, utt: str) -> float:
        """Seconds, from ``utt2dur``, ``segments`` or the audio header."""
        if self.utt2dur is not None and utt in self.utt2dur:
            return self.utt2dur[utt]
        if self.segments is not None and utt in self.segments and self.segments[utt].end > 0:
            s = self.segments[utt]
            return s.end - s.start
        from asrkit.audio import info

        src, start, _ = self.source(utt)
        return info(src).duration - (start or 0.0)

    def compute_utt2dur(self) -> dict[str, float]:
        """Fill ``utt2dur`` from segments / audio headers and return it."""
        self.utt2dur = {u: self.duration(u) for u in self.utt_ids}
        return self.utt2dur

    def _name(self, file: str) -> str:
        return str(self.path / file) if self.path else file

    # ------------------------------------------------------- subset / combine
    def subset(self, utts: Iterable[str]) -> "DataDir":
        """A new dir with only ``utts`` (and the recordings they use)."""
        keep = [u for u in utts if u in self.utt2spk]
        ks = set(keep)

        def sub(t):
            return None if t is None else {k: v for k, v in t.items() if k in ks}

        segs = sub(self.segments)
        if segs is not None:
            recos = {s.reco for s in segs.values()}
            wav = {r: v for r, v in self.wav_scp.items() if r in recos}
        else:
            wav = {k: v for k, v in self.wav_scp.items() if k in ks}
        return DataDir(wav_scp=wav, utt2spk={u: self.utt2spk[u] for u in keep}, text=sub(self.text),
                       segments=segs, utt2dur=sub(self.utt2dur), ali=sub(self.ali),
                       extra={name: sub(t) for name, t in self.extra.items()})

    def first(self, n: int) -> "DataDir":
        """The first ``n`` utterances in sorted order (Kaldi ``subset_data_dir.sh --first``)."""
        return self.subset(self.utt_ids[:n])

    def speakers(self, spks: Iterable[str]) -> "DataDir":
        """Only the utterances of these speakers (``--spk-list``)."""
        want = set(spks)
        unknown = want - set(self.utt2spk.values())
        if unknown:
            raise DataError(f"unknown speaker(s): {', '.join(sorted(unknown)[:10])}")
        return self.subset(u for u in self.utt_ids if self.utt2spk[u] in want)

    def shortest(self, n: int) -> "DataDir":
        """The ``n`` shortest utterances (``--shortest``); durations from
        utt2dur, segments or audio headers."""
        durs = {u: self.duration(u) for u in self.utt_ids}
        chosen = sorted(self.utt_ids, key=lambda u: (durs[u], u.encode()))[:n]
        d = self.subset(chosen)
        d.utt2dur = {u: durs[u] for u in chosen}
        return d

    def split(self, dev: int | float, by_speaker: bool = False, seed: int = 0) -> tuple["DataDir", "DataDir"]:
        """``(train, dev)``: a seeded random ``dev`` part, the rest train.

        ``dev`` is a number of utterances (int) or a fraction in (0, 1)
        (float). With ``by_speaker`` whole speakers go to dev (in a seeded
        random order) until it holds at least that many utterances, so no
        speaker is on both sides. The same seed gives the same split; every
        table (text, ali, segments, utt2dur, ``text.*``...) follows its
        utterances, as in :meth:`subset`.
        """
        import random

        n = len(self)
        if isinstance(dev, float):
            if not 0.0 < dev < 1.0:
                raise DataError(f"split: the dev fraction must be between 0 and 1 (got {dev:g})")
            want = max(1, round(dev * n))
        else:
            want = int(dev)
        if want < 1:
            raise DataError("split: the dev part must hold at least one utterance")
        if want >= n:
            raise DataError(f"split: a dev part of {want} utterances leaves nothing to train on ({n} in all)")
        rng = random.Random(seed)
        if by_speaker:
            groups = self.spk2utt
            spks = sorted(groups, key=lambda s: s.encode())
            rng.shuffle(spks)
            chosen: list[str] = []
            for s in spks:
                if len(chosen) >= want:
                    break
                chosen.extend(groups[s])
            if len(chosen) >= n:
                raise DataError(f"split: {len(groups)} speaker(s) cannot be split by speaker with a dev part of "
                                f"{want} utterances; ask for fewer")
        else:
            ids = list(self.utt_ids)
            rng.shuffle(ids)
            chosen = ids[:want]
        dev_ids = set(chosen)
        return (self.subset(u for u in self.utt_ids if u not in dev_ids),
                self.subset(u for u in self.utt_ids if u in dev_ids))

    @staticmethod
    def combine(dirs: Iterable["DataDir"]) -> "DataDir":
        """Union of data dirs (Kaldi ``combine_data.sh``). A table is kept
        only when every input has it; duplicate ids with different content
        raise :class:`DataError`."""
        dirs = list(dirs)
        if not dirs:
            raise DataError("combine: no input data dirs")
        out = DataDir()
        has_segs = [d.segments is not None for d in dirs]
        if any(has_segs) and not all(has_segs):
            # mixing segmented and whole-file dirs: give whole files a segment each
            dirs = [d if d.segments is not None else _with_segments(d) for d in dirs]

        def merge(name: str, tables: list[dict | None]) -> dict | None:
            if any(t is None for t in tables):
                return None
            m: dict = {}
            for d, t in zip(dirs, tables):
                for k, v in t.items():
                    if k in m and m[k] != v:
                        src = d.path or "input"
                        raise DataError(f"combine: id {quote(k)} is in more than one input with different {name} ({src})")
                    m[k] = v
            return m

        out.wav_scp = merge("wav.scp", [d.wav_scp for d in dirs]) or {}
        out.utt2spk = merge("utt2spk", [d.utt2spk for d in dirs]) or {}
        out.text = merge("text", [d.text for d in dirs])
        out.segments = merge("segments", [d.segments for d in dirs])
        out.utt2dur = merge("utt2dur", [d.utt2dur for d in dirs])
        out.ali = merge("ali", [d.ali for d in dirs])
        for name in set.intersection(*(set(d.extra) for d in dirs)):
            out.extra[name] = merge(name, [d.extra[name] for d in dirs])
        return out


def _with_segments(d: DataDir) -> DataDir:
    segs = {u: Segment(u, 0.0, -1.0) for u in d.utt2spk}
    return DataDir(wav_scp=dict(d.wav_scp), utt2spk=dict(d.utt2spk), text=d.text, segments=segs,
                   utt2dur=d.utt2dur, ali=d.ali, extra=d.extra, path=d.path)


# -------------------------------------------------------------- table readers
def is_extra_table(name: str) -> bool:
    """``text.*`` / ``ali.*`` per-utterance tables (not temp or backup files)."""
    base, dot, ext = name.partition(".")
    return base in ("text", "ali") and bool(dot) and bool(ext) and not name.endswith((".tmp", ".partial", "~"))


def read_utt2spk(path: str | os.PathLike) -> dict[str, str]:
    """``utt-id spk-id`` lines; exactly two fields each."""
    t = read_table(path, allow_empty_value=False)
    for k, v in t.items():
        if len(v.split()) != 1:
            raise InputError(f"{path}: utterance {quote(k)} has more than one speaker ({quote(v)})")
    return t


def read_spk2utt(path: str | os.PathLike) -> dict[str, list[str]]:
    """``spk-id utt-id...`` lines."""
    return {k: v.split() for k, v in read_table(path, allow_empty_value=False).items()}


def read_segments(path: str | os.PathLike) -> dict[str, Segment]:
    """``utt-id reco-id start end`` lines."""
    out: dict[str, Segment] = {}
    for k, v in read_table(path, allow_empty_value=False).items():
        f = v.split()
        try:
            if len(f) != 3:
                raise ValueError
            out[k] = Segment(f[0], float(f[1]), float(f[2]))
        except ValueError:
            raise InputError(f"{path}: bad segments line for {quote(k)} (want 'utt reco start end')") from None
    return out


def read_utt2dur(path: str | os.PathLike) -> dict[str, float]:
    """``utt-id seconds`` lines."""
    out: dict[str, float] = {}
    for k, v in read_table(path, allow_empty_value=False).items():
        try:
            out[k] = float(v)
        except ValueError:
            raise InputError(f"{path}: bad duration {quote(v)} for {quote(k)}") from None
    return out

