"""The one transcript reader (asrkit.data.transcripts) and the table line reader: text vs trn sniffing,
byte-order marks, stdin."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from asrkit.data.table import read_table
from asrkit.data.transcripts import detect_format, parse_transcripts, read_training_text, read_transcripts
from asrkit.errors import InputError


@pytest.mark.parametrize("lines, fmt", [
    # Kaldi texts whose transcripts end in a parenthesised word
    (["spk1-u1 the cat (noise)", "spk1-u2 a dog (noise)", "spk2-u1 hello (laughter)"], "text"),
    (["u1 a (noise)"], "text"),
    (["utt_1 a (x)", "utt_2 b (y)", "utt_3 c (z)"], "text"),
    (["alpha hello (noise)", "beta bye (noise)"], "text"),  # ids without digits, but (noise) repeats
    # trn
    (["hello world (spk1-u1)", "hello (spk1-u2)", "(spk1-u3)"], "trn"),
    (["hello (u1)"], "trn"),
    (["the cat (u1)", "the dog (u2)"], "trn"),  # first words repeat: not ids
    (["a (u1)", "b (u1)"], "trn"),  # a repeated id is a trn error, not a text
    (["(u1)", "(u2)"], "trn"),
    (["a b (u1)", "c (u2)", "no id here"], "trn"),  # a stray malformed line is named, not a text
    ([], "text"),
])
def test_detect_format(lines, fmt):
    assert detect_format(lines) == fmt


def test_kaldi_text_with_noise_tags_reads_as_text(tmp_path: Path):
    p = tmp_path / "text"
    p.write_text("spk1-u1 the cat (noise)\nspk1-u2 a dog (noise)\n", encoding="utf-8")
    t = read_transcripts(p)
    assert t.format == "text" and t.utts == {"spk1-u1": ["the", "cat", "(noise)"], "spk1-u2": ["a", "dog", "(noise)"]}


@pytest.mark.parametrize("body", ["spk1-u1 hello world\nspk1-u2 bye\n", "hello world (spk1-u1)\nbye (spk1-u2)\n"])
def test_bom_is_not_part_of_the_first_id(tmp_path: Path, body: str):
    p = tmp_path / "ref"
    p.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert list(read_transcripts(p).utts) == ["spk1-u1", "spk1-u2"]
    assert list(parse_transcripts("\ufeff" + body, "f").utts) == ["spk1-u1", "spk1-u2"]


def test_bom_in_tables_and_training_text(tmp_path: Path):
    p = tmp_path / "utt2spk"
    p.write_bytes(b"\xef\xbb\xbfa-1 a\nb-1 b\n")
    assert read_table(p) == {"a-1": "a", "b-1": "b"}
    only = tmp_path / "bom_line"
    only.write_bytes(b"\xef\xbb\xbf\nx-1 y\n")  # a BOM alone on the first line is a blank line
    assert read_table(only) == {"x-1": "y"}
    ts, fmt = read_training_text(p)
    assert fmt == "kaldi" and ts[0].utt == "a-1"


def test_table_and_training_text_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("\ufeffs-1 x y\ns-2 z\n".encode())))
    ts, fmt = read_training_text("-")
    assert fmt == "kaldi" and [t.utt for t in ts] == ["s-1", "s-2"]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"k v\nk w\n")))
    with pytest.raises(InputError, match=r"<stdin>:2: duplicate id 'k' \(first on line 1\)"):
        read_table("-")
