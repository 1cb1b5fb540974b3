"""``asrkit lm build`` and ``asrkit lm ppl`` on the command line."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import kenlm
import pytest

from asrkit.cli.main import main
from asrkit.lm import read_arpa

ASRKIT = [sys.executable, "-m", "asrkit"]

TRAIN = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the cat ate the dog food",
    "on the mat the cat sat",
    "the dog ate",
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _run(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ASRKIT, *args], input=stdin, capture_output=True)


def test_build_from_file_loads_in_kenlm(tmp_path: Path):
    text = _write(tmp_path / "train.txt", TRAIN)
    out = tmp_path / "lm" / "lm3.arpa"
    assert main(["-q", "lm", "build", str(text), "--order", "3", "-o", str(out)]) == 0
    model = kenlm.Model(str(out))
    assert model.order == 3
    lm = read_arpa(out)
    assert [len(lm.ngrams[k]) for k in (1, 2, 3)] == [
        int(line.split("=")[1]) for line in out.read_text().splitlines()[1:4]
    ]
    assert not list(out.parent.glob(".*.tmp")), "no temporary file left behind"


def test_build_from_stdin_equals_file(tmp_path: Path):
    text = _write(tmp_path / "train.txt", TRAIN)
    a, b = tmp_path / "a.arpa", tmp_path / "b.arpa"
    assert main(["-q", "lm", "build", str(text), "-n", "2", "-o", str(a)]) == 0
    p = _run(["-q", "lm", "build", "-", "-n", "2", "-o", str(b)], stdin=text.read_bytes())
    assert p.returncode == 0, p.stderr
    assert a.read_text() == b.read_text()


def test_build_to_stdout(tmp_path: Path):
    text = _write(tmp_path / "train.txt", TRAIN)
    p = _run(["-q", "lm", "build", str(text), "-n", "2", "-o", "-"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().startswith("\\data\\\n") and p.stdout.decode().endswith("\\end\\\n")


def _one_line_error(p: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    err = p.stderr.decode()
    assert p.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_utf8_is_one_line_exit_1_and_writes_nothing(tmp_path: Path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the cat\nthe \xff dog\n")
    out = tmp_path / "x.arpa"
    p = _run(["lm", "build", str(bad), "-o", str(out)])
    _one_line_error(p, 1, "bad.txt:2", "UTF-8")
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_special_token_in_text_is_exit_1(tmp_path: Path):
    bad = _write(tmp_path / "se.txt", ["the cat", "<s> the dog </s>"])
    p = _run(["lm", "build", str(bad), "-o", str(tmp_path / "x.arpa")])
    _one_line_error(p, 1, "se.txt:2", "<s>")


def test_missing_file_is_exit_1(tmp_path: Path):
    p = _run(["lm", "build", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "x.arpa")])
    _one_line_error(p, 1, "nope.txt")


def test_empty_text_is_exit_1(tmp_path: Path):
    empty = _write(tmp_path / "empty.txt", ["", "   "])
    p = _run(["lm", "build", str(empty), "-o", str(tmp_path / "x.arpa")])
    _one_line_error(p, 1, "empty.txt", "no text")
    p = _run(["lm", "build", "-", "-o", str(tmp_path / "x.arpa")], stdin=b"")
    _one_line_error(p, 1, "<stdin>")
    assert not (tmp_path / "x.arpa").exists()


@pytest.mark.parametrize("args", [["--order", "0"], ["--order", "-2"], ["--prune", "1,1"], ["--prune", "0,a"]])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]):
    text = _write(tmp_path / "train.txt", TRAIN)
    p = _run(["lm", "build", str(text), "-o", str(tmp_path / "x.arpa"), *args])
    _one_line_error(p, 2)
    assert not (tmp_path / "x.arpa").exists()


def test_ppl_prints_perplexity_and_oov_rate(tmp_path: Path, capsys):
    text = _write(tmp_path / "train.txt", TRAIN)
    test = _write(tmp_path / "test.txt", ["the cat sat on the log", "a zebra ate the food", "the dog"])
    arpa = tmp_path / "lm.arpa"
    assert main(["-q", "lm", "build", str(text), "-n", "3", "-o", str(arpa)]) == 0
    capsys.readouterr()
    assert main(["lm", "ppl", str(arpa), str(test)]) == 0
    out = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    # Direct computation with the pure-Python ARPA reader: OOVs ("zebra") left out,
    # </s> counted, as SRILM/kenlm do.
    lm = read_arpa(arpa)
    vocab = set(lm.vocab)
    total, n, oov, words = 0.0, 0, 0, 0
    for line in ["the cat sat on the log", "a zebra ate the food", "the dog"]:
        hist = ["<s>"]
        for w in line.split() + ["</s>"]:
            if w != "</s>":
                words += 1
            if w in vocab:
                total += lm.logprob(w, hist)
                n += 1
            else:
                oov += 1
            hist.append(w)
    assert int(out["sentences"]) == 3 and int(out["words"]) == words == 13
    assert int(out["oovs"]) == oov == 1
    assert float(out["oov_rate"]) == pytest.approx(1 / 13, abs=1e-6)
    assert float(out["logprob"]) == pytest.approx(total, abs=1e-3)
    assert float(out["perplexity"]) == pytest.approx(10 ** (-total / n), rel=1e-4)
    assert math.isfinite(float(out["perplexity_with_oov"]))


def test_ppl_from_stdin_and_unigram_model(tmp_path: Path):
    text = _write(tmp_path / "train.txt", TRAIN)
    arpa = tmp_path / "lm1.arpa"
    assert main(["-q", "lm", "build", str(text), "-n", "1", "-o", str(arpa)]) == 0
    p = _run(["lm", "ppl", str(arpa), "-"], stdin=b"the cat\nthe dog sat\n")
    assert p.returncode == 0, p.stderr
    out = dict(line.split() for line in p.stdout.decode().strip().splitlines())
    lm = read_arpa(arpa)
    total = sum(lm.sentence_logprob(s.split()) for s in ["the cat", "the dog sat"])
    assert float(out["perplexity"]) == pytest.approx(10 ** (-total / 7), rel=1e-4)


def test_ppl_bad_model_is_exit_1(tmp_path: Path):
    junk = _write(tmp_path / "junk.arpa", ["this is not an arpa file"])
    test = _write(tmp_path / "t.txt", ["a b"])
    _one_line_error(_run(["lm", "ppl", str(junk), str(test)]), 1, "junk.arpa")
    _one_line_error(_run(["lm", "ppl", str(tmp_path / "none.arpa"), str(test)]), 1, "none.arpa")


def test_lm_help_lists_commands(capsys):
    assert main(["lm", "--help"]) == 0
    out = capsys.readouterr().out
    assert "build" in out and "ppl" in out


def test_order_over_kenlm_max_is_refused(tmp_path: Path):
    """kenlm (decoders, lm ppl) reads orders up to 6: a 7-gram model is refused up front."""
    text = _write(tmp_path / "train.txt", TRAIN)
    p = _run(["lm", "build", str(text), "-o", str(tmp_path / "x.arpa"), "--order", "7"])
    _one_line_error(p, 2, "--order 7", "up to 6")
    assert not (tmp_path / "x.arpa").exists()
    assert main(["-q", "lm", "build", str(text), "--order", "6", "-o", str(tmp_path / "six.arpa")]) == 0
    assert kenlm.Model(str(tmp_path / "six.arpa")).order == 6
