"""``asrkit frechet CLASSIFIER REAL GEN``: Fréchet distances and mode coverage of a generator."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from asrkit import log


def frechet(
    classifier: Path = typer.Argument(..., metavar="CLASSIFIER_EXP",
                                      help="Exp dir of 'asrkit train face' trained on the real training images."),
    real: Path = typer.Argument(..., metavar="REAL_DIR", help="The real training images (any depth)."),
    gen: Path = typer.Argument(..., metavar="GEN_EXP|DIR",
                               help="Exp dir of 'asrkit train gan', or a folder of images."),
    heldout: Optional[Path] = typer.Option(None, "--heldout", metavar="DIR",
                                           help="Real images never trained on (dev): the floor row and the ratio."),
    num: int = typer.Option(1000, "--num", "-n", metavar="N", help="Images of every set."),
    seed: int = typer.Option(0, "--seed", metavar="S", help="Seed of the image choices and the noise."),
    confidence: float = typer.Option(
        0.5, "--confidence", metavar="P",
        help="A class is found when an image is given to it with at least this probability."),
    checkpoint: str = typer.Option(
        "last", "--checkpoint", metavar="NAME|FILE",
        help="The GAN exp's checkpoint: last, best (lowest dev fd_pix), epoch-N or a .pt file."),
    batch_size: int = typer.Option(256, "--batch-size", metavar="N", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the models run."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of the table."),
) -> None:
    """Fréchet distance, in the classifier's embedding space, between the real
    training images and: the generator's samples, held-out real images (the
    floor), an untrained generator and a per-pixel Gaussian (the ceilings);
    and the mode coverage (share of the classifier's classes found in each
    set). Ends with how many times closer the generator is to the floor than
    to the better ceiling.

    Example: asrkit frechet exp/classifier data/fmnist/train exp/gan --heldout data/fmnist/dev
    """
    from asrkit.pipeline.frechet import frechet_table

    table = frechet_table(classifier, real, gen, heldout=heldout, num=num, seed=seed, batch=batch_size,
                          device=device, confidence=confidence, checkpoint=checkpoint,
                          on_row=lambda r: log.info(f"{r.name}: Fréchet {r.fd:.3f}"))
    if as_json:
        typer.echo(json.dumps(table.as_dict()))
        return
    k = len(table.classes)
    width = max(len(r.name) for r in table.rows)
    typer.echo(f"{'source':<{width}}  {'role':<9}  {'images':>6}  {'frechet':>10}  {'coverage':>9}")
    for r in table.rows:
        found = round(r.coverage * k)
        typer.echo(f"{r.name:<{width}}  {r.role:<9}  {r.images:>6}  {r.fd:>10.3f}  {f'{found}/{k}':>9}")
    if table.ratio is not None:
        typer.echo(f"ratio (ceiling - generator) / (generator - floor): {table.ratio:.2f}")


def register(app: typer.Typer) -> None:
    """Add the ``frechet`` command."""
    app.command("frechet", no_args_is_help=True,
                short_help="Fréchet distance and mode coverage of a GAN in a classifier's feature space.")(frechet)
