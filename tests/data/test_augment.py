"""asrkit data augment: speed, noise, reverberation, telephone; ids, tables, determinism, refusals."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.audio import augment as A
from asrkit.data import DataDir, Segment, validate
from asrkit.data.augment import AugmentOptions, augment_dir, plan_versions
from asrkit.errors import InputError, UsageError

RATE = 16000


def _signal(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    """Speech-like test audio: a few harmonics and some broadband noise, peak well below 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 40 * seed
    x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, 12)) * 0.03
    return (x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def make_dir(root: Path, name: str = "d", utts: dict[str, float] | None = None) -> Path:
    utts = utts or {"spkA-u1": 0.6, "spkA-u2": 0.5, "spkB-u1": 0.7, "spkC-u1": 0.4}
    (root / "wav").mkdir(parents=True, exist_ok=True)
    wav = {}
    for i, (u, sec) in enumerate(utts.items()):
        p = root / "wav" / f"{u}.wav"
        sf.write(p, _signal(sec, i), RATE, subtype="FLOAT")
        wav[u] = str(p)
    d = DataDir(wav_scp=wav, utt2spk={u: u.split("-")[0] for u in utts}, text={u: f"words of {u}" for u in utts})
    return d.save(root / name)


def _cli(*args: str) -> int:
    from asrkit.cli.main import main

    return main(["-q", *args])


def _read(path) -> np.ndarray:
    x, rate = sf.read(path, dtype="float32")
    assert rate == RATE
    return x


def _band_energy(x: np.ndarray, lo: float, hi: float, rate: int = RATE) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spec[(f >= lo) & (f < hi)].sum())


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".") and ("tmp" in p.name or "old" in p.name)]


# ------------------------------------------------------------------ signal functions
def test_speed_changes_duration_by_one_over_factor():
    x = _signal(1.0, 0)
    for f in (0.9, 1.1, 1.5):
        y = A.speed(x, RATE, f)
        assert abs(len(y) - len(x) / f) <= 1, f
    assert A.speed(x, RATE, 1.0) is not None and len(A.speed(x, RATE, 1.0)) == len(x)
    with pytest.raises(UsageError):
        A.speed(x, RATE, 0.0)


@pytest.mark.parametrize("kind", ["white", "pink", "file"])
def test_noise_at_the_asked_snr(kind):
    rng = np.random.default_rng(1)
    x = _signal(1.0, 1)
    if kind == "white":
        n = A.white_noise(len(x), rng)
    elif kind == "pink":
        n = A.pink_noise(len(x), rng)
        # pink: the same power in every octave (white noise doubles it from one octave to the next)
        for lo in (400, 1600, 3200):
            assert 0.75 < _band_energy(n, lo, 2 * lo) / _band_energy(n, 200, 400) < 1.33, lo
    else:
        n = A.fit_length(_signal(0.3, 3), len(x), rng)  # a short noise, looped
    for snr in (-5.0, 0.0, 12.5):
        y = A.add_noise(x, n, snr)
        assert A.snr_db(x, y - x) == pytest.approx(snr, abs=1e-3)


def test_babble_is_the_sum_of_equal_power_talkers():
    rng = np.random.default_rng(0)
    talkers = [_signal(0.5, i) * (i + 1) for i in range(4)]
    b = A.babble(talkers, 12000, rng)
    assert len(b) == 12000 and np.mean(b.astype(np.float64) ** 2) == pytest.approx(4.0, rel=0.3)


def _schroeder_rt60(h: np.ndarray, rate: int) -> float:
    """RT60 from the backward-integrated energy decay, fitted between -5 and -25 dB (T20 x 3)."""
    edc = np.cumsum((h.astype(np.float64) ** 2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(db <= -5), np.argmax(db <= -25)
    return 3.0 * (i25 - i5) / rate


@pytest.mark.parametrize("rt60, drr", [(0.3, 0.0), (0.7, 8.0)])
def test_simulated_rir_has_the_asked_rt60_and_drr(rt60, drr):
    h = A.simulate_rir(RATE, rt60, drr, np.random.default_rng(5))
    assert len(h) == round(rt60 * RATE) + 1 and h[0] == 1.0
    assert A.energy(h[:1]) / A.energy(h[1:]) == pytest.approx(10 ** (drr / 10), rel=1e-4)
    # the tail's decay: take the direct path out, so the fit sees the diffuse field
    assert _schroeder_rt60(h[1:], RATE) == pytest.approx(rt60, rel=0.15)


def test_reverberate_keeps_length_and_power_and_a_delta_changes_nothing():
    x = _signal(0.8, 2)
    delta = np.zeros(300, np.float32)
    delta[120] = 0.5  # direct path late and quiet: aligned and rescaled away
    np.testing.assert_allclose(A.reverberate(x, delta), x, atol=1e-5)
    y = A.reverberate(x, A.simulate_rir(RATE, 0.5, 0.0, np.random.default_rng(0)))
    assert len(y) == len(x) and np.isfinite(y).all()
    assert A.energy(y) == pytest.approx(A.energy(x), rel=1e-4)
    corr = float(np.dot(x, y) / np.sqrt(A.energy(x) * A.energy(y)))
    assert 0.3 < corr < 0.95  # smeared, but the dry signal still in it


@pytest.mark.parametrize("codec", ["mulaw", "gsm", "none"])
@pytest.mark.parametrize("rate", [16000, 8000])
def test_telephone_is_band_limited(codec, rate):
    x = (np.random.default_rng(0).standard_normal(rate) * 0.1).astype(np.float32)  # flat spectrum
    y = A.telephone(x, rate, codec)
    assert len(y) == len(x)

    def drop(lo, hi):
        return 10 * np.log10(_band_energy(y, lo, hi, rate) / _band_energy(x, lo, hi, rate))

    assert drop(500, 3000) > -3.0          # the pass band passes
    # above 3.4 kHz: gone (GSM's own coding noise, made after the band filter as in a phone, reaches
    # 4 kHz; at a 16 kHz output the way back up filters it, at 8 kHz it stays: about -18 dB)
    assert drop(3600, 4000) < (-15.0 if codec == "gsm" and rate == 8000 else -20.0)
    assert drop(0, 200) < -10.0            # below 300 Hz: attenuated
    if rate > 8000:
        assert drop(4000, rate / 2) < -50.0  # nothing comes back above the 8 kHz channel's band
    if codec != "none":
        assert np.abs(y - A.telephone(x, rate, "none")).max() > 1e-3  # the codec did something


# ------------------------------------------------------------------ data dirs
def test_plan_ids():
    ids = [v.prefix for v in plan_versions(AugmentOptions(speeds=(0.9, 1.0, 1.1)))]
    assert ids == ["sp0.9-", "", "sp1.1-"]  # Kaldi's 3-way speed perturbation
    o = AugmentOptions(speeds=(1.0, 1.1), noise=("babble",), rir="simulate", copies=2, keep_original=True)
    assert [v.prefix for v in plan_versions(o)] == ["", "rev-babble1-", "rev-babble2-", "sp1.1-rev-babble1-",
                                                    "sp1.1-rev-babble2-"]
    o = AugmentOptions(noise=("white", "/n"), telephone=("gsm",), each=True)
    assert [(v.prefix, v.kinds) for v in plan_versions(o)] == [("noise1-", ("noise",)), ("tel1-", ("telephone",))]


def test_ids_and_files_consistent_and_featurize_runs(tmp_path):
    d = make_dir(tmp_path)
    out = tmp_path / "aug"
    assert _cli("data", "augment", str(d), str(out), "--speed", "0.9,1.0,1.1", "--noise", "babble",
                "--rir", "simulate", "--telephone", "gsm,mulaw", "--keep-original", "--seed", "3") == 0
    assert validate(out) == []
    new = DataDir.load(out)
    src = DataDir.load(d)
    prefixes = ["", "rev-babble-tel1-", "sp0.9-rev-babble-tel1-", "sp1.1-rev-babble-tel1-"]
    assert new.utt_ids == sorted((p + u for p in prefixes for u in src.utt_ids), key=str.encode)
    for u in new.utt_ids:
        p = next(p for p in sorted(prefixes, key=len, reverse=True) if u.startswith(p))
        orig = u[len(p):]
        assert new.utt2spk[u] == p + src.utt2spk[orig] and new.text[u] == src.text[orig]
        if p:
            assert Path(new.wav_scp[u]) == (out / "wav" / f"{u}.wav").resolve() and Path(new.wav_scp[u]).is_file()
            assert sf.info(new.wav_scp[u]).frames == pytest.approx(new.utt2dur[u] * RATE, abs=1)
        else:
            assert new.wav_scp[u] == src.wav_scp[u]  # the original kept as it was, not copied
    assert (out / ".asrkit").read_text().startswith("command: data augment")
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    assert _leftovers(tmp_path) == []

    from asrkit.data import FeatureStore

    assert _cli("featurize", str(out), str(tmp_path / "feats")) == 0
    store = FeatureStore(tmp_path / "feats")
    assert len(store) == len(new) and store["sp1.1-rev-babble-tel1-spkB-u1"].shape[0] > 0


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_speed_shortens_by_the_factor_and_updates_tables(tmp_path):
    d = make_dir(tmp_path)
    dd = DataDir.load(d)
    dd.ali = {u: " ".join(["1"] * 10) for u in dd.utt_ids}
    dd.save(d)
    out = tmp_path / "sp"
    assert _cli("data", "augment", str(d), str(out), "--speed", "1.1") == 0
    new = DataDir.load(out)
    assert new.utt_ids == ["sp1.1-" + u for u in dd.utt_ids]
    assert new.spk2utt == {"sp1.1-" + s: ["sp1.1-" + u for u in us] for s, us in dd.spk2utt.items()}
    assert new.ali is None  # frame labels do not survive a speed change
    for u in dd.utt_ids:
        n = sf.info(dd.wav_scp[u]).frames
        assert abs(sf.info(new.wav_scp["sp1.1-" + u]).frames - n / 1.1) <= 1
        assert new.utt2dur["sp1.1-" + u] == pytest.approx(n / 1.1 / RATE, abs=1e-4)
    # without a speed change, ali stays; FLAC holds the same samples as WAV
    assert _cli("data", "augment", str(d), str(tmp_path / "n"), "--noise", "white") == 0
    assert DataDir.load(tmp_path / "n").ali == {"white1-" + u: v for u, v in dd.ali.items()}
    assert _cli("data", "augment", str(d), str(tmp_path / "f"), "--noise", "white", "--format", "flac") == 0
    assert validate(tmp_path / "f") == []
    u = "white1-" + dd.utt_ids[0]
    np.testing.assert_array_equal(_read(DataDir.load(tmp_path / "f").wav_scp[u]),
                                  _read(DataDir.load(tmp_path / "n").wav_scp[u]))
    assert DataDir.load(tmp_path / "f").wav_scp[u].endswith(f"/wav/{u}.flac")


def test_snr_measured_equals_the_asked_one(tmp_path):
    d = make_dir(tmp_path)
    noise = tmp_path / "noise"
    noise.mkdir()
    sf.write(noise / "hum.wav", _signal(0.25, 7, 8000) * 3, 8000, subtype="FLOAT")  # another rate, shorter: looped
    (tmp_path / "noise.list").write_text(f"{noise / 'hum.wav'}\n")
    src = DataDir.load(d)
    for spec in (str(noise), str(tmp_path / "noise.list"), "white", "pink", "babble"):
        out = tmp_path / ("o-" + Path(spec).name)
        assert _cli("data", "augment", str(d), str(out), "--noise", spec, "--snr", "7.5", "--seed", "1") == 0, spec
        new = DataDir.load(out)
        for u in src.utt_ids:
            clean = _read(src.wav_scp[u])
            y = _read(new.wav_scp[new.utt_ids[src.utt_ids.index(u)]])
            assert A.snr_db(clean, y - clean) == pytest.approx(7.5, abs=0.05), (spec, u)
    # a range: each utterance draws its own SNR inside it
    assert _cli("data", "augment", str(d), str(tmp_path / "r"), "--noise", "white", "--snr", "0,20") == 0
    new = DataDir.load(tmp_path / "r")
    snrs = [A.snr_db(_read(src.wav_scp[u]), _read(new.wav_scp["white1-" + u]) - _read(src.wav_scp[u]))
            for u in src.utt_ids]
    assert all(-0.05 < s < 20.05 for s in snrs) and np.ptp(snrs) > 1.0


def test_rir_from_a_folder_and_simulated(tmp_path):
    d = make_dir(tmp_path)
    rirs = tmp_path / "rirs"
    rirs.mkdir()
    h = A.simulate_rir(RATE, 0.4, 3.0, np.random.default_rng(2))
    sf.write(rirs / "room1.wav", np.concatenate([np.zeros(50, np.float32), h * 0.5]), RATE, subtype="FLOAT")
    src = DataDir.load(d)
    for spec, tag in ((str(rirs), "rev1-"), ("simulate", "rev1-")):
        out = tmp_path / ("o-" + Path(spec).name)
        assert _cli("data", "augment", str(d), str(out), "--rir", spec) == 0
        new = DataDir.load(out)
        for u in src.utt_ids:
            x, y = _read(src.wav_scp[u]), _read(new.wav_scp[tag + u])
            assert len(y) == len(x)
            assert A.energy(y) == pytest.approx(A.energy(x), rel=0.01)
            if spec != "simulate":  # the same RIR as convolving here
                np.testing.assert_allclose(y, A.reverberate(x, h), atol=2e-4)


def test_telephone_output_is_band_limited(tmp_path):
    d = make_dir(tmp_path)
    out = tmp_path / "tel"
    assert _cli("data", "augment", str(d), str(out), "--telephone", "gsm") == 0
    src = DataDir.load(d)
    for u in src.utt_ids:
        x, y = _read(src.wav_scp[u]), _read(DataDir.load(out).wav_scp["tel1-" + u])
        above = 10 * np.log10(_band_energy(y, 3600, 8000) / _band_energy(x, 3600, 8000))
        assert above < -30.0, u


def test_segments_in_segments_out(tmp_path):
    x = np.concatenate([_signal(0.5, 0), _signal(0.5, 1)])
    sf.write(tmp_path / "rec.wav", x, RATE, subtype="FLOAT")
    DataDir(wav_scp={"rec": str(tmp_path / "rec.wav")}, utt2spk={"s-1": "s", "s-2": "s"},
            text={"s-1": "a", "s-2": "b"},
            segments={"s-1": Segment("rec", 0.0, 0.5), "s-2": Segment("rec", 0.5, -1)}).save(tmp_path / "d")
    out = tmp_path / "o"
    assert _cli("data", "augment", str(tmp_path / "d"), str(out), "--speed", "0.9", "--keep-original") == 0
    assert validate(out) == []
    new = DataDir.load(out)
    assert new.segments["s-1"] == Segment("rec", 0.0, 0.5)
    assert new.segments["sp0.9-s-2"].reco == "sp0.9-s-2"
    assert new.utt2dur["sp0.9-s-2"] == pytest.approx(0.5 / 0.9, abs=1e-3)
    assert set(new.wav_scp) == {"rec", "sp0.9-s-1", "sp0.9-s-2"}


def test_same_seed_same_audio(tmp_path):
    d = make_dir(tmp_path)
    args = ["--speed", "0.9", "--noise", "babble", "--noise", "pink", "--rir", "simulate", "--telephone",
            "mulaw,gsm", "--copies", "2"]

    def run(name, seed, *extra):
        out = tmp_path / name
        assert _cli("data", "augment", str(d), str(out), *args, "--seed", str(seed), *extra) == 0
        return {p.name: p.read_bytes() for p in sorted((out / "wav").iterdir())}

    a = run("a", 7)
    assert run("b", 7, "--jobs", "3") == a  # threads do not change anything
    c = run("c", 8)
    assert set(c) == set(a) and all(c[k] != a[k] for k in a)
    # per utterance: the same utterance gets the same audio in a smaller dir
    one = tmp_path / "one"
    DataDir.load(d).subset(["spkA-u1", "spkB-u1"]).save(one)
    out = tmp_path / "e"
    assert _cli("data", "augment", str(one), str(out), "--rir", "simulate", "--seed", "7") == 0
    assert _cli("data", "augment", str(d), str(tmp_path / "f"), "--rir", "simulate", "--seed", "7") == 0
    assert (out / "wav" / "rev1-spkB-u1.wav").read_bytes() == (tmp_path / "f" / "wav" / "rev1-spkB-u1.wav").read_bytes()


def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys):
    d = make_dir(tmp_path)
    out = tmp_path / "out"

    def refused(code, *args, says):
        capsys.readouterr()
        assert _cli("data", "augment", *args) == code, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err and "Traceback" not in err, err
        assert not out.exists() and _leftovers(tmp_path) == []

    for bad in ("0", "-1", "0.9,0", "a,b"):
        refused(2, str(d), str(out), "--speed", bad, says="--speed")
    refused(2, str(d), str(out), "--speed", "1.0", says="nothing to do")
    refused(2, str(d), str(out), "--telephone", "g729", says="unknown codec")
    refused(2, str(d), str(out), "--noise", "white", "--snr", "20,5", says="--snr")
    refused(2, str(d), str(out), "--copies", "0", "--noise", "white", says="--copies")
    refused(2, str(d), str(out), "--format", "mp3", "--noise", "white", says="--format")
    (tmp_path / "empty.list").write_text("\n\n")
    refused(1, str(d), str(out), "--noise", str(tmp_path / "empty.list"), says="empty.list: the list is empty")
    (tmp_path / "nofiles").mkdir()
    refused(1, str(d), str(out), "--noise", str(tmp_path / "nofiles"), says="no audio files")
    refused(1, str(d), str(out), "--noise", str(tmp_path / "nowhere"), says="no such file or folder")
    (tmp_path / "bad.list").write_text(f"{tmp_path / 'gone.wav'}\n")
    refused(1, str(d), str(out), "--noise", str(tmp_path / "bad.list"), says="bad.list:1: no such audio file")
    refused(1, str(tmp_path / "nodir"), str(out), "--noise", "white", says="no such data dir")

    # a missing and an unreadable audio file: the run stops, naming it; no OUT, no temp folder left
    (tmp_path / "wav" / "spkB-u1.wav").unlink()
    refused(1, str(d), str(out), "--noise", "white", says="spkB-u1.wav: no such audio file")
    (tmp_path / "wav" / "spkB-u1.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    refused(1, str(d), str(out), "--speed", "1.1", says="spkB-u1.wav")

    # an OUT that is not asrkit's is refused and left as it was
    sf.write(tmp_path / "wav" / "spkB-u1.wav", _signal(0.7, 2), RATE, subtype="FLOAT")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert _cli("data", "augment", str(d), str(mine), "--noise", "white") == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    assert _cli("data", "augment", str(d), str(d), "--noise", "white") == 2  # OUT is IN
    # a folder made by another asrkit command is refused too; its own output is redone
    assert _cli("data", "subset", str(d), str(tmp_path / "sub"), "--first", "1") == 0
    assert _cli("data", "augment", str(d), str(tmp_path / "sub"), "--noise", "white") == 2
    assert _cli("data", "augment", str(d), str(out), "--noise", "white") == 0
    assert _cli("data", "augment", str(d), str(out), "--speed", "1.1") == 0
    assert sorted(p.name for p in (out / "wav").iterdir())[0].startswith("sp1.1-")
    assert len(list((out / "wav").iterdir())) == 4 and _leftovers(tmp_path) == []
    # an OUT holding the input's audio: replacing it would delete that audio
    assert _cli("data", "subset", str(out), str(tmp_path / "sub2"), "--first", "2") == 0
    capsys.readouterr()
    assert _cli("data", "augment", str(tmp_path / "sub2"), str(out), "--noise", "white", "--keep-original") == 2
    assert "holds audio of" in capsys.readouterr().err and len(list((out / "wav").iterdir())) == 4
    assert _cli("data", "augment", str(d), str(mine), "--noise", "white", "--overwrite") == 0
    assert not (mine / "notes.txt").exists() and validate(mine) == []


def test_library_errors(tmp_path):
    d = make_dir(tmp_path, utts={"a-1": 0.3})
    with pytest.raises(Exception, match="babble needs a data dir of at least 2"):
        augment_dir(d, tmp_path / "o", AugmentOptions(noise=("babble",)))
    with pytest.raises(InputError, match="no wav.scp"):
        DataDir(utt2spk={"a-1": "a"}).save(tmp_path / "feats_only")
        augment_dir(tmp_path / "feats_only", tmp_path / "o", AugmentOptions(noise=("white",)))
    assert not (tmp_path / "o").exists()
