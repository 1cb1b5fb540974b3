"""A second opinion on the WER (``asrkit score --check``): the same normalized
tokens scored by jiwer, an independent Levenshtein implementation."""
from __future__ import annotations

from asrkit.score.result import ScoreResult

__all__ = ["jiwer_line", "jiwer_opinion"]


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
