"""``asrkit demo``: the whole pipeline on the embedded tiny corpus."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def demo_command(
    out: Path = typer.Option(Path("exp/demo"), "--out", help="Folder for data, features, the model and outputs."),
    minutes: float = typer.Option(5.0, "--minutes", help="Training time budget in minutes."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where to train and decode."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Feature extraction processes."),
    threads: Optional[int] = typer.Option(
        None, "--threads",
        help="torch CPU threads (default: one per core; 1 is faster on a machine busy with other jobs).",
    ),
) -> None:
    """Tiny corpus -> features -> CTC phone model (a few minutes) -> greedy decoding -> PER; then a 3-gram LM,
    LM weights tuned on dev, beam 20 + lexicon + LM decoding to words -> WER next to PER.

    Each step is skipped when its output is already there, so a re-run (or a
    run after an interruption) continues where it stopped.

    Example: asrkit demo --out exp/demo --minutes 5
    """
    from asrkit.decode.demo import run_demo

    run_demo(out, minutes=minutes, device=device, jobs=jobs, threads=threads)


def register(app: typer.Typer) -> None:
    """Add ``asrkit demo``."""
    app.command("demo")(demo_command)
