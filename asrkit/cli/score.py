"""``asrkit score REF HYP``: WER / SER / CER of hypotheses against references.

Thin: parse options, read files, call :func:`asrkit.score.score`, print.
Everything is computed (and the ``--per-utt`` file written) before anything is
printed, so a user error leaves stdout empty.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import AsrkitError, InputError, UsageError
from asrkit.io import atomic_write


# Choices are checked here (not by typer) so that a bad value is one of our
# UsageErrors: one red line, exit 2.
_FORMATS = ("auto", "text", "trn")
_MODES = ("strict", "present", "all")
_METRICS = ("wer", "levenshtein", "frame-accuracy")
_UNITS = ("char", "token")


def score_command(
    ref: str = typer.Argument(..., metavar="REF", help="Reference transcripts (Kaldi text or trn; '-' = stdin)."),
    hyp: str = typer.Argument(..., metavar="HYP", help="Hypotheses (Kaldi text or trn; '-' = stdin)."),
    fmt: str = typer.Option(
        "auto", "--format", metavar="auto|text|trn", help="Input format of every file; auto detects per file."
    ),
    cer: bool = typer.Option(False, "--cer", help="Also report %CER over characters (spaces excluded)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the text report."),
    per_utt: Optional[str] = typer.Option(
        None, "--per-utt", metavar="FILE", help="Write an sclite style alignment of every utterance to FILE."
    ),
    per_spk: bool = typer.Option(
        False,
        "--per-spk",
        help="Print a per-speaker table. Speakers come from --utt2spk, else from the utt2spk file next to REF "
        "when REF is a data dir's 'text', else from the utt-id prefix before the first '-' or '_'.",
    ),
    utt2spk: Optional[str] = typer.Option(
        None, "--utt2spk", metavar="FILE", help="Kaldi utt2spk giving the speakers for --per-spk."
    ),
    confusions: int = typer.Option(
        0, "--confusions", metavar="N", help="Print the N most frequent substitutions, deletions and insertions."
    ),
    mode: str = typer.Option(
        "strict",
        "--mode",
        metavar="strict|present|all",
        help="Missing/extra utterances: strict fails; present scores the intersection; "
        "all counts a missing hypothesis as deletions.",
    ),
    ignore_case: bool = typer.Option(False, "--ignore-case", help="Lower-case both sides."),
    strip_punct: bool = typer.Option(False, "--strip-punct", help="Delete punctuation characters from both sides."),
    ignore: Optional[str] = typer.Option(
        None, "--ignore", metavar="TOKENS", help="Comma list of tokens removed from both sides, e.g. '<noise>,\\[laughter]'."
    ),
    ci: bool = typer.Option(False, "--ci", help="95% bootstrap confidence interval of the WER (1000 resamples)."),
    compare: Optional[str] = typer.Option(
        None, "--compare", metavar="HYP2", help="Score a second system and test the WER difference (paired bootstrap)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    check: bool = typer.Option(
        False, "--check", help="Recompute the WER (or the Levenshtein distance) with jiwer as a second opinion and "
        "print both; exit 1 if they disagree."
    ),
    metric: str = typer.Option(
        "wer",
        "--metric",
        metavar="wer|levenshtein|frame-accuracy",
        help="wer: %WER/%SER (Kaldi). levenshtein: mean edit distance per utterance (the 11-785 course's HW3P2/HW4P2 "
        "metric). frame-accuracy: % of frames labelled right, REF an ali and HYP 'asrkit predict frame' output.",
    ),
    unit: Optional[str] = typer.Option(
        None,
        "--unit",
        metavar="char|token",
        help="--metric levenshtein: char compares the strings (tokens joined by one space; spaces count), "
        "token the token sequences (phones, words). Default: char.",
    ),
) -> None:
    """Score hypotheses against references: %WER, %SER (and %CER), Kaldi style.

    Example: asrkit score data/test/text exp/ctc/hyp.txt --per-spk --confusions 10

    Course metrics: asrkit score data/dev/text hyp.txt --metric levenshtein [--unit token];
    asrkit score data/dev/ali pred.ali --metric frame-accuracy
    """
    from asrkit.data.table import read_table
    from asrkit.score import bootstrap_ci, paired_bootstrap, read_transcripts, score
    from asrkit.score import report
    from asrkit.score.units import unit_mismatch
    from asrkit.score.check import jiwer_line, jiwer_opinion

    # -- usage checks (exit 2) ------------------------------------------------
    stdin_users = [name for name, path in (("REF", ref), ("HYP", hyp), ("--compare", compare), ("--utt2spk", utt2spk)) if path == "-"]
    if len(stdin_users) > 1:
        raise UsageError(f"only one input can be stdin ('-'), got {' and '.join(stdin_users)}")
    if utt2spk is not None and not per_spk:
        raise UsageError("--utt2spk is only used by --per-spk; add --per-spk")
    if fmt not in _FORMATS:
        raise UsageError(f"--format must be one of {', '.join(_FORMATS)}, got '{fmt}'")
    if mode not in _MODES:
        raise UsageError(f"--mode must be one of {', '.join(_MODES)}, got '{mode}'")
    if confusions < 0:
        raise UsageError(f"--confusions must be >= 0, got {confusions}")
    if per_utt == "-":
        raise UsageError("--per-utt needs a file path (stdout carries the report)")
    if metric not in _METRICS:
        raise UsageError(f"--metric must be one of {', '.join(_METRICS)}, got '{metric}'")
    if unit is not None and unit not in _UNITS:
        raise UsageError(f"--unit must be one of {', '.join(_UNITS)}, got '{unit}'")
    if unit is not None and metric != "levenshtein":
        raise UsageError("--unit applies to --metric levenshtein only")
    if metric != "wer":
        wer_only = [name for name, used in (
            ("--cer", cer), ("--per-utt", per_utt is not None), ("--per-spk", per_spk), ("--confusions", confusions > 0),
            ("--ci", ci), ("--compare", compare is not None),
        ) if used]
        if metric == "frame-accuracy":
            wer_only += [name for name, used in (
                ("--check", check), ("--ignore-case", ignore_case), ("--strip-punct", strip_punct),
                ("--ignore", ignore is not None)) if used]
        if wer_only:
            raise UsageError(f"{wer_only[0]} does not apply to --metric {metric}")
    ignore_tokens: list[str] = []
    if ignore is not None:
        ignore_tokens = [t.strip() for t in ignore.split(",") if t.strip()]
        if not ignore_tokens:
            raise UsageError("--ignore needs a comma list of tokens, e.g. '<noise>,[laughter]'")

    # -- read and score (exit 1 on bad input) -----------------------------------
    refs = read_transcripts(ref, fmt)
    hyps = read_transcripts(hyp, fmt)
    if metric != "wer":
        _course_metric(metric, unit or "char", refs, hyps, mode, as_json, check,
                       dict(ignore_case=ignore_case, strip_punct=strip_punct, ignore=ignore_tokens))
        return
    hyps2 = read_transcripts(compare, fmt) if compare is not None else None
    if utt2spk is None and per_spk and ref != "-" and Path(ref).name == "text" and (Path(ref).parent / "utt2spk").is_file():
        utt2spk = str(Path(ref).parent / "utt2spk")
        log.info(f"speakers from {utt2spk}")
    spk_map = read_table(utt2spk) if utt2spk is not None else None
    kinds = unit_mismatch(refs.utts.values(), hyps.utts.values(), refs.name, hyps.name)
    if kinds is not None:
        log.warn(kinds)
    options = dict(
        mode=mode,
        cer=cer,
        utt2spk=spk_map,
        ignore_case=ignore_case,
        strip_punct=strip_punct,
        ignore=ignore_tokens,
        ref_name=refs.name,
    )
    result = score(refs.utts, hyps.utts, hyp_name=hyps.name, **options)
    result2 = score(refs.utts, hyps2.utts, hyp_name=hyps2.name, **options) if hyps2 is not None else None

    spk_stats = result.per_speaker() if per_spk else None
    conf = result.confusions(confusions) if confusions > 0 else None
    interval = bootstrap_ci(result, resamples=1000, seed=seed) if ci else None
    comparison = paired_bootstrap(result, result2, resamples=1000, seed=seed) if result2 is not None else None
    second = jiwer_opinion(result) if check else None

    if per_utt is not None:
        try:
            with atomic_write(per_utt) as f:
                report.write_per_utt(result, f)
        except OSError as e:
            raise InputError(f"{per_utt}: cannot write: {e.strerror or e}") from None

    _say_left_out(result, refs.name, hyps.name)
    if result2 is not None and hyps2 is not None:
        _say_left_out(result2, refs.name, hyps2.name)

    # -- print (stdout: results only) ----------------------------------------------
    out = sys.stdout
    if as_json:
        obj = report.to_json(result, spk_stats, conf, interval, comparison)
        if second is not None:
            obj["jiwer"] = second
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        _exit_if_disagree(second)
        return
    lines = report.summary_lines(result)
    if second is not None:
        lines.insert(1, jiwer_line(second))
    if interval is not None:
        lines.append(report.ci_line(interval))
    if comparison is not None and hyps2 is not None:
        lines += report.compare_lines(comparison, hyps.name, hyps2.name)
    out.write("\n".join(lines) + "\n")
    tables = []
    if spk_stats is not None:
        tables.append(report.speaker_table(spk_stats, result))
    if conf is not None:
        tables += report.confusion_tables(conf)
    if not tables:
        _exit_if_disagree(second)
        return
    if out.isatty():
        from rich.console import Console

        console = Console(file=out)
        for t in tables:
            console.print()
            console.print(report.render_rich(t))
    else:
        for t in tables:
            out.write("\n" + report.render_plain(t) + "\n")
    _exit_if_disagree(second)


def _course_metric(metric: str, unit: str, refs, hyps, mode: str, as_json: bool, check: bool, norm: dict) -> None:
    """``--metric levenshtein`` / ``frame-accuracy``: compute, then print one line (or the JSON object)."""
    from asrkit.score import report
    from asrkit.score.distance import frame_accuracy, levenshtein

    names = dict(ref_name=refs.name, hyp_name=hyps.name)
    if metric == "frame-accuracy":
        fa = frame_accuracy(refs.utts, hyps.utts, mode=mode, **names)
        _say_left_out(fa, refs.name, hyps.name, "wrong frames")
        obj, lines, second = report.frame_accuracy_json(fa), [report.frame_accuracy_line(fa)], None
    else:
        from asrkit.score.check import jiwer_distance_line, jiwer_distance_opinion
        from asrkit.score.units import unit_mismatch

        kinds = unit_mismatch(refs.utts.values(), hyps.utts.values(), refs.name, hyps.name)
        if kinds is not None:
            log.warn(kinds)
        d = levenshtein(refs.utts, hyps.utts, unit=unit, mode=mode, **norm, **names)
        _say_left_out(d, refs.name, hyps.name, "empty hypotheses")
        second = jiwer_distance_opinion(d) if check else None
        obj, lines = report.levenshtein_json(d), [report.levenshtein_line(d)]
        if second is not None:
            obj["jiwer"] = second
            lines.append(jiwer_distance_line(d, second))
    out = sys.stdout
    out.write((json.dumps(obj, ensure_ascii=False) if as_json else "\n".join(lines)) + "\n")
    if second is not None and not second["agree"]:
        raise AsrkitError(
            f"asrkit and jiwer count different edits ({second['edits']} by jiwer); please report this with the two files"
        )


def _exit_if_disagree(second: dict | None) -> None:
    """After the report is printed: a disagreement is an error (exit 1)."""
    if second is not None and not second["agree"]:
        raise AsrkitError(
            f"asrkit and jiwer count different word errors ({second['errors']} by jiwer); "
            f"please report this with the two files"
        )


def _say_left_out(result, ref_name: str, hyp_name: str, missing_as: str = "deletions") -> None:
    """stderr notes for the lenient modes (nothing left out: silent)."""
    if result.mode == "present" and (result.missing or result.extra):
        log.info(
            f"{hyp_name}: scored {result.utts} utterance(s); left out {len(result.missing)} reference "
            f"utterance(s) without hypothesis and {len(result.extra)} hypothesis utterance(s) not in {ref_name}"
        )
    elif result.mode == "all":
        if result.missing:
            log.info(f"{hyp_name}: {len(result.missing)} reference utterance(s) without hypothesis counted as {missing_as}")
        if result.extra:
            log.warn(f"{hyp_name}: ignored {len(result.extra)} hypothesis utterance(s) not in {ref_name}")


def register(app: typer.Typer) -> None:
    """Add ``asrkit score`` to the CLI."""
    app.command("score", no_args_is_help=True)(score_command)

