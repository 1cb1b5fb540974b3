"""Tokenizers: phone/char/bpe training, stable ids, round trips, OOV
handling, and bad inputs through the CLI."""
from __future__ import annotations

from pathlib import Path

import pytest

from asrkit.cli.main import main
from asrkit.data.lexicon import ARPABET39, Lexicon, UnknownWordError
from asrkit.data.table import read_table
from asrkit.data.tokenizer import (
    BLANK,
    PHONE_UNITS,
    Tokenizer,
    read_units,
    train_tokenizer,
)
from asrkit.data.transcripts import read_training_text
from asrkit.errors import DataError, InputError, UsageError

TINY = Path(__file__).resolve().parents[2] / "asrkit" / "resources" / "tiny"

SENTENCES = [
    "we americans have faith in ourselves",
    "the science wasn't even there yet",
    "last month a girl sent me a letter",
    "we will build a stronger nation together",
    "the people of this country deserve better",
    "our economy is growing and jobs are coming back",
    "quick brown foxes jump over lazy dogs",
    "we must never forget the lessons of history",
]


@pytest.fixture
def kaldi_text(tmp_path: Path) -> Path:
    path = tmp_path / "text"
    path.write_text("".join(f"spk1-utt{i:02d} {s}\n" for i, s in enumerate(SENTENCES)), encoding="utf-8")
    return path


def _err_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("asrkit:")]


# --------------------------------------------------------------------------
# Training and round trips, per kind


def test_phone_units_and_round_trip(kaldi_text: Path, tmp_path: Path):
    result = train_tokenizer("phone", kaldi_text, tmp_path / "units")
    tok = Tokenizer.load(tmp_path / "units")
    assert tok.kind == "phone" and tok.blank_id == 0 and tok.units[0] == BLANK
    assert tok.units == list(PHONE_UNITS) == [BLANK, "sil", *ARPABET39]
    assert tok.vocab_size == 41 and result.text_format == "kaldi"
    lex = Lexicon.default()
    for s in SENTENCES:
        ids = tok.encode(s.split())
        assert 0 not in ids and tok.id_of("sil") not in ids
        assert tok.decode(ids) == lex.spell(s.split())
    # the units folder also holds the spellings and the phone text
    lexicon = Lexicon.load(tmp_path / "units" / "lexicon.txt")
    assert set(lexicon.words()) == {w for s in SENTENCES for w in s.split()}
    assert lexicon.prons("wasn't") == lex.prons("wasn't")
    phones = read_table(tmp_path / "units" / "text.phones")
    assert phones["spk1-utt01"].split() == lex.spell(SENTENCES[1].split())
    # words outside the training text still encode (the shipped CMU dict)
    assert tok.decode(tok.encode(["zebra"])) == ["z", "iy", "b", "r", "ah"]


def test_phone_units_cover_tiny_alignments():
    """The frame labels of the synthesized corpus (``ali``, ``text.phones``)
    are units of the phone tokenizer, so frame and CTC models share ids."""
    tok = Tokenizer("phone", PHONE_UNITS, lexicon=Lexicon.from_entries([("a", ["ah"])]))
    ali = read_table(TINY / "dev" / "ali")
    labels = {p for v in ali.values() for p in v.split()}
    labels |= {p for v in read_table(TINY / "dev" / "text.phones").values() for p in v.split()}
    assert labels <= set(PHONE_UNITS[1:])
    first = next(iter(ali.values())).split()
    ids = tok.encode_units(first)
    assert tok.decode_units(ids) == first and 0 not in ids
    assert tok.decode(tok.encode_units(["sil", "ah", "sil"])) == ["ah"]  # sil is no transcript phone


def test_char_units_and_round_trip(kaldi_text: Path, tmp_path: Path):
    train_tokenizer("char", kaldi_text, tmp_path / "units")
    tok = Tokenizer.load(tmp_path / "units")
    assert tok.kind == "char"
    assert tok.units[:4] == [BLANK, "<unk>", "|", "'"]
    assert tok.units[4:] == [chr(c) for c in range(ord("a"), ord("z") + 1)]
    for s in SENTENCES:
        ids = tok.encode(s.split())
        assert 0 not in ids
        assert tok.decode(ids) == s.split()
    ids = tok.encode(["ab", "c"])
    assert [tok.units[i] for i in ids] == ["a", "b", "|", "c"]
    assert tok.decode(tok.encode(["naïve"])) == ["na<unk>ve"]  # unknown character
    assert tok.encode([]) == [] and tok.decode([]) == []


def test_char_units_other_characters(tmp_path: Path):
    text = tmp_path / "plain.txt"
    text.write_text("HELLO WORLD\nCAFÉ 2 GO\n", encoding="utf-8")
    result = train_tokenizer("char", text, tmp_path / "units")
    units = result.tokenizer.units
    assert result.text_format == "plain"
    assert "A" in units and "Q" in units and "É" in units and "2" in units and "a" not in units
    assert result.tokenizer.decode(result.tokenizer.encode(["CAFÉ", "2"])) == ["CAFÉ", "2"]


@pytest.mark.parametrize("bpe_type", ["unigram", "bpe"])
def test_bpe_units_and_round_trip(kaldi_text: Path, tmp_path: Path, bpe_type: str):
    train_tokenizer("bpe", kaldi_text, tmp_path / "units", vocab_size=60, bpe_type=bpe_type)
    tok = Tokenizer.load(tmp_path / "units")
    assert tok.kind == "bpe" and tok.vocab_size == 60 and tok.units[0] == BLANK and tok.units[1] == "<unk>"
    assert (tmp_path / "units" / "bpe.model").exists()
    for s in SENTENCES:
        ids = tok.encode(s.split())
        assert ids and 0 not in ids and max(ids) < 60
        assert tok.decode(ids) == s.split()
    # unseen words still round-trip through the pieces (letters of the text)
    assert tok.decode(tok.encode(["overseas", "jobs"])) == ["overseas", "jobs"]


@pytest.mark.parametrize("kind,extra", [("phone", {}), ("char", {}), ("bpe", {"vocab_size": 50}),
                                        ("bpe", {"vocab_size": 50, "bpe_type": "bpe"})])
def test_same_input_gives_identical_files(kaldi_text: Path, tmp_path: Path, kind: str, extra: dict):
    a, b = tmp_path / "a", tmp_path / "b"
    train_tokenizer(kind, kaldi_text, a, **extra)
    train_tokenizer(kind, kaldi_text, b, **extra)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert read_units(a / "units.txt")[0] == BLANK
    assert (a / "units.txt").read_text().splitlines()[0] == "<blank> 0"


def test_retraining_another_kind_replaces_files(kaldi_text: Path, tmp_path: Path):
    out = tmp_path / "units"
    train_tokenizer("bpe", kaldi_text, out, vocab_size=50)
    train_tokenizer("char", kaldi_text, out)
    assert not (out / "bpe.model").exists()
    assert Tokenizer.load(out).kind == "char"


# --------------------------------------------------------------------------
# Text formats


def test_text_format_detection(tmp_path: Path):
    kaldi = tmp_path / "text"
    kaldi.write_text("a-1 hello world\nb-2\n", encoding="utf-8")
    ts, fmt = read_training_text(kaldi)
    assert fmt == "kaldi" and ts[0].utt == "a-1" and ts[0].words == ["hello", "world"] and ts[1].words == []
    plain = tmp_path / "plain"
    plain.write_text("hello world\nhello again\n", encoding="utf-8")
    ts, fmt = read_training_text(plain)
    assert fmt == "plain" and ts[1].utt is None and ts[1].words == ["hello", "again"]
    ts, fmt = read_training_text(kaldi, "plain")
    assert fmt == "plain" and ts[0].words == ["a-1", "hello", "world"]
    with pytest.raises(InputError, match="duplicate id 'a-1'"):
        dup = tmp_path / "dup"
        dup.write_text("a-1 x\na-1 y\n", encoding="utf-8")
        read_training_text(dup, "kaldi")


# --------------------------------------------------------------------------
# Words missing from the lexicon


def test_oov_error_lists_words(tmp_path: Path, capsys):
    text = tmp_path / "text"
    text.write_text("u-1 the cat\nu-2 the qqzx\nu-3 the vvrq qqzx\n", encoding="utf-8")
    with pytest.raises(UnknownWordError) as err:
        train_tokenizer("phone", text, tmp_path / "units")
    assert err.value.words == ["qqzx", "vvrq"]
    assert "2 word(s) not in the lexicon" in str(err.value) and "'qqzx', 'vvrq'" in str(err.value)
    assert not (tmp_path / "units" / "tokenizer.json").exists()
    assert main(["tokenizer", "train", "--kind", "phone", str(text), str(tmp_path / "units")]) == 1
    lines = _err_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "qqzx" in lines[0] and "--oov skip" in lines[0]


def test_oov_skip_drops_utterances(tmp_path: Path, capsys):
    text = tmp_path / "text"
    text.write_text("u-1 the cat\nu-2 the qqzx\nu-3 a dog\n", encoding="utf-8")
    out = tmp_path / "units"
    assert main(["tokenizer", "train", "--kind", "phone", str(text), str(out), "--oov", "skip"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 of 3 utterances" in err and "qqzx" in err
    phones = read_table(out / "text.phones")
    assert list(phones) == ["u-1", "u-3"] and phones["u-1"] == "dh ah k ae t"
    tok = Tokenizer.load(out)
    assert tok.config["train"]["skipped_utterances"] == 1
    with pytest.raises(DataError, match="qqzx"):
        tok.encode(["the", "qqzx"])


def test_user_lexicon_fills_oov(tmp_path: Path):
    text = tmp_path / "text"
    text.write_text("u-1 the qqzx\n", encoding="utf-8")
    extra = tmp_path / "extra.txt"
    extra.write_text("QQZX K W IH1 K S\nthe DH IY0\n", encoding="utf-8")
    train_tokenizer("phone", text, tmp_path / "units", lexicons=[extra])
    tok = Tokenizer.load(tmp_path / "units")
    assert tok.decode(tok.encode(["the", "qqzx", "cat"])) == "dh iy k w ih k s k ae t".split()
    bad = tmp_path / "bad.txt"
    bad.write_text("qqzx k ax\n", encoding="utf-8")
    with pytest.raises(DataError, match="'ax' is not one of the 39 ARPAbet phones"):
        train_tokenizer("phone", text, tmp_path / "units2", lexicons=[bad])


# --------------------------------------------------------------------------
# Unknown units and broken folders


def test_unknown_unit_errors(kaldi_text: Path, tmp_path: Path):
    train_tokenizer("char", kaldi_text, tmp_path / "units")
    tok = Tokenizer.load(tmp_path / "units")
    with pytest.raises(DataError, match=r"unit id 99 is out of range: .*units\.txt has ids 0\.\.29"):
        tok.decode([4, 99])
    with pytest.raises(DataError, match="unit id -1 is out of range"):
        tok.decode([-1])
    with pytest.raises(DataError, match="unit 'xx' is not in"):
        tok.encode_units(["a", "xx"])


def test_load_errors(kaldi_text: Path, tmp_path: Path):
    with pytest.raises(InputError, match="no such tokenizer folder"):
        Tokenizer.load(tmp_path / "nope")
    out = tmp_path / "units"
    train_tokenizer("char", kaldi_text, out)
    units = (out / "units.txt").read_text().splitlines()
    (out / "units.txt").write_text("\n".join(units[:3] + units[4:]) + "\n")
    with pytest.raises(InputError, match="id 3 is missing"):
        Tokenizer.load(out)
    (out / "units.txt").write_text("a 0\n<blank> 1\n")
    with pytest.raises(InputError, match="id 0 must be the CTC blank"):
        Tokenizer.load(out)
    (out / "tokenizer.json").unlink()
    with pytest.raises(InputError, match="not a finished tokenizer"):
        Tokenizer.load(out)
    bpe = tmp_path / "bpe"
    train_tokenizer("bpe", kaldi_text, bpe, vocab_size=50)
    (bpe / "units.txt").write_text("".join(f"{u} {i}\n" for i, u in enumerate(read_units(bpe / "units.txt")[:-1])))
    with pytest.raises(InputError, match="disagree"):
        Tokenizer.load(bpe)


# --------------------------------------------------------------------------
# The CLI


def test_cli_encode_decode_pipeline(kaldi_text: Path, tmp_path: Path, capsys):
    out = tmp_path / "units"
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "60", str(kaldi_text), str(out)]) == 0
    capsys.readouterr()
    assert main(["tokenizer", "encode", str(out), str(kaldi_text)]) == 0
    ids = tmp_path / "ids"
    ids.write_text(capsys.readouterr().out)
    first = ids.read_text().splitlines()[0].split()
    assert first[0] == "spk1-utt00" and all(f.isdigit() for f in first[1:])
    assert main(["tokenizer", "decode", str(out), str(ids)]) == 0
    assert capsys.readouterr().out == kaldi_text.read_text()
    assert main(["tokenizer", "encode", str(out), str(kaldi_text), "--symbols"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[1].startswith("▁")
    bad = tmp_path / "bad_ids"
    bad.write_text("u1 3 4\nu2 3 600\n")
    assert main(["tokenizer", "decode", str(out), str(bad)]) == 1
    lines = _err_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "bad_ids:2: unit id 600 is out of range" in lines[0]


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["--kind", "char", "{missing}", "{out}"], 1, "no such file"),
        (["--kind", "char", "{empty}", "{out}"], 1, "the text is empty"),
        (["--kind", "bpe", "{text}", "{out}", "--vocab-size", "10"], 2, "--vocab-size 10 is too small for bpe"),
        (["--kind", "bpe", "{text}", "{out}", "--vocab-size", "5000"], 2, "--vocab-size 5000 is too large"),
        (["--kind", "bpe", "{text}", "{out}"], 2, "needs --vocab-size"),
        (["--kind", "char", "{text}", "{out}", "--vocab-size", "50"], 2, "applies to --kind bpe only"),
        (["--kind", "char", "{text}", "{out}", "--oov", "skip"], 2, "--oov applies to --kind phone only"),
        (["--kind", "words", "{text}", "{out}"], 2, "--kind must be one of phone, char, bpe"),
        (["--kind", "phone", "{text}", "{out}", "--oov", "ignore"], 2, "--oov must be one of error, skip"),
        (["--kind", "char", "{idsonly}", "{out}"], 1, "has no words"),
    ],
)
def test_cli_bad_inputs(kaldi_text: Path, tmp_path: Path, capsys, args, code, message):
    (tmp_path / "empty").write_text("\n\n")
    (tmp_path / "idsonly").write_text("u-1\nu-2\n")
    paths = {"missing": tmp_path / "nope.txt", "empty": tmp_path / "empty", "text": kaldi_text,
             "out": tmp_path / "units", "idsonly": tmp_path / "idsonly"}
    argv = ["tokenizer", "train", *(a.format(**paths) for a in args)]
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = _err_lines(err)
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "units" / "tokenizer.json").exists()


def test_cli_train_each_kind(kaldi_text: Path, tmp_path: Path, capsys):
    for kind, extra in (("phone", []), ("char", []), ("bpe", ["--vocab-size", "40", "--bpe-type", "bpe"])):
        out = tmp_path / kind
        assert main(["tokenizer", "train", "--kind", kind, str(kaldi_text), str(out), *extra]) == 0
        assert Tokenizer.load(out).kind == kind
        assert "(<blank> = 0)" in capsys.readouterr().err


def test_usage_errors_of_the_api(kaldi_text: Path, tmp_path: Path):
    with pytest.raises(UsageError):
        train_tokenizer("phone", kaldi_text, tmp_path / "u", cmudict=False)
    with pytest.raises(UsageError):
        train_tokenizer("char", kaldi_text, tmp_path / "u", text_format="csv")
