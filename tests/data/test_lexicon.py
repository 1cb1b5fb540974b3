"""Pronunciation lexicons: reading CMU/Kaldi forms, lookups, writing
lexicon.txt, and the shipped CMU dict against the tiny corpus."""
from __future__ import annotations

from pathlib import Path

import pytest

from asrkit.cli.main import main
from asrkit.data.lexicon import ARPABET39, CMUDICT_PATH, Lexicon, UnknownWordError, normalize_phone
from asrkit.data.table import read_table
from asrkit.errors import InputError

TINY = Path(__file__).resolve().parents[2] / "asrkit" / "resources" / "tiny"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_normalize_phone():
    assert normalize_phone("AH0") == "ah"
    assert normalize_phone("ER1") == "er"
    assert normalize_phone("zh") == "zh"
    assert normalize_phone("sil") == "sil"


def test_load_cmu_and_kaldi_forms(tmp_path: Path):
    lex = Lexicon.load(_write(tmp_path / "lex.txt", (
        ";;; a CMU-style comment\n"
        "# a comment line\n"
        "tomato T AH0 M EY1 T OW2\n"
        "tomato(2) T AH0 M AA1 T OW2  # british\n"
        "tomato(3) T AH1 M EY0 T OW0\n"   # same as the first once stress is gone
        "Read\tr iy d\n"
        "read r eh d\n"
        "\n"
    )))
    assert len(lex) == 2
    assert lex.prons("tomato") == [("t", "ah", "m", "ey", "t", "ow"), ("t", "ah", "m", "aa", "t", "ow")]
    assert lex.pron("TOMATO") == ("t", "ah", "m", "ey", "t", "ow")  # case-insensitive lookups
    assert lex.prons("read") == [("r", "iy", "d"), ("r", "eh", "d")]
    assert "READ" in lex and "potato" not in lex
    assert lex.prons("potato") == []
    assert lex.words() == ["tomato", "Read"]
    assert lex.phones() == sorted({"t", "ah", "m", "ey", "ow", "aa", "r", "iy", "d", "eh"})


def test_load_errors(tmp_path: Path):
    with pytest.raises(InputError, match=r"nope\.txt: no such file"):
        Lexicon.load(tmp_path / "nope.txt")
    with pytest.raises(InputError, match=r"bad\.txt:2: 'word' has no phones"):
        Lexicon.load(_write(tmp_path / "bad.txt", "a ah\nword\n"))
    with pytest.raises(InputError, match="empty"):
        Lexicon.load(_write(tmp_path / "empty.txt", ";;; nothing\n"))


def test_spell_missing_and_error_lists_words():
    lex = Lexicon.from_entries([("a", ["ah"]), ("a", ["ey"]), ("cat", ["K", "AE1", "T"])])
    assert lex.spell(["a", "CAT"]) == ["ah", "k", "ae", "t"]
    words = [f"w{i}" for i in range(25)] + ["a", "w0"]
    assert lex.missing(words) == [f"w{i}" for i in range(25)]
    with pytest.raises(UnknownWordError) as err:
        lex.spell(words)
    msg = str(err.value)
    assert msg.startswith("25 word(s) not in the lexicon")
    assert "'w0'" in msg and "'w19'" in msg and "'w20'" not in msg and "and 5 more" in msg
    assert err.value.words == [f"w{i}" for i in range(25)]


def test_combine_first_wins_and_subset():
    user = Lexicon.from_entries([("the", ["dh", "iy"]), ("gi", ["jh", "iy", "ay"])], name="user")
    base = Lexicon.from_entries([("the", ["dh", "ah"]), ("a", ["ah"])], name="base")
    lex = Lexicon.combine([user, base])
    assert lex.prons("the") == [("dh", "iy")]
    assert lex.pron("a") == ("ah",) and lex.pron("gi") == ("jh", "iy", "ay")
    sub = lex.subset(["A", "nope", "the"])
    assert sub.words() == ["A", "the"]


def test_write_kaldi_lexicon(tmp_path: Path):
    lex = Lexicon.from_entries([("b", ["b", "iy"]), ("a", ["ah"]), ("a", ["ey"])])
    out = tmp_path / "lexicon.txt"
    assert lex.write(out) == 3
    assert out.read_text() == "a ah\na ey\nb b iy\n"
    # words spelled as the caller gives them (upper-case corpora)
    assert lex.write(out, ["B", "A"]) == 3
    assert out.read_text() == "A ah\nA ey\nB b iy\n"
    with pytest.raises(UnknownWordError, match="'zz'"):
        lex.write(out, ["a", "zz"])
    assert Lexicon.load(out).prons("a") == [("ah",), ("ey",)]  # what was written reads back


def test_shipped_cmudict():
    assert CMUDICT_PATH.exists() and CMUDICT_PATH.stat().st_size < 1_500_000
    assert (CMUDICT_PATH.parent / "LICENSE").read_text().startswith("Copyright (C) 1993-2015 Carnegie Mellon")
    lex = Lexicon.default()
    assert lex is Lexicon.default()  # loaded once
    assert len(lex) > 120_000
    assert lex.phones() == sorted(ARPABET39) and len(ARPABET39) == 39
    assert lex.prons("wasn't") == [("w", "aa", "z", "ah", "n", "t"), ("w", "ah", "z", "ah", "n", "t")]
    assert lex.pron("AMERICANS") == ("ah", "m", "eh", "r", "ah", "k", "ah", "n", "z")


def _edits(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def test_cmudict_covers_tiny_corpus_and_agrees_with_synthesizer():
    """The CMU dict spells almost every tiny-corpus word, and its spellings
    agree with the synthesizer's phones (``text.phones``, flite's lexicon
    and letter-to-sound rules, ``sil`` removed) on >= 95% of the phones."""
    lex = Lexicon.default()
    missing: set[str] = set()
    errors = total = exact = spelled = 0
    for split in ("train", "dev", "test"):
        text = read_table(TINY / split / "text")
        phones = read_table(TINY / split / "text.phones")
        for utt, words in text.items():
            words = words.split()
            miss = lex.missing(words)
            if miss:
                missing.update(miss)
                continue
            hyp = lex.spell(words)
            ref = [p for p in phones[utt].split() if p != "sil"]
            errors += _edits(ref, hyp)
            total += len(ref)
            exact += hyp == ref
            spelled += 1
    assert missing == {"cj", "gi", "janiyah", "judah's", "qaida's", "rebekah", "seong"}
    assert spelled == 489  # 500 utterances, 11 with a word the dict lacks
    agreement = 1 - errors / total
    assert agreement >= 0.95, agreement  # measured: 0.972 (208 of 489 utterances identical)
    assert exact >= 100


def test_cli_lexicon(tmp_path: Path, capsys):
    text = _write(tmp_path / "text", "u-1 the cat\nu-2 the zzyzxq\n")
    out = tmp_path / "lexicon.txt"
    assert main(["tokenizer", "lexicon", str(text), str(out)]) == 1
    err = capsys.readouterr().err
    assert "1 of 3 word(s) not in the lexicon" in err and "zzyzxq" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["tokenizer", "lexicon", str(text), str(out), "--oov", "skip"]) == 0
    assert out.read_text() == "cat k ae t\nthe dh ah\nthe dh iy\n"
    extra = _write(tmp_path / "extra.txt", "zzyzxq z ih z ih k s\n")
    assert main(["tokenizer", "lexicon", str(text), "-", "--lexicon", str(extra), "--no-cmudict",
                 "--oov", "skip"]) == 0
    assert capsys.readouterr().out == "zzyzxq z ih z ih k s\n"


def test_bom_is_not_part_of_the_first_word(tmp_path: Path):
    """A UTF-8 byte-order mark (Windows editors) is dropped by the one line reader."""
    path = tmp_path / "lex.txt"
    path.write_bytes("\ufeffcat K AE1 T\ndog D AO1 G\n".encode("utf-8"))
    lex = Lexicon.load(path)
    assert "cat" in lex and "\ufeffcat" not in lex
