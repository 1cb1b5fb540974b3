"""Report formatting: Kaldi lines, sclite alignments, plain and rich tables, JSON."""
from __future__ import annotations

import io

from rich.console import Console

from asrkit.score import score
from asrkit.score.report import (
    alignment_block,
    confusion_tables,
    counts_line,
    render_plain,
    render_rich,
    speaker_table,
    summary_lines,
    to_json,
)


def _result(**kw):
    refs = {"s1-u1": "the cat sat on the mat".split(), "s2-u1": "a b c".split()}
    hyps = {"s1-u1": "the bat sat on mat".split(), "s2-u1": "a b c dog".split()}
    return score(refs, hyps, **kw)


def test_kaldi_lines():
    r = _result(cer=True)
    lines = summary_lines(r)
    assert lines[0] == "%WER 33.33 [ 3 / 9, 1 ins, 1 del, 1 sub ]"
    assert lines[1] == "%SER 100.00 [ 2 / 2 ]"
    assert lines[2].startswith("%CER ")
    assert counts_line("WER", score({"u": []}, {"u": ["x"]}).words) == "%WER n/a [ 1 / 0, 1 ins, 0 del, 0 sub ]"


def test_alignment_block():
    text = alignment_block(_result().alignment("s1-u1"))
    assert text.splitlines() == [
        "id: (s1-u1)",
        "Scores: (#C #S #D #I) 4 1 1 0",
        "REF:  the CAT sat on THE mat",
        "HYP:  the BAT sat on *** mat",
        "Eval:     S          D",
    ]
    ins = alignment_block(_result().alignment("s2-u1")).splitlines()
    assert ins[2:] == ["REF:  a b c ***", "HYP:  a b c DOG", "Eval:       I"]


def test_tables_plain_and_rich():
    r = _result(cer=True)
    t = speaker_table(r.per_speaker(), r)
    plain = render_plain(t).splitlines()
    assert plain[0] == "Per speaker"
    assert plain[1].split() == ["SPKR", "#UTT", "#WRD", "COR", "SUB", "DEL", "INS", "ERR", "%WER", "%SER", "%CER"]
    assert plain[3].split()[:9] == ["s1", "1", "6", "4", "1", "1", "0", "2", "33.33"]
    assert plain[-1].split()[:2] == ["SUM", "2"]
    # numbers right-aligned in fixed columns
    assert len({len(line) for line in plain[1:] if not line.startswith("-")}) == 1
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, width=120).print(render_rich(t))
    out = buf.getvalue()
    assert "\x1b[" in out and "SPKR" in out and "s2" in out and "SUM" in out
    subs, dels, ins = (render_plain(x) for x in confusion_tables(r.confusions(3)))
    assert subs.splitlines()[3].split() == ["1", "cat", "bat"]
    assert dels.splitlines()[3].split() == ["1", "the"] and ins.splitlines()[3].split() == ["1", "dog"]
    empty = confusion_tables(score({"u": ["a"]}, {"u": ["a"]}).confusions(3))[0]
    assert render_plain(empty).splitlines()[-1] == "(none)"


def test_json_keys():
    r = _result()
    j = to_json(r)
    assert list(j) == ["wer", "ser", "ref_words", "hyp_words", "cor", "sub", "del", "ins", "utts", "missing"]
    assert j["wer"] == 33.3333 and j["del"] == 1
    j = to_json(_result(cer=True), per_speaker=_result(cer=True).per_speaker())
    assert "cer" in j and set(j["per_speaker"]) == {"s1", "s2"} and j["per_speaker"]["s2"]["ins"] == 1
