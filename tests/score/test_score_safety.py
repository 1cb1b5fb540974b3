"""`asrkit score` on hostile inputs: huge pairs, huge tokens, closed stdin and
stdout, per-speaker breakdowns from utt2spk, phone hypotheses vs word refs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asrkit.cli.main import main
from asrkit.errors import DataError, quote
from asrkit.score import align_batch, score
from asrkit.score.align import MAX_PAIR_TOKENS
from asrkit.score.units import unit_mismatch

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_quote_cuts_long_values_and_escapes_controls():
    assert quote("abc") == "'abc'"
    q = quote("x" * 1_000_000)
    assert len(q) < 100 and q.endswith("(1000000 characters)")
    assert quote("a\nb\x00") == "'a\\nb\\x00'"
    assert quote(3) == "'3'"


@pytest.mark.timeout(60)  # a hang guard (the quadratic path took minutes), not a speed measurement
def test_huge_pair_is_refused_fast_naming_the_utterance():
    with pytest.raises(DataError) as e:
        score({"u1": ["a"] * 10}, {"u1": ["b"] * 2_000_000})
    msg = str(e.value)
    assert "'u1'" in msg and "2000000 hypothesis words" in msg and "split" in msg
    with pytest.raises(ValueError):
        align_batch(np.zeros(10), np.array([0, 10]), np.zeros(MAX_PAIR_TOKENS), np.array([0, MAX_PAIR_TOKENS]))


@pytest.mark.timeout(60)  # a hang guard; speed lives in benchmarks/score_bench.py
def test_long_skinny_pair_under_the_limit_aligns_quickly():
    h = 60_000
    r = score({"u1": ["a"] * 10}, {"u1": ["a"] + ["b"] * (h - 1)})
    assert (r.words.cor, r.words.sub, r.words.ins) == (1, 9, h - 10)
    ops = r.alignment("u1").ops
    assert len(ops) == h and ops.count("I") == h - 10


def test_single_pair_backtrace_matches_the_batched_one():
    rng = np.random.default_rng(1)
    for _ in range(200):
        R, H = rng.integers(0, 10, 2)
        ref, hyp = rng.integers(0, 4, R), rng.integers(0, 4, H)
        one = align_batch(ref, np.array([0, R]), hyp, np.array([0, H]))
        two = align_batch(np.r_[ref, ref], np.array([0, R, 2 * R]), np.r_[hyp, hyp], np.array([0, H, 2 * H]))
        assert one.ops_of(0).tolist() == two.ops_of(0).tolist() == two.ops_of(1).tolist()


def test_huge_token_is_not_echoed(tmp_path: Path, capsys):
    big = "x" * 5_000_000
    ref = tmp_path / "ref"
    ref.write_text(f"{big} a\n{big} b\n")
    assert main(["score", str(ref), str(ref)]) == 1
    err = capsys.readouterr().err
    assert "duplicate utt-id" in err and len(err) < 400


@pytest.mark.timeout(30)  # a hang guard: the quadratic regex took minutes on this line
def test_trn_detection_is_linear_on_long_blank_runs(tmp_path: Path):
    from asrkit.score.readers import parse_transcripts

    tr = parse_transcripts("a" + " " * 300_000 + "b (u1)\n", "h")
    parse_transcripts("u1 a" + " " * 300_000 + "b\n", "h")
    assert tr.utts == {"u1": ["a", "b"]}


def test_closed_stdin_is_one_line(tmp_path: Path):
    ref = tmp_path / "ref"
    ref.write_text("u1 a b\n")
    p = subprocess.run([sys.executable, "-m", "asrkit", "score", str(ref), "-"], stdin=subprocess.DEVNULL,
                       capture_output=True, env=_env(), preexec_fn=lambda: os.close(0))
    err = p.stderr.decode()
    assert p.returncode == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "stdin is closed" in err


def test_closed_stdout_pipe_exits_0_quietly(tmp_path: Path):
    ref = tmp_path / "ref"
    ref.write_text("".join(f"spk{i % 7}-u{i} a b c\n" for i in range(5000)))
    r, w = os.pipe()
    os.close(r)  # the reader (`head`) has gone
    try:
        p = subprocess.run([sys.executable, "-m", "asrkit", "score", str(ref), str(ref), "--per-spk"],
                           stdout=w, stderr=subprocess.PIPE, env=_env())
    finally:
        os.close(w)
    assert p.returncode == 0 and p.stderr == b""


def test_head_closes_early(tmp_path: Path):
    ref = tmp_path / "ref"
    ref.write_text("".join(f"s{i}-u{i} a b c\n" for i in range(3000)))
    p = subprocess.Popen([sys.executable, "-m", "asrkit", "score", str(ref), str(ref), "--per-spk"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.readline().startswith(b"%WER")  # `| head -1`
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait() == 0 and b"Traceback" not in err and b"Broken pipe" not in err


def test_per_spk_uses_utt2spk_given_or_beside_text(tmp_path: Path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    (d / "text").write_text("awb-v0-u1 a b\nawb-v1-u2 c d\n")
    hyp = tmp_path / "hyp"
    hyp.write_text("awb-v0-u1 a b\nawb-v1-u2 c x\n")
    assert main(["score", str(d / "text"), str(hyp), "--per-spk"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[6:]]
    assert rows[:1] == ["awb"]  # no utt2spk: the prefix before '-'
    (d / "utt2spk").write_text("awb-v0-u1 awb-v0\nawb-v1-u2 awb-v1\n")
    for extra in ([], ["--utt2spk", str(d / "utt2spk")]):
        assert main(["score", str(d / "text"), str(hyp), "--per-spk", *extra]) == 0
        rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[6:8]]
        assert rows == ["awb-v0", "awb-v1"]
    main(["score", "--help"])
    help_text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "utt2spk file next to REF" in help_text and "utt-id prefix" in help_text


PHONES = "AH0 B K AE1 T S IH1 T D AO1 G N EH1 R".split()
WORDS = "the cat sat on a mat and dog ran far away from home".split()


def _sets(seed: int = 0):
    rng = np.random.default_rng(seed)
    refs = {f"u{i}": list(rng.choice(WORDS, 6)) for i in range(10)}
    phones = {u: list(rng.choice(PHONES, 20)) for u in refs}
    chars = {u: list("".join(w)) for u, w in refs.items()}
    return refs, phones, chars


def test_unit_mismatch_warns_phones_and_chars_not_words():
    refs, phones, chars = _sets()
    assert "phones" in unit_mismatch(refs.values(), phones.values())
    assert "characters" in unit_mismatch(refs.values(), chars.values())
    assert unit_mismatch(refs.values(), refs.values()) is None
    assert unit_mismatch(phones.values(), phones.values()) is None
    near = {u: w[:-1] + ["dog"] for u, w in refs.items()}
    assert unit_mismatch(refs.values(), near.values()) is None


def test_score_cli_warns_one_line_on_phones_vs_words(tmp_path: Path, capsys):
    refs, phones, _ = _sets()
    ref, hyp = tmp_path / "text", tmp_path / "hyp"
    ref.write_text("".join(f"{u} {' '.join(w)}\n" for u, w in refs.items()))
    hyp.write_text("".join(f"{u} {' '.join(w)}\n" for u, w in phones.items()))
    assert main(["score", str(ref), str(hyp)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning:" in err and "phones" in err
    assert main(["score", str(ref), str(ref)]) == 0
    assert capsys.readouterr().err == ""
