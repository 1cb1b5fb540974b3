"""``asrkit align EXP FEATS --out DIR``: CTC forced alignment of known transcripts.

Thin: parse options, load the exp dir, align, write ``DIR/ali``,
``DIR/units.ctm`` and ``DIR/words.ctm``, print a one-line summary.
"""
from __future__ import annotations

from pathlib import Path

import typer

from asrkit import log
from asrkit.errors import InputError, UsageError


def align_command(
    exp: Path = typer.Argument(..., metavar="EXP", help="Exp dir written by 'asrkit train ctc'."),
    feats: Path = typer.Argument(..., metavar="FEATS", help="Feature store to align (asrkit featurize), with a text."),
    out: Path = typer.Option(..., "--out", metavar="DIR", help="Folder for ali, units.ctm and words.ctm."),
    text: Path | None = typer.Option(
        None, "--text", metavar="FILE", help="Transcripts (Kaldi text 'utt-id words...' or trn); default FEATS/text."
    ),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", metavar="NAME|FILE", help="best, last, epoch-N (in EXP/checkpoints) or a .pt file."
    ),
    batch_size: int = typer.Option(16, "--batch-size", metavar="N", help="Utterances per forward pass."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
    oov: str = typer.Option(
        "skip", "--oov", metavar="skip|error",
        help="Words the lexicon cannot spell: leave their utterances out with a warning (skip) or stop (error).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DIR's contents when another command made it."),
) -> None:
    """Forced alignment of each utterance's transcript with a CTC model.

    Writes DIR/ali (one label per feature frame: the units, 'sil' before the
    first unit and in long pauses between words; usable as FEATS/ali for
    'asrkit train frame'), DIR/units.ctm and DIR/words.ctm ('utt-id 1 start
    dur token', seconds).

    Example: asrkit align exp/phone feats/train --out exp/phone/ali_train && cp exp/phone/ali_train/ali feats/train/ali
    """
    from asrkit.data import FeatureStore
    from asrkit.decode import load_exp
    from asrkit.decode.align import align_store, write_alignments
    from asrkit.config import load_saved_config
    from asrkit.io import prepare_output_dir

    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if oov not in ("error", "skip"):
        raise UsageError(f"--oov must be error or skip, got '{oov}'")
    if not exp.is_dir():
        raise InputError(f"{exp}: no such exp dir")
    if load_saved_config(exp).get("task") == "frame":
        raise UsageError(f"{exp}: is a frame classifier (task: frame); align needs a CTC model "
                         f"('asrkit train ctc')")
    if not feats.is_dir():
        raise InputError(f"{feats}: no such feature store")
    store = FeatureStore(feats)
    prepare_output_dir(out, "align", overwrite, inputs=(exp, feats))
    loaded = load_exp(exp, checkpoint=checkpoint, device=device, task="ctc")
    log.info(f"{exp}: {loaded.checkpoint.name}, {loaded.units.kind} units, subsampling {loaded.subsampling}, "
             f"{loaded.device}; {len(store)} utterances in {feats}")
    skipped: list[str] = []
    shift = store.conf.get("frame_shift")
    with log.progress() as bar:
        task = bar.add_task("align", total=len(store))
        results = align_store(loaded, store, text=text, batch_size=batch_size, oov=oov, skipped=skipped,
                              on_utterance=lambda: bar.advance(task, 1))
        summary = write_alignments(results, out, frame_shift_ms=shift)
    if skipped:
        log.warn(f"{len(skipped)} utterance(s) left out (words the lexicon cannot spell), first '{skipped[0]}'; "
                 f"they have no line in {out}/ali")
    print(f"aligned {summary.utterances} utterances ({summary.frames} frames, {summary.units} units, "
          f"{summary.words} words, {100 * summary.sil_frames / max(1, summary.frames):.1f}% sil frames"
          f"{f', {len(skipped)} skipped' if skipped else ''}) -> {out}/ali, units.ctm, words.ctm")


def register(app: typer.Typer) -> None:
    """Add ``asrkit align``."""
    app.command("align", no_args_is_help=True)(align_command)
