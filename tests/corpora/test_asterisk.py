"""``asrkit corpus asterisk``: the builder's rules on a miniature fake package
layout (always), and the real Debian packages where apt-get can fetch them."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.corpora import asterisk
from asrkit.corpora.asterisk import build_asterisk, clean_transcript, fetch_packages, fetch_problem
from asrkit.data import validate
from asrkit.data.table import read_table, sorted_keys
from asrkit.errors import AsrkitError, InputError

TRANSCRIPT = """\
; Core Asterisk Sounds in English

activated: Activated.
beep: [this is a simple beep tone]
conf-adminmenu: Please press 1 to mute or unmute yourself, 2 to lock or unlock the conference.
confbridge-join: <beep ascending>
demo-enterkeywords: Please enter one or more keywords separated by * and then press the pound key.
dictate/both_help: press * to toggle pause, press # to enter a new dictation filename
digits/1: one
digits/20: twenty
letters/at: at [@]
letters/exclaimation-point: exclaimation-point [!]
not-on-disk: This prompt has no audio file.
silence/1: (1 second of silence)
spy-iax2: IAX (note: does not say "2")
vm-intro: Please leave your message after the tone. (simple tone sound plays)
vm-Old: old
vm-msgs: You have 3rd party messages on the 21st.
"""


def _fake_layout(root: Path) -> Path:
    sounds = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    doc = root / "usr/share/doc/asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    (doc / "core-sounds-en.txt.gz").write_bytes(gzip.compress(TRANSCRIPT.encode()))
    rng = np.random.default_rng(0)
    names = [line.split(":")[0] for line in TRANSCRIPT.splitlines() if ":" in line and not line.startswith(";")]
    names = [n for n in names if n != "not-on-disk"] + ["no-transcript"]
    for i, name in enumerate(names):
        path = sounds / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.1 * rng.standard_normal(800 + 80 * i)).astype(np.float32), 8000, subtype="PCM_16")
    return root


def test_clean_transcript():
    assert clean_transcript("at [@]") == "at"
    assert clean_transcript("[ascending tones]") == ""
    assert clean_transcript("(10 seconds of silence)") == ""
    assert clean_transcript("<beep ascending>") == ""
    assert clean_transcript("IAX (note: does not say \"2\")") == "iax"
    assert clean_transcript("press * to toggle, press # to exit") == "press star to toggle press pound to exit"
    assert clean_transcript("Dial 1 for the 2nd option.") == "dial one for the second option"
    # the numbers a caller dials are spoken digit by digit (the recordings say "dial five zero zero");
    # decimals and a protocol's digits after a period keep the usual reading
    assert clean_transcript("dial 500, extension 1234 and password 4242.") == \
        "dial five zero zero extension one two three four and password four two four two"
    assert clean_transcript("a 28.8 kilobit modem, H.323") == "a twenty eight point eight kilobit modem h three hundred twenty three"


def test_fake_layout(tmp_path: Path):
    root = _fake_layout(tmp_path / "pkg")
    r = build_asterisk(tmp_path / "out", source=root)
    assert sorted(r.dropped_nonspeech) == ["beep", "confbridge-join", "silence/1"]
    assert r.missing_audio == ["not-on-disk"] and r.missing_transcript == ["no-transcript"]
    assert r.sample_rate == 8000
    texts = {}
    for split in ("train", "test"):
        d = tmp_path / "out" / split
        assert validate(d) == [], [str(p) for p in validate(d)]
        texts[split] = read_table(d / "text")
        assert set(read_table(d / "utt2spk").values()) == {"allison"}
        for path in read_table(d / "wav.scp").values():
            assert Path(path).is_absolute() and sf.info(path).samplerate == 8000  # left at 8 kHz
    everything = {**texts["train"], **texts["test"]}
    assert len(everything) == 12 == r.train + r.test
    ids = sorted_keys(everything)
    assert list(texts["test"]) == ids[0::5]  # positions 0, 5, 10
    assert list(texts["train"]) == [u for i, u in enumerate(ids) if i % 5]
    assert everything["allison-conf-adminmenu"] == (
        "please press one to mute or unmute yourself two to lock or unlock the conference")
    assert everything["allison-dictate-both_help"].startswith("press star to toggle pause press pound")
    assert everything["allison-letters-exclaimation-point"] == "exclaimation point"
    assert everything["allison-vm-intro"] == "please leave your message after the tone"
    assert everything["allison-vm-msgs"] == "you have third party messages on the twenty first"
    assert everything["allison-vm-Old"] == "old"
    durs = read_table(tmp_path / "out" / "train" / "utt2dur")
    assert all(float(v) > 0.09 for v in durs.values())


def test_source_without_transcript_or_audio(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="asterisk-core-sounds-en"):
        build_asterisk(tmp_path / "out", source=tmp_path / "empty")
    root = _fake_layout(tmp_path / "pkg")
    shutil.rmtree(root / "usr/share/asterisk")
    with pytest.raises(InputError, match="asterisk-core-sounds-en-wav"):
        build_asterisk(tmp_path / "out", source=root)
    with pytest.raises(InputError, match="no such folder"):
        build_asterisk(tmp_path / "out", source=tmp_path / "nope")


def test_fetch_without_apt_says_what_to_do(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(asterisk.shutil, "which", lambda name: None)
    with pytest.raises(AsrkitError, match="--from"):
        build_asterisk(tmp_path / "out", cache=tmp_path / "cache")


def test_cli_asterisk_from(tmp_path: Path, capsys):
    from asrkit.cli.main import main

    root = _fake_layout(tmp_path / "pkg")
    assert main(["corpus", "asterisk", str(tmp_path / "out"), "--from", str(root)]) == 0
    assert "train 9, test 3" in capsys.readouterr().err
    assert main(["corpus", "asterisk", str(tmp_path / "out2"), "--from", str(tmp_path / "nope")]) == 1


@pytest.mark.slow
def test_real_package(tmp_path: Path):
    # Only the download may skip (no apt, no package lists, no network); reading the packages must work.
    reason = fetch_problem()
    if reason:
        pytest.skip(reason)
    try:
        fetch_packages(tmp_path / "cache")
    except AsrkitError as e:
        pytest.skip(f"apt-get download failed (no network?): {e}")
    r = build_asterisk(tmp_path / "out", cache=tmp_path / "cache")
    assert 500 <= r.train + r.test <= 600
    assert r.test == (r.train + r.test + 4) // 5
    assert 20 * 60 < r.seconds < 30 * 60 and r.sample_rate == 8000
    for split in ("train", "test"):
        assert validate(tmp_path / "out" / split) == []
    text = read_table(tmp_path / "out" / "test" / "text")
    assert all(w.replace("'", "").isalpha() for t in text.values() for w in t.split())
    # The cache is reused: a second build does not download again.
    marker = tmp_path / "cache" / "root" / ".complete"
    mtime = marker.stat().st_mtime_ns
    build_asterisk(tmp_path / "out2", cache=tmp_path / "cache")
    assert marker.stat().st_mtime_ns == mtime
