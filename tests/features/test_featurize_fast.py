"""The fast fbank path and ``--jobs`` worker processes: the same features as
torchaudio's Kaldi fbank (odd lengths, chunk edges, several options),
threads that share no buffers, ``--jobs 2`` equal to ``--jobs 1``, a failing
shard that stops the others cleanly, and shard markers that catch damaged
shard files."""
from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import soundfile as sf
import torch

import asrkit.features.pipeline as pipeline
from asrkit.data import DataDir, FeatureStore
from asrkit.data.feature_store import shard_done
from asrkit.errors import AudioError
from asrkit.features import FeatureConfig, compute, featurize
from asrkit.features.compute import CHUNK_FRAMES, frame_geometry

RATE = 16000
C = CHUNK_FRAMES
# samples for 0, 1, 2 frames, a chunk and one frame either side, two chunks and one, ~31 s (4 blocks' worth)
LENGTHS = [399, 400, 401, 559, 560, 400 + 160 * (C - 2), 400 + 160 * (C - 1), 400 + 160 * C, 400 + 160 * (2 * C),
           RATE * 31 + 77]
OPTIONS = [{}, {"window_type": "hamming", "preemphasis_coefficient": 0.0},
           {"use_power": False, "remove_dc_offset": False, "num_mel_bins": 40},
           {"round_to_power_of_two": False, "low_freq": 60.0, "high_freq": -400.0},
           {"window_type": "blackman", "frame_length": 20.0, "frame_shift": 5.0}, {"window_type": "rectangular"}]


def _wave(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * rng.uniform(0.01, 0.3)).clip(-1, 1)
    return (np.round(x * 32767) / 32768).astype(np.float32)  # 16-bit PCM values, as read from a WAV


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_fast_path_equals_torchaudio(opts):
    conf = FeatureConfig.from_dict({"num_mel_bins": 80, "dither": 0.0, **opts})
    win, _ = frame_geometry(conf)
    for i, n in enumerate(LENGTHS):
        x = _wave(n, i)
        fast = compute(x, conf)
        if n < win:  # torchaudio asserts; featurize reports "shorter than one frame"
            assert fast.shape == (0, conf.dim)
            continue
        ref = compute(x, conf, fast_path=False)  # torchaudio itself
        assert fast.shape == ref.shape and fast.dtype == np.float32, n
        np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-4, err_msg=f"{n} samples")


def test_fast_path_constant_and_silent_audio():
    """DC removal must cancel a constant exactly as torchaudio does, or the
    log of a near-zero energy differs by whole units."""
    conf = FeatureConfig.load(None)
    for x in (np.full(3000, -1 / 32768, np.float32), np.zeros(2000, np.float32), np.full(5000, 0.25, np.float32)):
        np.testing.assert_array_equal(compute(x, conf), compute(x, conf, fast_path=False))


def test_threads_share_no_work_buffers():
    conf = FeatureConfig.load(None)
    waves = [_wave(n, i) for i, n in enumerate((400 + 160 * 700, 400 + 160 * 1300, 9000, 400 + 160 * C))]
    want = [compute(x, conf) for x in waves]
    got: dict[int, list] = {}

    def work(t: int) -> None:
        torch.set_num_threads(1)
        got[t] = [compute(waves[(t + k) % len(waves)], conf) for k in range(12)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t, outs in got.items():
        for k, f in enumerate(outs):
            np.testing.assert_array_equal(f, want[(t + k) % len(waves)])


def _data(root, n: int = 10, bad: str | None = None):
    rng = np.random.default_rng(4)
    (root / "wav").mkdir(parents=True)
    wav = {}
    for i in range(n):
        u = f"s{i % 3}-u{i:02d}"
        p = root / "wav" / f"{u}.wav"
        sf.write(p, (rng.standard_normal(int(RATE * rng.uniform(0.3, 1.5))) * 0.1).astype(np.float32), RATE,
                 subtype="PCM_16")
        wav[u] = str(p)
    if bad is not None:
        (root / "wav" / f"{bad}.wav").write_bytes(b"not audio" * 30)
    return DataDir(wav_scp=wav, utt2spk={u: u.split("-")[0] for u in wav}).save(root / "data")


def test_jobs2_processes_equal_jobs1(tmp_path, monkeypatch):
    """--jobs 2 runs the shards in two worker processes and writes the same
    bytes as --jobs 1 with the default shard count (which does not depend on
    the jobs up to 4)."""
    data = _data(tmp_path, n=20)
    featurize(data, tmp_path / "j1", jobs=1)
    real = pipeline._run_shard
    pids = tmp_path / "pids"

    def spy(*a, **k):  # runs in the worker (forked: the patched module comes along)
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "_run_shard", spy)
    threads = torch.get_num_threads()
    featurize(data, tmp_path / "j2", jobs=2)
    assert torch.get_num_threads() == threads  # the caller's setting is untouched
    seen = pids.read_text().split()
    assert len(seen) == pipeline.MIN_SHARDS and len(set(seen)) == 2 and str(os.getpid()) not in seen
    files = sorted(p.relative_to(tmp_path / "j1") for p in (tmp_path / "j1").rglob("*")
                   if p.is_file() and p.name != ".asrkit")  # the marker holds a time stamp
    assert len([f for f in files if f.suffix == ".f32"]) == pipeline.MIN_SHARDS
    for name in files:
        assert (tmp_path / "j1" / name).read_bytes() == (tmp_path / "j2" / name).read_bytes(), name
    assert sorted(p.relative_to(tmp_path / "j2") for p in (tmp_path / "j2").rglob("*")
                  if p.is_file() and p.name != ".asrkit") == files


def test_jobs2_error_stops_cleanly_and_rerun_resumes(tmp_path):
    data = _data(tmp_path, n=12, bad="s1-u07")
    out = tmp_path / "out"
    with pytest.raises(AudioError, match="s1-u07"):
        featurize(data, out, jobs=2, num_shards=6)
    assert not list(out.glob("*.partial"))  # the other thread's shard was abandoned and removed
    done = [i for i in range(6) if shard_done(out, i)]
    assert 3 not in done and not (out / "index.tsv").exists()  # s1-u07 is 7th of the 12 sorted ids: shard 3
    r = featurize(data, out, jobs=2, skip_bad=True)
    assert r.skipped == 1 and r.shards_skipped == len(done)
    st = FeatureStore(out)
    assert len(st) == 11 and "s1-u07" not in st


def test_shard_marker_catches_damaged_shard_files(tmp_path):
    data = _data(tmp_path, n=6)
    out = tmp_path / "out"
    featurize(data, out, num_shards=3)
    assert all(shard_done(out, i) for i in range(3))
    idx = out / "shards" / "0.index.tsv"
    idx.write_bytes(idx.read_bytes()[:-3])  # cut short
    (out / "shards" / "1.stats.npz").write_bytes(b"\0" * 300)  # zeros where a lost write was
    skip = out / "shards" / "2.skipped.txt"
    skip.write_text("x y\n")
    assert [shard_done(out, i) for i in range(3)] == [False, False, False]
    # a marker from before the CRCs only needs the files to be there
    m = out / "shards" / "2.done"
    old = json.loads(m.read_text())
    del old["crc32"]
    m.write_text(json.dumps(old))
    assert shard_done(out, 2)
