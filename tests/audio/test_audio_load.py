"""asrkit.audio: every container (wav, flac, ogg, SPHERE, piped commands) and every bad input."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.audio import cut, info, load, read
from asrkit.audio.reader import pipe_stages
from asrkit.errors import AudioError

RATE = 16000


def _signal(n: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * 0.2).clip(-1, 1).astype(np.float32)


def _int16(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32767).astype(np.int16)


def write_sphere(path: Path, body: bytes, count: int, *, coding: str = "pcm", nbytes: int = 2,
                 order: str = "01", rate: int = RATE, channels: int = 1) -> Path:
    """A NIST SPHERE file with a 1024-byte header."""
    lines = ["NIST_1A", "   1024", f"sample_count -i {count}", f"sample_rate -i {rate}",
             f"channel_count -i {channels}", f"sample_n_bytes -i {nbytes}",
             f"sample_byte_format -s{len(order)} {order}", f"sample_coding -s{len(coding)} {coding}", "end_head"]
    head = ("\n".join(lines) + "\n").encode()
    path.write_bytes(head + b" " * (1024 - len(head)) + body)
    return path


def test_wav_flac_ogg_match_soundfile(tmp_path):
    x = _signal()
    for ext, kw in ((".wav", {"subtype": "PCM_16"}), (".flac", {}), (".ogg", {})):
        p = tmp_path / f"a{ext}"
        sf.write(p, x, RATE, **kw)
        y, rate = load(p)
        ref, _ = sf.read(p, dtype="float32")
        assert rate == RATE and y.dtype == np.float32 and y.shape == ref.shape
        np.testing.assert_array_equal(y, ref)
        assert info(p).rate == RATE and info(p).frames == len(ref)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "PCM_32", "FLOAT"])
def test_wav_other_sample_formats(tmp_path, subtype):
    x = _signal()
    p = tmp_path / "a.wav"
    sf.write(p, x, RATE, subtype=subtype)
    y, _ = load(p)
    np.testing.assert_allclose(y, sf.read(p, dtype="float32")[0], atol=1e-6)


def test_stereo_channel_pick(tmp_path):
    x = np.stack([_signal(seed=1), _signal(seed=2)], axis=1)
    p = tmp_path / "st.wav"
    sf.write(p, x, RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load(p)[0], x[:, 0])
    np.testing.assert_array_equal(load(p, channel=1)[0], x[:, 1])
    with pytest.raises(AudioError, match="channel 2"):
        load(p, channel=2)


@pytest.mark.parametrize("order,dtype", [("01", "<i2"), ("10", ">i2")])
def test_sphere_pcm_both_byte_orders(tmp_path, order, dtype):
    s = _int16(_signal())
    p = write_sphere(tmp_path / "a.sph", s.astype(dtype).tobytes(), len(s), order=order)
    y, rate = load(p)
    assert rate == RATE
    np.testing.assert_array_equal(y, s.astype(np.float32) / 32768)
    assert info(p).frames == len(s) and info(p).format == "sphere/pcm"


def test_sphere_mulaw(tmp_path):
    # G.711: 0xFF and 0x7F are +-0, 0x80 is +32124, 0x00 is -32124, 0x8F is +7932 (segment 0 end)
    codes = bytes([0xFF, 0x7F, 0x80, 0x00, 0xF0, 0x70])
    p = write_sphere(tmp_path / "u.sph", codes, len(codes), coding="ulaw", nbytes=1, order="1", rate=8000)
    y, rate = load(p)
    assert rate == 8000
    np.testing.assert_array_equal(y * 32768, [0, 0, 32124, -32124, 120, -120])


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop left the standard library in Python 3.13")
def test_sphere_mulaw_matches_audioop(tmp_path):
    import audioop
    lin = _int16(_signal(2000))
    codes = audioop.lin2ulaw(lin.tobytes(), 2)
    p = write_sphere(tmp_path / "u.sph", codes, len(codes), coding="mu-law", nbytes=1, order="1")
    expect = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype=np.int16)
    np.testing.assert_array_equal(load(p)[0] * 32768, expect.astype(np.float32))


def test_sphere_shorten_names_file_and_sph2pipe(tmp_path):
    p = write_sphere(tmp_path / "s.wv1", b"\x00" * 100, 1000, coding="pcm,embedded-shorten-v2.00")
    with pytest.raises(AudioError, match=r"s\.wv1.*shorten.*sph2pipe -f wav"):
        load(p)
    assert info(p).frames == 1000  # the header alone still gives the duration


def test_sphere_truncated_and_corrupt(tmp_path):
    p = write_sphere(tmp_path / "t.sph", b"\x00\x01" * 10, 100)
    with pytest.raises(AudioError, match="truncated SPHERE"):
        load(p)
    with pytest.raises(AudioError, match="truncated SPHERE"):
        info(p)
    bad = tmp_path / "bad.sph"
    bad.write_bytes(b"NIST_1A\n   1024\nsample_count -i\n" + b" " * 1000)
    with pytest.raises(AudioError, match="bad.sph"):
        load(bad)


def test_truncated_wav_is_an_error(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, _signal(), RATE, subtype="PCM_16")
    data = p.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut\.wav: truncated WAV"):
        load(tmp_path / "cut.wav")
    with pytest.raises(AudioError, match="truncated WAV"):
        info(tmp_path / "cut.wav")


def test_missing_empty_garbage_zero_length_nan(tmp_path):
    with pytest.raises(AudioError, match="no such audio file"):
        load(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty audio file"):
        load(tmp_path / "empty.wav")
    (tmp_path / "junk.flac").write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="junk.flac: cannot decode"):
        load(tmp_path / "junk.flac")
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), RATE, subtype="PCM_16")
    with pytest.raises(AudioError, match="zero-length"):
        load(tmp_path / "zero.wav")
    x = _signal()
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: audio holds NaN"):
        load(tmp_path / "nan.wav")


def test_piped_entries(tmp_path):
    x = _signal()
    p = tmp_path / "a b.wav"  # a space: shlex quoting must hold
    sf.write(p, x, RATE, subtype="PCM_16")
    ref = sf.read(p, dtype="float32")[0]
    for entry in (f"cat '{p}' |", f"cat '{p}' | cat |", f"cat '{p}'|cat|"):
        np.testing.assert_array_equal(load(entry)[0], ref)
    assert pipe_stages(f"cat '{p}' | cat -u |") == [["cat", str(p)], ["cat", "-u"]]
    # a SPHERE stream through a pipe
    s = _int16(x)
    sph = write_sphere(tmp_path / "a.sph", s.tobytes(), len(s))
    np.testing.assert_array_equal(load(f"cat {sph} |")[0], s / np.float32(32768))


def test_piped_streamed_wav_with_unknown_sizes(tmp_path):
    """A writer that cannot seek (sox/sph2pipe to a pipe) leaves 0xFFFFFFFF sizes."""
    s = _int16(_signal())
    script = tmp_path / "gen.py"
    script.write_text(
        "import struct, sys\n"
        f"data = open({str(tmp_path / 'raw')!r}, 'rb').read()\n"
        "fmt = struct.pack('<HHIIHH', 1, 1, 16000, 32000, 2, 16)\n"
        "sys.stdout.buffer.write(b'RIFF' + struct.pack('<I', 0xFFFFFFFF) + b'WAVEfmt ' + struct.pack('<I', 16)"
        " + fmt + b'data' + struct.pack('<I', 0xFFFFFFFF) + data)\n")
    (tmp_path / "raw").write_bytes(s.tobytes())
    y, rate = load(f"{sys.executable} {script} |")
    assert rate == RATE
    np.testing.assert_array_equal(y, s / np.float32(32768))


def test_piped_failure_reports_stderr(tmp_path):
    with pytest.raises(AudioError, match=r"exited with status 3: sph2pipe: cannot open x\.wv1"):
        load(f"{sys.executable} -c \"import sys; sys.stderr.write('sph2pipe: cannot open x.wv1'); sys.exit(3)\" |")
    with pytest.raises(AudioError, match="'no-such-program-xyz' not found on PATH"):
        load("no-such-program-xyz -f wav a.wv1 |")
    with pytest.raises(AudioError, match="wrote no audio"):
        load("true |")


@pytest.mark.needs_tool("sox")
def test_piped_sox(tmp_path):
    x = _signal()
    p = tmp_path / "a.flac"
    sf.write(p, x, RATE)
    y, rate = load(f"sox {p} -t wav - |")
    assert rate == RATE
    np.testing.assert_allclose(y, sf.read(p, dtype="float32")[0], atol=1e-4)


def test_resample_logged_once(tmp_path, capsys, monkeypatch):
    import asrkit.audio.reader as reader
    from asrkit import log

    monkeypatch.setattr(log, "_quiet", False)  # an earlier in-process 'asrkit -q' run may have set it
    reader._resample_logged.discard((8000, 16000))
    p = tmp_path / "n.wav"
    sf.write(p, _signal(8000), 8000, subtype="PCM_16")
    y, rate = load(p, sample_rate=16000)
    assert rate == 16000 and len(y) == 16000
    load(p, sample_rate=16000)
    err = capsys.readouterr().err
    assert err.count("resampling audio from 8000 Hz to 16000 Hz") == 1
    import torch
    import torchaudio.functional as AF

    ref = AF.resample(torch.from_numpy(sf.read(p, dtype="float32")[0]), 8000, 16000).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_segments_cut(tmp_path):
    x = _signal(16000)
    p = tmp_path / "r.wav"
    sf.write(p, x, RATE, subtype="FLOAT")
    y, _ = load(p, start=0.25, end=0.5)
    np.testing.assert_array_equal(y, x[4000:8000])
    np.testing.assert_array_equal(load(p, start=0.5, end=-1)[0], x[8000:])
    xs, rate = read(str(p))
    np.testing.assert_array_equal(cut(xs, rate, "r", start=0.25, end=0.5)[0], y)
    with pytest.raises(AudioError, match="past the end"):
        load(p, start=2.0, end=3.0)
