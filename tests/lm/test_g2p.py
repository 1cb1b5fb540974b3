"""asrkit g2p: the graphone model trained on a slice of the shipped CMU dict."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asrkit.cli.main import main
from asrkit.data.lexicon import Lexicon
from asrkit.lm import g2p

ASRKIT = [sys.executable, "-m", "asrkit"]


def _one_line_error(args: list[str], code: int, *needles: str) -> None:
    p = subprocess.run([*ASRKIT, *args], capture_output=True)
    err = p.stderr.decode()
    assert p.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def small_lex(tmp_path_factory) -> Path:
    """Every 50th word of the CMU dict (about 2,500 words) as a Kaldi lexicon."""
    lex = Lexicon.default()
    path = tmp_path_factory.mktemp("lex") / "lexicon.txt"
    lex.write(path, lex.words()[::50])
    return path


@pytest.fixture(scope="module")
def model(small_lex, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("g2p") / "model"
    assert main(["-q", "g2p", "train", "--lexicon", str(small_lex), "--out", str(out), "--order", "4",
                 "--heldout", "20", "--iterations", "4", "--eval-words", "200"]) == 0
    return out


def test_heldout_scores_beat_a_floor(model):
    """About 2,100 training words: ~30% of held-out words right, ~20% PER (the
    full dict: 74% and 6%). A model that outputs anything systematic-but-wrong
    (no alignment, shuffled phones, a unigram of phones) is far above 30% PER."""
    info = json.loads((model / "g2p.json").read_text())
    h = info["heldout"]
    assert h["words"] == 200
    assert h["per"] < 30.0, h
    assert h["word_accuracy"] > 20.0, h
    assert info["training"]["unaligned"] < 0.01 * info["training"]["train_pronunciations"]


def test_split_rule_is_by_word_and_fixed():
    assert g2p.heldout_word("hello", 100) and not g2p.heldout_word("hello", 0)
    pairs = [("abc", ("ae",)), ("abc", ("ey",)), ("xyz", ("z",))] + [(f"w{i}", ("w",)) for i in range(400)]
    train, test = g2p.split_pairs(pairs, 10)
    assert {w for w, _ in train}.isdisjoint({w for w, _ in test})
    assert 20 <= len(test) <= 70  # about 10%
    assert g2p.split_pairs(pairs, 10) == (train, test)


def test_alignment_finds_the_graphones():
    """Letters map one to one but 'x' -> k s and a silent 'e': EM learns exactly that."""
    lex = {"box": "b aa k s", "fox": "f aa k s", "sax": "s ae k s", "bob": "b aa b", "fab": "f ae b",
           "babe": "b ey b", "safe": "s ey f", "bake": "b ey k", "axe": "ae k s", "ox": "aa k s"}
    pairs = [(w, tuple(p.split())) for w, p in lex.items()]
    letters = {c: i + 1 for i, c in enumerate(sorted({c for w in lex for c in w}))}
    phones = {p: i + 1 for i, p in enumerate(sorted({p for _, pr in pairs for p in pr}))}
    graphones, seqs, loglik = g2p.align(pairs, letters, phones, iterations=10)
    assert loglik == sorted(loglik)  # EM never lowers the likelihood
    got = {w: [graphones[g] for g in s] for (w, _), s in zip(pairs, seqs)}
    assert all(s is not None for s in seqs)
    assert got["box"] == [("b", ("b",)), ("o", ("aa",)), ("x", ("k", "s"))]
    for w, segs in got.items():  # every segmentation spells the word and its phones
        assert "".join(g for g, _ in segs) == w and sum((p for _, p in segs), ()) == tuple(lex[w].split())


def test_training_is_deterministic(tmp_path):
    lex = Lexicon.default()
    small = lex.subset(lex.words()[::200])
    for out in (tmp_path / "a", tmp_path / "b"):
        g2p.train(small, out, order=3, heldout=0, iterations=2, progress=False)
    for name in ("g2p.json", "graphones.arpa"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_apply_prints_lexicon_lines(model, capsys):
    capsys.readouterr()
    assert main(["g2p", "apply", str(model), "cat", "Station", "--nbest", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and [ln.split()[0] for ln in lines] == ["cat", "cat", "Station", "Station"]
    assert lines[0].split()[1:] != lines[1].split()[1:]  # two different pronunciations
    phones = set(json.loads((model / "g2p.json").read_text())["phones"])
    assert all(set(ln.split()[1:]) <= phones for ln in lines)


def test_extend_adds_only_missing_words(model, small_lex, tmp_path):
    text = tmp_path / "text.txt"
    known = Lexicon.load(small_lex).words()[:2]
    text.write_text(f"{known[0]} zorblat\n<unk> {known[1]} frimble zorblat\n", encoding="utf-8")
    out = tmp_path / "new.txt"
    assert main(["-q", "g2p", "extend", str(small_lex), "--words", str(text), "--model", str(model), "-o", str(out)]) == 0
    new = Lexicon.load(out)
    assert sorted(new.words()) == sorted([*known, "zorblat", "frimble"])
    old = Lexicon.load(small_lex)
    assert new.prons(known[0]) == old.prons(known[0])
    assert len(new.prons("zorblat")) == 1 and new.prons("zorblat")[0]


def _one_line(exc_type, fn, *needles: str) -> None:
    with pytest.raises(exc_type) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg


def test_bad_input_is_one_line(model, tmp_path):
    from asrkit.errors import DataError, InputError, UsageError

    empty = tmp_path / "empty.txt"
    empty.write_text(";;; nothing here\n", encoding="utf-8")
    _one_line_error(["g2p", "train", "--lexicon", str(empty), "--out", str(tmp_path / "m")], 1, "empty")
    m = g2p.G2PModel.load(model)
    _one_line(DataError, lambda: m.pronounce("1234"), "'1234'", "no letters")
    _one_line(InputError, lambda: g2p.G2PModel.load(tmp_path), "not a g2p model")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "g2p.json").write_text('{"format": "something else"}', encoding="utf-8")
    (tmp_path / "fake" / "graphones.arpa").write_text("x", encoding="utf-8")
    _one_line(InputError, lambda: g2p.G2PModel.load(tmp_path / "fake"), "not an asrkit g2p model")
    _one_line(UsageError, lambda: g2p.train(Lexicon.default(), tmp_path / "m", order=9), "--order 9")
    assert main(["g2p", "apply", str(model), "cat", "--nbest", "0"]) == 2
    assert main(["g2p", "apply", str(model)]) == 2


def test_word_list_from_text_or_arpa(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the cat <unk> sat\n\nthe zorblat\n", encoding="utf-8")
    assert g2p.read_word_list(text) == ["the", "cat", "sat", "zorblat"]
    arpa = tmp_path / "lm.arpa"
    assert main(["-q", "lm", "build", str(text), "-n", "2", "-o", str(arpa)]) == 0
    assert sorted(g2p.read_word_list(arpa)) == ["cat", "sat", "the", "zorblat"]
