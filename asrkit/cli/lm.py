"""``asrkit lm``: build n-gram language models (ARPA) and measure perplexity.

    asrkit lm build data/lm_text.txt --order 3 -o exp/lm3.arpa
    asrkit lm ppl exp/lm3.arpa data/test_text.txt
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from asrkit import log

lm_app = typer.Typer(
    help="n-gram language models: estimate (modified Kneser-Ney, ARPA) and measure perplexity.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@lm_app.command("build")
def build(
    text: str = typer.Argument(..., help="Training text, one sentence per line, tokens separated by spaces (words, or units such as characters or phones); '-' reads stdin."),
    output: str = typer.Option(..., "-o", "--output", help="ARPA file to write (atomically); '-' writes to stdout."),
    order: int = typer.Option(3, "-n", "--order", help="n-gram order, 1 to 6 (kenlm, which loads models for the decoders, reads orders up to 6; decoders need >= 2)."),
    prune: Optional[str] = typer.Option(
        None, "--prune",
        help="Per-order count thresholds like lmplz, e.g. '0,1,1': drop n-grams of order k whose (adjusted) count is <= the k-th value; the last value repeats; the first must be 0.",
    ),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help="Word list (first field of each line; Kaldi words.txt works) that fixes the vocabulary; other tokens become <unk>."),
    unk: bool = typer.Option(False, "--unk", help="Estimate <unk> as a word (open vocabulary) instead of leaving n-grams with <unk> out."),
) -> None:
    """Estimate an interpolated modified Kneser-Ney n-gram model and write it as ARPA."""
    from asrkit.lm.build import build_lm

    stats = build_lm(text, output, order, prune=prune, vocab=vocab, keep_unk=unk, progress=True)
    sizes = " ".join(f"{k}-grams={c}" for k, c in enumerate(stats.ngrams, start=1))
    rate = stats.windows / stats.seconds if stats.seconds > 0 else float("inf")
    where = "stdout" if output == "-" else output
    log.info(f"wrote {where}: {sizes} ({stats.seconds:.1f}s, {rate:,.0f} n-grams/s)")


@lm_app.command("ppl")
def ppl(
    lm: Path = typer.Argument(..., help="ARPA file or kenlm binary."),
    text: str = typer.Argument(..., help="Text to score, one sentence per line; '-' reads stdin."),
) -> None:
    """Print perplexity and OOV rate of TEXT under LM (computed with kenlm).

    Output lines 'name value': sentences, words, oovs, oov_rate, logprob
    (log10, OOVs excluded, </s> included), perplexity (OOVs excluded),
    perplexity_with_oov (OOVs scored as <unk>)."""
    from asrkit.lm.ppl import perplexity

    r = perplexity(lm, text)
    typer.echo(f"sentences {r.sentences}")
    typer.echo(f"words {r.words}")
    typer.echo(f"oovs {r.oovs}")
    typer.echo(f"oov_rate {r.oov_rate:.6f}")
    typer.echo(f"logprob {r.logprob:.4f}")
    typer.echo(f"perplexity {r.perplexity:.4f}")
    typer.echo(f"perplexity_with_oov {r.perplexity_with_oov:.4f}")


def register(app: typer.Typer) -> None:
    """Add the ``lm`` command group to the main app."""
    app.add_typer(lm_app, name="lm")
