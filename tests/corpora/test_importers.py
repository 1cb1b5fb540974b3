"""Corpus importers on miniatures of each layout, made here."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.corpora.importers import import_corpus
from asrkit.corpora.importers.wsj import normalize_transcript
from asrkit.data import DataDir, FeatureStore, validate
from asrkit.errors import AudioError, InputError, UsageError

RATE = 16000


def _sphere(path: Path, n: int, coding: str = "pcm", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = (np.random.default_rng(seed).standard_normal(n) * 2000).astype("<i2")
    head = ("NIST_1A\n   1024\n" f"sample_count -i {n}\nsample_rate -i {RATE}\nchannel_count -i 1\n"
            f"sample_n_bytes -i 2\nsample_byte_format -s2 01\nsample_coding -s{len(coding)} {coding}\n"
            "end_head\n").encode()
    path.write_bytes(head + b" " * (1024 - len(head)) + s.tobytes())
    return path


def _wsj(root: Path, coding: str = "pcm") -> Path:
    w0 = root / "11-1.1" / "wsj0"
    _sphere(w0 / "si_tr_s" / "011" / "011c0201.wv1", 8000, coding)
    _sphere(w0 / "si_tr_s" / "011" / "011c0202.wv1", 6000, coding, seed=1)
    _sphere(w0 / "si_tr_s" / "011" / "011c0201.wv2", 8000, coding)  # second mic: ignored
    _sphere(w0 / "si_et_05" / "440" / "440c0201.wv1", 5000, coding, seed=2)
    dots = w0 / "transcrp" / "dots" / "si_tr_s" / "011"
    dots.mkdir(parents=True)
    (dots / "011c02.dot").write_text(
        "[loud_breath] The company's *stocks* rose \\. three <and> PERCENT [door_slam>] ~ (011c0201)\n"
        "It said .PERIOD --DASH [<tongue_click] %PERCENT isn\\'t (011c0202)\n")
    (w0 / "si_et_05" / "440" / "440c02.dot").write_text("Hello world . (440c0201)\n")
    w1 = root / "13-34.1" / "wsj1" / "si_dt_05" / "4k0"
    _sphere(w1 / "4k0c0301.wv1", 7000, coding, seed=3)
    (w1 / "4k0c0301.dot").write_text("Dev utterance [misc_noise] here (4k0c0301)\n")
    _sphere(w1 / "4k0c0302.wv1", 7000, coding, seed=4)  # no transcript: left out
    return root


def test_wsj_transcript_normalization():
    assert normalize_transcript("[loud_breath] The *stocks* \\. <and> [door_slam>] ~ . --DASH") == \
        "[LOUD_BREATH] THE STOCKS AND -DASH"
    assert normalize_transcript("[loud_breath] a [<noise] .PERIOD ,COMMA %PERCENT .POINT", drop_noise=True) == \
        "A .PERIOD ,COMMA PERCENT POINT"


def test_wsj_import(tmp_path):
    written = import_corpus("wsj", _wsj(tmp_path / "src"), tmp_path / "wsj")
    assert set(written) == {"si_tr_s", "si_et_05", "si_dt_05", "train", "dev", "test"}
    tr = DataDir.load(tmp_path / "wsj" / "train")
    assert tr.utt_ids == ["011c0201", "011c0202"] and tr.utt2spk["011c0201"] == "011"
    assert tr.text["011c0201"] == "[LOUD_BREATH] THE COMPANY'S STOCKS ROSE THREE AND PERCENT"  # "\\." is a pause: dropped
    assert tr.text["011c0202"] == "IT SAID .PERIOD -DASH PERCENT ISN'T"
    assert tr.utt2dur == {"011c0201": 0.5, "011c0202": 0.375}
    assert DataDir.load(tmp_path / "wsj" / "dev").utt_ids == ["4k0c0301"]
    assert DataDir.load(tmp_path / "wsj" / "test").text == {"440c0201": "HELLO WORLD"}
    assert (tmp_path / "wsj" / "lm_text.txt").read_text().splitlines() == [tr.text[u] for u in tr.utt_ids]
    for split in written.values():
        assert validate(split) == []
    import_corpus("wsj", tmp_path / "src", tmp_path / "wsj2", drop_noise=True)
    assert DataDir.load(tmp_path / "wsj2" / "train").text["011c0201"].startswith("THE COMPANY'S")


def test_wsj_shorten_needs_sph2pipe(tmp_path, monkeypatch):
    src = _wsj(tmp_path / "src", coding="pcm,embedded-shorten-v2.00")
    monkeypatch.setenv("PATH", str(tmp_path / "emptybin"))
    with pytest.raises(AudioError, match="shorten-compressed.*sph2pipe is not on PATH"):
        import_corpus("wsj", src, tmp_path / "wsj")
    # a stand-in sph2pipe (these test files hold plain PCM after the header)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "sph2pipe"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, struct\n"
        "data = open(sys.argv[-1], 'rb').read()[1024:]\n"
        "fmt = struct.pack('<HHIIHH', 1, 1, 16000, 32000, 2, 16)\n"
        "sys.stdout.buffer.write(b'RIFF' + struct.pack('<I', 36 + len(data)) + b'WAVEfmt ' + struct.pack('<I', 16)"
        " + fmt + b'data' + struct.pack('<I', len(data)) + data)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    import_corpus("wsj", src, tmp_path / "wsj")
    tr = DataDir.load(tmp_path / "wsj" / "train")
    assert tr.wav_scp["011c0201"].startswith(f"{fake} -f wav ") and tr.wav_scp["011c0201"].endswith("|")
    x, rate = tr.audio("011c0201")
    assert rate == RATE and len(x) == 8000
    assert validate(tmp_path / "wsj" / "train") == []


def _libri(root: Path, split: str, n_utts: int = 2) -> None:
    for reader, chapter in (("19", "198"), ("26", "495")):
        d = root / split / reader / chapter
        d.mkdir(parents=True)
        lines = []
        for i in range(n_utts):
            utt = f"{reader}-{chapter}-{i:04d}"
            sf.write(d / f"{utt}.flac", np.zeros(1600 * (i + 1), np.float32) + 0.01, RATE)
            lines.append(f"{utt} WORDS OF {utt}")
        (d / f"{reader}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")


def test_librispeech_import(tmp_path):
    _libri(tmp_path / "LibriSpeech", "dev-clean")
    _libri(tmp_path / "LibriSpeech", "test-other", 1)
    written = import_corpus("librispeech", tmp_path / "LibriSpeech", tmp_path / "ls")
    assert set(written) == {"dev_clean", "test_other"}
    d = DataDir.load(tmp_path / "ls" / "dev_clean")
    assert d.utt_ids == ["19-198-0000", "19-198-0001", "26-495-0000", "26-495-0001"]
    assert d.utt2spk["26-495-0001"] == "26-495" and d.text["19-198-0001"] == "WORDS OF 19-198-0001"
    assert d.utt2dur["19-198-0001"] == pytest.approx(0.2)
    assert validate(tmp_path / "ls" / "dev_clean") == []
    # one split folder -> DST is the data dir itself
    import_corpus("librispeech", tmp_path / "LibriSpeech" / "test-other", tmp_path / "one")
    assert DataDir.load(tmp_path / "one").utt_ids == ["19-198-0000", "26-495-0000"]
    with pytest.raises(InputError, match="no \\*.trans.txt"):
        import_corpus("librispeech", tmp_path / "ls", tmp_path / "x")


def test_kaggle_11785_per_utterance_layout(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "hw"
    for split, labels in (("train-clean-100", "frames"), ("dev-clean", "chars"), ("test-clean", None)):
        (src / split / "mfcc").mkdir(parents=True)
        if labels:
            (src / split / "transcript").mkdir()
        for i in range(3):
            utt = f"103-1240-{i:04d}"
            feats = rng.standard_normal((20 + i, 28)).astype(np.float32)
            np.save(src / split / "mfcc" / f"{utt}.npy", feats)
            if labels == "frames":
                lab = np.array(["[SOS]"] + ["AA", "B"] * ((20 + i) // 2) + ["SIL"] * ((20 + i) % 2) + ["[EOS]"])
                np.save(src / split / "transcript" / f"{utt}.npy", lab)
            elif labels == "chars":
                np.save(src / split / "transcript" / f"{utt}.npy", np.array(["<sos>", *"HI THERE", "<eos>"]))
    written = import_corpus("kaggle-11785", src, tmp_path / "out")
    assert set(written) == {"train_clean_100", "dev_clean", "test_clean"}
    tr = DataDir.load(tmp_path / "out" / "train_clean_100")
    assert tr.text is None and tr.ali["103-1240-0000"].split()[:3] == ["AA", "B", "AA"]
    assert len(tr.ali["103-1240-0001"].split()) == 21 and tr.utt2spk["103-1240-0000"] == "103-1240"
    st = FeatureStore(tmp_path / "out" / "train_clean_100" / "feats")
    np.testing.assert_array_equal(st["103-1240-0002"], np.load(src / "train-clean-100" / "mfcc" / "103-1240-0002.npy"))
    assert st.dim == 28 and st.ali is not None
    dev = DataDir.load(tmp_path / "out" / "dev_clean")
    assert dev.ali is None and dev.text["103-1240-0000"] == "HI THERE"
    test = DataDir.load(tmp_path / "out" / "test_clean")
    assert test.text is None and test.ali is None and len(FeatureStore(tmp_path / "out" / "test_clean" / "feats")) == 3
    for p in written.values():
        assert validate(p) == []


def test_kaggle_11785_transcript_raw_folder(tmp_path):
    # a HW4P2 year keeps its character transcripts in SPLIT/transcript/raw/
    src = tmp_path / "hw4p2"
    (src / "dev-clean" / "mfcc").mkdir(parents=True)
    (src / "dev-clean" / "transcript" / "raw").mkdir(parents=True)
    np.save(src / "dev-clean" / "mfcc" / "84-121-0000.npy", np.zeros((12, 15), np.float32))
    np.save(src / "dev-clean" / "transcript" / "raw" / "84-121-0000.npy", np.array(["<sos>", *"GO ON", "<eos>"]))
    import_corpus("kaggle-11785", src, tmp_path / "out")
    assert DataDir.load(tmp_path / "out" / "dev_clean").text == {"84-121-0000": "GO ON"}


def test_kaggle_11785_whole_split_arrays(tmp_path):
    src = tmp_path / "old"
    src.mkdir()
    feats = np.empty(2, dtype=object)
    feats[0], feats[1] = np.ones((5, 40), np.float32), np.zeros((3, 40), np.float32)
    labels = np.empty(2, dtype=object)
    labels[0], labels[1] = np.arange(5), np.array([7, 7, 7])
    np.save(src / "train.npy", feats, allow_pickle=True)
    np.save(src / "train_labels.npy", labels, allow_pickle=True)
    import_corpus("kaggle-11785", src, tmp_path / "out")
    d = DataDir.load(tmp_path / "out" / "train")
    assert d.ali == {"train-000000": "0 1 2 3 4", "train-000001": "7 7 7"}
    assert FeatureStore(tmp_path / "out" / "train" / "feats")["train-000001"].shape == (3, 40)


def test_folder_import(tmp_path):
    src = tmp_path / "rec"
    (src / "alice").mkdir(parents=True)
    (src / "bob smith").mkdir()
    sf.write(src / "alice" / "take 1.wav", np.zeros(1600, np.float32) + 0.1, RATE, subtype="PCM_16")
    (src / "alice" / "take 1.txt").write_text("hello\nthere  world\n")
    sf.write(src / "bob smith" / "hi.flac", np.zeros(3200, np.float32) + 0.1, RATE)
    (src / "bob smith" / "hi.lab").write_text("hi bob")
    sf.write(src / "bob smith" / "notext.wav", np.zeros(100, np.float32), RATE)
    import_corpus("folder", src, tmp_path / "d")
    d = DataDir.load(tmp_path / "d")
    assert d.utt_ids == ["alice-take_1", "bob_smith-hi"]
    assert d.text == {"alice-take_1": "hello there world", "bob_smith-hi": "hi bob"}
    assert d.utt2spk == {"alice-take_1": "alice", "bob_smith-hi": "bob_smith"}
    assert validate(tmp_path / "d") == []
    with pytest.raises(UsageError, match="unknown corpus format"):
        import_corpus("timit", src, tmp_path / "x")


def test_cli_import(tmp_path, capsys):
    from asrkit.cli.main import main

    _libri(tmp_path / "LS", "dev-clean", 1)
    assert main(["-q", "data", "import", "librispeech", str(tmp_path / "LS"), str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "o" / "dev_clean")
    assert main(["data", "import", "folder", str(tmp_path / "nope"), str(tmp_path / "o")]) == 1
    assert main(["data", "import", "folder", str(tmp_path / "LS"), str(tmp_path / "o2"), "--drop-noise"]) == 2
