"""``asrkit.audio.load``: one entry point for every way audio is named.

A *source* is what a ``wav.scp`` line holds after the id:

- a file path: WAV (parsed here, fast, truncation-aware), FLAC/OGG/other
  formats soundfile reads, or NIST SPHERE (``.sph``/``.wv1``; parsed here);
- a Kaldi piped command ending in ``|`` (``sph2pipe -f wav x.wv1 |``,
  ``sox x.flac -t wav - |``, ``flac -c -d -s x.flac |``): split with
  :mod:`shlex` (no shell), inner ``|`` chain processes, WAV or SPHERE read
  from the last stdout; a failure reports the command's stderr.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from asrkit import log
from asrkit.audio import sphere, wav
from asrkit.errors import AudioError

_HEAD_BYTES = 65536
_resample_logged: set[tuple[int, int]] = set()


@dataclass(frozen=True)
class AudioInfo:
    """What the header says: rate, length in frames, channels, container."""

    rate: int
    frames: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.rate if self.rate else 0.0


def is_piped(source: str) -> bool:
    """True for a Kaldi piped ``wav.scp`` entry (``command args |``)."""
    return source.rstrip().endswith("|")


def pipe_stages(source: str) -> list[list[str]]:
    """Split ``cmd1 args | cmd2 args |`` into argv lists, shell-free."""
    lex = shlex.shlex(source.rstrip().rstrip("|"), posix=True, punctuation_chars="|")
    lex.whitespace_split = True
    stages: list[list[str]] = [[]]
    for tok in lex:
        if tok == "|":
            stages.append([])
        elif set(tok) == {"|"}:
            stages.extend([] for _ in tok)
        else:
            stages[-1].append(tok)
    if any(not s for s in stages):
        raise AudioError(f"bad piped wav.scp entry (empty command): {source!r}")
    return stages


DEFAULT_PIPE_TIMEOUT = 600.0  # seconds one piped wav.scp command may run


def run_pipe(source: str, timeout: float | None = None) -> bytes:
    """Run a piped entry and return its stdout; a failure raises
    :class:`AudioError` with the failing command's stderr. ``timeout``
    (seconds, None: no limit) bounds the whole chain: a hung decoder is
    killed and reported with its command."""
    import tempfile
    import time

    stages = pipe_stages(source)
    procs: list[subprocess.Popen] = []
    errs = []
    prev = None
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for argv in stages:
            err = tempfile.TemporaryFile()
            errs.append(err)
            try:
                p = subprocess.Popen(argv, stdin=prev, stdout=subprocess.PIPE, stderr=err)
            except FileNotFoundError:
                raise AudioError(f"piped entry {source!r}: command '{argv[0]}' not found on PATH") from None
            except PermissionError:
                raise AudioError(f"piped entry {source!r}: command '{argv[0]}' is not executable") from None
            if prev is not None:
                prev.close()  # the upstream gets SIGPIPE if the downstream exits
            procs.append(p)
            prev = p.stdout
        try:
            out, _ = procs[-1].communicate(timeout=timeout)
            for p in procs:
                p.wait(timeout=None if deadline is None else max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            hung = next((argv for argv, p in zip(stages, procs) if p.poll() is None), stages[-1])
            raise AudioError(f"piped entry {source!r}: '{shlex.join(hung)}' did not finish within "
                             f"{timeout:g} s (--pipe-timeout); killed") from None
        for argv, p, err in zip(stages, procs, errs):
            if p.returncode != 0:
                err.seek(0)
                msg = err.read().decode("utf-8", "replace").strip().replace("\n", " | ")[-500:]
                raise AudioError(
                    f"piped entry {source!r}: '{shlex.join(argv)}' exited with status {p.returncode}"
                    + (f": {msg}" if msg else "")
                )
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for err in errs:
            err.close()
    if not out:
        raise AudioError(f"piped entry {source!r}: the command wrote no audio")
    return out


def _decode_bytes(data: bytes, name: str, total_size: int | None = None) -> tuple[np.ndarray, int]:
    if sphere.is_sphere(data):
        return sphere.decode(data, name)
    header = wav.parse_header(data, name, total_size)
    if header is not None:
        body = memoryview(data)[header.data_offset:header.data_offset + header.data_size]
        return wav.decode_samples(body, header, name), header.rate
    return _soundfile_read(data, name)


def _soundfile_read(data_or_path, name: str) -> tuple[np.ndarray, int]:
    import io

    import soundfile as sf

    src = io.BytesIO(data_or_path) if isinstance(data_or_path, (bytes, bytearray)) else data_or_path
    try:
        x, rate = sf.read(src, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(f"{name}: cannot decode audio: {e}") from None
    return x, rate


def _open_audio(path: str):
    """Open an audio file for binary reading; a missing, unreadable or
    directory path raises :class:`AudioError` naming it."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise AudioError(f"{path}: no such audio file") from None
    except IsADirectoryError:
        raise AudioError(f"{path}: is a directory, expected an audio file") from None
    except PermissionError:
        raise AudioError(f"{path}: permission denied") from None


def _read_head(f, path: str) -> bytes:
    """The first bytes of an open audio file (enough for any header); an
    empty file raises :class:`AudioError`."""
    head = f.read(_HEAD_BYTES)
    if not head:
        raise AudioError(f"{path}: empty audio file (0 bytes)")
    return head


def _read_file(path: str) -> tuple[np.ndarray, int]:
    with _open_audio(path) as f:
        head = _read_head(f, path)
        if sphere.is_sphere(head) or head[:4] == b"RIFF":
            data = head + f.read()
            return _decode_bytes(data, path, len(data))
    return _soundfile_read(path, path)


def read(source: str, pipe_timeout: float | None = None) -> tuple[np.ndarray, int]:
    """Read a source as ``((T, C) float32, rate)`` without any conversion.
    ``pipe_timeout`` bounds a piped entry's commands (seconds)."""
    source = source.strip()
    if is_piped(source):
        return _decode_bytes(run_pipe(source, pipe_timeout), f"piped entry {source!r}")
    return _read_file(source)


def note_resample(orig: int, new: int) -> None:
    """Say (once per process and rate pair) that audio is being resampled."""
    if (orig, new) not in _resample_logged:
        _resample_logged.add((orig, new))
        log.info(f"resampling audio from {orig} Hz to {new} Hz")


def resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Resample a ``(T,)`` signal with torchaudio's windowed-sinc resampler;
    logs the first time each (orig, new) pair is met."""
    if orig == new:
        return x
    import torch
    import torchaudio.functional as AF

    note_resample(orig, new)
    return AF.resample(torch.from_numpy(np.ascontiguousarray(x)), orig, new).numpy()


def load(
    source: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    channel: int = 0,
    start: float | None = None,
    end: float | None = None,
) -> tuple[np.ndarray, int]:
    """Load audio as a mono float32 array in [-1, 1] and its rate.

    ``source`` is a path or a ``wav.scp`` value (piped command ending in
    ``|``). ``channel`` picks one channel of a multi-channel file (Kaldi's
    ``--channel``); ``start``/``end`` (seconds) cut a segment (as a
    ``segments`` line does; ``end`` <= 0 means to the end). With
    ``sample_rate`` the audio is resampled to that rate when it differs.

    Returns ``(samples (T,) float32, rate)``. Unreadable, missing, truncated
    or empty audio, and NaN/inf samples, raise :class:`AudioError`.
    """
    src = os.fspath(source)
    x, rate = read(src)
    return cut(x, rate, src.strip(), sample_rate, channel=channel, start=start, end=end)


def cut(
    x: np.ndarray,
    rate: int,
    name: str,
    sample_rate: int | None = None,
    *,
    channel: int = 0,
    start: float | None = None,
    end: float | None = None,
) -> tuple[np.ndarray, int]:
    """The second half of :func:`load` for samples already read with
    :func:`read` (``x`` (T, C)): pick the channel, cut ``start``..``end``
    seconds, check for empty/NaN audio, resample. Lets a caller read a
    recording once and cut many segments from it."""
    _check_channel(x.shape[1], channel, name)
    y = x[:, channel] if x.shape[1] > 1 or channel else x.reshape(-1)
    a, b = _span(len(y), rate, name, start, end)
    y = y[a:b]
    if not np.isfinite(y).all():
        raise AudioError(f"{name}: audio holds NaN or infinite samples")
    if sample_rate is not None and sample_rate != rate:
        y = resample(np.ascontiguousarray(y), rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(y, dtype=np.float32), rate


def info(source: str | os.PathLike) -> AudioInfo:
    """Rate, frames and channels from the header (a piped entry is run)."""
    src = os.fspath(source).strip()
    if is_piped(src):
        x, rate = read(src)
        return AudioInfo(rate, x.shape[0], x.shape[1], "pipe")
    with _open_audio(src) as f:
        size = os.fstat(f.fileno()).st_size
        head = _read_head(f, src)
    if sphere.is_sphere(head):
        fields, hsize = sphere.parse_header(head, src)
        rate, count, ch = sphere.header_info(fields, src)
        coding = str(fields.get("sample_coding", "pcm")).lower()
        if "shorten" not in coding and "pack" not in coding:
            nbytes = int(fields.get("sample_n_bytes", 2))
            have = (size - hsize) // max(nbytes * ch, 1)
            if have < count:
                raise AudioError(f"{src}: truncated SPHERE file (header says {count} samples, file holds {have})")
        return AudioInfo(rate, count, ch, f"sphere/{coding}")
    h = wav.parse_header(head, src, size) if head[:4] == b"RIFF" else None
    if h is not None:
        return AudioInfo(h.rate, h.data_size // h.frame_bytes, h.channels, "wav")
    import soundfile as sf

    try:
        i = sf.info(src)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{src}: cannot decode audio: {e}") from None
    return AudioInfo(int(i.samplerate), int(i.frames), int(i.channels), str(i.format).lower())


def programs_of(source: str) -> Iterable[str]:
    """The programs a piped entry runs (for checks without running it)."""
    return [argv[0] for argv in pipe_stages(source)]


def missing_programs(source: str) -> list[str]:
    """Programs of a piped entry that are not on PATH."""
    return [p for p in programs_of(source) if shutil.which(p) is None]


# --------------------------------------------------------------------------
# Reading by range: an utterance's samples without holding the recording.
class Samples:
    """The mono samples of one utterance (after channel pick, segment cut
    and resampling), read by range: ``len(s)`` samples at ``s.rate``;
    ``s.read(a, b)`` -> ``(b - a,)`` float32. A WAV file is read from disk
    block by block, so a long recording never sits in memory whole; other
    sources are decoded once. Use as a context manager (closes the file)."""

    def __init__(self, n: int, rate: int, name: str):
        self.n, self.rate, self.name = n, rate, name
        self.source_rate = rate

    def __len__(self) -> int:
        return self.n

    def read(self, a: int, b: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Samples":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check(self, y: np.ndarray) -> np.ndarray:
        if not np.isfinite(y).all():
            raise AudioError(f"{self.name}: audio holds NaN or infinite samples")
        return y


class _ArraySamples(Samples):
    def __init__(self, y: np.ndarray, rate: int, name: str):
        super().__init__(len(y), rate, name)
        self._y = y

    def read(self, a: int, b: int) -> np.ndarray:
        return self._y[a:b]


class _WavSamples(Samples):
    """Samples ``first..first+n`` (frames) of one channel of a PCM/float WAV."""

    def __init__(self, f, header: "wav.WavHeader", first: int, n: int, channel: int, name: str):
        super().__init__(n, header.rate, name)
        self._f, self._h, self._first, self._channel = f, header, first, channel

    def read(self, a: int, b: int) -> np.ndarray:
        fb = self._h.frame_bytes
        a, b = max(a, 0), min(b, self.n)
        if b <= a:
            return np.zeros(0, np.float32)
        self._f.seek(self._h.data_offset + (self._first + a) * fb)
        data = self._f.read((b - a) * fb)
        if len(data) < (b - a) * fb:
            raise AudioError(f"{self.name}: file shrank while being read")
        x = wav.decode_samples(data, self._h, self.name)  # (b - a, C)
        y = x[:, self._channel] if x.shape[1] > 1 or self._channel else x.reshape(-1)
        return self._check(np.ascontiguousarray(y, dtype=np.float32))

    def close(self) -> None:
        self._f.close()


def _check_channel(channels: int, channel: int, name: str) -> None:
    if channels <= channel:
        raise AudioError(f"{name}: has {channels} channel(s), channel {channel} asked for")


#: Seconds a ``segments`` line may end after its recording's end (cut to the end, as Kaldi's
#: ``extract-segments --max-overshoot`` does); a line further past is an error.
MAX_OVERSHOOT = 0.5


def _span(n: int, rate: int, name: str, start: float | None, end: float | None) -> tuple[int, int]:
    """Sample range ``a, b`` of ``start``..``end`` seconds of ``n`` samples
    (``end`` <= 0: to the end); an empty range raises :class:`AudioError`."""
    a, b = 0, n
    if start is not None or end is not None:
        a = int(round((start or 0.0) * rate))
        b = int(round(end * rate)) if end is not None and end > 0 else n
        if a >= n:
            raise AudioError(f"{name}: segment starts at {start}s, past the end ({n / rate:.3f}s)")
        if b > n + MAX_OVERSHOOT * rate:
            raise AudioError(f"{name}: segment ends at {end}s, {end - n / rate:.2f}s after the end of the recording "
                             f"({n / rate:.3f}s); fix the segments file (more than {MAX_OVERSHOOT:g}s over)")
        b = min(b, n)
    if b - a <= 0:
        raise AudioError(f"{name}: zero-length audio")
    return a, b


def open_samples(
    source: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    channel: int = 0,
    start: float | None = None,
    end: float | None = None,
    pipe_timeout: float | None = None,
    cache: dict | None = None,
) -> Samples:
    """The samples :func:`load` would return, as a :class:`Samples` read by
    range: a WAV file at ``sample_rate`` is read lazily from disk; anything
    else is decoded and cut with :func:`cut` (``cache``, a dict kept across
    calls, holds the last decoded recording, so segments of one piped or
    compressed recording decode it once). Same values as :func:`load`.
    ``.source_rate`` of the result is the rate the audio came in."""
    src = os.fspath(source).strip()
    decoded = cache.get(src) if cache is not None else None
    if decoded is None and not is_piped(src):
        f = _open_audio(src)
        try:
            size = os.fstat(f.fileno()).st_size
            head = _read_head(f, src)
            h = wav.parse_header(head, src, size) if head[:4] == b"RIFF" else None
        except AudioError:
            f.close()
            h = None  # let the whole-file path say what is wrong
            f = None
        except BaseException:
            f.close()
            raise
        if h is not None and (sample_rate is None or h.rate == sample_rate):
            frames = h.data_size // h.frame_bytes
            try:
                _check_channel(h.channels, channel, src)
                a, b = _span(frames, h.rate, src, start, end)
            except BaseException:
                f.close()
                raise
            s = _WavSamples(f, h, a, b - a, channel, src)
            s.source_rate = h.rate
            return s
        if f is not None:
            f.close()
    if decoded is None:
        decoded = read(src, pipe_timeout)
        if cache is not None:
            cache.clear()
            cache[src] = decoded
    x, rate = decoded
    y, new_rate = cut(x, rate, src, sample_rate, channel=channel, start=start, end=end)
    s = _ArraySamples(y, new_rate, src)
    s.source_rate = rate
    return s
