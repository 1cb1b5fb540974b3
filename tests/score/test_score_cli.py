"""`asrkit score` through the CLI: every option, bad inputs, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asrkit.cli.main import main

REF = "spk1-u1 the cat sat on the mat\nspk1-u2 hello world\n\nspk2_u1 a b c d\n"
HYP = "spk1-u1 the cat sat on mat\nspk1-u2 hello there world\nspk2_u1 a x c d e\n"
HYP_TRN = "the cat sat on mat (spk1-u1)\nhello there world (spk1-u2)\na x c d e (spk2_u1)\n"
ASRKIT = Path(sys.executable).with_name("asrkit")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name, text in (("ref.txt", REF), ("hyp.txt", HYP), ("hyp.trn", HYP_TRN)):
        (tmp_path / name).write_text(text, encoding="utf-8")
        paths[name] = str(tmp_path / name)
    paths["dir"] = str(tmp_path)
    return paths


def run(capsys, *args):
    code = main(["score", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.out, " ".join(cap.err.split())  # stderr lines may be wrapped


def test_default_report_text_vs_trn(capsys, files):
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"])
    assert code == 0
    assert out == "%WER 33.33 [ 4 / 12, 2 ins, 1 del, 1 sub ]\n%SER 100.00 [ 3 / 3 ]\n"
    code, out2, _ = run(capsys, files["ref.txt"], files["hyp.trn"])
    assert code == 0 and out2 == out


def test_cer_json_per_spk(capsys, files):
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--cer")
    assert code == 0 and out.splitlines()[2] == "%CER 32.26 [ 10 / 31, 6 ins, 3 del, 1 sub ]"
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--json", "--cer", "--per-spk")
    j = json.loads(out)
    for key in ("wer", "ser", "cer", "ref_words", "hyp_words", "cor", "sub", "del", "ins", "utts", "missing"):
        assert key in j
    assert (j["wer"], j["ref_words"], j["utts"], j["missing"]) == (33.3333, 12, 3, 0)
    assert j["per_speaker"]["spk2"]["sub"] == 1
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--per-spk")
    lines = out.splitlines()
    assert lines[3] == "Per speaker" and lines[6].split()[:3] == ["spk1", "2", "8"]
    assert lines[-1].split()[0] == "SUM"


def test_utt2spk(capsys, files, tmp_path):
    u2s = tmp_path / "utt2spk"
    u2s.write_text("spk1-u1 A\nspk1-u2 B\nspk2_u1 A\n")
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--per-spk", "--utt2spk", u2s)
    assert code == 0
    spk_rows = [line.split()[0] for line in out.splitlines()[6:8]]
    assert spk_rows == ["A", "B"]
    u2s.write_text("spk1-u1 A\n")
    code, out, err = run(capsys, files["ref.txt"], files["hyp.txt"], "--per-spk", "--utt2spk", u2s)
    assert code == 1 and out == "" and "utt2spk has no speaker" in err


def test_per_utt_file(capsys, files, tmp_path):
    pu = tmp_path / "out" / "per_utt.txt"
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--per-utt", pu)
    assert code == 0 and out.startswith("%WER")
    text = pu.read_text()
    assert "id: (spk2_u1)\nScores: (#C #S #D #I) 3 1 0 1\nREF:  a B c d ***\nHYP:  a X c d E\n" in text
    assert text.count("id: (") == 3


def test_confusions(capsys, files):
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--confusions", "2")
    assert code == 0
    assert "Substitutions" in out and "Deletions" in out and "Insertions" in out
    sub_row = out.split("Substitutions")[1].splitlines()[3].split()
    assert sub_row == ["1", "b", "x"]
    ins_rows = out.split("Insertions")[1].strip().splitlines()[2:]
    assert [r.split()[1] for r in ins_rows] == ["e", "there"]


def test_modes(capsys, files, tmp_path):
    hyp = tmp_path / "part.txt"
    hyp.write_text("spk1-u1 the cat sat on the mat\nzzz-1 extra\n")
    code, out, err = run(capsys, files["ref.txt"], hyp)
    assert code == 1 and out == ""
    assert "2 reference utterance(s) have no hypothesis" in err and "spk1-u2, spk2_u1" in err and "zzz-1" in err
    code, out, err = run(capsys, files["ref.txt"], hyp, "--mode", "present")
    assert code == 0 and out.startswith("%WER 0.00 [ 0 / 6,")
    assert "left out 2 reference utterance(s)" in err and "1 hypothesis utterance(s)" in err
    code, out, err = run(capsys, files["ref.txt"], hyp, "--mode", "all", "--json")
    j = json.loads(out)
    assert code == 0 and j["del"] == 6 and j["missing"] == 2 and j["utts"] == 3
    assert "counted as deletions" in err


def test_normalization_options(capsys, tmp_path):
    (tmp_path / "r").write_text("u1 Hello, world <noise> [laughter]\n")
    (tmp_path / "h").write_text("u1 hello world\n")
    code, out, _ = run(capsys, tmp_path / "r", tmp_path / "h")
    assert out.startswith("%WER 75.00 [ 3 / 4, 0 ins, 2 del, 1 sub ]")
    code, out, _ = run(capsys, tmp_path / "r", tmp_path / "h", "--ignore-case", "--strip-punct", "--ignore", "<noise>,[laughter]")
    assert code == 0 and out.startswith("%WER 0.00 [ 0 / 2,")
    code, out, _ = run(capsys, tmp_path / "r", tmp_path / "h", "--ignore-case", "--ignore", "<noise>,[laughter]")
    assert out.startswith("%WER 50.00 [ 1 / 2,")


def test_ci_and_compare(capsys, files, tmp_path):
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--ci")
    assert code == 0 and "%WER 95% CI [ " in out
    code, out2, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--ci", "--seed", "0")
    assert out2 == out
    better = tmp_path / "better.txt"
    better.write_text("spk1-u1 the cat sat on the mat\nspk1-u2 hello world\nspk2_u1 a x c d\n")
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--compare", better)
    assert code == 0
    assert "difference -25.00" in out and "p = " in out and "better: " + str(better) in out
    code, out, _ = run(capsys, files["ref.txt"], files["hyp.txt"], "--compare", better, "--ci", "--json")
    j = json.loads(out)
    assert j["compare"]["delta"] == -25.0 and 0 <= j["compare"]["p_value"] <= 1 and "wer_ci" in j


@pytest.mark.parametrize(
    "content, message",
    [
        (b"a b (u1)\nc d (u2)\nbroken line\n", ":3: malformed trn line"),
        (b"spk1-u1 a\nspk1-u1 b\n", ":2: duplicate utt-id 'spk1-u1'"),
        (b"spk1-u1 caf\xc3\n", ":1: invalid UTF-8"),
    ],
)
def test_bad_hypothesis_file(capsys, files, tmp_path, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    code, out, err = run(capsys, files["ref.txt"], bad)
    assert code == 1 and out == ""
    assert str(bad) + message in err


def test_missing_and_unreadable(capsys, files, tmp_path):
    code, out, err = run(capsys, tmp_path / "nope", files["hyp.txt"])
    assert code == 1 and out == "" and "nope: no such file" in err
    code, out, err = run(capsys, files["ref.txt"], files["dir"])
    assert code == 1 and out == "" and "is a directory" in err
    # a --per-utt file that cannot be written: exit 1, nothing on stdout
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = run(capsys, files["ref.txt"], files["hyp.txt"], "--per-utt", blocker / "sub" / "pu.txt")
    assert code == 1 and out == ""


@pytest.mark.parametrize(
    "args",
    [
        ["-", "-"],
        ["REF", "HYP", "--utt2spk", "REF"],
        ["REF", "HYP", "--confusions", "-1"],
        ["REF", "HYP", "--per-utt", "-"],
        ["REF", "HYP", "--ignore", ","],
        ["REF", "HYP", "--mode", "lenient"],
        ["REF", "HYP", "--format", "ctm"],
    ],
)
def test_usage_errors_exit_2(capsys, files, args):
    args = [files["ref.txt"] if a == "REF" else files["hyp.txt"] if a == "HYP" else a for a in args]
    code, out, _ = run(capsys, *args)
    assert code == 2 and out == ""


def test_force_format(capsys, files, tmp_path):
    odd = tmp_path / "odd.txt"  # Kaldi text whose lines end in parentheses
    odd.write_text("spk1-u1 the cat sat on the (mat)\nspk1-u2 hello (world)\nspk2_u1 a b c (d)\n")
    code, out, _ = run(capsys, files["ref.txt"], odd)
    assert code == 0 and out.startswith("%WER 25.00 [ 3 / 12,")  # detected as text: its first fields are ids
    code, out2, _ = run(capsys, files["ref.txt"], odd, "--format", "text")
    assert code == 0 and out2 == out
    code, _, _ = run(capsys, files["ref.txt"], odd, "--format", "trn")
    assert code == 1  # forced trn: (mat), (world), (d) are not the reference's ids


def test_subprocess_stdin_pipe(files):
    with open(files["hyp.trn"], "rb") as f:
        p = subprocess.run([str(ASRKIT), "score", files["ref.txt"], "-"], stdin=f, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "%WER 33.33 [ 4 / 12, 2 ins, 1 del, 1 sub ]"


def test_subprocess_bad_input_one_line(files, tmp_path):
    bad = tmp_path / "bad.trn"
    bad.write_text("a (u1)\nno id\nb (u2)\n")
    p = subprocess.run([str(ASRKIT), "score", files["ref.txt"], str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and f"{bad}:2: malformed trn line" in p.stderr
    assert "Traceback" not in p.stderr


def test_tables_use_rich_on_a_terminal(files, monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["score", files["ref.txt"], files["hyp.txt"], "--per-spk"]) == 0
    text = out.getvalue()
    assert text.startswith("%WER 33.33")
    assert "┃" in text or "│" in text  # rich box drawing, not the plain layout
    assert "SPKR" in text and "spk2" in text
