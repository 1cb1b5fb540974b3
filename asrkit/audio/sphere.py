"""NIST SPHERE reader (the format of WSJ, TIMIT, Switchboard ``.sph``/``.wv1``).

A SPHERE file starts with a plain-text header::

    NIST_1A
       1024
    sample_count -i 123456
    sample_rate -i 16000
    sample_n_bytes -i 2
    sample_byte_format -s2 01
    sample_coding -s3 pcm
    channel_count -i 1
    end_head

padded to the header size (usually 1024 bytes), then the samples. We read
16-bit PCM in either byte order (``01`` little-endian, ``10`` big-endian),
8-bit mu-law (``sample_coding ulaw``/``mu-law``) and 8-bit PCM. Files whose
coding says ``embedded-shorten`` are compressed with shorten; those need
``sph2pipe`` in a piped ``wav.scp`` entry.
"""
from __future__ import annotations

import numpy as np

from asrkit.errors import AudioError, quote

MAGIC = b"NIST_1A"


def is_sphere(head: bytes) -> bool:
    """True when the first bytes of a file are a SPHERE header."""
    return head[:7] == MAGIC


def parse_header(data: bytes, name: str) -> tuple[dict[str, int | float | str], int]:
    """Parse a SPHERE header from the first bytes of a file.

    Returns ``(fields, header_size)``; ``fields`` maps field names to int
    (``-i``), float (``-r``) or str (``-sN``) values.
    """
    if not is_sphere(data):
        raise AudioError(f"{name}: not a NIST SPHERE file (no NIST_1A magic)")
    lines = data[:1024 * 64].split(b"\n")
    try:
        size = int(lines[1].strip())
    except (IndexError, ValueError):
        raise AudioError(f"{name}: corrupt SPHERE header (bad header size line)") from None
    if size < 16 or len(data) < size:
        raise AudioError(f"{name}: truncated SPHERE header (needs {size} bytes, has {len(data)})")
    fields: dict[str, int | float | str] = {}
    ended = False
    for raw in data[:size].split(b"\n")[2:]:
        line = raw.decode("latin-1").strip()
        if not line:
            continue
        if line == "end_head":
            ended = True
            break
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[1].startswith("-"):
            raise AudioError(f"{name}: corrupt SPHERE header line {quote(line)}")
        key, kind, value = parts
        try:
            if kind == "-i":
                fields[key] = int(value)
            elif kind == "-r":
                fields[key] = float(value)
            elif kind.startswith("-s"):
                n = int(kind[2:]) if len(kind) > 2 else len(value)
                fields[key] = value[:n]
            else:
                raise ValueError(kind)
        except ValueError:
            raise AudioError(f"{name}: corrupt SPHERE header line {quote(line)}") from None
    if not ended:
        raise AudioError(f"{name}: corrupt SPHERE header (no end_head within {size} bytes)")
    return fields, size


def _coding(fields: dict, name: str) -> str:
    coding = str(fields.get("sample_coding", "pcm")).lower()
    if "shorten" in coding or "wavpack" in coding or "shortpack" in coding:
        raise AudioError(
            f"{name}: SPHERE file is compressed ({coding}); asrkit cannot decode it. "
            f"Use a piped wav.scp entry: 'UTT sph2pipe -f wav {name} |'"
        )
    return coding


def header_info(fields: dict, name: str) -> tuple[int, int, int]:
    """``(sample_rate, num_frames, channels)`` from header fields (any coding)."""
    try:
        rate = int(fields["sample_rate"])
        count = int(fields["sample_count"])
    except KeyError as e:
        raise AudioError(f"{name}: SPHERE header lacks {e.args[0]}") from None
    return rate, count, int(fields.get("channel_count", 1))


_ULAW_TABLE: np.ndarray | None = None


def _ulaw_table() -> np.ndarray:
    """G.711 mu-law byte -> linear int16 value (as float32), 256 entries."""
    global _ULAW_TABLE
    if _ULAW_TABLE is None:
        u = ~np.arange(256, dtype=np.int32) & 0xFF
        sign = u & 0x80
        exponent = (u >> 4) & 0x07
        mantissa = u & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        _ULAW_TABLE = np.where(sign != 0, -magnitude, magnitude).astype(np.float32)
    return _ULAW_TABLE


def decode(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode a whole SPHERE file held in ``data``.

    Returns ``(samples (T, C) float32 in [-1, 1], rate)``.
    """
    fields, size = parse_header(data, name)
    coding = _coding(fields, name)
    rate, count, channels = header_info(fields, name)
    nbytes = int(fields.get("sample_n_bytes", 1 if "law" in coding else 2))
    body = memoryview(data)[size:]
    need = count * channels * nbytes
    if len(body) < need:
        raise AudioError(
            f"{name}: truncated SPHERE file (header says {count} samples, "
            f"file holds {len(body) // max(nbytes * channels, 1)})"
        )
    body = body[:need]
    if coding in ("ulaw", "mu-law", "mulaw", "u-law"):
        if nbytes != 1:
            raise AudioError(f"{name}: mu-law SPHERE with sample_n_bytes={nbytes} (expected 1)")
        codes = np.frombuffer(body, dtype=np.uint8)
        samples = _ulaw_table()[codes] * np.float32(1.0 / 32768.0)
    elif coding.startswith("pcm"):
        if nbytes == 2:
            order = str(fields.get("sample_byte_format", "01"))
            dtype = ">i2" if order == "10" else "<i2"
            samples = np.frombuffer(body, dtype=dtype).astype(np.float32) * np.float32(1.0 / 32768.0)
        elif nbytes == 1:
            samples = np.frombuffer(body, dtype=np.int8).astype(np.float32) * np.float32(1.0 / 128.0)
        elif nbytes == 4:
            order = str(fields.get("sample_byte_format", "0123"))
            dtype = ">i4" if order.startswith("3") else "<i4"
            samples = np.frombuffer(body, dtype=dtype).astype(np.float32) * np.float32(1.0 / 2147483648.0)
        else:
            raise AudioError(f"{name}: SPHERE PCM with sample_n_bytes={nbytes} is not supported")
    else:
        raise AudioError(f"{name}: SPHERE sample_coding {quote(coding)} is not supported (pcm, ulaw)")
    return samples.reshape(count, channels), rate
