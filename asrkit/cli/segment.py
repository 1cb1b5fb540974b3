"""``asrkit segment DATA_IN DATA_OUT``: long recordings cut at pauses into a segmented data dir.

Thin: parse, call :func:`asrkit.pipeline.segment.segment_datadir`, report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from asrkit import log


def segment_command(
    data: Path = typer.Argument(..., metavar="DATA_IN", help="Data dir of whole recordings (wav.scp, utt2spk)."),
    out: Path = typer.Argument(..., metavar="DATA_OUT", help="Segmented data dir to write (segments, utt2spk, "
                                                            "spk2utt, wav.scp, utt2dur)."),
    max_seconds: float = typer.Option(20.0, "--max-seconds", metavar="S",
                                      help="Longer speech stretches are cut at their quietest points."),
    min_seconds: float = typer.Option(0.3, "--min-seconds", metavar="S",
                                      help="Shorter speech stretches (clicks, breaths) are left out."),
    min_silence: float = typer.Option(0.3, "--min-silence", metavar="S",
                                      help="A pause this long or longer separates two segments."),
    padding: float = typer.Option(0.1, "--padding", metavar="S",
                                  help="Seconds of context kept on each side of a segment (never into the next)."),
    threshold: float = typer.Option(0.3, "--threshold", metavar="F",
                                    help="Energy: a frame is speech above floor + F x (peak - floor) of the "
                                         "recording's loudness (0..1)."),
    exp: Optional[Path] = typer.Option(None, "--exp", metavar="EXP",
                                       help="Find the speech with this CTC model's blank posteriors instead of "
                                            "the energy."),
    features: Optional[Path] = typer.Option(None, "--features", metavar="FEATS_DIR|CONF.yaml",
                                            help="With --exp: the feature config it was trained on (as asrkit "
                                                 "transcribe)."),
    checkpoint: str = typer.Option("best", "--checkpoint", metavar="NAME|FILE", help="With --exp: which checkpoint."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="With --exp: where it runs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DATA_OUT even if another command made it."),
) -> None:
    """Cut the recordings of a data dir at pauses: a data dir with a Kaldi segments file that 'asrkit featurize' reads.

    The input's text is split between the segments with --exp (by the model's forced alignment of each recording's transcript); without --exp it is not carried over.

    asrkit segment data/talks data/talks_seg --max-seconds 15

    asrkit segment data/talks data/talks_seg --exp exp/ctc --features feats/train
    """
    from asrkit.errors import UsageError
    from asrkit.pipeline.segment import SegmentOptions, segment_datadir

    opts = SegmentOptions(max_seconds=max_seconds, min_seconds=min_seconds, min_silence=min_silence,
                          padding=padding, threshold=threshold).check()
    loaded, conf = None, None
    if exp is None:
        if features is not None:
            raise UsageError("--features gives the feature config of --exp; the energy measure needs none")
    else:
        from asrkit.config import load_saved_config
        from asrkit.decode.exp import load_exp
        from asrkit.pipeline.transcribe import exp_feature_config

        config = load_saved_config(exp)
        conf, said = exp_feature_config(exp, features, (config.get("model") or {}).get("input_dim"))
        loaded = load_exp(exp, checkpoint=checkpoint, device=device, task="ctc")
        log.info(f"features: {said}")
    with log.progress() as bar:
        task = bar.add_task("segment", total=None)
        res = segment_datadir(data, out, opts, exp=loaded, conf=conf, overwrite=overwrite,
                              on_recording=lambda: bar.advance(task, 1))
    log.info(f"{out}: {res['segments']} segments ({res['seconds']:.1f} s of speech) from {res['recordings']} "
             f"recording(s)" + (f"; {res['empty']} without speech" if res["empty"] else ""))
    if res["text"] == "dropped":
        log.info(f"{data}/text not carried over: the segments' words are unknown without an alignment "
                 f"(--exp EXP splits it by a forced alignment)")
    elif res["text"] == "split":
        log.info(f"{data}/text split between the segments by {exp}'s forced alignment"
                 + (f"; {res['no_words']} segment(s) without words left out" if res["no_words"] else ""))


def register(app: typer.Typer) -> None:
    """Add ``asrkit segment``."""
    app.command("segment", no_args_is_help=True)(segment_command)
