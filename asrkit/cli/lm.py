"""``asrkit lm``: build n-gram language models (ARPA), measure perplexity, generate text.

    asrkit lm build data/lm_text.txt --order 3 -o exp/lm3.arpa
    asrkit lm ppl exp/lm3.arpa data/test_text.txt
    asrkit lm prune exp/lm3.arpa --threshold 1e-7 -o exp/lm3_pruned.arpa
    asrkit lm interpolate exp/lm3_in.arpa exp/lm3_general.arpa --dev data/dev_text.txt -o exp/lm3_mix.arpa
    asrkit lm ppl exp/lm_lstm data/test_text.txt            # a neural LM (asrkit train lm)
    asrkit lm generate exp/lm_lstm --prompt "the" --num 3 --top-p 0.9 --seed 1
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from asrkit import log

lm_app = typer.Typer(
    help="Language models: estimate n-grams (modified Kneser-Ney, ARPA), prune and interpolate them, measure perplexity (n-gram or neural), "
         "generate text with a neural LM.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_CHECKPOINT_HELP = "Neural LM only: best, last, epoch-N (in EXP/checkpoints) or a .pt file."
_DEVICE_HELP = "Neural LM only: where the model runs."


def _load_neural(exp: Path, checkpoint: str, device: str):
    from asrkit.decode import resolve_device
    from asrkit.lm.neural import NeuralLM

    return NeuralLM.load(exp, checkpoint, resolve_device(device))


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
    binary: bool = typer.Option(
        False, "--binary",
        help="Also write a kenlm binary next to the ARPA (lm3.arpa -> lm3.bin), which the decoders load faster; "
             "needs kenlm's build_binary program on PATH (the pip kenlm module cannot write binaries).",
    ),
) -> None:
    """Estimate an interpolated modified Kneser-Ney n-gram model and write it as ARPA."""
    from asrkit.errors import UsageError
    from asrkit.lm.build import binary_path, build_lm, find_build_binary, write_binary

    program = None
    if binary:  # before any counting: refused at once when build_binary is missing
        if output == "-":
            raise UsageError("--binary writes a file next to the ARPA file; give -o FILE, not '-'")
        if order < 2:
            raise UsageError(f"--binary: kenlm binaries hold orders >= 2, got --order {order}")
        program = find_build_binary()
    stats = build_lm(text, output, order, prune=prune, vocab=vocab, keep_unk=unk, progress=True)
    sizes = " ".join(f"{k}-grams={c}" for k, c in enumerate(stats.ngrams, start=1))
    rate = stats.windows / stats.seconds if stats.seconds > 0 else float("inf")
    where = "stdout" if output == "-" else output
    log.info(f"wrote {where}: {sizes} ({stats.seconds:.1f}s, {rate:,.0f} n-grams/s)")
    if program is not None:
        out = binary_path(output)
        seconds = write_binary(output, out, program)
        log.info(f"wrote {out}: kenlm binary ({seconds:.1f}s)")


@lm_app.command("prune")
def prune_cmd(
    lm: Path = typer.Argument(..., metavar="LM.arpa", help="ARPA model to prune."),
    output: Path = typer.Option(..., "-o", "--output", help="Pruned ARPA file to write (atomically)."),
    threshold: float = typer.Option(
        ..., "--threshold", metavar="T",
        help="Drop each n-gram whose removal raises the model's perplexity by a relative amount below T (e.g. 1e-8 .. 1e-6); 0 keeps everything."),
) -> None:
    """Relative-entropy pruning (Stolcke; SRILM's ngram -prune) with backoff weights recomputed."""
    from asrkit.lm.prune import prune_arpa

    stats = prune_arpa(lm, output, threshold)
    before = " ".join(f"{k}-grams={c}" for k, c in enumerate(stats.before, start=1))
    after = " ".join(f"{k}-grams={c}" for k, c in enumerate(stats.after, start=1))
    typer.echo(f"before {before}")
    typer.echo(f"after {after}")
    log.info(f"wrote {output}")


@lm_app.command("interpolate")
def interpolate_cmd(
    models: list[Path] = typer.Argument(..., metavar="A.arpa B.arpa ...", help="Two or more ARPA models."),
    output: Path = typer.Option(..., "-o", "--output", help="Merged ARPA file to write (atomically)."),
    dev: Optional[str] = typer.Option(None, "--dev", metavar="TEXT", help="Dev text (one sentence a line) whose likelihood the weights maximize (EM)."),
    weights: Optional[str] = typer.Option(None, "--weights", metavar="W1,W2,...", help="Fixed weights instead of tuning (normalized to sum 1)."),
) -> None:
    """Mix n-gram models linearly into one ARPA, weights tuned on --dev by EM."""
    from asrkit.errors import UsageError
    from asrkit.lm.mix import interpolate

    fixed = None
    if weights is not None:
        try:
            fixed = [float(x) for x in weights.replace(",", " ").split()]
        except ValueError:
            raise UsageError(f"--weights {weights!r}: expected numbers like 0.7,0.3") from None
    r = interpolate(models, dev, output, weights=fixed)
    for m, w in zip(models, r.weights):
        typer.echo(f"weight {m} {w:.6f}")
    if dev is not None:
        for m, p in zip(models, r.component_ppl):
            typer.echo(f"dev_perplexity {m} {p:.4f}")
        typer.echo(f"dev_perplexity mixture {r.mixture_ppl:.4f}")
        typer.echo(f"dev_tokens {r.tokens}")
    log.info(f"wrote {output}")


@lm_app.command("ppl")
def ppl(
    lm: Path = typer.Argument(..., help="ARPA file, kenlm binary, or a neural LM exp dir (asrkit train lm)."),
    text: str = typer.Argument(..., help="Text to score, one sentence per line; '-' reads stdin."),
    checkpoint: str = typer.Option("best", "--checkpoint", metavar="NAME|FILE", help=_CHECKPOINT_HELP),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help=_DEVICE_HELP),
) -> None:
    """Print perplexity and OOV rate of TEXT under LM (kenlm for n-grams).

    Output lines 'name value': sentences, words, oovs, oov_rate, logprob
    (log10, OOVs excluded, </s> included), perplexity (OOVs excluded),
    perplexity_with_oov (OOVs scored as <unk>). A neural LM counts the same
    way: word units have OOVs (words outside its vocabulary); char and bpe
    units have none, and their perplexity is still per word (+ </s>)."""
    from asrkit.lm.ppl import perplexity

    model = _load_neural(lm, checkpoint, device) if lm.is_dir() else None
    r = perplexity(lm, text, model=model)
    typer.echo(f"sentences {r.sentences}")
    typer.echo(f"words {r.words}")
    typer.echo(f"oovs {r.oovs}")
    typer.echo(f"oov_rate {r.oov_rate:.6f}")
    typer.echo(f"logprob {r.logprob:.4f}")
    typer.echo(f"perplexity {r.perplexity:.4f}")
    typer.echo(f"perplexity_with_oov {r.perplexity_with_oov:.4f}")


@lm_app.command("generate")
def generate_command(
    exp: Path = typer.Argument(..., metavar="EXP", help="Neural LM exp dir (asrkit train lm)."),
    prompt: str = typer.Option("", "--prompt", metavar="TEXT", help="Words to continue (default: a sentence start)."),
    num: int = typer.Option(1, "--num", metavar="N", help="Continuations to print, one per line (at most 10000)."),
    max_len: int = typer.Option(50, "--max-len", metavar="L", help="At most L new units per line (at most 10000)."),
    temperature: float = typer.Option(
        1.0, "--temperature", metavar="T", help="Divides the log-probs before sampling; 0: greedy (argmax)."),
    top_k: int = typer.Option(0, "--top-k", metavar="K", help="Sample among the K most likely units (0: all)."),
    top_p: float = typer.Option(
        1.0, "--top-p", metavar="P", help="Sample within the smallest set of units of mass >= P, in (0, 1]."),
    beam: int = typer.Option(
        0, "--beam", metavar="B", help="Beam search with B hypotheses instead of sampling: the N most likely lines."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling (same seed, same lines)."),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", metavar="NAME|FILE", help="best, last, epoch-N (in EXP/checkpoints) or a .pt file."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
) -> None:
    """Print continuations of --prompt by a neural LM, one per line: the prompt and the
    generated words, up to the sentence end </s> or --max-len units."""
    from asrkit.lm.neural import check_generate, generate

    check_generate(num, max_len, temperature, top_k, top_p, beam)  # before the model loads
    lm = _load_neural(exp, checkpoint, device)
    for line in generate(lm, prompt, num=num, max_len=max_len, temperature=temperature, top_k=top_k,
                         top_p=top_p, beam=beam, seed=seed):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add the ``lm`` command group to the main app."""
    app.add_typer(lm_app, name="lm")
