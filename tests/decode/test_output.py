"""Hypothesis writers: text, trn, jsonl; they read back through asrkit.score."""
from __future__ import annotations

import io
import json

import pytest

from asrkit.decode.output import FORMATS, Hypothesis, format_line, write_hypotheses
from asrkit.score import read_transcripts
from asrkit.score.readers import parse_transcripts

HYPS = [
    Hypothesis("spk1-a", ["the", "cat"], -3.25, 100, 25, units=["t", "h", "e", "|", "c", "a", "t"]),
    Hypothesis("spk1-b", [], -1.0, 40, 10, units=[]),
    Hypothesis("spk2-c", ["ünï", "l'eau"], -0.5, 60, 15, units=["ünï", "l'eau"], extra={"nbest": 1}),
]


def test_formats_known():
    assert set(FORMATS) >= {"text", "trn", "jsonl"}
    with pytest.raises(ValueError):
        format_line(HYPS[0], "ctm-nope")


def test_text_lines():
    out = io.StringIO()
    assert write_hypotheses(HYPS, out, "text") == 3
    assert out.getvalue() == "spk1-a the cat\nspk1-b\nspk2-c ünï l'eau\n"


def test_trn_lines():
    out = io.StringIO()
    write_hypotheses(HYPS, out, "trn")
    assert out.getvalue() == "the cat (spk1-a)\n(spk1-b)\nünï l'eau (spk2-c)\n"


def test_jsonl_fields():
    out = io.StringIO()
    write_hypotheses(HYPS, out, "jsonl")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[0] == {"utt": "spk1-a", "hyp": "the cat", "score": -3.25, "frames": 100, "out_frames": 25,
                       "units": ["t", "h", "e", "|", "c", "a", "t"]}
    assert rows[1]["hyp"] == "" and rows[2]["nbest"] == 1 and rows[2]["hyp"] == "ünï l'eau"


@pytest.mark.parametrize("fmt", ["text", "trn"])
def test_round_trip_through_score_reader(fmt):
    out = io.StringIO()
    write_hypotheses(HYPS, out, fmt)
    t = parse_transcripts(out.getvalue(), "hyp", "auto")
    assert t.format == fmt
    assert t.utts == {h.utt: h.tokens for h in HYPS}


def test_read_transcripts_file(tmp_path):
    p = tmp_path / "hyp.trn"
    with open(p, "w", encoding="utf-8") as f:
        write_hypotheses(HYPS, f, "trn")
    assert read_transcripts(p).utts["spk2-c"] == ["ünï", "l'eau"]
