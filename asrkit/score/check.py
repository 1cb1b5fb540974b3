"""A second opinion on the WER (``asrkit score --check``): the same normalized
tokens scored by jiwer, an independent Levenshtein implementation."""
from __future__ import annotations

from asrkit.score.distance import DistanceResult
from asrkit.score.result import ScoreResult

__all__ = ["jiwer_distance_line", "jiwer_distance_opinion", "jiwer_line", "jiwer_opinion"]


def jiwer_opinion(result: ScoreResult) -> dict:
    """The WER of the same normalized tokens by jiwer (an independent
    Levenshtein implementation). Total errors must agree; the split into
    sub/del/ins may differ where several alignments have the fewest errors."""
    import jiwer

    words = jiwer.process_words([" ".join(t) for t in result.refs], [" ".join(t) for t in result.hyps])
    errors = words.substitutions + words.deletions + words.insertions
    ref = result.words.ref
    return {
        "wer": round(100.0 * errors / ref, 4) if ref else None,
        "errors": errors,
        "words": ref,
        "sub": words.substitutions,
        "del": words.deletions,
        "ins": words.insertions,
        "agree": errors == result.words.errors,
    }


def jiwer_line(second: dict) -> str:
    """The second opinion as a Kaldi-style ``%WER`` line, marked as jiwer's."""
    wer = "-" if second["wer"] is None else f"{second['wer']:.2f}"
    verdict = "same errors" if second["agree"] else "DISAGREES with asrkit"
    return (f"%WER {wer} [ {second['errors']} / {second['words']}, {second['ins']} ins, {second['del']} del, "
            f"{second['sub']} sub ] (jiwer, second opinion: {verdict})")


def jiwer_distance_opinion(d: DistanceResult) -> dict:
    """The total edits of a :class:`DistanceResult` recounted by jiwer: on the
    strings (spaces included) for the char unit, on the tokens otherwise."""
    import jiwer

    assert d.refs is not None and d.hyps is not None
    char = d.unit == "char"

    def length(text: str) -> int:
        return len(text) if char else len(text.split())

    # jiwer refuses empty references; against one the distance is the hypothesis' length
    pairs = [(r, h) for r, h in zip(d.refs, d.hyps) if r]
    errors = sum(length(h) for r, h in zip(d.refs, d.hyps) if not r)
    if pairs:
        process = jiwer.process_characters if char else jiwer.process_words
        out = process([r for r, _ in pairs], [h for _, h in pairs])
        errors += out.substitutions + out.deletions + out.insertions
    return {"edits": errors, "agree": errors == d.edits}


def jiwer_distance_line(d: DistanceResult, second: dict) -> str:
    verdict = "same edits" if second["agree"] else "DISAGREES with asrkit"
    return f"Levenshtein {second['edits'] / d.utts if d.utts else 0.0:.2f} [ {second['edits']} edits ] (jiwer, second opinion: {verdict})"
