"""featurize never destroys a user's files: the output-folder rule, the lock
on OUT, the piped-command timeout, write errors as one line, and long audio
computed in blocks equal to the whole-file features."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.data import DataDir, FeatureStore, Segment
from asrkit.errors import AudioError, OutputError, UsageError
from asrkit.features import FeatureConfig, compute, featurize
from asrkit.io import MARKER, read_marker

RATE = 16000


def _wav(path: Path, seconds: float, seed: int = 0, channels: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    x = 0.2 * np.sin(2 * np.pi * 220 * t * (1 + 0.3 * np.sin(t)))[:, None] + 0.05 * rng.standard_normal((n, channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.clip(-1, 1).astype(np.float32), RATE, subtype="PCM_16")
    return path


def _data(root: Path, n: int = 4) -> Path:
    wav = {f"s{i % 2}-u{i}": str(_wav(root / "wav" / f"u{i}.wav", 0.4 + 0.1 * i, seed=i)) for i in range(n)}
    d = DataDir(wav_scp=wav, utt2spk={u: u.split("-")[0] for u in wav}, text={u: "a b" for u in wav})
    return d.save(root / "data")


def _cli(*args: str) -> int:
    from asrkit.cli.main import main

    return main(list(args))


# ------------------------------------------------------------ output folders
def test_featurize_refuses_a_data_dir_given_as_out(tmp_path, capsys):
    data = _data(tmp_path / "a")
    victim = _data(tmp_path / "b", n=6)  # DATA OUT swapped: OUT is someone's data dir
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    with pytest.raises(UsageError, match=r"--overwrite") as e:
        featurize(data, victim)
    assert str(victim) in str(e.value)
    assert {p.name: p.read_bytes() for p in victim.iterdir()} == before  # untouched, no lock file either
    capsys.readouterr()
    assert _cli("featurize", str(data), str(victim)) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _cli("-q", "featurize", str(data), str(victim), "--overwrite") == 0
    assert not (victim / "wav.scp").exists() and len(FeatureStore(victim)) == 4
    assert read_marker(victim)["command"] == "featurize"


def test_featurize_resumes_its_own_store_and_marks_it(tmp_path):
    data = _data(tmp_path)
    out = tmp_path / "f"
    featurize(data, out, num_shards=2, shard=(0, 2))
    m = read_marker(out)
    assert m["command"] == "featurize" and m["version"] and m["created"]
    featurize(data, out, num_shards=2, shard=(1, 2))  # its own unfinished output: no --overwrite needed
    r = featurize(data, out)
    assert r.merged and len(FeatureStore(out)) == 4
    with pytest.raises(UsageError, match="input"):
        featurize(data, data, overwrite=True)  # never the input itself
    with pytest.raises(UsageError, match="input"):
        featurize(data, tmp_path, overwrite=True)  # nor a folder holding it


def test_data_commands_refuse_a_foreign_dir(tmp_path, capsys):
    src = _data(tmp_path / "src", n=6)
    d = DataDir.load(src)
    d.segments = {u: Segment(u, 0.0, -1.0) for u in d.utt_ids}
    d.extra["text.phones"] = {u: "sil a sil" for u in d.utt_ids}
    src = d.save(tmp_path / "src" / "data")
    other = _data(tmp_path / "other", n=5)
    victim = tmp_path / "victim"
    DataDir.load(src).save(victim)  # a dir the user made: no marker
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    runs = [("data", "subset", str(src), str(victim), "--first", "2"),
            ("data", "combine", str(victim), str(other)),
            ("data", "validate", str(other), "--fix", str(victim)),
            ("data", "split", str(src), "--dev", "2", "--out", str(tmp_path / "tr"), str(victim))]
    for args in runs:
        capsys.readouterr()
        assert _cli(*args) == 2, args
        err = capsys.readouterr().err
        assert str(victim) in err and "--overwrite" in err and "Traceback" not in err
        assert {p.name: p.read_bytes() for p in victim.iterdir()} == before, args
    assert not (tmp_path / "tr").exists()  # split refuses before writing either side
    assert _cli("data", "subset", str(src), str(victim), "--first", "2", "--overwrite") == 0
    assert sorted(p.name for p in victim.iterdir()) == sorted(
        [MARKER, "segments", "spk2utt", "text", "text.phones", "utt2spk", "wav.scp"])
    assert len((victim / "utt2spk").read_text().splitlines()) == 2
    # its own output again: rewritten without --overwrite
    assert _cli("data", "subset", str(src), str(victim), "--first", "3") == 0
    # another command's output is refused, naming that command
    capsys.readouterr()
    assert _cli("data", "combine", str(victim), str(other)) == 2
    assert "made by 'asrkit data subset'" in capsys.readouterr().err
    assert _cli("data", "combine", str(victim), str(other), "--overwrite") == 0
    assert not (victim / "segments").exists() and len(DataDir.load(victim)) == 5
    assert _cli("data", "validate", str(other), "--fix", str(victim), "--overwrite") == 0
    assert read_marker(victim)["command"] == "data validate --fix"


def test_output_under_a_regular_file_or_being_one(tmp_path, capsys):
    data = _data(tmp_path)
    f = tmp_path / "afile"
    f.write_text("keep me\n")
    with pytest.raises(OutputError, match="lies under the regular file"):
        featurize(data, f / "sub")
    with pytest.raises(OutputError, match="is a regular file"):
        featurize(data, f, overwrite=True)
    assert f.read_text() == "keep me\n"
    capsys.readouterr()
    assert _cli("featurize", str(data), str(f / "sub")) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("err", [errno.EACCES, errno.ENOSPC])
def test_write_error_is_one_line_and_keeps_earlier_output(tmp_path, capsys, monkeypatch, err):
    import asrkit.data.feature_store as fs

    data = _data(tmp_path)
    out = tmp_path / "f"
    featurize(data, out, num_shards=2, shard=(0, 2))
    done0 = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    real = fs.atomic_write

    def failing(path, *a, **k):
        if "1." in Path(path).name:
            raise OSError(err, os.strerror(err), str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(fs, "atomic_write", failing)
    capsys.readouterr()
    assert _cli("-q", "featurize", str(data), str(out)) == 1
    msg = capsys.readouterr().err.strip()
    assert "Traceback" not in msg and len(msg.splitlines()) == 1 and str(out) in msg
    assert ("permission denied" if err == errno.EACCES else "no space left") in msg
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == done0  # shard 0 intact
    assert not fs.shard_done(out, 1) and not (out / "index.tsv").exists()  # nothing half-written looks whole
    monkeypatch.setattr(fs, "atomic_write", real)
    assert featurize(data, out).merged  # and the re-run finishes it


# ------------------------------------------------------------------- the lock
def test_two_featurize_runs_into_one_out(tmp_path):
    """A second process gets one line naming the holder's pid and exit 1;
    the first finishes a complete store."""
    d = DataDir.load(_data(tmp_path))
    first = d.utt_ids[0]
    go = tmp_path / "go"
    # run 1 waits inside its first utterance until run 2 has been turned away
    d.wav_scp[first] = f"sh -c 'while [ ! -e {go} ]; do sleep 0.05; done; cat {d.wav_scp[first]}' |"
    data = d.save(tmp_path / "slow")
    out = tmp_path / "f"
    exe = str(Path(sys.executable).with_name("asrkit"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    p1 = subprocess.Popen([exe, "-q", "featurize", str(data), str(out)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list((out / "shards").glob("*.partial")) \
                and not list(out.glob("*.partial")):
            assert p1.poll() is None, p1.communicate()
            time.sleep(0.05)
        r2 = subprocess.run([exe, "featurize", str(data), str(out)], env=env, capture_output=True, text=True,
                            timeout=120)
        assert r2.returncode == 1, r2.stderr
        line = r2.stderr.strip()
        assert f"is being written by another asrkit process (pid {p1.pid})" in line
        assert len(line.splitlines()) == 1 and "Traceback" not in line
        go.touch()
        _, err1 = p1.communicate(timeout=120)
        assert p1.returncode == 0, err1
    finally:
        if p1.poll() is None:
            p1.kill()
    assert len(FeatureStore(out)) == 4


def test_shard_runs_share_the_lock(tmp_path):
    from asrkit.io import output_lock

    out = tmp_path / "o"
    with output_lock(out, shared=True):
        with output_lock(out, shared=True):
            pass
        with pytest.raises(OutputError, match=rf"pid {os.getpid()}"):
            with output_lock(out):
                pass


def _in_thread(fn, *args, **kwargs):
    """Run ``fn`` on a thread (flocks are per open file, so two threads lock
    like two processes); returns the thread and a list that gets its error."""
    import threading

    errors: list[BaseException] = []

    def run():
        try:
            fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 -- checked by the test
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, errors


def test_concurrent_first_shard_runs_do_not_break_each_other(tmp_path, monkeypatch):
    """Two --shard runs start together on a new folder: neither takes the
    other's half-written marker for a stale one (or fails on it)."""
    import yaml

    data = _data(tmp_path)
    real = yaml.safe_dump

    def slow_dump(obj, stream=None, **kw):  # widen the window while the marker's temp file exists
        if isinstance(obj, dict) and "command" in obj and stream is not None:  # the .asrkit marker
            time.sleep(0.4)
        return real(obj, stream, **kw)

    monkeypatch.setattr(yaml, "safe_dump", slow_dump)
    out = tmp_path / "o"
    runs = [_in_thread(featurize, data, out, shard=(i, 2)) for i in range(2)]
    for t, errors in runs:
        t.join(60)
        assert not errors, errors
    from asrkit.features.pipeline import merge_only

    merge_only(data, out)
    assert len(FeatureStore(out)) == 4 and read_marker(out)["command"] == "featurize"


def test_a_shard_run_joining_others_keeps_their_work_even_with_overwrite(tmp_path):
    """An array job gives every --shard run --overwrite: the first clears the
    folder; one that starts while it writes joins it instead of wiping it."""
    d = DataDir.load(_data(tmp_path))
    featurize(d.save(tmp_path / "plain"), tmp_path / "ref")
    first = d.utt_ids[0]
    go = tmp_path / "go"
    # shard 0 waits inside its first utterance until shard 1 has run
    d.wav_scp[first] = f"sh -c 'while [ ! -e {go} ]; do sleep 0.05; done; cat {d.wav_scp[first]}' |"
    data = d.save(tmp_path / "slow")
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("an earlier run's leftovers\n")  # what --overwrite is for
    t, errors = _in_thread(featurize, data, out, shard=(0, 2), overwrite=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (out / "feats.0.f32.partial").exists():
            assert t.is_alive(), errors
            time.sleep(0.05)
        assert not (out / "old.txt").exists()  # the first run cleared the folder
        featurize(data, out, shard=(1, 2), overwrite=True)
    finally:
        go.touch()
        t.join(60)
    assert not errors, errors
    from asrkit.features.pipeline import merge_only

    merge_only(data, out)
    st, ref = FeatureStore(out), FeatureStore(tmp_path / "ref")
    assert st.keys() == ref.keys()
    for u in ref.keys():
        np.testing.assert_array_equal(st[u], ref[u])


# -------------------------------------------------------- piped command timeout
@pytest.mark.timeout(25)  # the hung command sleeps 30 s: finishing at all shows the 1 s timeout fired
def test_pipe_timeout_names_utterance_and_command(tmp_path):
    d = DataDir.load(_data(tmp_path))
    hung = d.utt_ids[1]
    d.wav_scp[hung] = "sleep 30 |"
    data = d.save(tmp_path / "hung")
    with pytest.raises(AudioError) as e:
        featurize(data, tmp_path / "f", pipe_timeout=1.0)
    assert f"'{hung}'" in str(e.value) and "sleep 30" in str(e.value) and "1 s" in str(e.value)
    r = featurize(data, tmp_path / "g", pipe_timeout=1.0, skip_bad=True)
    assert r.skipped == 1 and len(FeatureStore(tmp_path / "g")) == 3
    line = (tmp_path / "g" / "skipped.txt").read_text()
    assert line.startswith(f"{hung} ") and "did not finish" in line and "sleep 30" in line


def test_cli_pipe_timeout(tmp_path, capsys):
    d = DataDir.load(_data(tmp_path, n=2))
    d.wav_scp[d.utt_ids[0]] = "sleep 30 |"
    data = d.save(tmp_path / "hung")
    capsys.readouterr()
    assert _cli("featurize", str(data), str(tmp_path / "f"), "--pipe-timeout", "1") == 1
    err = capsys.readouterr().err
    assert "sleep 30" in err and "--pipe-timeout" in err and "Traceback" not in err
    assert _cli("featurize", str(data), str(tmp_path / "f"), "--pipe-timeout", "0") == 2


# ---------------------------------------------------------------- long audio
@pytest.mark.parametrize("conf", [
    {},
    {"type": "mfcc", "num_ceps": 13, "use_energy": True, "deltas": 2},
    {"num_mel_bins": 40, "deltas": 1, "delta_window": 3, "window_type": "hamming"},
])
def test_blocks_equal_whole_file(tmp_path, conf):
    from asrkit.audio import load, open_samples
    from asrkit.features.compute import compute_blocks

    path = _wav(tmp_path / "long.wav", 60.0, seed=7)
    cfg = FeatureConfig.load(None, [f"{k}={v}" for k, v in conf.items()])
    whole = compute(load(path)[0], cfg)
    with open_samples(path, RATE) as x:
        blocks = list(compute_blocks(len(x), x.read, cfg, block_frames=700))
    assert len(blocks) == -(-whole.shape[0] // 700)
    got = np.concatenate(blocks)
    assert got.shape == whole.shape
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-4)


def test_open_samples_equals_load(tmp_path):
    from asrkit.audio import load, open_samples

    path = _wav(tmp_path / "st.wav", 3.0, seed=2, channels=2)
    for kw in ({}, {"channel": 1}, {"start": 0.5, "end": 1.25}, {"start": 2.0, "end": -1}):
        ref, _ = load(path, RATE, **kw)
        with open_samples(path, RATE, **kw) as x:
            assert len(x) == len(ref)
            np.testing.assert_array_equal(np.concatenate([x.read(a, a + 997) for a in range(0, len(x), 997)]), ref)
    with pytest.raises(AudioError, match="past the end"):
        open_samples(path, RATE, start=5.0)
    with pytest.raises(AudioError, match="channel"):
        open_samples(path, RATE, channel=2)


def test_featurize_in_blocks_equals_whole(tmp_path):
    """A 60 s recording (whole, and cut by segments) through featurize with a
    small block equals the default run."""
    p = _wav(tmp_path / "rec.wav", 60.0, seed=4)
    d = DataDir(wav_scp={"rec": str(p)}, utt2spk={"r-all": "r", "r-mid": "r"},
                segments={"r-all": Segment("rec", 0.0, -1.0), "r-mid": Segment("rec", 12.34, 47.0)})
    data = d.save(tmp_path / "data")
    featurize(data, tmp_path / "small", block_frames=500)
    featurize(data, tmp_path / "big", block_frames=100000)
    a, b = FeatureStore(tmp_path / "small"), FeatureStore(tmp_path / "big")
    assert a.keys() == b.keys() and a.num_frames("r-all") == 5998
    for u in a.keys():
        np.testing.assert_allclose(a[u], b[u], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(a.cmvn_stats().sum, b.cmvn_stats().sum, rtol=1e-6)


def test_a_marker_half_written_by_a_killed_run_does_not_block_the_rerun(tmp_path):
    """A run killed between making its folder and renaming the marker's temporary file into place
    leaves only that file; the rerun takes the folder as empty and removes it."""
    from asrkit.io import prepare_output_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / f".{MARKER}.k3j9x.tmp").write_text("command: feat")
    prepare_output_dir(out, "featurize")
    assert read_marker(out)["command"] == "featurize"
    assert sorted(q.name for q in out.iterdir()) == [MARKER]
    (out / "user.txt").write_text("mine")  # a user's file still makes the folder foreign
    other = tmp_path / "other"
    other.mkdir()
    (other / "user.txt").write_text("mine")
    (other / f".{MARKER}.abc.tmp").write_text("")
    with pytest.raises(UsageError, match="folder is not empty"):
        prepare_output_dir(other, "featurize")
