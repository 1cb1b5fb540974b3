"""``asrkit sample EXP --num N --out DIR|grid.png``: images of a trained GAN."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import UsageError


def sample(
    exp: Path = typer.Argument(..., metavar="EXP", help="Exp dir written by 'asrkit train gan'."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR|GRID.png",
                             help="A folder (one PNG per image) or an image file ending .png/.jpg (one grid)."),
    num: int = typer.Option(64, "--num", "-n", metavar="N", help="Images to generate."),
    seed: int = typer.Option(0, "--seed", metavar="S", help="Noise seed: the same seed gives the same images."),
    nrow: int = typer.Option(8, "--nrow", metavar="N", help="Images per row of a grid."),
    checkpoint: str = typer.Option(
        "last", "--checkpoint", metavar="NAME|FILE",
        help="last (the generator at the end of training), best (lowest dev fd_pix), epoch-N or a .pt file."
    ),
    batch_size: int = typer.Option(256, "--batch-size", metavar="N", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the generator runs."),
    impl: Optional[str] = typer.Option(
        None, "--impl", metavar="scratch|native", help="Layer implementation (default: the one it was trained with)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a folder another command made."),
) -> None:
    """Generate images with a trained GAN's generator: a grid image, or a folder
    of sample-NNNNN.png (the input of 'asrkit frechet' or any image tool).

    Example: asrkit sample exp/gan --num 64 --out samples.png
    """
    from asrkit.data.images import IMAGE_SUFFIXES, save_grid, save_image
    from asrkit.io import prepare_output_dir
    from asrkit.pipeline.frechet import load_generator

    if num < 1:
        raise UsageError(f"--num must be >= 1, got {num}")
    if batch_size < 1 or nrow < 1:
        raise UsageError("--batch-size and --nrow must be >= 1")
    grid = out.suffix.lower() in IMAGE_SUFFIXES
    if not grid:  # refuse a folder that is not ours before any work
        from asrkit.io import check_output_dir

        check_output_dir(out, "sample", overwrite, inputs=(exp,))
    model, _ = load_generator(exp, checkpoint, device, impl)
    images = model.sample(num, seed, batch_size)                     # (num, C, H, W) in [-1, 1]
    if grid:
        save_grid(images, out, nrow=nrow)
        log.info(f"{out}: a grid of {num} samples of {exp}")
        return
    prepare_output_dir(out, "sample", overwrite, inputs=(exp,))
    width = max(5, len(str(num - 1)))
    for i, img in enumerate(images):
        save_image(img, out / f"sample-{i:0{width}d}.png")
    log.info(f"{out}: {num} samples of {exp}")


def register(app: typer.Typer) -> None:
    """Add the ``sample`` command."""
    app.command("sample", no_args_is_help=True,
                short_help="Images of a trained GAN: a grid or a folder of PNGs.")(sample)
