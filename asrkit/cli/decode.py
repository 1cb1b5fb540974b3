"""``asrkit decode EXP FEATS``: hypotheses of a trained CTC model on stdout.

Thin: parse options, load the exp dir, decode, write lines. Progress goes to
stderr, so ``asrkit decode ... | asrkit score REF -`` works.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import UsageError


def decode_command(
    exp: Path = typer.Argument(..., metavar="EXP", help="Exp dir written by 'asrkit train ctc'."),
    feats: Path = typer.Argument(..., metavar="FEATS", help="Feature store to decode (asrkit featurize)."),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", metavar="NAME|FILE", help="best, last, epoch-N (in EXP/checkpoints) or a .pt file."
    ),
    fmt: str = typer.Option(
        "text", "--format", metavar="text|trn|jsonl",
        help="text: 'utt-id tokens'; trn: 'tokens (utt-id)'; jsonl: {utt, hyp, score, frames, out_frames, units}.",
    ),
    batch_size: int = typer.Option(16, "--batch-size", metavar="N", help="Utterances per forward pass."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
    impl: Optional[str] = typer.Option(
        None, "--impl", metavar="scratch|native", help="Layer implementation (default: the one it was trained with)."
    ),
) -> None:
    """Greedy CTC decoding of a feature store: 'utt-id tokens' lines on stdout,
    in utt-id order (phones for phone units, words for char/bpe units).

    Example: asrkit decode exp/ctc feats/test > exp/ctc/hyp.txt && asrkit score data/test/text exp/ctc/hyp.txt
    """
    from asrkit.data import FeatureStore
    from asrkit.decode import FORMATS, greedy_decode, load_exp, write_hypotheses

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    store = FeatureStore(feats)
    loaded = load_exp(exp, checkpoint=checkpoint, device=device, impl=impl, task="ctc")
    log.info(f"{exp}: {loaded.checkpoint.name}, {loaded.units.kind} units -> {loaded.units.output_kind}, "
             f"impl {loaded.config['model'].get('impl')}, {loaded.device}; {len(store)} utterances in {feats}")
    with log.progress() as bar:
        task = bar.add_task("decode", total=len(store))
        hyps = greedy_decode(loaded, store, batch_size=batch_size,
                             on_batch=lambda n: bar.advance(task, n))
        write_hypotheses(hyps, sys.stdout, fmt)


def register(app: typer.Typer) -> None:
    """Add ``asrkit decode``."""
    app.command("decode", no_args_is_help=True)(decode_command)
