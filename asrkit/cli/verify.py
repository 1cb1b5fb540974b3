"""``asrkit verify EXP PAIRS``: face verification with a trained face model.

Thin: read the pairs, load the model, score, print. Everything is computed
(and the ROC plot and report written) before anything is printed, so a user
error leaves stdout empty.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import InputError, UsageError


def verify_command(
    exp: Path = typer.Argument(..., metavar="EXP", help="Exp dir written by 'asrkit train face'."),
    pairs: Path = typer.Argument(..., metavar="PAIRS", help="Pairs file: 'img1 img2 [label]' lines, images relative "
                                                            "to its folder (or an LFW pairs.txt with --lfw-images)."),
    labels: Optional[Path] = typer.Option(
        None, "--labels", metavar="LABELS", help="Labels of the pairs: one 0/1 per line in pair order "
                                                 "(or 'img1 img2 label' lines)."),
    lfw_images: Optional[Path] = typer.Option(
        None, "--lfw-images", metavar="DIR", help="PAIRS is an LFW pairs.txt; its images are DIR/<name>/*.jpg."),
    roc: Optional[Path] = typer.Option(None, "--roc", metavar="PNG", help="Draw the ROC curve here (needs labels)."),
    report: Optional[Path] = typer.Option(
        None, "--report", metavar="JSON", help="Write AUC, EER and TAR@FAR as JSON here (needs labels)."),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", metavar="NAME|FILE", help="best, last, epoch-N (in EXP/checkpoints) or a .pt file."),
    batch: int = typer.Option(128, "--batch", metavar="N", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
    impl: Optional[str] = typer.Option(
        None, "--impl", metavar="scratch|native", help="Layer implementation (default: the one it was trained with)."),
) -> None:
    """Face verification with a face model: a similarity score per pair; AUC, EER, TAR@FAR with labels.

    Prints 'img1 img2 score' lines on stdout in pair order (the cosine
    similarity of the two images' embeddings). With labels (a third column,
    --labels, or an LFW pairs.txt), the AUC, EER and TAR at FAR = 1e-2 and
    1e-3 go to stderr (and --report), the ROC curve to --roc.

    Example: asrkit verify exp/face faces/verify/pairs.txt --labels faces/verify/pairs_labels.txt --roc roc.png
    """
    from asrkit.data.images import open_pair_images, read_lfw_pairs, read_pairs
    from asrkit.io import atomic_write
    from asrkit.plot.roc import check_roc_path, plot_roc
    from asrkit.score.verification import verification_report
    from asrkit.tasks.face import load_face_exp, pair_scores

    if batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}")
    if roc is not None:
        check_roc_path(roc)
    if lfw_images is not None:
        if labels is not None:
            raise UsageError("--labels: an LFW pairs.txt holds its labels; give one of --labels and --lfw-images")
        plist, root = read_lfw_pairs(pairs, lfw_images), lfw_images
    else:
        plist, root = read_pairs(pairs, labels), pairs.parent
    have = [p.label is not None for p in plist]
    if any(have) and not all(have):
        raise InputError(f"{pairs}: {have.count(False)} of {len(plist)} pairs have no label; label every pair "
                         f"or none")
    if (roc is not None or report is not None) and not all(have):
        raise UsageError(f"{'--roc' if roc is not None else '--report'} needs labels: give --labels LABELS "
                         f"(or 'img1 img2 label' lines)")
    loaded = load_face_exp(exp, checkpoint=checkpoint, device=device, impl=impl, command="asrkit verify")
    ds, index = open_pair_images(root, plist, channels=loaded.channels)
    loaded.check_images(ds, root)
    log.info(f"{loaded.describe()}; {len(plist)} pairs of {len(ds)} images")
    import torch

    with torch.no_grad(), log.progress() as bar:
        task = bar.add_task("embed", total=len(ds))
        scores = pair_scores(loaded.model, ds, index, batch_size=batch, device=loaded.device,
                             on_batch=lambda n: bar.advance(task, n)).tolist()
    rep = None
    if all(have):
        rep = verification_report(scores, [p.label for p in plist])
        if roc is not None:
            plot_roc(rep, roc, title=f"{exp.name} on {pairs.name}", label=exp.name)
        if report is not None:
            with atomic_write(report) as f:
                json.dump(rep.as_dict(), f, indent=2)
                f.write("\n")
    sys.stdout.writelines(f"{p.a} {p.b} {s:.6f}\n" for p, s in zip(plist, scores))
    sys.stdout.flush()
    if rep is not None:
        print(rep.format(), file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add the ``verify`` command."""
    app.command("verify", no_args_is_help=True)(verify_command)
