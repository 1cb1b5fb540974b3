"""The fuzz harness: seed files, mutations, and one runner per reader.

Each target writes its (mutated) bytes where its reader looks and reads them.
An input must end in a result or an :class:`asrkit.errors.AsrkitError`:
any other exception, a run longer than :data:`TIMEOUT_S`, or a peak of
allocations over :data:`MAX_ALLOC` plus 64 times the input size (a reader that
allocates from a header count instead of the bytes it has) is a failure.
"""
from __future__ import annotations

import io
import random
import signal
import struct
import tracemalloc
import wave
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

# Every reader is imported here, outside the traced and timed region (torch's
# import under tracemalloc and a timer is slow and can crash).
import asrkit.audio.reader  # noqa: F401
import asrkit.data.datadir  # noqa: F401
import asrkit.data.feature_store  # noqa: F401
import asrkit.data.lexicon  # noqa: F401
import asrkit.lm.arpa  # noqa: F401
import asrkit.score.readers  # noqa: F401
import asrkit.train.config  # noqa: F401
from asrkit.errors import AsrkitError

TIMEOUT_S = 2.0
MAX_ALLOC = 32 << 20

# -- seeds ----------------------------------------------------------------------


def _wav_seed() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.arange(-200, 200, dtype="<i2").tobytes())
    return buf.getvalue()


def _sphere_seed() -> bytes:
    fields = (
        "NIST_1A\n   1024\nsample_count -i 400\nsample_n_bytes -i 2\nchannel_count -i 1\n"
        "sample_byte_format -s2 01\nsample_rate -i 16000\nsample_coding -s3 pcm\nend_head\n"
    )
    head = fields.encode("ascii").ljust(1024, b" ")
    return head + np.arange(-200, 200, dtype="<i2").tobytes()


SEEDS: dict[str, bytes] = {
    "text": b"spk1-u1 the cat sat\nspk1-u2 hello world\nspk2_u1 a b c d\n",
    "trn": b"the cat sat (spk1-u1)\nhello world (spk1-u2)\na b c d (spk2_u1)\n",
    "wav.scp": b"u1 /nonexistent/u1.wav\nu2 sox /x.wav -t wav - |\n",
    "segments": b"u1 reco1 0.00 1.50\nu2 reco1 1.50 3.25\n",
    "utt2dur": b"u1 1.5\nu2 1.75\n",
    "wav": _wav_seed(),
    "sphere": _sphere_seed(),
    "arpa": (
        b"\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-0.5\t</s>\n-0.6\ta\t-0.2\n-0.7\tb\t-0.1\n\n"
        b"\\2-grams:\n-0.2\t<s> a\n-0.3\ta b\n\n\\end\\\n"
    ),
    "lexicon": b"cat K AE1 T\nsat S AE1 T\nthe DH AH0\nthe(2) DH IY0\n",
    "config": b"data:\n  max_frames: 4000\n  cmvn: global\noptim:\n  lr: 0.001\ntrain:\n  epochs: 2\nunits:\n  kind: char\n",
    "feature_index": b"# utt\tshard\toffset\tframes\tdim\nu1\t0\t0\t3\t4\nu2\t0\t48\t2\t4\n",
}

# -- mutations ------------------------------------------------------------------

JUNK = [
    b"\x00", b"\xff\xfe", b"\xc3", b"\xef\xbb\xbf", b"\r\n", b"\n", b" ", b"\t", b"(", b")", b"-",
    b"99999999999999999999", b"4294967295", b"-1", b"1e309", b"nan", b"inf", b"0", b"2147483648",
    b"\\data\\", b"ngram 9=9", b"end_head", b"NIST_1A", b"RIFF", b"data", b"fmt ", b"\xff\xff\xff\xff",
    b"- ", b": [", b"{", b"!!python/object:os.system", b"*a", b"&a", b"~", b"\x80\x81",
]
OPS = ("flip", "truncate", "insert", "replace", "bom", "crlf", "dup_line", "del_line", "huge_int", "nul")


def mutate(data: bytes, op: str, pos: int, arg: int) -> bytes:
    """Apply one mutation; ``pos`` and ``arg`` are free integers reduced here."""
    n = len(data)
    p = pos % (n + 1)
    if op == "flip" and n:
        b = bytearray(data)
        b[p % n] ^= 1 << (arg % 8)
        return bytes(b)
    if op == "truncate":
        return data[:p]
    if op == "insert":
        return data[:p] + JUNK[arg % len(JUNK)] + data[p:]
    if op == "replace":
        j = JUNK[arg % len(JUNK)]
        return data[:p] + j + data[p + len(j):]
    if op == "bom":
        return b"\xef\xbb\xbf" + data
    if op == "crlf":
        return data.replace(b"\n", b"\r\n")
    if op in ("dup_line", "del_line"):
        lines = data.split(b"\n")
        k = p % len(lines)
        if op == "dup_line":
            lines.insert(k, lines[k])
        else:
            del lines[k]
        return b"\n".join(lines)
    if op == "huge_int" and n >= 4:
        b = bytearray(data)
        b[p % (n - 3):p % (n - 3) + 4] = struct.pack("<I", (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 1 << 20)[arg % 4])
        return bytes(b)
    if op == "nul":
        return data[:p] + b"\x00" * (1 + arg % 3) + data[p:]
    return data


def random_case(rng: random.Random, seed: bytes) -> bytes:
    data = seed
    for _ in range(rng.randint(1, 3)):
        data = mutate(data, rng.choice(OPS), rng.randrange(1 << 16), rng.randrange(1 << 16))
    return data


# -- targets ----------------------------------------------------------------------


def _size_of(result) -> int:
    if isinstance(result, np.ndarray):
        return result.nbytes
    if isinstance(result, (tuple, list)):
        return sum(_size_of(r) for r in result)
    return 0


def _read_transcripts(tmp: Path, data: bytes):
    from asrkit.score.readers import read_transcripts

    p = tmp / "t.txt"
    p.write_bytes(data)
    return read_transcripts(p)


def _read_datadir(name: str):
    def run(tmp: Path, data: bytes):
        from asrkit.data.datadir import DataDir

        d = tmp / "data"
        d.mkdir(exist_ok=True)
        (d / "utt2spk").write_bytes(b"u1 s1\nu2 s1\n")
        (d / name).write_bytes(data)
        dd = DataDir.load(d)
        if dd.segments is not None:  # resolve every utterance's source
            for u in list(dd.segments):
                try:
                    dd.source(u)
                except AsrkitError:
                    pass
        return dd
    return run


def _read_audio(tmp: Path, data: bytes):
    from asrkit.audio.reader import read

    p = tmp / "a.audio"
    p.write_bytes(data)
    x, rate = read(str(p))
    return x


def _read_arpa(tmp: Path, data: bytes):
    from asrkit.lm.arpa import read_arpa

    p = tmp / "lm.arpa"
    p.write_bytes(data)
    lm = read_arpa(p)
    lm.sentence_logprob(["a", "b"])
    return lm


def _read_lexicon(tmp: Path, data: bytes):
    from asrkit.data.lexicon import Lexicon

    p = tmp / "lexicon.txt"
    p.write_bytes(data)
    return Lexicon.load(p)


def _read_config(tmp: Path, data: bytes):
    from asrkit.train.config import load_config

    p = tmp / "c.yaml"
    p.write_bytes(data)
    return load_config("ctc", conf=p)


def _read_feature_store(tmp: Path, data: bytes):
    from asrkit.data.feature_store import INDEX, FeatureStore, shard_file

    d = tmp / "store"
    d.mkdir(exist_ok=True)
    (d / INDEX).write_bytes(data)
    shard_file(d, 0).write_bytes(np.arange(20, dtype="<f4").tobytes())
    store = FeatureStore(d)
    return [store[u] for u in store.keys()]


TARGETS: dict[str, tuple[str, Callable[[Path, bytes], object]]] = {
    "text": ("text", _read_transcripts),
    "trn": ("trn", _read_transcripts),
    "wav.scp": ("wav.scp", _read_datadir("wav.scp")),
    "segments": ("segments", _read_datadir("segments")),
    "utt2dur": ("utt2dur", _read_datadir("utt2dur")),
    "wav": ("wav", _read_audio),
    "sphere": ("sphere", _read_audio),
    "arpa": ("arpa", _read_arpa),
    "lexicon": ("lexicon", _read_lexicon),
    "config": ("config", _read_config),
    "feature_index": ("feature_index", _read_feature_store),
}


class Hang(Exception):
    pass


@contextmanager
def _deadline(seconds: float):
    def on_alarm(signum, frame):
        raise Hang(f"no result within {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_case(target: str, data: bytes, tmp: Path) -> str | None:
    """Run one input; ``None`` when it ended in a result or an AsrkitError,
    else a one-line description of the failure."""
    _, fn = TARGETS[target]
    tracemalloc.start()
    try:
        with _deadline(TIMEOUT_S):
            result = fn(tmp, data)
        if _size_of(result) > 64 * len(data) + (1 << 16):
            return f"result of {_size_of(result)} bytes from a {len(data)}-byte input"
    except AsrkitError:
        pass
    except Hang as e:
        return f"hang: {e}"
    except MemoryError:
        return "MemoryError"
    except Exception as e:  # noqa: BLE001 -- any other exception is the finding
        return f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    if peak > MAX_ALLOC + 64 * len(data):
        return f"allocated {peak} bytes for a {len(data)}-byte input"
    return None
