"""``asrkit predict frame EXP FEATS``: per-frame labels of a frame classifier;
``asrkit predict face EXP DIR``: the identity of every image of a folder."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import UsageError

predict_app = typer.Typer(help="Predictions of trained models that are not transcripts.", no_args_is_help=True)


@predict_app.command("frame", no_args_is_help=True)
def frame(
    exp: Path = typer.Argument(..., metavar="EXP", help="Exp dir written by 'asrkit train frame'."),
    feats: Path = typer.Argument(..., metavar="FEATS", help="Feature store to label (asrkit featurize)."),
    csv: bool = typer.Option(
        False, "--csv", help="Kaggle submission form: 'id,label' rows, id = running frame number over all utterances."
    ),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", metavar="NAME|FILE", help="best, last, epoch-N (in EXP/checkpoints) or a .pt file."
    ),
    batch_size: int = typer.Option(16, "--batch-size", metavar="N", help="Utterances per forward pass."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
    impl: Optional[str] = typer.Option(
        None, "--impl", metavar="scratch|native", help="Layer implementation (default: the one it was trained with)."
    ),
) -> None:
    """Label every frame with a frame classifier: 'utt-id l1 l2 ...' lines (the
    form of an ali file) in utt-id order, or with --csv the course's Kaggle
    submission 'id,label'.

    Example: asrkit predict frame exp/frame feats/test --csv > submission.csv
    """
    from asrkit.data import FeatureStore
    from asrkit.decode import load_exp, predict_frames, write_frame_csv, write_frame_text

    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    store = FeatureStore(feats)
    loaded = load_exp(exp, checkpoint=checkpoint, device=device, impl=impl, task="frame")
    log.info(f"{exp}: {loaded.checkpoint.name}, {loaded.units.num_classes} labels, {loaded.device}; "
             f"{len(store)} utterances in {feats}")
    with log.progress() as bar:
        task = bar.add_task("predict", total=len(store))
        preds = predict_frames(loaded, store, batch_size=batch_size, on_batch=lambda n: bar.advance(task, n))
        if csv:
            write_frame_csv(preds, sys.stdout)
        else:
            write_frame_text(preds, sys.stdout)


@predict_app.command("face", no_args_is_help=True)
def face(
    exp: Path = typer.Argument(..., metavar="EXP", help="Exp dir written by 'asrkit train face'."),
    images: Path = typer.Argument(..., metavar="DIR", help="Folder of images to label (searched at any depth)."),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", metavar="NAME|FILE", help="best, last, epoch-N (in EXP/checkpoints) or a .pt file."
    ),
    batch_size: int = typer.Option(128, "--batch-size", metavar="N", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
    impl: Optional[str] = typer.Option(
        None, "--impl", metavar="scratch|native", help="Layer implementation (default: the one it was trained with)."
    ),
) -> None:
    """Label every image of DIR with its top-1 training identity (class): the
    Kaggle submission form 'id,label' on stdout, id = the image's path under
    DIR, label = the class folder name, in path order.

    Example: asrkit predict face exp/face faces/test > submission.csv
    """
    import torch

    from asrkit.data.images import open_images
    from asrkit.tasks.face import load_face_exp, predict_classes

    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    loaded = load_face_exp(exp, checkpoint=checkpoint, device=device, impl=impl, command="asrkit predict face")
    ds = open_images(images, channels=loaded.channels)
    loaded.check_images(ds, images)
    log.info(f"{loaded.describe()}; {len(ds)} images in {images}")
    with torch.no_grad(), log.progress() as bar:
        task = bar.add_task("predict", total=len(ds))
        pred = predict_classes(loaded.model, ds, batch_size=batch_size, device=loaded.device,
                               on_batch=lambda n: bar.advance(task, n)).tolist()
    lines = ["id,label\n"] + [f"{_csv_field(n)},{_csv_field(loaded.classes[k])}\n" for n, k in zip(ds.names, pred)]
    sys.stdout.writelines(lines)
    sys.stdout.flush()


def _csv_field(text: str) -> str:
    """``text`` as one CSV field (quoted when it holds a comma, a quote or a line break)."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command group."""
    app.add_typer(predict_app, name="predict")
