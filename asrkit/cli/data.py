"""``asrkit data import|validate|subset|combine|split|augment``: Kaldi-style data dirs.

Every command that writes a folder follows :func:`asrkit.io.prepare_output_dir`:
a non-empty folder it did not make is refused unless ``--overwrite``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer

from asrkit import log
from asrkit.errors import DataError, InputError, UsageError

data_app = typer.Typer(help="Kaldi-style data dirs: import corpora, validate, subset, combine, split, augment.",
                       no_args_is_help=True)

_OVERWRITE_HELP = "Replace the output folder's contents when it is not empty and was not made by this command."


def _need_dir(path: Path) -> None:
    if not path.is_dir():
        raise InputError(f"{path}: no such data dir")


@data_app.command("import")
def import_(
    format: str = typer.Argument(..., help="wsj | librispeech | kaggle-11785 | folder (data dirs); faces-11785 | "
                                 "lfw | image-folder (image folders in the faces layout)"),
    src: Path = typer.Argument(..., help="The corpus folder as it comes off the disk."),
    dst: Path = typer.Argument(..., help="Where to write the data dir(s)."),
    drop_noise: bool = typer.Option(False, "--drop-noise", help="wsj: drop noise markers like \\[loud_breath]."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Import a corpus into data dirs (one per split), or a face corpus into image folders (train/, dev/,
    test/, verify/ with pairs.txt); prints the folders written."""
    from asrkit.corpora.importers import FORMATS, IMAGE_FORMATS, import_corpus
    from asrkit.io import prepare_output_dir

    opts = {"drop_noise": drop_noise} if format == "wsj" else {}
    if drop_noise and format != "wsj":
        raise UsageError("--drop-noise applies to the wsj format only")
    if format not in FORMATS and format != "kaggle_11785":
        raise UsageError(f"unknown corpus format '{format}' (use one of {', '.join(FORMATS)})")
    if not src.is_dir():
        raise InputError(f"{src}: no such corpus folder")
    prepare_output_dir(dst, "data import", overwrite, inputs=(src,))
    written = import_corpus(format, src, dst, **opts)
    for name, path in written.items():
        if format in IMAGE_FORMATS:
            log.info(f"{name}: {_image_summary(path)}")
        else:
            n = sum(1 for _ in open(path / "utt2spk", encoding="utf-8"))
            log.info(f"{name}: {n} utterances")
        typer.echo(str(path))


def _image_summary(folder: Path) -> str:
    """``"1200 images of 40 classes"`` / ``"300 images, 600 pairs"`` for an imported image folder."""
    import os

    from asrkit.data.images import is_image_name

    n = sum(1 for _, _, files in os.walk(folder, followlinks=True) for f in files if is_image_name(f))
    if (folder / "pairs.txt").is_file():
        pairs = sum(1 for line in open(folder / "pairs.txt", encoding="utf-8") if line.strip())
        return f"{n} images, {pairs} pairs"
    classes = sum(1 for e in os.scandir(folder) if e.is_dir())
    return f"{n} images" + (f" of {classes} classes" if classes else "")


@data_app.command("validate")
def validate(
    dir: Path = typer.Argument(..., help="Data dir to check."),
    fix: Optional[Path] = typer.Option(None, "--fix", help="Write a consistent copy here, dropping bad utterances."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Skip opening the audio files."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Check a data dir like Kaldi's validate_data_dir.sh. Problems go to
    stdout, one per line; exit 1 when there are any (0 with --fix once the
    copy is written; the dropped utterances are listed)."""
    from asrkit.data import fix as fix_dir
    from asrkit.data import validate as check
    _need_dir(dir)
    if fix is not None:  # fix_dir checks the output folder before any work
        new, dropped = fix_dir(dir, fix, check_audio=not no_audio, command="data validate --fix",
                               overwrite=overwrite)
        for p in dropped:
            typer.echo(f"dropped {p.utt}: {p}")
        log.info(f"{fix}: {len(new)} utterances written, {len({p.utt for p in dropped})} dropped")
        return
    problems = check(dir, check_audio=not no_audio)
    for p in problems:
        typer.echo(f"{dir}/{p}")
    if problems:
        raise DataError(f"{dir}: {len(problems)} problem(s); 'asrkit data validate {dir} --fix OUTDIR' "
                        f"writes a consistent copy")
    from asrkit.data import DataDir

    d = DataDir.load(dir)
    log.info(f"{dir}: ok ({len(d)} utterances, {len(d.spk2utt)} speakers)")


def _read_list(value: str, file_only: bool = False) -> list[str]:
    """Ids from a file (one or more a line), or, unless ``file_only``, a
    comma list when no such file exists."""
    from asrkit.io import iter_lines

    p = Path(value)
    if file_only or p.is_file():
        return [w for _, line in iter_lines(p) for w in line.split()]
    return [s for s in value.replace(",", " ").split() if s]


@data_app.command("subset")
def subset(
    dir: Path = typer.Argument(..., help="Data dir to take from."),
    out: Path = typer.Argument(..., help="Data dir to write."),
    first: Optional[int] = typer.Option(None, "--first", help="The first N utterances (sorted)."),
    speakers: Optional[str] = typer.Option(None, "--speakers", help="Speakers: a file of ids or a comma list."),
    shortest: Optional[int] = typer.Option(None, "--shortest", help="The N shortest utterances."),
    utt_list: Optional[Path] = typer.Option(None, "--utt-list", help="A file of utterance ids."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """A subset of a data dir (Kaldi's subset_data_dir.sh)."""
    from asrkit.data import DataDir

    chosen = [x is not None for x in (first, speakers, shortest, utt_list)]
    if sum(chosen) != 1:
        raise UsageError("give exactly one of --first N, --speakers LIST, --shortest N, --utt-list FILE")
    d = DataDir.load(dir)
    if first is not None:
        if first < 1:
            raise UsageError("--first must be >= 1")
        s = d.first(first)
    elif shortest is not None:
        if shortest < 1:
            raise UsageError("--shortest must be >= 1")
        s = d.shortest(shortest)
    elif speakers is not None:
        s = d.speakers(_read_list(speakers))
    else:
        ids = _read_list(str(utt_list), file_only=True)
        missing = [u for u in ids if u not in d]
        if missing:
            raise DataError(f"{utt_list}: {len(missing)} id(s) not in {dir} (e.g. '{missing[0]}')")
        s = d.subset(ids)
    s.save_output(out, "data subset", overwrite, inputs=(dir,))
    log.info(f"{out}: {len(s)} of {len(d)} utterances")


@data_app.command("combine")
def combine(
    out: Path = typer.Argument(..., help="Data dir to write."),
    dirs: List[Path] = typer.Argument(..., help="Data dirs to combine."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Combine data dirs into one (Kaldi's combine_data.sh); a file is kept
    only if every input has it."""
    from asrkit.data import DataDir

    if out in dirs:
        raise UsageError(f"{out} is also an input")
    c = DataDir.combine(DataDir.load(d) for d in dirs)
    c.save_output(out, "data combine", overwrite, inputs=tuple(dirs))
    log.info(f"{out}: {len(c)} utterances from {len(dirs)} dirs")


def _parse_dev(text: str) -> int | float:
    t = text.strip()
    try:
        if t.endswith("%"):
            v = float(t[:-1])
            if not 0.0 < v < 100.0:
                raise ValueError
            return v / 100.0
        v = int(t)
        if v < 1:
            raise ValueError
        return v
    except ValueError:
        raise UsageError(f"--dev must be a percentage like 10% or a number of utterances >= 1, got '{text}'") from None


@data_app.command("split")
def split(
    dir: Path = typer.Argument(..., help="Data dir to split."),
    dev: str = typer.Option(..., "--dev", help="Size of the dev part: a percentage (10%) or a number of utterances."),
    out: Tuple[Path, Path] = typer.Option(..., "--out", help="The two data dirs to write: TRAIN_DIR DEV_DIR."),
    by_speaker: bool = typer.Option(False, "--by-speaker", help="Keep each speaker's utterances on one side."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random choice (same seed, same split)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Split a data dir into train and dev parts, every table following its
    utterances. Example: asrkit data split data/train --dev 10% --by-speaker --out data/tr data/cv"""
    from asrkit.data import DataDir
    from asrkit.io import check_output_dir

    train_dir, dev_dir = out
    if train_dir.resolve() == dev_dir.resolve():
        raise UsageError(f"--out: train and dev must be two folders (got {train_dir} twice)")
    size = _parse_dev(dev)
    d = DataDir.load(dir)
    tr, dv = d.split(size, by_speaker=by_speaker, seed=seed)
    for o in out:  # refuse before writing either
        check_output_dir(o, "data split", overwrite, inputs=(dir,))
    tr.save_output(train_dir, "data split", overwrite, inputs=(dir,))
    dv.save_output(dev_dir, "data split", overwrite, inputs=(dir,))
    log.info(f"{train_dir}: {len(tr)} utterances, {dev_dir}: {len(dv)} utterances"
             + (f" ({len(dv.spk2utt)} speakers)" if by_speaker else ""))


def _numbers(option: str, text: str, count: int | None = None, kind=float) -> tuple:
    """``"0.9,1.0,1.1"`` -> floats (``kind``); ``count`` 2 takes ``LO,HI`` or one value for both."""
    try:
        vals = tuple(kind(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        vals = ()
    if count == 2 and len(vals) == 1:
        vals = vals * 2
    if not vals or (count is not None and len(vals) != count):
        want = "LO,HI (or one value)" if count == 2 else "a comma list of numbers"
        raise UsageError(f"{option}: want {want}, got '{text}'")
    return vals


@data_app.command("augment")
def augment(
    dir: Path = typer.Argument(..., help="Data dir to augment."),
    out: Path = typer.Argument(..., help="Data dir to write (audio under OUT/wav/)."),
    speed: Optional[str] = typer.Option(None, "--speed", help="Speed factors, e.g. 0.9,1.0,1.1 (Kaldi's speed "
                                        "perturbation; ids get an spF- prefix, 1.0 keeps the speed)."),
    noise: Optional[List[str]] = typer.Option(None, "--noise", help="Noise to add: a folder of audio, a list file "
                                              "(paths or wav.scp lines), a data dir, or white | pink | babble "
                                              "(babble: other utterances of DIR). Repeat to draw from several."),
    snr: str = typer.Option("5,20", "--snr", help="SNR range in dB, LO,HI (one value: fixed)."),
    babble_talkers: str = typer.Option("3,7", "--babble-talkers", help="How many other utterances make babble, LO,HI."),
    rir: Optional[str] = typer.Option(None, "--rir", help="Reverberation: 'simulate' (exponentially decaying "
                                      "RIRs), or a folder / list / data dir of room impulse responses."),
    rt60: str = typer.Option("0.2,0.8", "--rt60", help="RT60 range of simulated RIRs in seconds, LO,HI."),
    drr: str = typer.Option("0,10", "--drr", help="Direct-to-reverberant ratio range of simulated RIRs in dB, LO,HI."),
    telephone: Optional[str] = typer.Option(None, "--telephone", help="Telephone channel (300-3400 Hz at 8 kHz) "
                                            "with codec mulaw | gsm | none; a comma list draws one per utterance."),
    copies: int = typer.Option(1, "--copies", help="Augmented copies of each utterance (per speed factor; with "
                               "--each, per augmentation)."),
    each: bool = typer.Option(False, "--each", help="A copy per augmentation (rev, noise, tel) instead of every "
                              "copy getting all of them."),
    keep_original: bool = typer.Option(False, "--keep-original", help="Keep the original utterances too."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice (same seed, same audio)."),
    audio_format: str = typer.Option("wav", "--format", help="Audio files to write: wav | flac (16-bit)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Threads."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """Augment a data dir: speed perturbation, additive noise, reverberation, a telephone channel.
    Writes the changed audio as 16-bit WAV (or FLAC) under OUT/wav/ and every table with new ids.
    Example: asrkit data augment data/train data/train_aug --speed 0.9,1.0,1.1 --noise babble --snr 10,20"""
    from asrkit.data.augment import AugmentOptions, augment_dir

    _need_dir(dir)
    opts = AugmentOptions(
        speeds=_numbers("--speed", speed) if speed is not None else (1.0,),
        noise=tuple(noise or ()),
        snr=_numbers("--snr", snr, 2),
        babble_talkers=_numbers("--babble-talkers", babble_talkers, 2, int),
        rir=rir,
        rt60=_numbers("--rt60", rt60, 2),
        drr=_numbers("--drr", drr, 2),
        telephone=tuple(t for t in (telephone or "").replace(" ", "").split(",") if t),
        copies=copies, each=each, keep_original=keep_original, seed=seed, jobs=jobs, audio_format=audio_format,
    )
    if telephone is not None and not opts.telephone:
        raise UsageError("--telephone: give a codec (mulaw, gsm or none)")
    new = augment_dir(dir, out, opts, overwrite=overwrite)
    hours = sum(new.utt2dur.values()) / 3600 if new.utt2dur else 0.0
    log.info(f"{out}: {len(new)} utterances, {hours:.3f} h")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
