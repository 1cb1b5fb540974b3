"""``asrkit score --check``: jiwer recomputes the WER as a second opinion."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import jiwer

from asrkit.cli.main import main

RESOURCES = Path(__file__).resolve().parents[2] / "asrkit" / "resources" / "demo"


def test_check_prints_both_and_they_agree(capsys):
    assert main(["score", str(RESOURCES / "ref.txt"), str(RESOURCES / "hyp.txt"), "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "%WER 7.23 [ 25 / 346, 5 ins, 4 del, 16 sub ]"
    assert lines[1].startswith("%WER 7.23 [ 25 / 346,") and "jiwer, second opinion: same errors" in lines[1]


def test_check_json_and_lenient_modes(tmp_path: Path, capsys):
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("a-1 the cat sat\na-2 on the mat\na-3\nb-1 hello world\n")
    hyp.write_text("a-1 The cat sat down\na-3 noise\nb-1 hello\n")  # a-2 missing, a-3 has an empty reference
    assert main(["score", str(ref), str(hyp), "--check", "--json", "--mode", "all", "--ignore-case"]) == 0
    obj = json.loads(capsys.readouterr().out)
    j = obj["jiwer"]
    assert j["agree"] and j["errors"] == obj["sub"] + obj["del"] + obj["ins"] == 1 + 3 + 1 + 1
    assert j["wer"] == obj["wer"] and j["words"] == obj["ref_words"] == 8


def test_check_disagreement_exits_1(capsys, monkeypatch):
    real = jiwer.process_words

    def off_by_one(refs, hyps):
        w = real(refs, hyps)
        return SimpleNamespace(substitutions=w.substitutions + 1, deletions=w.deletions, insertions=w.insertions)

    monkeypatch.setattr(jiwer, "process_words", off_by_one)
    assert main(["score", str(RESOURCES / "ref.txt"), str(RESOURCES / "hyp.txt"), "--check"]) == 1
    captured = capsys.readouterr()
    assert "DISAGREES" in captured.out and "jiwer" in captured.err
