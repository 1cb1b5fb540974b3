"""The embedded tiny corpus: ships in the package, writes out as valid data
dirs with absolute paths, labels match frames, and featurizes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.corpora.synth import ARPABET39, num_frames, speaker_voice
from asrkit.corpora.tiny import SPLITS, tiny_root, write_tiny
from asrkit.data import validate
from asrkit.data.table import read_table


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    counts = write_tiny(out)
    assert set(counts) == set(SPLITS)
    return out


def test_embedded_size_and_readme():
    root = tiny_root()
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total <= 9 * 1024 * 1024, total
    readme = (root / "README.md").read_text()
    assert "asrkit corpus synth" in readme and "PDDL" in readme
    assert all(f.suffix == ".ogg" for f in (root / "audio").iterdir())


def test_tiny_dirs_validate_and_labels_match_audio(tiny: Path):
    allowed = set(ARPABET39) | {"sil"}
    spk_by_split = {}
    for split in SPLITS:
        d = tiny / split
        assert validate(d) == [], [str(p) for p in validate(d)]
        wav = read_table(d / "wav.scp")
        ali = read_table(d / "ali")
        for utt, path in wav.items():
            assert os.path.isabs(path) and Path(path).is_file() and str(tiny) in path
            info = sf.info(path)
            assert info.samplerate == 16000 and info.channels == 1
            labels = ali[utt].split()
            assert len(labels) == num_frames(info.frames), utt
            assert set(labels) <= allowed
        spk_by_split[split] = set(read_table(d / "utt2spk").values())
    voices = {s: {speaker_voice(spk) for spk in spks} for s, spks in spk_by_split.items()}
    assert len(voices["train"]) >= 4
    assert voices["test"] - voices["train"] - voices["dev"], "a voice heard only in test"
    assert 200 <= sum(len(read_table(tiny / s / "text")) for s in SPLITS) <= 1000


def test_lm_text_is_extra_text(tiny: Path):
    lm = (tiny / "lm_text.txt").read_text().splitlines()
    assert len(lm) >= 2000
    audio_sents = set()
    for split in SPLITS:
        audio_sents |= set(read_table(tiny / split / "text").values())
    assert not audio_sents & set(lm)


def test_tiny_sil_frames_are_quiet(tiny: Path):
    wav = read_table(tiny / "dev" / "wav.scp")
    ali = read_table(tiny / "dev" / "ali")
    for utt, path in list(wav.items())[:10]:
        audio, _ = sf.read(path, dtype="float32")
        lab = np.array(ali[utt].split())
        n = len(lab)
        idx = np.arange(n)[:, None] * 160 + np.arange(400)[None, :]
        e = np.log(np.mean(audio[idx].astype(np.float64) ** 2, axis=1) + 1e-10)
        assert e[lab == "sil"].mean() < e[lab != "sil"].mean() - 2.0, utt


def test_tiny_featurizes_with_matching_frames(tiny: Path, tmp_path: Path):
    import torch
    import torchaudio

    from asrkit.data import FeatureStore
    from asrkit.features import featurize

    featurize(tiny / "dev", tmp_path / "feats")
    store = FeatureStore(tmp_path / "feats")
    ali = read_table(tiny / "dev" / "ali")
    wav = read_table(tiny / "dev" / "wav.scp")
    assert len(store) == len(ali)
    for utt, labels in ali.items():
        assert store.num_frames(utt) == len(labels.split()), utt
    utt = next(iter(wav))
    audio, _ = sf.read(wav[utt], dtype="float32")
    ref = torchaudio.compliance.kaldi.fbank(torch.from_numpy(audio)[None] * 32768, num_mel_bins=80,
                                            dither=0.0, sample_frequency=16000).numpy()
    assert np.abs(store[utt] - ref).max() < 1e-3


def test_cli_tiny(tmp_path: Path):
    from asrkit.cli.main import main

    assert main(["-q", "corpus", "tiny", str(tmp_path / "t")]) == 0
    for split in SPLITS:
        assert validate(tmp_path / "t" / split) == []
    assert (tmp_path / "t" / "lm_text.txt").stat().st_size > 0
