"""The flashlight backend: phone models decoded to words through a lexicon, --lexicon,
word times, --format ctm and --jobs (asrkit.decode.flashlight, `asrkit decode --lm`)."""
from __future__ import annotations

from pathlib import Path

import pytest

from asrkit.cli.main import main
from asrkit.decode import BeamDecoder, ModelOutput, load_units
from asrkit.decode.backends import read_word_list, resolve_backend
from asrkit.decode.flashlight import lexicon_spellings
from asrkit.decode.output import Hypothesis, format_line
from asrkit.errors import DataError, InputError, UsageError
from asrkit.lm import build_lm

from decode_util import PHONE_WORDS, make_ctc_exp, spec_emissions

#: every word of the phone test model's lexicon; "a cat sat" far more often than "a mat sat"
LM_TEXT = "a cat sat\n" * 6 + "a cat sat on a mat\n" * 2 + "a mat\n"


@pytest.fixture(scope="module")
def phone_exp(tmp_path_factory) -> Path:
    return make_ctc_exp(tmp_path_factory.mktemp("exp") / "phone", kind="phone", impl="native", steps=0)


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lm")
    (d / "lm.txt").write_text(LM_TEXT + "a cap\n")
    build_lm(d / "lm.txt", d / "lm.arpa", 3, progress=False)
    return d / "lm.arpa"


def _phone_emissions(units, phones: list[dict[str, float]], utt: str = "u") -> ModelOutput:
    """One frame per phone spec then a blank frame (subsampling 4)."""
    return spec_emissions(units, [f for spec in phones for f in (spec, {"<blank>": 0.9})], utt, subsampling=4)


def _say(*phones: str | dict[str, float]) -> list[dict[str, float]]:
    return [p if isinstance(p, dict) else {p: 0.9} for p in phones]


def test_phone_model_decodes_to_words_with_the_lm(phone_exp, lm):
    units = load_units(phone_exp)
    # "ah m|k ae t s ae t": the acoustics lean to 'mat', the LM knows 'a cat sat'
    out = _phone_emissions(units, _say("ah", {"m": 0.5, "k": 0.45}, "ae", "t", "s", "ae", "t"))
    with BeamDecoder(units, beam=10, lm=lm, lm_weight=1.0) as dec:
        assert dec.backend == "flashlight"
        hyp = dec.decode(out)
        assert hyp.text == "a cat sat"
        assert hyp.units == ["ah", "k", "ae", "t", "s", "ae", "t"]
        # word times from the search's path: 'a' is frame 0, 'cat' frames 2..7, 'sat' 8..13
        assert hyp.token_frames == [(0, 1), (2, 7), (8, 13)]
        dec.set_weights(0.0, 0.0)
        assert dec.decode(out).text == "a mat sat"


def test_lexicon_file_adds_words_and_bad_phones_are_named(phone_exp, lm, tmp_path):
    units = load_units(phone_exp)
    out = _phone_emissions(units, _say("ah", "k", "ae", "p"))
    with BeamDecoder(units, beam=10, lm=lm) as dec:  # the model's lexicon has no 'cap'
        assert dec.decode(out).text != "a cap"
    lex = tmp_path / "lexicon.txt"
    lex.write_text("".join(f"{w} {' '.join(p)}\n" for w, p in PHONE_WORDS.items()) + "cap K AE1 P\n")
    with BeamDecoder(units, beam=10, lm=lm, lexicon=lex) as dec:
        assert dec.decode(out).text == "a cap"
    bad = tmp_path / "bad.txt"
    bad.write_text("cat kk ae t\n")
    with pytest.raises(DataError, match="phones the model's units .* lack: 'kk'"):
        BeamDecoder(units, beam=4, lm=lm, lexicon=bad)
    with pytest.raises(InputError, match="no such file"):
        BeamDecoder(units, beam=4, lm=lm, lexicon=tmp_path / "missing.txt")


def test_spellings_per_unit_kind(phone_exp, tmp_path):
    units = load_units(phone_exp)
    sp = lexicon_spellings(units, ["cat", "zebra"], units.tokenizer.lexicon)
    assert list(sp) == ["cat"] and [units.units[i] for i in sp["cat"][0]] == ["k", "ae", "t"]
    with pytest.raises(UsageError, match="needs a lexicon"):
        lexicon_spellings(units, ["cat"], None)
    (tmp_path / "words.txt").write_text("# a comment\ncat k ae t\ncat(2) k ae t\nmat\n\n")
    assert read_word_list(tmp_path / "words.txt") == ["cat", "mat"]


def test_backend_choice():
    assert resolve_backend("phone", True) == "flashlight"
    assert resolve_backend("char", True) == "flashlight"
    assert resolve_backend("bpe", False) == "plain"
    assert resolve_backend("char", True, "pyctcdecode") == "pyctcdecode"
    for kind, has_lm, backend, message in [
        ("phone", True, "pyctcdecode", "cannot decode a phone model"),
        ("char", True, "plain", "without an LM"),
        ("char", False, "flashlight", "give one with --lm"),
        ("char", True, "kaldi", "must be one of"),
    ]:
        with pytest.raises(UsageError, match=message):
            resolve_backend(kind, has_lm, backend)


def test_ctm_line_format():
    h = Hypothesis(utt="spk1-u1", tokens=["a", "cat"], score=0.0, frames=40, out_frames=10,
                   token_frames=[(1, 2), (3, 7)], frame_seconds=0.04)
    assert format_line(h, "ctm") == "spk1-u1 1 0.04 0.04 a\nspk1-u1 1 0.12 0.16 cat\n"
    assert h.to_json()["times"] == [[0.04, 0.08], [0.12, 0.28]]
    with pytest.raises(ValueError, match="no token times"):
        format_line(Hypothesis(utt="u", tokens=["a"], score=0.0, frames=4, out_frames=1), "ctm")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["-q", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_phone_model_words_ctm_and_jobs(capsys, phone_exp, store, lm):
    base = ["decode", str(phone_exp), str(store), "--device", "cpu", "--lm", str(lm)]
    code, text, err = _run(capsys, *base)
    assert code == 0, err
    words = set(PHONE_WORDS)
    lines = text.splitlines()
    assert len(lines) == 7 and all(set(line.split()[1:]) <= words for line in lines)
    code, ctm, err = _run(capsys, *base, "--format", "ctm")
    assert code == 0, err
    n_words = sum(len(line.split()) - 1 for line in lines)
    rows = [r.split() for r in ctm.splitlines()]
    assert len(rows) == n_words and all(r[1] == "1" and float(r[3]) >= 0 for r in rows)
    # the ctm's words, in order, are the text output's
    assert [r[4] for r in rows] == [w for line in lines for w in line.split()[1:]]
    code, ctm2, err = _run(capsys, *base, "--format", "ctm", "--jobs", "2")
    assert code == 0 and ctm2 == ctm, err
    # greedy ctm: one line per phone
    code, gctm, _ = _run(capsys, "decode", str(phone_exp), str(store), "--device", "cpu", "--format", "ctm")
    code2, gtext, _ = _run(capsys, "decode", str(phone_exp), str(store), "--device", "cpu")
    assert code == code2 == 0
    assert [r.split()[4] for r in gctm.splitlines()] == [p for line in gtext.splitlines() for p in line.split()[1:]]


@pytest.mark.parametrize("extra, code, message", [
    (["--lexicon", "LEX"], 2, "give the LM with --lm"),
    (["--jobs", "0"], 2, "--jobs must be >= 1"),
    (["--lm", "LM", "--backend", "plain"], 2, "without an LM"),
])
def test_cli_usage_errors(capsys, phone_exp, store, lm, tmp_path, extra, code, message):
    extra = [str(lm) if a == "LM" else str(tmp_path / "lex.txt") if a == "LEX" else a for a in extra]
    got, out, err = _run(capsys, "decode", str(phone_exp), str(store), "--device", "cpu", *extra)
    assert got == code and out == ""
    assert message in " ".join(err.split())


BINARY_LM = Path(__file__).parent / "data" / "lm3_small.bin"


def test_kenlm_binary_lm_decodes_like_its_arpa(phone_exp, lm, tmp_path):
    """lm3_small.bin is the `lm` fixture's ARPA through kenlm's build_binary:
    the same words and scores (a phone model takes its vocabulary from its lexicon)."""
    units = load_units(phone_exp)
    out = _phone_emissions(units, _say("ah", {"m": 0.5, "k": 0.45}, "ae", "t", "s", "ae", "t"))
    hyps = {}
    for path in (lm, BINARY_LM):
        with BeamDecoder(units, beam=10, lm=path, lm_weight=1.0, nbest=3) as dec:
            hyps[path.suffix] = dec.decode(out)
    a, b = hyps[".arpa"], hyps[".bin"]
    assert a.text == b.text == "a cat sat"
    assert b.score == pytest.approx(a.score, abs=1e-3)
    assert [n["hyp"] for n in b.extra["nbest"]] == [n["hyp"] for n in a.extra["nbest"]]


def test_kenlm_binary_needs_a_word_list_for_char_models(tmp_path):
    text = tmp_path / "train_text"
    text.write_text("u1 a cat sat on a mat\n")
    from asrkit.data.tokenizer import train_tokenizer
    train_tokenizer("char", text, tmp_path / "char" / "units")
    units = load_units(tmp_path / "char")
    with pytest.raises(InputError, match="kenlm binary.*--lexicon"):
        BeamDecoder(units, lm=BINARY_LM)
    words = tmp_path / "words.txt"
    words.write_text("a\ncat\nsat\non\nmat\ncap\n")
    frames = []
    for ch in "a cat":
        frames += [{"|" if ch == " " else ch: 0.9}, {"<blank>": 0.9}]
    out = _phone_emissions(units, frames)
    for backend in ("flashlight", "pyctcdecode"):
        with BeamDecoder(units, lm=BINARY_LM, lexicon=words, backend=backend) as dec:
            assert dec.decode(out).text == "a cat"


def test_extra_lexicon_adds_words_to_the_models_lexicon(phone_exp, lm, tmp_path, capfd, monkeypatch):
    from asrkit.decode import beam

    units = load_units(phone_exp)
    out = _phone_emissions(units, _say("ah", "k", "ae", "p"))
    monkeypatch.setattr(beam, "_WARNED_MISSING", set())
    with BeamDecoder(units, beam=10, lm=lm) as dec:  # the LM has 'cap', the model's lexicon does not
        assert dec.decode(out).text != "a cap"
    err = " ".join(capfd.readouterr().err.split())
    assert "cap" in err and "add them with --extra-lexicon FILE" in err
    extra = tmp_path / "extra.txt"
    extra.write_text("cap K AE1 P\n")  # only the new word: 'a' still comes from the model's lexicon
    with BeamDecoder(units, beam=10, lm=lm, extra_lexicon=extra) as dec:
        assert dec.decode(out).text == "a cap"
        assert dec.settings()["extra_lexicon"] == extra
    with pytest.raises(UsageError, match="--extra-lexicon adds words to an LM search"):
        BeamDecoder(units, beam=10, extra_lexicon=extra)


def test_cli_extra_lexicon(capsys, phone_exp, store, lm, tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("cap K AE1 P\n")
    base = ["decode", str(phone_exp), str(store), "--device", "cpu"]
    code, _, err = _run(capsys, *base, "--extra-lexicon", str(extra))
    assert code == 2 and "--extra-lexicon adds words to an LM search" in " ".join(err.split())
    code, plain, err = _run(capsys, *base, "--lm", str(lm))
    assert code == 0, err
    code, with_extra, err = _run(capsys, *base, "--lm", str(lm), "--extra-lexicon", str(extra))
    assert code == 0, err
    assert len(with_extra.splitlines()) == len(plain.splitlines())


def test_lm_weight_zero_is_the_same_search_every_time(phone_exp, tmp_path):
    """With an LM weight of 0 homophones and re-segmentations of the same units
    tie exactly; flashlight orders exact ties by memory address. The search
    then keeps one word per spelling (the LM's most frequent) and orders the
    remaining ties by the LM, so it gives the same words every time."""
    units = load_units(phone_exp)
    d = tmp_path / "lm"
    d.mkdir()
    (d / "lm.txt").write_text(LM_TEXT + "a kat\n" + "a cap\n")  # 'kat' sounds like 'cat', and is rarer
    build_lm(d / "lm.txt", d / "lm.arpa", 3, progress=False)
    extra = tmp_path / "extra.txt"
    extra.write_text("kat K AE1 T\ncap K AE1 P\n")
    out = _phone_emissions(units, _say("ah", "k", "ae", "t", "s", "ae", "t", "ah", "m", "ae", "t"))
    with BeamDecoder(units, beam=10, lm=d / "lm.arpa", extra_lexicon=extra, lm_weight=0.0, word_bonus=0.0) as dec:
        texts = {dec.decode(out).text for _ in range(20)}
        assert texts == {"a cat sat a mat"}
        dec.set_weights(1.0, 0.0)  # back to the full lexicon: the LM decides
        assert dec.decode(out).text == "a cat sat a mat"


def test_bpe_search_is_the_same_whatever_was_allocated_before(tmp_path):
    """flashlight orders hypotheses whose scores tie exactly by the addresses
    of their LM states, so a tie at the beam's edge kept other hypotheses
    depending on the heap (another utterance decoded first, another process).
    Ties are common with a random model whose log-probabilities repeat
    (saturated outputs, here rounded logits) and a small LM (equal counts):
    the same emissions must give the same words, paths and scores every time."""
    import random

    import torch

    exp = make_ctc_exp(tmp_path / "bpe", kind="bpe", impl="native", steps=0)
    units = load_units(exp)
    (tmp_path / "lm.txt").write_text("a cat sat\non a mat\ncat on mat\na sat\n")
    build_lm(tmp_path / "lm.txt", tmp_path / "lm.arpa", 2, progress=False)
    g = torch.Generator().manual_seed(0)
    outs = []
    for i in range(24):
        logits = (torch.randn(60, units.num_classes, generator=g) * 6).round() / 2  # repeated values
        outs.append(ModelOutput(f"u{i:02d}", logits.log_softmax(-1), 120))

    def run(order, junk):
        keep = [bytearray(random.Random(junk).randint(1, 5000)) for _ in range(junk)]  # another heap
        got = {}
        for o in order:
            h = dec.decode(o)
            got[o.utt] = (h.text, h.extra["nbest"])
        del keep
        return got

    for weight, bonus in ((0.5, 0.0), (1.0, -1.0), (0.0, 0.0)):
        with BeamDecoder(units, beam=20, lm=tmp_path / "lm.arpa", lm_weight=weight, word_bonus=bonus,
                         nbest=3) as dec:
            first = run(outs, 0)
            assert run(outs[::-1], 3000) == first, (weight, bonus)
            assert run(random.Random(1).sample(outs, len(outs)), 300) == first, (weight, bonus)


def test_homophones_the_lm_scores_alike_come_out_as_the_first(phone_exp, tmp_path):
    """'cat' and 'kat' sound alike and the LM saw them equally often: their
    hypotheses tie exactly, and flashlight keeps either. The hypothesis is
    written with the first of them (alphabetically), every time."""
    import random

    units = load_units(phone_exp)
    d = tmp_path / "lm"
    d.mkdir()
    (d / "lm.txt").write_text("a kat sat\na cat sat\non a mat\n")
    build_lm(d / "lm.txt", d / "lm.arpa", 3, progress=False)
    extra = tmp_path / "extra.txt"
    extra.write_text("kat K AE1 T\n")
    out = _phone_emissions(units, _say("ah", "k", "ae", "t", "s", "ae", "t"))
    with BeamDecoder(units, beam=10, lm=d / "lm.arpa", extra_lexicon=extra, lm_weight=1.0, word_bonus=0.0,
                     nbest=3) as dec:
        got = set()
        for k in range(12):
            keep = [bytearray(random.Random(k).randint(1, 3000)) for _ in range(50 * k)]  # another heap
            h = dec.decode(out)
            got.add((h.text, tuple(n["hyp"] for n in h.extra["nbest"])))
            del keep
    assert len(got) == 1
    text, nbest = got.pop()
    assert text == "a cat sat" and "a kat sat" not in nbest


def test_a_spelling_shared_by_many_words_keeps_the_likely_ones(phone_exp, tmp_path):
    """flashlight's trie holds 6 words per spelling and drops the rest without a word. Eight
    words spelled k ae t: the LM's most frequent one ('kzt', alphabetically last) must stay, and
    the search must produce it where the LM prefers it."""
    from asrkit.decode.flashlight import TRIE_MAX_WORDS

    units = load_units(phone_exp)
    alike = ["caat", "catt", "kaat", "kat", "katt", "khat", "kkat", "kzt"]
    assert len(alike) > TRIE_MAX_WORDS
    d = tmp_path / "lm"
    d.mkdir()
    (d / "lm.txt").write_text("a kzt sat\n" * 5 + "".join(f"{w}\n" for w in alike) + "on a mat\n")
    build_lm(d / "lm.txt", d / "lm.arpa", 3, progress=False)
    extra = tmp_path / "extra.txt"
    extra.write_text("".join(f"{w} K AE1 T\n" for w in alike))
    out = _phone_emissions(units, _say("ah", "k", "ae", "t", "s", "ae", "t"))
    with BeamDecoder(units, beam=10, lm=d / "lm.arpa", extra_lexicon=extra, lm_weight=1.0, word_bonus=0.0) as dec:
        assert dec.decode(out).text == "a kzt sat"
