"""``asrkit data import|validate|subset|combine``: Kaldi-style data dirs."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from asrkit import log
from asrkit.errors import DataError, UsageError

data_app = typer.Typer(help="Kaldi-style data dirs: import corpora, validate, subset, combine.",
                       no_args_is_help=True)


@data_app.command("import")
def import_(
    format: str = typer.Argument(..., help="wsj | librispeech | kaggle-11785 | folder"),
    src: Path = typer.Argument(..., help="The corpus folder as it comes off the disk."),
    dst: Path = typer.Argument(..., help="Where to write the data dir(s)."),
    drop_noise: bool = typer.Option(False, "--drop-noise", help="wsj: drop noise markers like [loud_breath]."),
) -> None:
    """Import a corpus into data dirs (one per split); prints the dirs written."""
    from asrkit.corpora.importers import import_corpus

    opts = {"drop_noise": drop_noise} if format == "wsj" else {}
    if drop_noise and format != "wsj":
        raise UsageError("--drop-noise applies to the wsj format only")
    written = import_corpus(format, src, dst, **opts)
    for name, path in written.items():
        n = sum(1 for _ in open(path / "utt2spk", encoding="utf-8"))
        log.info(f"{name}: {n} utterances")
        typer.echo(str(path))


@data_app.command("validate")
def validate(
    dir: Path = typer.Argument(..., help="Data dir to check."),
    fix: Optional[Path] = typer.Option(None, "--fix", help="Write a consistent copy here, dropping bad utterances."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Skip opening the audio files."),
) -> None:
    """Check a data dir like Kaldi's validate_data_dir.sh. Problems go to
    stdout, one per line; exit 1 when there are any (0 with --fix once the
    copy is written; the dropped utterances are listed)."""
    from asrkit.data import fix as fix_dir
    from asrkit.data import validate as check

    if fix is not None:
        new, dropped = fix_dir(dir, fix, check_audio=not no_audio)
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


def _read_list(value: str) -> list[str]:
    p = Path(value)
    if p.is_file():
        from asrkit.io import iter_lines

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
        ids = _read_list(str(utt_list))
        missing = [u for u in ids if u not in d]
        if missing:
            raise DataError(f"{utt_list}: {len(missing)} id(s) not in {dir} (e.g. '{missing[0]}')")
        s = d.subset(ids)
    s.save(out)
    log.info(f"{out}: {len(s)} of {len(d)} utterances")


@data_app.command("combine")
def combine(
    out: Path = typer.Argument(..., help="Data dir to write."),
    dirs: List[Path] = typer.Argument(..., help="Data dirs to combine."),
) -> None:
    """Combine data dirs into one (Kaldi's combine_data.sh); a file is kept
    only if every input has it."""
    from asrkit.data import DataDir

    if out in dirs:
        raise UsageError(f"{out} is also an input")
    c = DataDir.combine(DataDir.load(d) for d in dirs)
    c.save(out)
    log.info(f"{out}: {len(c)} utterances from {len(dirs)} dirs")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
