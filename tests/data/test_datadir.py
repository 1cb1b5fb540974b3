"""asrkit.data: DataDir read/write, validate/--fix, subset, combine, and the CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.data import DataDir, Segment, fix, validate
from asrkit.errors import DataError, InputError

RATE = 16000


def make_dir(root: Path, utts: dict[str, float] | None = None, name: str = "d") -> Path:
    """A valid data dir: utt-id -> seconds of audio; speaker = text before '-'."""
    utts = utts or {"spkA-u1": 0.5, "spkA-u2": 0.3, "spkB-u1": 0.7}
    (root / "wav").mkdir(parents=True, exist_ok=True)
    wav = {}
    for i, (u, dur) in enumerate(utts.items()):
        p = root / "wav" / f"{u}.wav"
        sf.write(p, np.full(int(dur * RATE), 0.01 * (i + 1), np.float32), RATE, subtype="PCM_16")
        wav[u] = str(p)
    d = DataDir(wav_scp=wav, utt2spk={u: u.split("-")[0] for u in utts}, text={u: f"words of {u}" for u in utts})
    return d.save(root / name)


def test_roundtrip_sorted_c_locale(tmp_path):
    d = DataDir(wav_scp={"b-1": "/x/b.wav", "B-1": "/x/B.wav", "a-1": "cmd a |"},
                utt2spk={"b-1": "b", "B-1": "B", "a-1": "a"}, text={"b-1": "x", "B-1": "", "a-1": "y z"},
                utt2dur={"b-1": 1.5, "B-1": 2.0, "a-1": 0.25}, ali={"b-1": "1 1 2", "B-1": "3", "a-1": "4 4"})
    d.save(tmp_path / "d")
    assert (tmp_path / "d" / "utt2spk").read_text() == "B-1 B\na-1 a\nb-1 b\n"  # C locale: upper first
    assert (tmp_path / "d" / "spk2utt").read_text() == "B B-1\na a-1\nb b-1\n"
    e = DataDir.load(tmp_path / "d")
    assert e.utt_ids == ["B-1", "a-1", "b-1"]
    assert e.wav_scp == d.wav_scp and e.text == d.text and e.ali == d.ali and e.utt2dur == d.utt2dur
    assert e.segments is None and e.spk2utt == {"B": ["B-1"], "a": ["a-1"], "b": ["b-1"]}


def test_segments_and_audio(tmp_path):
    x = np.linspace(-0.5, 0.5, RATE, dtype=np.float32)
    sf.write(tmp_path / "rec.wav", x, RATE, subtype="FLOAT")
    d = DataDir(wav_scp={"rec": str(tmp_path / "rec.wav")}, utt2spk={"s-1": "s", "s-2": "s"},
                segments={"s-1": Segment("rec", 0.0, 0.25), "s-2": Segment("rec", 0.5, -1)})
    d.save(tmp_path / "d")
    assert (tmp_path / "d" / "segments").read_text() == "s-1 rec 0.00 0.25\ns-2 rec 0.5 -1.00\n"
    e = DataDir.load(tmp_path / "d")
    np.testing.assert_array_equal(e.audio("s-1")[0], x[:4000])
    np.testing.assert_array_equal(e.audio("s-2")[0], x[8000:])
    assert e.duration("s-1") == 0.25 and e.duration("s-2") == pytest.approx(0.5)
    assert validate(tmp_path / "d") == []


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="no such data dir"):
        DataDir.load(tmp_path / "nope")
    (tmp_path / "e").mkdir()
    with pytest.raises(InputError, match="no utt2spk"):
        DataDir.load(tmp_path / "e")
    (tmp_path / "e" / "utt2spk").write_text("a-1 a\na-1 a\n")
    with pytest.raises(InputError, match=r"utt2spk:2: duplicate id 'a-1'"):
        DataDir.load(tmp_path / "e")


def test_valid_dir_has_no_problems(tmp_path):
    assert validate(make_dir(tmp_path)) == []


def _problems(path) -> list[str]:
    return [str(p) for p in validate(path)]


def test_validate_finds_each_problem(tmp_path):
    d = make_dir(tmp_path, {"spkA-u1": 0.5, "spkA-u2": 0.3, "spkB-u1": 0.7, "spkB-u2": 0.2, "x-u3": 0.4})
    (d / "utt2spk").write_text("spkA-u1 spkA\nspkA-u2 spkA\nspkB-u1 spkB\nspkB-u2 spkB\nx-u3 other\n")
    (d / "text").write_text("spkA-u2 b\nspkA-u1 a\nspkB-u1 \nspkB-u2 d\nx-u3 e\nzz-9 orphan\n")
    (tmp_path / "wav" / "spkB-u2.wav").unlink()
    probs = _problems(d)
    text = "\n".join(probs)
    assert "text: not sorted" in text
    assert "speaker id 'other' is not a prefix of utterance id 'x-u3'" in text
    assert "spk2utt: does not match utt2spk" in text
    assert "utterance 'spkB-u1' has an empty transcript" in text
    assert "text: utterance 'zz-9' is not in utt2spk" in text
    assert "utterance 'spkB-u2':" in text and "no such audio file" in text


def test_validate_missing_lines_truncated_audio_and_segments(tmp_path):
    d = make_dir(tmp_path)
    (d / "wav.scp").write_text("\n".join(l for l in (d / "wav.scp").read_text().splitlines() if "spkB" not in l) + "\n")
    p = tmp_path / "wav" / "spkA-u2.wav"
    p.write_bytes(p.read_bytes()[:200])
    probs = _problems(d)
    assert any("wav.scp: no line for utterance 'spkB-u1'" in s for s in probs)
    assert any("spkA-u2" in s and "truncated WAV" in s for s in probs)
    # a segment past the end of its recording
    (d / "segments").write_text("spkA-u1 spkA-u1 0 9.5\n")
    assert any("ends at 9.5s, after the end" in s for s in _problems(d))


def test_validate_no_utt2spk_and_unparsable_tables(tmp_path):
    (tmp_path / "d").mkdir()
    assert [p.file for p in validate(tmp_path / "d")] == ["utt2spk"]
    d = make_dir(tmp_path, name="e")
    (d / "utt2dur").write_text("spkA-u1 abc\n")
    assert any("bad duration 'abc'" in s for s in _problems(d))


def test_fix_writes_consistent_copy(tmp_path):
    d = make_dir(tmp_path, {"spkA-u1": 0.5, "spkA-u2": 0.3, "spkB-u1": 0.7, "spkB-u2": 0.2})
    (d / "text").write_text("spkA-u1 a\nspkA-u2 \nspkB-u1 c\n")  # u2 empty, spkB-u2 missing
    (tmp_path / "wav" / "spkB-u1.wav").write_bytes(b"RIFF")  # unreadable
    (d / "spk2utt").unlink()
    new, dropped = fix(d, tmp_path / "fixed")
    assert new.utt_ids == ["spkA-u1"]
    assert {p.utt for p in dropped} == {"spkA-u2", "spkB-u1", "spkB-u2"}
    assert validate(tmp_path / "fixed") == []
    assert (tmp_path / "fixed" / "utt2dur").read_text() == "spkA-u1 0.5\n"


def test_subset_first_speakers_shortest(tmp_path):
    d = DataDir.load(make_dir(tmp_path))
    assert d.first(2).utt_ids == ["spkA-u1", "spkA-u2"]
    assert d.speakers(["spkB"]).utt_ids == ["spkB-u1"]
    s = d.shortest(2)
    assert s.utt_ids == ["spkA-u1", "spkA-u2"] and s.utt2dur == {"spkA-u1": 0.5, "spkA-u2": 0.3}
    assert set(s.wav_scp) == {"spkA-u1", "spkA-u2"} and set(s.text) == set(s.utt_ids)
    with pytest.raises(DataError, match="unknown speaker"):
        d.speakers(["nobody"])


def test_combine(tmp_path):
    a = DataDir.load(make_dir(tmp_path / "a", {"spkA-u1": 0.2}))
    b = DataDir.load(make_dir(tmp_path / "b", {"spkB-u1": 0.2}))
    c = DataDir.combine([a, b])
    assert c.utt_ids == ["spkA-u1", "spkB-u1"] and set(c.text) == set(c.utt_ids)
    c.save(tmp_path / "c")
    assert validate(tmp_path / "c") == []
    b.text["spkA-u1"] = "different"
    b.utt2spk["spkA-u1"] = "spkA"
    b.wav_scp["spkA-u1"] = a.wav_scp["spkA-u1"]
    with pytest.raises(DataError, match="'spkA-u1' is in more than one input"):
        DataDir.combine([a, b])
    b.text = None  # a table only one input has is dropped
    del b.utt2spk["spkA-u1"], b.wav_scp["spkA-u1"]
    assert DataDir.combine([a, b]).text is None


# ------------------------------------------------------------------------ CLI
def _cli(*args: str) -> int:
    from asrkit.cli.main import main

    return main(list(args))


def test_cli_validate_subset_combine(tmp_path, capsys):
    d = make_dir(tmp_path)
    assert _cli("data", "validate", str(d)) == 0
    (d / "text").write_text("spkA-u1 a\nspkA-u2 \nspkB-u1 c\n")
    capsys.readouterr()
    assert _cli("data", "validate", str(d)) == 1
    out, err = capsys.readouterr()
    assert "empty transcript" in out and "1 problem(s)" in err
    assert _cli("data", "validate", str(d), "--fix", str(tmp_path / "f")) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("dropped spkA-u2:")
    assert _cli("data", "validate", str(tmp_path / "f")) == 0
    assert _cli("data", "subset", str(d), str(tmp_path / "s"), "--speakers", "spkB") == 0
    assert (tmp_path / "s" / "utt2spk").read_text() == "spkB-u1 spkB\n"
    assert _cli("data", "subset", str(d), str(tmp_path / "s2"), "--first", "1", "--shortest", "1") == 2
    assert _cli("data", "combine", str(tmp_path / "c"), str(tmp_path / "f"), str(tmp_path / "s")) == 0
    assert (tmp_path / "c" / "utt2spk").read_text() == "spkA-u1 spkA\nspkB-u1 spkB\n"
    assert _cli("audio", "info", str(tmp_path / "wav" / "spkA-u1.wav")) == 0
    assert capsys.readouterr().out.split()[1:4] == ["16000", "1", "0.500"]


def test_extra_tables_text_phones(tmp_path):
    d = DataDir.load(make_dir(tmp_path))
    d.extra["text.phones"] = {u: "sil a b sil" for u in d.utt_ids}
    d.save(tmp_path / "d2")
    e = DataDir.load(tmp_path / "d2")
    assert e.extra == {"text.phones": {u: "sil a b sil" for u in d.utt_ids}}
    assert validate(tmp_path / "d2") == []
    assert e.first(1).extra["text.phones"] == {"spkA-u1": "sil a b sil"}
    assert set(DataDir.combine([e.first(1), e.speakers(["spkB"])]).extra["text.phones"]) == {"spkA-u1", "spkB-u1"}
    (tmp_path / "d2" / "text.phones").write_text("spkA-u1 a\nzz-1 b\n")
    msgs = _problems(tmp_path / "d2")
    assert any("text.phones: no line for utterance 'spkA-u2'" in m for m in msgs)
    assert any("text.phones: utterance 'zz-1' is not in utt2spk" in m for m in msgs)
    new, _ = fix(tmp_path / "d2", tmp_path / "f")
    assert new.utt_ids == ["spkA-u1"] and (tmp_path / "f" / "text.phones").read_text() == "spkA-u1 a\n"


# ------------------------------------------------------------------ split
def _big(n_spk: int = 6, n_utt: int = 5) -> DataDir:
    utts = [f"sp{s}-u{u}" for s in range(n_spk) for u in range(n_utt)]
    return DataDir(wav_scp={u: f"/a/{u}.wav" for u in utts}, utt2spk={u: u.split("-")[0] for u in utts},
                   text={u: f"t {u}" for u in utts}, utt2dur={u: 1.0 + i for i, u in enumerate(utts)},
                   ali={u: "1 2 3" for u in utts}, extra={"text.phones": {u: "sil a" for u in utts}})


def test_split_sizes_seed_and_tables():
    d = _big()
    tr, dv = d.split(0.1, seed=3)
    assert len(dv) == 3 and len(tr) == 27 and not set(tr.utt_ids) & set(dv.utt_ids)
    assert d.split(0.1, seed=3)[1].utt_ids == dv.utt_ids  # same seed, same split
    assert any(d.split(0.1, seed=s)[1].utt_ids != dv.utt_ids for s in range(4, 10))
    for part in (tr, dv):
        ids = set(part.utt_ids)
        assert set(part.text) == set(part.utt2dur) == set(part.ali) == set(part.extra["text.phones"]) == ids
        assert set(part.wav_scp) == ids
    assert len(d.split(7)[1]) == 7
    for bad in (0, 30, 1.0, 0.0):
        with pytest.raises(DataError):
            d.split(bad)


def test_split_by_speaker_keeps_speakers_whole():
    d = _big()
    segs = DataDir(**{**d.__dict__, "segments": {u: Segment(u.split("-")[0], 0.0, 1.0) for u in d.utt_ids},
                      "wav_scp": {f"sp{s}": f"/a/sp{s}.wav" for s in range(6)}})
    for dd in (d, segs):
        tr, dv = dd.split(0.2, by_speaker=True, seed=1)
        assert len(dv) == 10 and not set(tr.utt2spk.values()) & set(dv.utt2spk.values())
        assert tr.utt_ids + dv.utt_ids != [] and len(tr) + len(dv) == 30
    tr, dv = segs.split(0.2, by_speaker=True, seed=1)
    assert set(dv.wav_scp) == set(dv.utt2spk.values()) and set(dv.segments) == set(dv.utt_ids)
    one = _big(n_spk=1)
    with pytest.raises(DataError, match="by speaker"):
        one.split(2, by_speaker=True)


def test_cli_split(tmp_path, capsys):
    src = _big().save(tmp_path / "src")
    tr, dv = tmp_path / "tr", tmp_path / "dv"
    assert _cli("-q", "data", "split", str(src), "--dev", "10%", "--by-speaker", "--seed", "2",
                "--out", str(tr), str(dv)) == 0
    a, b = DataDir.load(tr), DataDir.load(dv)
    assert len(a) + len(b) == 30 and not set(a.utt2spk.values()) & set(b.utt2spk.values())
    assert (dv / "text.phones").exists() and (dv / "ali").exists() and (dv / "utt2dur").exists()
    before = (dv / "utt2spk").read_text()
    assert _cli("-q", "data", "split", str(src), "--dev", "10%", "--by-speaker", "--seed", "2",
                "--out", str(tr), str(dv)) == 0  # its own output: redone, same result
    assert (dv / "utt2spk").read_text() == before
    assert _cli("-q", "data", "split", str(src), "--dev", "4", "--out", str(tr), str(dv)) == 0
    assert len(DataDir.load(dv)) == 4
    for bad in ("0", "abc", "100%", "-3"):
        assert _cli("data", "split", str(src), "--dev", bad, "--out", str(tr), str(dv)) == 2
    assert _cli("data", "split", str(src), "--dev", "2", "--out", str(tr), str(tr)) == 2


def test_cli_bad_input_messages(tmp_path, capsys):
    d = make_dir(tmp_path)
    capsys.readouterr()
    assert _cli("data", "subset", str(d), str(tmp_path / "s"), "--utt-list", str(tmp_path / "missing.lst")) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'missing.lst'}: no such file" in err and "id(s)" not in err
    assert not (tmp_path / "s").exists()
    assert _cli("data", "validate", str(tmp_path / "nope")) == 1
    out, err = capsys.readouterr()
    assert f"{tmp_path / 'nope'}: no such data dir" in err and "nope/" not in out + err


def test_corpus_and_import_commands_refuse_a_foreign_dir(tmp_path, capsys):
    victim = make_dir(tmp_path, name="mine")
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.wav").write_bytes((tmp_path / "wav" / "spkA-u1.wav").read_bytes())
    for args in (("corpus", "tiny", str(victim)),
                 ("data", "import", "folder", str(tmp_path / "corpus"), str(victim))):
        capsys.readouterr()
        assert _cli(*args) == 2, args
        err = capsys.readouterr().err
        assert str(victim) in err and "--overwrite" in err
        assert {p.name: p.read_bytes() for p in victim.iterdir()} == before
    assert _cli("data", "import", "folder", str(tmp_path / "corpus"), str(tmp_path / "corpus" / "..")) == 2
