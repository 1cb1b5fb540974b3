"""``asrkit corpus synth|tiny|asterisk|faces|fashion-mnist``: corpora that run anywhere."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from asrkit.errors import UsageError

_OVERWRITE_HELP = "Replace the output folder's contents when it is not empty and was not made by this command."

corpus_app = typer.Typer(
    help="Corpora asrkit brings along: synthesized speech with exact alignments, the embedded tiny corpus, "
    "the Asterisk prompts (real speech), procedurally drawn faces, and Fashion-MNIST as image folders.",
    no_args_is_help=True,
)


def _range(text: str, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise UsageError(f"{name} must be LOW:HIGH (e.g. 0.9:1.1), got '{text}'") from None
    return lo, hi


@corpus_app.command("synth")
def synth(
    text: Path = typer.Option(..., "--text", help="Text file, one sentence per line ('-' for stdin)."),
    out: Path = typer.Option(..., "--out", help="Data dir to write (a re-run resumes)."),
    voices: str = typer.Option(
        "kal16,awb,rms,slt", "--voices",
        help="Comma-separated voices: flite kal, kal16, awb, rms, slt; festival kal_diphone, ked_diphone, "
        "rab_diphone, cmu_us_slt_arctic_hts; espeak-ng English LANGUAGE[+VARIANT] (en-us, en-us+f3, en+m2, "
        "en-gb-scotland+klatt, ...); espeak-ng + MBROLA mb-us1, mb-us2, mb-us3, mb-en1.",
    ),
    num: Optional[int] = typer.Option(None, "--num", help="Use only the first N sentences."),
    start_index: int = typer.Option(0, "--start-index", help="Number utterances from this index (keeps splits apart)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
    variants: int = typer.Option(2, "--variants", help="Speakers per voice (each its own base rate and pitch)."),
    rate: str = typer.Option("0.9:1.1", "--rate", help="Speaking-rate factor range LOW:HIGH."),
    pitch: str = typer.Option("-2:2", "--pitch", help="Pitch shift range in semitones LOW:HIGH."),
    noise_snr: Optional[float] = typer.Option(None, "--noise-snr", help="Add white noise at this SNR (dB)."),
    audio_format: str = typer.Option("flac", "--format", help="Audio files: flac, wav or ogg."),
    sample_rate: int = typer.Option(
        16000, "--sample-rate", "--rate-hz",
        help="Sample rate of the audio and of ali's frames (8000: telephone band, as the Asterisk recipe's features).",
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel synthesizer processes."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Synthesize one utterance per sentence into a data dir with exact frame phone labels (ali).

    Example: asrkit corpus synth --text sentences.txt --out data/synth --voices slt,awb --jobs 2
    Example: asrkit corpus synth --text s.txt --out data/synth8k --voices mb-us1,en-us+f3,slt --sample-rate 8000
    """
    from asrkit import log
    from asrkit.corpora.synth import SynthOptions, synth_corpus

    options = SynthOptions(
        voices=[v.strip() for v in voices.split(",") if v.strip()],
        num=num,
        start_index=start_index,
        seed=seed,
        variants=variants,
        rate_range=_range(rate, "--rate"),
        pitch_range=_range(pitch, "--pitch"),
        noise_snr=noise_snr,
        audio_format=audio_format,
        sample_rate=sample_rate,
    )
    from asrkit.corpora.synth import check_voices
    from asrkit.io import prepare_output_dir

    options.check()  # bad options fail before the folder is touched
    check_voices(options.voices)
    prepare_output_dir(out, "corpus synth", overwrite, inputs=() if str(text) == "-" else (text,))
    r = synth_corpus(text, out, options, jobs=jobs)
    speed = f", {r.seconds / r.wall_seconds:.1f}x real time" if r.synthesized == r.utterances and r.wall_seconds > 0 else ""
    log.info(
        f"{r.out}: {r.utterances} utterances ({r.synthesized} new), {r.speakers} speakers, "
        f"{r.seconds / 3600:.3f} h ({r.seconds / 60:.1f} min){speed}"
        + (f"; {r.skipped_sentences} lines without words skipped" if r.skipped_sentences else "")
    )


@corpus_app.command("tiny")
def tiny(
    out: Path = typer.Argument(..., help="Folder to write train/, dev/, test/, audio/ and lm_text.txt into."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Write the embedded tiny corpus as ready data dirs (absolute wav.scp paths).

    Example: asrkit corpus tiny data/tiny
    """
    from asrkit import log
    from asrkit.corpora.tiny import write_tiny
    from asrkit.io import prepare_output_dir

    prepare_output_dir(out, "corpus tiny", overwrite)
    counts = write_tiny(out)
    log.info(f"{out}: " + ", ".join(f"{k} {v} utterances" for k, v in counts.items()) + ", lm_text.txt")


@corpus_app.command("asterisk")
def asterisk(
    out: Path = typer.Argument(..., help="Folder to write train/ and test/ into."),
    source: Optional[Path] = typer.Option(
        None, "--from", help="Folder where asterisk-core-sounds-en-wav and asterisk-core-sounds-en are unpacked."
    ),
    cache: Optional[Path] = typer.Option(
        None, "--cache", help="Where apt-get download unpacks the packages (default ~/.cache/asrkit/asterisk)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Build train/test data dirs from the Asterisk prompts (real speech, 8 kHz, CC-BY-SA-3.0).

    Example: asrkit corpus asterisk data/asterisk
    """
    from asrkit import log
    from asrkit.corpora.asterisk import build_asterisk
    from asrkit.io import prepare_output_dir

    if source is not None and not source.is_dir():
        from asrkit.errors import InputError

        raise InputError(f"{source}: no such folder")
    prepare_output_dir(out, "corpus asterisk", overwrite,
                       inputs=tuple(p for p in (source, cache) if p is not None))
    r = build_asterisk(out, source=source, cache=cache)
    log.info(
        f"{r.out}: train {r.train}, test {r.test} utterances, {r.seconds / 60:.1f} min at {r.sample_rate} Hz; "
        f"dropped {len(r.dropped_nonspeech)} non-speech, {len(r.missing_audio)} without audio, "
        f"{len(r.missing_transcript)} without transcript"
    )


def _default_jobs() -> int:
    import os

    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


@corpus_app.command("faces")
def faces(
    out: Path = typer.Argument(..., help="Folder to write train/, dev/ and verify/ into."),
    identities: int = typer.Option(500, "--identities", help="Training identities (dev has the same ones)."),
    per_identity: int = typer.Option(20, "--per-identity", help="Training images per identity."),
    dev_per_identity: int = typer.Option(5, "--dev-per-identity", help="Dev images per identity."),
    verify_identities: int = typer.Option(100, "--verify-identities",
                                          help="Verification identities, never seen in training."),
    verify_per_identity: int = typer.Option(10, "--verify-per-identity", help="Images per verification identity."),
    pairs: int = typer.Option(2000, "--pairs", help="Verification pairs, half of them of the same identity."),
    size: int = typer.Option(64, "--size", help="Image width and height in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice (the same seed, the same images)."),
    nuisance: float = typer.Option(1.0, "--nuisance", help="Scale of pose, lighting, occlusion and noise: 0 clean "
                                   "frontal faces, 1 the default, up to 1.5."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Drawing processes (default: the CPUs, at most 8)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Draw an identity set of synthetic faces: fixed traits per identity, new pose, light, occlusion, noise per image.

    Example: asrkit corpus faces data/faces --identities 500 --per-identity 20
    """
    from asrkit import log
    from asrkit.corpora.faces import FacesOptions, write_faces
    from asrkit.io import output_lock, prepare_output_dir
    from asrkit.workers import check_jobs

    options = FacesOptions(identities, per_identity, dev_per_identity, verify_identities, verify_per_identity,
                           pairs, size, seed, nuisance)
    options.check()  # bad options fail before the folder is touched
    jobs = _default_jobs() if jobs is None else jobs
    check_jobs(jobs)
    prepare_output_dir(out, "corpus faces", overwrite)
    with output_lock(out):
        r = write_faces(out, options, jobs=jobs)
    log.info(f"{r.out}: train {r.images['train']} images of {r.identities['train']} identities, dev "
             f"{r.images['dev']}, verify {r.images['verify']} images of {r.identities['verify']} unseen identities, "
             f"{r.pairs} pairs; {size}x{size}, {r.seconds:.1f} s with {jobs} process{'es' if jobs > 1 else ''}")


@corpus_app.command("fashion-mnist")
def fashion_mnist(
    out: Path = typer.Argument(..., help="Folder to write train/ and dev/ (the test split) into."),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="Training images per class (default: all 6000)."),
    dev_per_class: Optional[int] = typer.Option(None, "--dev-per-class",
                                                help="Dev images per class (default: all 1000)."),
    source: Optional[Path] = typer.Option(None, "--from", help="Folder of the idx files (default: where Debian's "
                                          "dataset-fashion-mnist puts them, /usr/share/datasets/fashion-mnist)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Write Fashion-MNIST (28x28 grayscale, 10 classes) as image folders, from Debian's dataset-fashion-mnist.

    Example: asrkit corpus fashion-mnist data/fashion --per-class 1000
    """
    from asrkit import log
    from asrkit.corpora.fashion_mnist import DEBIAN_DIR, INSTALL, write_fashion_mnist
    from asrkit.errors import InputError
    from asrkit.io import output_lock, prepare_output_dir

    src = source if source is not None else DEBIAN_DIR
    if not src.is_dir():  # before the output folder is touched
        what = "Fashion-MNIST is not installed" if source is None else "no such folder"
        raise InputError(f"{src}: {what}; {INSTALL}")
    for name, v in (("--per-class", per_class), ("--dev-per-class", dev_per_class)):
        if v is not None and v < 1:
            raise UsageError(f"{name} must be >= 1 (got {v})")
    prepare_output_dir(out, "corpus fashion-mnist", overwrite, inputs=(src,))
    with output_lock(out):
        r = write_fashion_mnist(out, per_class, dev_per_class, src)
    log.info(f"{r.out}: train {r.images['train']}, dev {r.images['dev']} images of 10 classes (28x28 grayscale), "
             f"{r.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    """Add the ``corpus`` command group."""
    app.add_typer(corpus_app, name="corpus")
