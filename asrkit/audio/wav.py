"""A small RIFF/WAVE parser for PCM and float WAV, from files or pipes.

libsndfile (soundfile) rejects or silently shortens some WAVs that Kaldi
tools produce or meet: a pipe's WAV whose sizes say ``0xFFFFFFFF`` (the writer
could not seek back), or a file cut short by a failed copy. This parser reads
such streams and tells a truncated file from a streamed one. Anything it does
not understand (compressed formats, RF64) returns ``None`` so the caller can
fall back to soundfile.
"""
from __future__ import annotations

import struct

import numpy as np

from asrkit.errors import AudioError

_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
_STREAMED = (0xFFFFFFFF, 0x7FFFF000, 0x7FFFFFFF, 0)


class WavHeader:
    """Where the samples are and how to read them."""

    __slots__ = ("rate", "channels", "bits", "fmt", "data_offset", "data_size", "streamed")

    def __init__(self, rate: int, channels: int, bits: int, fmt: int, data_offset: int, data_size: int, streamed: bool):
        self.rate, self.channels, self.bits, self.fmt = rate, channels, bits, fmt
        self.data_offset, self.data_size, self.streamed = data_offset, data_size, streamed

    @property
    def frame_bytes(self) -> int:
        return self.channels * (self.bits // 8)


def parse_header(buf: bytes, name: str, total_size: int | None = None) -> WavHeader | None:
    """Parse the header at the start of ``buf`` (which must hold at least the
    chunks up to ``data``). ``total_size`` is the file size when known (a
    regular file); for a pipe the whole stream is in ``buf``.

    Returns ``None`` for a valid RIFF file in a coding we leave to soundfile.
    """
    if len(buf) < 12 or buf[:4] not in (b"RIFF", b"RIFX") or buf[8:12] != b"WAVE":
        return None
    if buf[:4] == b"RIFX":
        return None
    riff_size = struct.unpack_from("<I", buf, 4)[0]
    total = len(buf) if total_size is None else total_size
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(buf):
        cid = buf[pos:pos + 4]
        size = struct.unpack_from("<I", buf, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + 16 > len(buf):
                raise AudioError(f"{name}: corrupt WAV (short fmt chunk)")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", buf, body)
            if tag == _EXTENSIBLE and size >= 40:
                tag = struct.unpack_from("<H", buf, body + 24)[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioError(f"{name}: corrupt WAV (data chunk before fmt chunk)")
            tag, channels, rate, bits = fmt
            if tag not in (_PCM, _FLOAT, _MULAW) or channels < 1 or bits not in (8, 16, 24, 32, 64):
                return None
            if rate <= 0:
                raise AudioError(f"{name}: corrupt WAV (sample rate {rate})")
            available = total - body
            streamed = size in _STREAMED or riff_size in _STREAMED and size > available
            if streamed:
                size = available
            elif size > available:
                fb = channels * bits // 8
                raise AudioError(
                    f"{name}: truncated WAV (header says {size // fb} frames, file holds {available // fb})"
                )
            size -= size % (channels * bits // 8)
            return WavHeader(rate, channels, bits, tag, body, size, streamed)
        pos = body + size + (size & 1)
    if fmt is None:
        raise AudioError(f"{name}: corrupt WAV (no fmt chunk)")
    raise AudioError(f"{name}: corrupt or truncated WAV (no data chunk)")


def decode_samples(data, header: WavHeader, name: str) -> np.ndarray:
    """Bytes of the data chunk -> ``(T, C)`` float32 in [-1, 1]."""
    bits, tag = header.bits, header.fmt
    if tag == _FLOAT:
        dtype = {32: "<f4", 64: "<f8"}.get(bits)
        if dtype is None:
            raise AudioError(f"{name}: float WAV with {bits} bits is not supported")
        x = np.frombuffer(data, dtype=dtype).astype(np.float32, copy=False)
    elif tag == _MULAW:
        from asrkit.audio.sphere import _ulaw_table  # same G.711 table

        x = _ulaw_table()[np.frombuffer(data, dtype=np.uint8)] * np.float32(1.0 / 32768.0)
    elif bits == 16:
        x = np.frombuffer(data, dtype="<i2").astype(np.float32) * np.float32(1.0 / 32768.0)
    elif bits == 8:
        x = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) * np.float32(1.0 / 128.0)
    elif bits == 32:
        x = np.frombuffer(data, dtype="<i4").astype(np.float32) * np.float32(1.0 / 2147483648.0)
    elif bits == 24:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) * np.float32(1.0 / 8388608.0)
    else:
        raise AudioError(f"{name}: WAV with {bits}-bit PCM is not supported")
    return x.reshape(-1, header.channels)
