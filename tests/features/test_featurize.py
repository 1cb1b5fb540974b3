"""asrkit.features + the feature store: parity with torchaudio, CMVN,
shards/resume/merge, bad audio, Kaldi output, the CLI."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from asrkit.data import DataDir, FeatureStore, Segment
from asrkit.errors import AudioError, ConfigError, DataError, InputError, UsageError
from asrkit.features import FeatureConfig, add_deltas, compute, featurize

RATE = 16000
ROOT = Path(__file__).resolve().parents[2]


def make_data(root: Path, n_spk: int = 3, n_utt: int = 4, seed: int = 0, rate: int = RATE) -> Path:
    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    wav = {}
    for s in range(n_spk):
        for u in range(n_utt):
            utt = f"s{s}-u{u}"
            n = int(rate * rng.uniform(0.3, 1.2))
            x = (rng.standard_normal(n) * rng.uniform(0.02, 0.3)).clip(-1, 1).astype(np.float32)
            sf.write(root / "wav" / f"{utt}.wav", x, rate, subtype="PCM_16")
            wav[utt] = str(root / "wav" / f"{utt}.wav")
    d = DataDir(wav_scp=wav, utt2spk={u: u.split("-")[0] for u in wav}, text={u: "a b" for u in wav})
    return d.save(root / "data")


def ta_fbank(path: str, **kw) -> np.ndarray:
    wave = torch.from_numpy(sf.read(path, dtype="float32")[0]).unsqueeze(0)
    opts = {"num_mel_bins": 80, "dither": 0.0, "sample_frequency": 16000, **kw}
    return torchaudio.compliance.kaldi.fbank(wave * 32768, **opts).numpy()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("fz"))


@pytest.fixture(scope="module")
def store1(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("st") / "feats"
    featurize(data, out, jobs=1)
    return out


def test_parity_with_torchaudio_fbank(data, store1):
    st = FeatureStore(store1)
    d = DataDir.load(data)
    assert len(st) == 12 and st.keys() == d.utt_ids and st.dim == 80
    for u in d.utt_ids:
        ref = ta_fbank(d.wav_scp[u])
        assert st[u].shape == ref.shape and st.num_frames(u) == ref.shape[0]
        assert np.abs(st[u] - ref).max() < 1e-4


@pytest.mark.parametrize("opts", [
    {"window_type": "hamming", "preemphasis_coefficient": 0.0},
    {"use_power": False, "remove_dc_offset": False, "num_mel_bins": 40},
    {"round_to_power_of_two": False, "low_freq": 60.0, "high_freq": -400.0},
    {"window_type": "blackman", "frame_length": 20.0, "frame_shift": 5.0},
    {"use_log_fbank": False}, {"snip_edges": False}, {"use_energy": True}, {"dither": 1.0},
])
def test_compute_matches_torchaudio_for_options(opts):
    x = (np.random.default_rng(1).standard_normal(7000) * 0.1).astype(np.float32)
    conf = FeatureConfig.from_dict({"num_mel_bins": 80, **opts})
    ta_opts = {"num_mel_bins": 80, "sample_frequency": 16000.0, **opts}
    if opts.get("dither"):
        torch.manual_seed(0)
    ours = compute(x, conf)
    if opts.get("dither"):
        torch.manual_seed(0)
    ref = torchaudio.compliance.kaldi.fbank(torch.from_numpy(x)[None] * 32768, **ta_opts).numpy()
    assert ours.shape == ref.shape
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(ours - ref).max() / scale < 1e-4 * (1 if opts.get("use_log_fbank", True) else 10)


def test_mfcc_conf_and_deltas():
    x = (np.random.default_rng(2).standard_normal(8000) * 0.1).astype(np.float32)
    conf = FeatureConfig.load(ROOT / "conf" / "mfcc13.yaml", ["deltas=2"])
    feats = compute(x, conf)
    ref = torchaudio.compliance.kaldi.mfcc(torch.from_numpy(x)[None] * 32768, num_ceps=13, num_mel_bins=23,
                                           dither=0.0, use_energy=False).numpy()
    assert feats.shape == (ref.shape[0], 39) and conf.dim == 39
    assert np.abs(feats[:, :13] - ref).max() < 1e-4
    # Kaldi delta: sum_n n (c[t+n] - c[t-n]) / (2 sum n^2), edges replicated
    pad = np.concatenate([ref[:1], ref[:1], ref, ref[-1:], ref[-1:]])
    delta = sum(n * (pad[2 + n:len(pad) - 2 + n] - pad[2 - n:len(pad) - 2 - n]) for n in (1, 2)) / 10
    assert np.abs(feats[:, 13:26] - delta).max() < 1e-3
    assert add_deltas(ref, 0) is ref


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown fbank option 'num_mel'.*num_mel_bins"):
        FeatureConfig.load(None, ["num_mel=40"])
    with pytest.raises(ConfigError, match="type 'plp'"):
        FeatureConfig.from_dict({"type": "plp"})
    with pytest.raises(ConfigError, match="num_mel_bins must be a number"):
        FeatureConfig.from_dict({"num_mel_bins": "eighty"})
    (tmp_path / "c.yaml").write_text("type: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        FeatureConfig.load(tmp_path / "c.yaml")
    assert FeatureConfig.load(ROOT / "conf" / "fbank80.yaml").to_dict() == FeatureConfig.load(None).to_dict()


def test_cmvn_stats_and_modes(data, store1):
    st = FeatureStore(store1)
    allf = np.concatenate([np.asarray(st[u], dtype=np.float64) for u in st.keys()])
    g = st.cmvn_stats()
    assert g.count == allf.shape[0]
    np.testing.assert_allclose(g.mean, allf.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(g.std, allf.std(0), rtol=1e-6)
    s1 = np.concatenate([np.asarray(st[u], dtype=np.float64) for u in st.keys() if u.startswith("s1-")])
    np.testing.assert_allclose(st.cmvn_stats("s1").mean, s1.mean(0), rtol=1e-9, atol=1e-9)
    u = "s1-u2"
    raw = np.asarray(st[u])
    np.testing.assert_allclose(st.get(u, cmvn="global"), (raw - allf.mean(0)) / allf.std(0), atol=1e-4)
    np.testing.assert_allclose(st.get(u, cmvn="speaker", norm_vars=False), raw - s1.mean(0), atol=1e-4)
    own = st.get(u, cmvn="utterance")
    np.testing.assert_allclose(own.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(own.std(0), 1, atol=1e-3)
    np.testing.assert_array_equal(st.get(u), raw)
    with pytest.raises(DataError, match="cmvn must be"):
        st.get(u, cmvn="bogus")
    with pytest.raises(DataError, match="no utterance 'zzz'"):
        st["zzz"]
    assert st.utt2spk[u] == "s1" and st.text[u] == "a b"
    assert isinstance(st[u], np.memmap)


def test_jobs2_and_shards_merge_equal_jobs1(data, store1, tmp_path):
    ref = FeatureStore(store1)
    featurize(data, tmp_path / "j2", jobs=2)
    for i in range(3):
        featurize(data, tmp_path / "sh", shard=(i, 3))
    assert not (tmp_path / "sh" / "index.tsv").exists()
    from asrkit.features.pipeline import merge_only

    merge_only(data, tmp_path / "sh")
    for out in ("j2", "sh"):
        st = FeatureStore(tmp_path / out)
        assert st.keys() == ref.keys()
        for u in ref.keys():
            np.testing.assert_array_equal(st[u], ref[u])
        np.testing.assert_allclose(st.cmvn_stats().sum, ref.cmvn_stats().sum, rtol=1e-12)
        np.testing.assert_allclose(st.cmvn_stats("s2").sumsq, ref.cmvn_stats("s2").sumsq, rtol=1e-12)


def test_merge_refuses_unfinished_shards(data, tmp_path):
    from asrkit.features.pipeline import merge_only

    featurize(data, tmp_path / "o", shard=(1, 3))
    with pytest.raises(DataError, match=r"shard\(s\) 0, 2 of 3 are not finished"):
        merge_only(data, tmp_path / "o")
    with pytest.raises(InputError, match="not complete"):
        FeatureStore(tmp_path / "o")


def test_resume_skips_done_shards_and_redoes_partial_ones(data, store1, tmp_path):
    out = tmp_path / "r"
    featurize(data, out, num_shards=4, shard=(0, 4))
    featurize(data, out, shard=(2, 4))
    done0 = (out / "shards" / "0.done").stat().st_mtime_ns
    # shard 2 was "interrupted" after its marker (tampered file size) -> not trusted
    with open(out / "feats.2.f32", "ab") as f:
        f.write(b"\0\0\0\0")
    # shard 1 left a partial file behind
    (out / "feats.1.f32.partial").write_bytes(b"garbage")
    r = featurize(data, out, jobs=1)
    assert r.shards_skipped == 1 and r.shards_done == 3
    assert (out / "shards" / "0.done").stat().st_mtime_ns == done0
    assert not (out / "feats.1.f32.partial").exists()
    st, ref = FeatureStore(out), FeatureStore(store1)
    for u in ref.keys():
        np.testing.assert_array_equal(st[u], ref[u])
    r = featurize(data, out)
    assert r.shards_done == 0  # complete: nothing to do
    with pytest.raises(UsageError, match="another config"):
        featurize(data, out, FeatureConfig.load(None, ["num_mel_bins=40"]))
    r = featurize(data, out, FeatureConfig.load(None, ["num_mel_bins=40"]), overwrite=True)
    assert FeatureStore(out).dim == 40


@pytest.mark.slow
def test_resume_after_kill(tmp_path):
    """Kill a real `asrkit featurize` run mid-way; the re-run completes and
    matches an uninterrupted run. Each utterance is read through a piped
    command that sleeps, so the kill lands in the middle of the run."""
    plain = make_data(tmp_path / "big", n_spk=4, n_utt=15, seed=3)
    d = DataDir.load(plain)
    d.wav_scp = {u: f"sh -c 'sleep 0.05; cat {p}' |" for u, p in d.wav_scp.items()}
    data = d.save(tmp_path / "slow")
    exe = str(Path(sys.executable).with_name("asrkit"))
    out = tmp_path / "killed"
    cmd = [exe, "-q", "featurize", str(data), str(out), "--num-shards", "12"]
    p = subprocess.Popen(cmd, start_new_session=True)

    def n_done() -> int:
        return len(list((out / "shards").glob("*.done"))) if (out / "shards").exists() else 0

    deadline = time.time() + 60
    while time.time() < deadline and n_done() < 2:
        time.sleep(0.01)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert 0 < n_done() < 12 and not (out / "index.tsv").exists()
    r = subprocess.run(cmd[:1] + cmd[2:], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr
    featurize(plain, tmp_path / "clean")
    st, ref = FeatureStore(out), FeatureStore(tmp_path / "clean")
    assert st.keys() == ref.keys() and len(st) == 60
    for u in ref.keys():
        np.testing.assert_array_equal(st[u], ref[u])


def _bad_data(tmp_path: Path) -> Path:
    d = DataDir.load(make_data(tmp_path, n_spk=1, n_utt=6))
    d.extra["text.phones"] = {u: "sil a sil" for u in d.utt_ids}
    w = tmp_path / "wav"
    os.unlink(w / "s0-u0.wav")                                           # missing
    data = (w / "s0-u1.wav").read_bytes()
    (w / "s0-u1.wav").write_bytes(data[:len(data) // 2])                  # truncated
    sf.write(w / "s0-u2.wav", np.zeros(0, np.float32), RATE, subtype="PCM_16")  # zero-length
    (w / "s0-u3.wav").write_bytes(b"not a wav file at all" * 20)          # unreadable
    x = np.full(4000, 0.1, np.float32)
    x[7] = np.nan
    sf.write(w / "s0-u4.wav", x, RATE, subtype="FLOAT")                   # NaN
    return d.save(tmp_path / "data")


def test_bad_audio_stops_or_is_skipped(tmp_path):
    data = _bad_data(tmp_path)
    with pytest.raises(AudioError, match=r"utterance 's0-u0': .*s0-u0\.wav: no such audio file.*--skip-bad"):
        featurize(data, tmp_path / "o1")
    r = featurize(data, tmp_path / "o2", skip_bad=True)
    assert r.skipped == 5
    skipped = dict(line.split(" ", 1) for line in (tmp_path / "o2" / "skipped.txt").read_text().splitlines())
    assert set(skipped) == {"s0-u0", "s0-u1", "s0-u2", "s0-u3", "s0-u4"}
    assert "no such audio file" in skipped["s0-u0"] and "truncated WAV" in skipped["s0-u1"]
    assert "zero-length" in skipped["s0-u2"] and "NaN" in skipped["s0-u4"]
    st = FeatureStore(tmp_path / "o2")
    assert st.keys() == ["s0-u5"] and (tmp_path / "o2" / "utt2spk").read_text() == "s0-u5 s0\n"
    assert (tmp_path / "o2" / "text.phones").read_text() == "s0-u5 sil a sil\n"  # extra tables follow


def test_resampling_segments_and_pipes(tmp_path, capsys):
    x = (np.random.default_rng(5).standard_normal(8000) * 0.1).astype(np.float32)
    sf.write(tmp_path / "r8k.wav", x, 8000, subtype="PCM_16")
    sf.write(tmp_path / "r16k.wav", x, RATE, subtype="PCM_16")
    d = DataDir(wav_scp={"r8k": str(tmp_path / "r8k.wav"), "r16k": f"cat {tmp_path / 'r16k.wav'} |"},
                utt2spk={"r-a": "r", "r-b": "r", "r-c": "r"},
                segments={"r-a": Segment("r8k", 0.0, 0.5),
                          "r-b": Segment("r16k", 0.1, 0.4),
                          "r-c": Segment("r16k", 0.2, -1)})
    data = d.save(tmp_path / "data")
    import asrkit.audio.reader as reader

    reader._resample_logged.discard((8000, RATE))
    featurize(data, tmp_path / "o", jobs=2, num_shards=2)  # r8k's shard runs in a worker
    assert "resampling audio from 8000 Hz to 16000 Hz" in capsys.readouterr().err
    st = FeatureStore(tmp_path / "o")
    wave16 = torch.from_numpy(sf.read(tmp_path / "r16k.wav", dtype="float32")[0])
    ref_b = torchaudio.compliance.kaldi.fbank(wave16[1600:6400][None] * 32768, num_mel_bins=80, dither=0.0).numpy()
    assert np.abs(st["r-b"] - ref_b).max() < 1e-4
    wave8 = torch.from_numpy(sf.read(tmp_path / "r8k.wav", dtype="float32")[0])
    up = torchaudio.functional.resample(wave8[:4000], 8000, RATE)
    ref_a = torchaudio.compliance.kaldi.fbank(up[None] * 32768, num_mel_bins=80, dither=0.0).numpy()
    assert np.abs(st["r-a"] - ref_a).max() < 1e-4


def test_kaldi_format(data, tmp_path):
    import kaldiio

    featurize(data, tmp_path / "k", kaldi=True)
    st = FeatureStore(tmp_path / "k")
    feats = kaldiio.load_scp(str(tmp_path / "k" / "feats.scp"))
    assert sorted(feats.keys()) == sorted(st.keys())
    for u in st.keys():
        np.testing.assert_array_equal(feats[u], st[u])
    cmvn = kaldiio.load_scp(str(tmp_path / "k" / "cmvn.scp"))
    assert sorted(cmvn.keys()) == ["s0", "s1", "s2"]
    m = cmvn["s0"]
    s0 = np.concatenate([np.asarray(st[u], np.float64) for u in st.keys() if u.startswith("s0-")])
    assert m.shape == (2, 81) and m[0, 80] == s0.shape[0] and m[1, 80] == 0
    np.testing.assert_allclose(m[0, :80], s0.sum(0), rtol=1e-6)
    np.testing.assert_allclose(m[1, :80], (s0 ** 2).sum(0), rtol=1e-6)


def test_cli_featurize(data, tmp_path, capsys):
    from asrkit.cli.main import main

    out = tmp_path / "c"
    assert main(["-q", "featurize", str(data), str(out), "--conf", str(ROOT / "conf" / "mfcc13.yaml"),
                 "--jobs", "2", "deltas=1"]) == 0
    st = FeatureStore(out)
    assert st.dim == 26 and st.conf["type"] == "mfcc" and st.conf["deltas"] == 1
    assert main(["featurize", str(data), str(tmp_path / "x"), "--shard", "3/2"]) == 2
    assert main(["featurize", str(data), str(tmp_path / "x"), "bad_option=1"]) == 2
    assert main(["featurize", str(data), str(tmp_path / "x"), "--format", "htk"]) == 2
    for i in range(2):
        assert main(["-q", "featurize", str(data), str(tmp_path / "s"), "--shard", f"{i}/2"]) == 0
    assert main(["-q", "featurize", str(data), str(tmp_path / "s"), "--merge", "--format", "kaldi"]) == 0
    assert len(FeatureStore(tmp_path / "s")) == 12 and (tmp_path / "s" / "feats.scp").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_skip_bad_with_segments_of_a_missing_recording(tmp_path):
    x = np.full(8000, 0.1, np.float32)
    sf.write(tmp_path / "ok.wav", x, RATE, subtype="PCM_16")
    d = DataDir(wav_scp={"gone": str(tmp_path / "gone.wav"), "ok": str(tmp_path / "ok.wav")},
                utt2spk={"g-1": "g", "g-2": "g", "o-1": "o"},
                segments={"g-1": Segment("gone", 0, 0.2), "g-2": Segment("gone", 0.2, 0.4),
                          "o-1": Segment("ok", 0, 0.3)})
    r = featurize(d.save(tmp_path / "data"), tmp_path / "o", skip_bad=True)
    assert r.skipped == 2 and FeatureStore(tmp_path / "o").keys() == ["o-1"]


def test_many_shards_bounded_open_maps(data, store1, tmp_path, monkeypatch):
    import asrkit.data.feature_store as fs

    monkeypatch.setattr(fs, "_MAX_OPEN_SHARDS", 2)
    featurize(data, tmp_path / "m", num_shards=12)
    st, ref = FeatureStore(tmp_path / "m"), FeatureStore(store1)
    held = [st[u] for u in st.keys()]  # views stay valid after their map is dropped
    assert len(st._maps) <= 2
    for u, x in zip(ref.keys(), held):
        np.testing.assert_array_equal(x, ref[u])
