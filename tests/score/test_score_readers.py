"""Kaldi text / trn readers: detection, forcing, and the bad inputs."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from asrkit.errors import InputError
from asrkit.score.readers import detect_format, parse_transcripts, read_transcripts


def test_text_and_trn_give_the_same_utterances(tmp_path: Path):
    (tmp_path / "a.txt").write_text("u1 hello world\n\nu2\nu3  a  b \n", encoding="utf-8")
    (tmp_path / "a.trn").write_text("hello world (u1)\n(u2)\n\n a b (u3)\n", encoding="utf-8")
    t = read_transcripts(tmp_path / "a.txt")
    n = read_transcripts(tmp_path / "a.trn")
    assert t.format == "text" and n.format == "trn"
    assert t.utts == n.utts == {"u1": ["hello", "world"], "u2": [], "u3": ["a", "b"]}


def test_detection_is_by_majority_and_can_be_forced():
    assert detect_format(["a b (u1)", "c (u2)", "u3 x"]) == "trn"
    assert detect_format(["u1 a (laughter)", "u2 b", "u3 c"]) == "text"
    assert detect_format([]) == "text"
    forced = parse_transcripts("u1 a (noise)\n", "f", "text")
    assert forced.utts == {"u1": ["a", "(noise)"]}
    as_trn = parse_transcripts("u1 a (noise)\n", "f", "trn")
    assert as_trn.utts == {"noise": ["u1", "a"]}


def test_malformed_trn_line_names_file_and_line():
    with pytest.raises(InputError, match=r"^hyp\.trn:3: malformed trn line"):
        parse_transcripts("a (u1)\nb (u2)\nno id here\n", "hyp.trn")
    with pytest.raises(InputError, match=r"f:1: malformed trn line"):
        parse_transcripts("u1 a b\n", "f", "trn")


def test_duplicate_ids(tmp_path: Path):
    with pytest.raises(InputError, match=r"f:3: duplicate utt-id 'u1' \(first on line 1\)"):
        parse_transcripts("u1 a\nu2 b\nu1 c\n", "f")
    with pytest.raises(InputError, match=r"f:2: duplicate utt-id 'u1'"):
        parse_transcripts("a (u1)\nb (u1)\n", "f")


def test_missing_file_invalid_utf8_and_directory(tmp_path: Path):
    with pytest.raises(InputError, match="nope.txt: no such file"):
        read_transcripts(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"u1 ok\nu2 caf\xe9\n")
    with pytest.raises(InputError, match=r"bad.txt:2: invalid UTF-8"):
        read_transcripts(bad)
    with pytest.raises(InputError, match="is a directory"):
        read_transcripts(tmp_path)


def test_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("x y (s1-u1)\n".encode())))
    t = read_transcripts("-")
    assert t.name == "<stdin>" and t.utts == {"s1-u1": ["x", "y"]}
