"""``asrkit transcribe EXP AUDIO...``: audio files straight to words.

Thin: name and check the inputs, compute their features into a temporary
feature store (:mod:`asrkit.pipeline.transcribe`), then run ``asrkit decode``
itself on that store (:func:`asrkit.cli.decode.decode_command`, every option
passed through), so transcribing and decoding can never disagree.
"""
from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import List, Optional

import typer

from asrkit import log
from asrkit.errors import InputError, UsageError

#: The formats transcribe writes (all of decode's; ctm and jsonl times need a CTC model).
FORMATS = ("text", "jsonl", "ctm", "trn")


def transcribe_command(
    exp: Path = typer.Argument(..., metavar="EXP", help="Exp dir of a trained model (asrkit train ctc / las / "
                                                        "transformer)."),
    audio: List[str] = typer.Argument(..., metavar="AUDIO...",
                                      help="Audio files (wav, flac, ogg, sph; any sample rate, any length); "
                                           "- reads one WAV from standard input."),
    features: Optional[Path] = typer.Option(
        None, "--features", metavar="FEATS_DIR|CONF.yaml",
        help="The feature config the model was trained on: the training feature store (its conf.yaml) or a "
             "config YAML. Default: EXP/features.yaml, else the default 80-bin fbank of 'asrkit featurize'.",
    ),
    cmvn_from: Optional[Path] = typer.Option(
        None, "--cmvn-from", metavar="FEATS_DIR",
        help="Models trained with global CMVN: normalize with this store's statistics (e.g. the training store) "
             "instead of those of the files given, so that a file's words do not depend on the other files.",
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", metavar="NAME|FILE",
                                   help="best, last, epoch-N (in EXP/checkpoints) or a .pt file."),
    fmt: Optional[str] = typer.Option(
        None, "--format", metavar="text|jsonl|ctm|trn",
        help="text: 'utt-id words'; jsonl: one JSON object per file (with 'times' per word for CTC models); "
             "ctm: 'utt-id 1 start dur word' per word (CTC models). Default: text, jsonl with --nbest.",
    ),
    beam: Optional[int] = typer.Option(None, "--beam", metavar="N",
                                       help="Beam search with N hypotheses (default: greedy; 20 with --lm)."),
    lm: Optional[Path] = typer.Option(None, "--lm", metavar="LM.arpa|LM.bin|LM_EXP",
                                      help="Word n-gram LM fused into the beam search (as asrkit decode --lm); a "
                                           "phone model needs one to write words."),
    lm_weight: Optional[float] = typer.Option(None, "--lm-weight", metavar="A", help="As asrkit decode."),
    word_bonus: Optional[float] = typer.Option(None, "--word-bonus", metavar="B", help="As asrkit decode."),
    lexicon: Optional[Path] = typer.Option(None, "--lexicon", metavar="FILE", help="As asrkit decode."),
    extra_lexicon: Optional[Path] = typer.Option(None, "--extra-lexicon", metavar="FILE", help="As asrkit decode."),
    backend: Optional[str] = typer.Option(None, "--backend", metavar="flashlight|pyctcdecode|plain",
                                          help="As asrkit decode."),
    nbest: Optional[int] = typer.Option(None, "--nbest", metavar="N", help="As asrkit decode (jsonl)."),
    ctc_weight: Optional[float] = typer.Option(None, "--ctc-weight", metavar="W",
                                               help="Attention models, as asrkit decode."),
    length_bonus: Optional[float] = typer.Option(None, "--length-bonus", metavar="B",
                                                 help="Attention models, as asrkit decode."),
    length_norm: bool = typer.Option(False, "--length-norm", help="Attention models, as asrkit decode."),
    max_len_ratio: Optional[float] = typer.Option(None, "--max-len-ratio", metavar="R",
                                                  help="Attention models, as asrkit decode."),
    chunk_seconds: Optional[float] = typer.Option(
        None, "--chunk-seconds", metavar="S",
        help="Files longer than S seconds go through the model in pieces of at most S seconds cut at pauses "
             "(default 20; 0: whole files), as asrkit decode.",
    ),
    batch_size: int = typer.Option(16, "--batch-size", metavar="N", help="Files per forward pass."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
    impl: Optional[str] = typer.Option(None, "--impl", metavar="scratch|native",
                                       help="Layer implementation (default: the one it was trained with)."),
    jobs: int = typer.Option(1, "--jobs", "-j", metavar="J", help="Worker processes for the CTC search."),
) -> None:
    """Words of audio files, with a trained model: features, long-form chunking and the decoder of
    'asrkit decode', without a data dir or a feature store.

    One line per file on stdout in utterance-id order; the id is the file's stem (a stem met again gets -2, -3, ...; 'stdin' for -).

    asrkit transcribe exp/ctc talk.wav interview.flac

    asrkit transcribe exp/ctc talk.wav --beam 20 --lm exp/lm3.arpa --format ctm > talk.ctm

    sox in.mp3 -t wav - | asrkit transcribe exp/ctc - --features feats/train
    """
    from asrkit.config import load_saved_config
    from asrkit.pipeline.transcribe import (audio_inputs, check_inputs, exp_feature_config, featurize_inputs,
                                            read_global_cmvn, read_stdin, use_global_cmvn)

    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if not exp.is_dir():
        raise UsageError(f"{exp}: no such exp dir")
    config = load_saved_config(exp)  # one line when EXP has no readable config
    units_kind = (config.get("units") or {}).get("kind")
    conf, said = exp_feature_config(exp, features, (config.get("model") or {}).get("input_dim"))
    cmvn = (config.get("data") or {}).get("cmvn", "global")
    if cmvn_from is not None and cmvn != "global":
        raise UsageError(f"--cmvn-from replaces global CMVN statistics; {exp} was trained with data.cmvn: {cmvn}")
    stats = read_global_cmvn(cmvn_from) if cmvn_from is not None else None
    if stats is not None and stats[1].shape[0] != conf.dim:
        raise UsageError(f"--cmvn-from {cmvn_from}: its statistics are {stats[1].shape[0]}-dim, the model's "
                         f"features {conf.dim}-dim; give the store the model was trained on")
    with tempfile.TemporaryDirectory(prefix="asrkit-transcribe-") as tmp:
        stdin_path = str(Path(tmp) / "stdin.wav")
        inputs, notes = audio_inputs(audio, stdin_path)
        if any(i.path == stdin_path for i in inputs):
            import sys

            if sys.stdin is None or sys.stdin.isatty():
                raise UsageError("- reads audio from standard input, which is a terminal; pipe the audio in "
                                 "(sox in.mp3 -t wav - | asrkit transcribe EXP -)")
            read_stdin(stdin_path)
        problems = check_inputs(inputs, conf)
        if problems:
            _refuse(problems)
        log.info(f"features: {said}")
        for note in notes:
            log.info(note)
        feats = Path(tmp) / "feats"
        with log.progress() as bar:
            task = bar.add_task("features", total=len(inputs))
            featurize_inputs(inputs, conf, feats, on_input=lambda _s: bar.advance(task, 1))
        if stats is not None:
            use_global_cmvn(feats, stats, cmvn_from)
        if units_kind == "phone" and lm is None:
            log.warn(f"{exp} is a phone model: without --lm it writes phones; give a word LM (--lm LM.arpa) "
                     f"for words")
        _decode(exp=exp, feats=feats, checkpoint=checkpoint, fmt=fmt, beam=beam, lm=lm, lm_weight=lm_weight,
                word_bonus=word_bonus, lexicon=lexicon, extra_lexicon=extra_lexicon, backend=backend, nbest=nbest,
                ctc_weight=ctc_weight, length_bonus=length_bonus, length_norm=length_norm,
                max_len_ratio=max_len_ratio, chunk_seconds=chunk_seconds, batch_size=batch_size, device=device,
                impl=impl, jobs=jobs)


def _refuse(problems: list[str]) -> None:
    """One red line per bad input (the last one as the command's error), exit status 1."""
    from rich.markup import escape

    for line in problems[:-1]:
        log.console.print(f"[red]asrkit: {escape(line)}[/red]", highlight=False, soft_wrap=True)
    raise InputError(problems[-1])


def _decode(**given) -> None:
    """``asrkit decode`` with the options ``given``; every other option at its command-line default."""
    from asrkit.cli.decode import decode_command

    kwargs = {}
    for name, p in inspect.signature(decode_command).parameters.items():
        if name in given:
            kwargs[name] = given[name]
        else:
            kwargs[name] = getattr(p.default, "default", p.default)  # typer's OptionInfo -> its default
    decode_command(**kwargs)


def register(app: typer.Typer) -> None:
    """Add ``asrkit transcribe``."""
    app.command("transcribe", no_args_is_help=True)(transcribe_command)
