"""``asrkit demo``: the whole pipeline on the embedded tiny corpus."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from asrkit.pipeline.demo import DEMO_EPOCHS, DEMO_THREADS, DEMO_WARPS


def demo_command(
    out: Path = typer.Option(Path("exp/demo"), "--out", help="Folder for data, features, the model and outputs."),
    epochs: int = typer.Option(DEMO_EPOCHS, "--epochs", help="Training epochs (a fixed amount of work)."),
    minutes: Optional[float] = typer.Option(
        None, "--minutes",
        help="Optional training time budget: stop early when it is spent and decode with the best checkpoint "
             "so far (a re-run continues). Default: no budget, all the epochs.",
    ),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where to train and decode."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Feature extraction processes."),
    threads: int = typer.Option(
        DEMO_THREADS, "--threads",
        help="torch CPU threads (1 keeps its speed when other jobs share the cores).",
    ),
    warps: str = typer.Option(
        ",".join(f"{a:g}" for a in DEMO_WARPS), "--warps", metavar="A,B,...",
        help="Test-time VTLP of every decode: the mean over these mel warp factors (asrkit decode --warps); "
             "1: one plain forward pass.",
    ),
    overrides: Optional[list[str]] = typer.Argument(
        None, help="Training config overrides KEY=VALUE, e.g. model.impl=native (torch's own layers).",
    ),
) -> None:
    """Tiny corpus -> features -> CTC phone model (scratch layers, a fixed number of epochs) -> greedy
    decoding -> PER; then a 3-gram LM, LM weights tuned on dev, beam 20 + lexicon + LM decoding to words ->
    WER next to PER.

    Each step is skipped when its output is already there, so a re-run (or a
    run after an interruption) continues where it stopped.

    Example: asrkit demo --out exp/demo; torch's own layers instead of the scratch ones:
    asrkit demo --out exp/demo_native model.impl=native
    """
    from asrkit.cli.decode import parse_warps
    from asrkit.pipeline.demo import run_demo

    run_demo(out, epochs=epochs, minutes=minutes, device=device, jobs=jobs, threads=threads,
             warps=parse_warps(warps), overrides=overrides or ())


def register(app: typer.Typer) -> None:
    """Add ``asrkit demo``."""
    app.command("demo")(demo_command)
