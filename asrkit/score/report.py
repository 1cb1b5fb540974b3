"""Turning a :class:`~asrkit.score.result.ScoreResult` into text: the Kaldi
style summary lines, sclite style per-utterance alignments, tables (rich on a
terminal, plain aligned text otherwise) and the JSON object."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

from asrkit.score.distance import DistanceResult, FrameAccuracy
from asrkit.score.result import Alignment, Confusions, Counts, ScoreResult, SpeakerStats
from asrkit.score.stats import Comparison, Interval


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2f}"


def counts_line(label: str, c: Counts) -> str:
    """``%WER 12.34 [ 123 / 1000, 10 ins, 20 del, 93 sub ]`` (Kaldi compute-wer)."""
    return f"%{label} {_pct(c.rate)} [ {c.errors} / {c.ref}, {c.ins} ins, {c.dele} del, {c.sub} sub ]"


def summary_lines(result: ScoreResult) -> list[str]:
    """The default report: %WER, %SER and (when computed) %CER."""
    lines = [
        counts_line("WER", result.words),
        f"%SER {result.ser:.2f} [ {result.sentence_errors} / {result.utts} ]",
    ]
    if result.chars is not None:
        lines.append(counts_line("CER", result.chars))
    return lines


def ci_line(ci: Interval) -> str:
    return (
        f"%WER {int(round(ci.level * 100))}% CI [ {ci.low:.2f}, {ci.high:.2f} ]"
        f" (bootstrap, {ci.resamples} resamples over utterances)"
    )


def compare_lines(cmp: Comparison, name_a: str, name_b: str) -> list[str]:
    better = name_b if cmp.delta < 0 else name_a if cmp.delta > 0 else "neither"
    return [
        f"compare: {name_a} %WER {cmp.wer_a:.2f}  {name_b} %WER {cmp.wer_b:.2f}  "
        f"difference {cmp.delta:+.2f} [ {int(round(cmp.ci.level * 100))}% CI {cmp.ci.low:+.2f}, {cmp.ci.high:+.2f} ]",
        f"compare: better: {better}, p = {cmp.p_value:.4f} "
        f"(paired bootstrap, Bisani & Ney 2004, {cmp.ci.resamples} resamples over {cmp.utts} utterances)",
    ]


# -- per-utterance alignments (sclite "pra" style) ---------------------------


def alignment_block(al: Alignment) -> str:
    """An sclite style alignment::

        id: (spk1-utt003)
        Scores: (#C #S #D #I) 3 1 0 1
        REF:  the CAT sat *** on
        HYP:  the BAT sat DOG on
        Eval:     S       I

    Errors are upper-cased, ``*`` fills the gaps, columns are aligned.
    """
    ref_cells, hyp_cells, eval_cells = [], [], []
    for r, h, op in al.columns():
        if op != "C":
            r = r.upper() if r is not None else None
            h = h.upper() if h is not None else None
        width = max(len(r) if r is not None else 3, len(h) if h is not None else 3)
        ref_cells.append((r if r is not None else "*" * width).ljust(width))
        hyp_cells.append((h if h is not None else "*" * width).ljust(width))
        eval_cells.append(("" if op == "C" else op).ljust(width))
    c, s, d, i = al.counts
    return "\n".join(
        [
            f"id: ({al.utt})",
            f"Scores: (#C #S #D #I) {c} {s} {d} {i}",
            ("REF:  " + " ".join(ref_cells)).rstrip(),
            ("HYP:  " + " ".join(hyp_cells)).rstrip(),
            ("Eval: " + " ".join(eval_cells)).rstrip(),
        ]
    )


def write_per_utt(result: ScoreResult, f: TextIO) -> None:
    """All alignments, one block per utterance, blank line between."""
    for k, al in enumerate(result.alignments()):
        if k:
            f.write("\n")
        f.write(alignment_block(al))
        f.write("\n")


# -- tables -------------------------------------------------------------------


@dataclass
class Table:
    """A titled table; ``numeric`` columns are right-aligned."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    footer: list[str] | None = None


def speaker_table(stats: list[SpeakerStats], total: ScoreResult) -> Table:
    with_cer = total.chars is not None
    headers = ["SPKR", "#UTT", "#WRD", "COR", "SUB", "DEL", "INS", "ERR", "%WER", "%SER"]
    if with_cer:
        headers.append("%CER")

    def row(name: str, utts: int, w: Counts, ser: float, chars: Counts | None) -> list[str]:
        cells = [name, str(utts), str(w.ref), str(w.cor), str(w.sub), str(w.dele), str(w.ins), str(w.errors)]
        cells += [_pct(w.rate), f"{ser:.2f}"]
        if with_cer:
            cells.append(_pct(chars.rate if chars is not None else None))
        return cells

    rows = [row(s.speaker, s.utts, s.words, s.ser, s.chars) for s in stats]
    footer = row("SUM", total.utts, total.words, total.ser, total.chars)
    return Table("Per speaker", headers, rows, [False] + [True] * (len(headers) - 1), footer)


def confusion_tables(conf: Confusions) -> list[Table]:
    return [
        Table(
            "Substitutions",
            ["COUNT", "REF", "HYP"],
            [[str(c), r, h] for (r, h), c in conf.sub],
            [True, False, False],
        ),
        Table("Deletions", ["COUNT", "REF"], [[str(c), w] for w, c in conf.dele], [True, False]),
        Table("Insertions", ["COUNT", "HYP"], [[str(c), w] for w, c in conf.ins], [True, False]),
    ]


def render_plain(table: Table) -> str:
    """The table as plain aligned text (for pipes and files)."""
    body = [table.headers, *table.rows] + ([table.footer] if table.footer else [])
    widths = [max(len(r[k]) for r in body) for k in range(len(table.headers))]

    def fmt(cells: list[str]) -> str:
        out = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, table.numeric)]
        return "  ".join(out).rstrip()

    rule = "-" * len(fmt(table.headers))
    lines = [table.title, fmt(table.headers), rule]
    lines += [fmt(r) for r in table.rows] or ["(none)"]
    if table.footer:
        lines += [rule, fmt(table.footer)]
    return "\n".join(lines)


def render_rich(table: Table):
    """The table as a :class:`rich.table.Table` (for a terminal)."""
    from rich.table import Table as RichTable

    t = RichTable(title=table.title, title_justify="left", show_footer=table.footer is not None)
    for k, (h, num) in enumerate(zip(table.headers, table.numeric)):
        t.add_column(h, justify="right" if num else "left", footer=table.footer[k] if table.footer else "")
    for r in table.rows:
        t.add_row(*r)
    return t


# -- JSON -----------------------------------------------------------------------


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def to_json(
    result: ScoreResult,
    per_speaker: list[SpeakerStats] | None = None,
    confusions: Confusions | None = None,
    ci: Interval | None = None,
    comparison: Comparison | None = None,
) -> dict[str, Any]:
    """The ``--json`` object. Rates are percentages."""
    w = result.words
    out: dict[str, Any] = {
        "wer": _round(w.rate),
        "ser": _round(result.ser),
    }
    if result.chars is not None:
        out["cer"] = _round(result.chars.rate)
    out.update(
        ref_words=w.ref,
        hyp_words=w.hyp,
        cor=w.cor,
        sub=w.sub,
        **{"del": w.dele},
        ins=w.ins,
        utts=result.utts,
        missing=len(result.missing),
    )
    if per_speaker is not None:
        spk: dict[str, Any] = {}
        for s in per_speaker:
            entry: dict[str, Any] = {
                "utts": s.utts,
                "wer": _round(s.words.rate),
                "ser": _round(s.ser),
                "ref_words": s.words.ref,
                "hyp_words": s.words.hyp,
                "cor": s.words.cor,
                "sub": s.words.sub,
                "del": s.words.dele,
                "ins": s.words.ins,
            }
            if s.chars is not None:
                entry["cer"] = _round(s.chars.rate)
            spk[s.speaker] = entry
        out["per_speaker"] = spk
    if confusions is not None:
        out["confusions"] = {
            "sub": [{"ref": r, "hyp": h, "count": c} for (r, h), c in confusions.sub],
            "del": [{"ref": t, "count": c} for t, c in confusions.dele],
            "ins": [{"hyp": t, "count": c} for t, c in confusions.ins],
        }
    if ci is not None:
        out["wer_ci"] = {"low": _round(ci.low), "high": _round(ci.high), "level": ci.level, "resamples": ci.resamples}
    if comparison is not None:
        c = comparison
        out["compare"] = {
            "wer": _round(c.wer_b),
            "delta": _round(c.delta),
            "delta_ci": [_round(c.ci.low), _round(c.ci.high)],
            "p_value": _round(c.p_value),
            "utts": c.utts,
            "resamples": c.ci.resamples,
        }
    return out


# -- the course metrics (asrkit.score.distance) ---------------------------------

_UNIT_WORDS = {"char": "chars", "token": "tokens"}


def levenshtein_line(d: DistanceResult) -> str:
    """``Levenshtein 3.25 [ 13 edits / 4 utts, mean per utterance, chars; 150 reference chars ]``."""
    unit = _UNIT_WORDS[d.unit]
    return (f"Levenshtein {d.mean:.2f} [ {d.edits} edits / {d.utts} utts, mean per utterance, {unit}; "
            f"{d.ref_units} reference {unit} ]")


def levenshtein_json(d: DistanceResult) -> dict[str, Any]:
    return {
        "metric": "levenshtein",
        "unit": d.unit,
        "levenshtein": _round(d.mean),
        "edits": d.edits,
        "utts": d.utts,
        "ref_units": d.ref_units,
        "hyp_units": d.hyp_units,
        "missing": len(d.missing),
    }


def frame_accuracy_line(f: FrameAccuracy) -> str:
    """``%ACC 85.12 [ 8512 / 10000 frames, 100 utts ]`` (frame accuracy)."""
    return f"%ACC {_pct(f.accuracy)} [ {f.total_correct} / {f.total_frames} frames, {f.utts} utts ] (frame accuracy)"


def frame_accuracy_json(f: FrameAccuracy) -> dict[str, Any]:
    return {
        "metric": "frame-accuracy",
        "frame_accuracy": _round(f.accuracy),
        "correct": f.total_correct,
        "frames": f.total_frames,
        "utts": f.utts,
        "missing": len(f.missing),
    }
