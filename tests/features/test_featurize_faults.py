"""Faults during `asrkit featurize`: SIGKILL at seeded random points and a
full disk. The resumed store is byte-equal to an uninterrupted one, and no
partial shard is ever taken for a whole one."""
from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asrkit.data.feature_store as fs
from asrkit.data import DataDir, FeatureStore
from asrkit.errors import InputError
from asrkit.features import featurize

RATE = 16000
SHARDS = 8
ROOT = Path(__file__).resolve().parents[2]


def _data(root: Path, n: int = 40) -> tuple[Path, Path]:
    """A plain data dir and the same audio read through a slow piped command
    (so a kill lands in the middle of the work)."""
    rng = np.random.default_rng(11)
    (root / "wav").mkdir(parents=True)
    wav = {}
    for i in range(n):
        u = f"s{i % 4}-u{i:02d}"
        x = (rng.standard_normal(int(RATE * rng.uniform(0.3, 0.8))) * 0.1).astype(np.float32)
        sf.write(root / "wav" / f"{u}.wav", x, RATE, subtype="PCM_16")
        wav[u] = str(root / "wav" / f"{u}.wav")
    d = DataDir(wav_scp=wav, utt2spk={u: u.split("-")[0] for u in wav}, text={u: "a" for u in wav})
    plain = d.save(root / "plain")
    d.wav_scp = {u: f"sh -c 'sleep 0.04; cat {p}' |" for u, p in wav.items()}
    return plain, d.save(root / "slow")


def _files(out: Path) -> dict[str, bytes]:
    """The store's files that must be byte-equal (npz zips carry a time
    stamp: compared by content in _same_npz)."""
    names = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".npz"
             and p.name not in (".asrkit", ".lock", "plan.json")]
    return {str(p.relative_to(out)): p.read_bytes() for p in names}


def _same_npz(a: Path, b: Path) -> None:
    with np.load(a) as x, np.load(b) as y:
        assert sorted(x.files) == sorted(y.files)
        for k in x.files:
            np.testing.assert_array_equal(x[k], y[k])


def _check_no_partial_taken_for_whole(out: Path, ref: Path) -> None:
    with pytest.raises(InputError, match="not complete"):
        FeatureStore(out)
    for i in range(SHARDS):
        if fs.shard_done(out, i):  # a shard that says it is finished is the finished shard
            assert (out / f"feats.{i}.f32").read_bytes() == (ref / f"feats.{i}.f32").read_bytes()
            assert (out / "shards" / f"{i}.index.tsv").read_bytes() == (ref / "shards" / f"{i}.index.tsv").read_bytes()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    plain, slow = _data(root)
    ref = root / "ref"
    featurize(plain, ref, num_shards=SHARDS)
    return plain, slow, ref


def test_sigkill_at_random_points_then_resume(corpus, tmp_path):
    plain, slow, ref = corpus
    out = tmp_path / "killed"
    exe = str(Path(sys.executable).with_name("asrkit"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [exe, "-q", "featurize", str(slow), str(out), "--jobs", "1", "--num-shards", str(SHARDS)]
    rng = random.Random(1234)

    def n_done() -> int:
        return len(list((out / "shards").glob("*.done"))) if (out / "shards").exists() else 0

    kills = 0
    for _ in range(3):
        start = n_done()
        if start >= SHARDS - 1:
            break
        # a random point: after a random number of further finished shards, plus a random delay
        target = start + rng.randint(0, 1)
        delay = rng.uniform(0.0, 0.3)
        p = subprocess.Popen(cmd, env=env, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None and not (
                n_done() >= target and (out / "shards").exists() and list(out.glob("feats.*.partial"))):
            time.sleep(0.01)
        time.sleep(delay)
        if p.poll() is not None:
            break  # finished before the point: nothing left to interrupt
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        kills += 1
        _check_no_partial_taken_for_whole(out, ref)
    assert kills >= 1
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _files(out) == _files(ref)
    _same_npz(out / "cmvn.npz", ref / "cmvn.npz")
    for i in range(SHARDS):
        _same_npz(out / "shards" / f"{i}.stats.npz", ref / "shards" / f"{i}.stats.npz")


def test_disk_full_mid_shard(corpus, tmp_path, monkeypatch, capsys):
    """ENOSPC while shard 3's frames are written: one line, the shards done
    before are intact, the partial shard is gone, and a re-run completes."""
    from asrkit.cli.main import main

    plain, _, ref = corpus
    out = tmp_path / "full"
    real = fs.ShardWriter.extend

    def extend(self, feats):
        if self.shard == 3 and self.rows:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._tmp))
        return real(self, feats)

    monkeypatch.setattr(fs.ShardWriter, "extend", extend)
    capsys.readouterr()
    assert main(["-q", "featurize", str(plain), str(out), "--num-shards", str(SHARDS)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on the device" in err and "Traceback" not in err
    for i in range(3):
        assert fs.shard_done(out, i)
        assert (out / f"feats.{i}.f32").read_bytes() == (ref / f"feats.{i}.f32").read_bytes()
    assert not fs.shard_done(out, 3) and not (out / "feats.3.f32.partial").exists()
    assert not (out / "index.tsv").exists()
    monkeypatch.setattr(fs.ShardWriter, "extend", real)
    assert main(["-q", "featurize", str(plain), str(out)]) == 0
    assert _files(out) == _files(ref)
