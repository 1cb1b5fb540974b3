"""``asrkit rescore NBEST.jsonl --lm LM --lm-weight A``: n-best lists re-ranked with a language model.

Thin: parse options, open the LM (:mod:`asrkit.lm.scorer`), rescore
(:mod:`asrkit.pipeline.rescore`), write the best hypotheses in decode's formats
(:mod:`asrkit.decode.output`) on stdout or atomically to ``-o OUT``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import UsageError

#: --format choices: decode's writers but ctm (an n-best list has no token times).
RESCORE_FORMATS = ("text", "trn", "jsonl")


def rescore_command(
    nbest: str = typer.Argument(
        ..., metavar="NBEST.jsonl", help="N-best lists of 'asrkit decode --nbest N' (jsonl); '-' reads stdin."
    ),
    lm: Path = typer.Option(
        ..., "--lm", metavar="LM.arpa|LM.bin|LM_EXP",
        help="Language model: an ARPA file (asrkit lm build), a kenlm binary, or a neural LM exp dir "
             "(asrkit train lm).",
    ),
    lm_weight: float = typer.Option(
        ..., "--lm-weight", metavar="A",
        help="Weight of the LM's natural-log probability of each hypothesis (>= 0; 'asrkit tune EXP NBEST.jsonl "
             "REF --lm LM' picks one on a dev set).",
    ),
    length_bonus: float = typer.Option(
        0.0, "--length-bonus", metavar="B", help="Score added per word of a hypothesis (default 0).",
    ),
    decoder_lm_weight: Optional[float] = typer.Option(
        None, "--decoder-lm-weight", metavar="W",
        help="For n-best lists of an attention decode with --lm (entries with 'lm_score') that do not record "
             "'lm_weight': the --lm-weight that decode used, so that its LM part is taken out of the score before "
             "the new LM goes in.",
    ),
    fmt: str = typer.Option(
        "text", "--format", metavar="text|trn|jsonl",
        help="text: 'utt-id words'; trn: 'words (utt-id)'; jsonl: {utt, hyp, score, frames, out_frames, units, "
             "am_score, lm_score, decoder_score, nbest_rank, nbest} with the list re-ranked.",
    ),
    output: Optional[str] = typer.Option(
        None, "-o", "--output", metavar="OUT", help="Write here (atomically) instead of stdout.",
    ),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where a neural LM runs."),
) -> None:
    """Rescore n-best lists with an LM and write the best hypothesis of each utterance.

    New score = acoustic + A x ln P_lm(hyp </s>) + B x words. The acoustic
    score is the decoder's without its own LM: 'am_score' (CTC decodes),
    'score' - W x 'lm_score' (attention decodes with --lm; W their
    'lm_weight', or --decoder-lm-weight for a file without it), else
    'score'. The new LM replaces the decoder's.

    asrkit decode exp/ctc feats/test --beam 20 --nbest 20 > nbest.jsonl

    asrkit rescore nbest.jsonl --lm exp/lm4.arpa --lm-weight 0.8 | asrkit score data/test/text -
    """
    from asrkit.decode.output import write_hypotheses
    from asrkit.lm.scorer import open_sentence_lm
    from asrkit.pipeline.rescore import check_weights, read_nbest, rescore_all

    if fmt not in RESCORE_FORMATS:
        extra = " (an n-best list has no token times)" if fmt == "ctm" else ""
        raise UsageError(f"--format must be one of {', '.join(RESCORE_FORMATS)}, got '{fmt}'{extra}")
    check_weights(lm_weight, length_bonus)
    if decoder_lm_weight is not None:
        import math

        if not math.isfinite(decoder_lm_weight) or decoder_lm_weight < 0:
            raise UsageError(f"--decoder-lm-weight must be a finite number >= 0, got {decoder_lm_weight:g}")
    if output is not None and output != "-" and Path(output).is_dir():
        raise UsageError(f"-o {output}: is a folder; give a file name")
    scorer = open_sentence_lm(lm, device=lm_device(lm, device))
    log.info(f"rescoring with LM {scorer.name} (weight {lm_weight:g}, length bonus {length_bonus:g})")
    hyps = rescore_all(read_nbest(nbest, decoder_lm_weight), scorer, lm_weight, length_bonus)
    if output is None or output == "-":
        n = write_hypotheses(hyps, sys.stdout, fmt)
    else:
        from asrkit.io import atomic_write

        with atomic_write(output) as f:
            n = write_hypotheses(hyps, f, fmt, flush=False)
    log.info(f"{n} utterances rescored" + ("" if output in (None, "-") else f", written to {output}"))


def lm_device(lm: Path, device: str) -> str:
    """The device a neural LM (a directory) runs on: ``auto`` resolved, checked; ``cpu`` for a file."""
    if not lm.is_dir():
        return "cpu"
    from asrkit.decode.emissions import resolve_device

    return str(resolve_device(device))


def register(app: typer.Typer) -> None:
    """Add ``asrkit rescore``."""
    app.command("rescore", no_args_is_help=True)(rescore_command)
