"""``asrkit audio info FILE|DATA``: rate, channels and duration of audio."""
from __future__ import annotations

from pathlib import Path

import typer

from asrkit import log

audio_app = typer.Typer(help="Inspect audio files and the audio of data dirs.", no_args_is_help=True)


@audio_app.command("info")
def info(
    target: str = typer.Argument(..., help="An audio file, a piped command ending in '|', or a data dir."),
) -> None:
    """Print 'id rate channels seconds format' per file (for a data dir: per
    wav.scp entry, then a total on stderr). Piped entries are run."""
    from asrkit.audio import info as audio_info

    p = Path(target)
    if p.is_dir():
        from asrkit.data.table import read_table

        wav = read_table(p / "wav.scp")
        total = 0.0
        rates: set[int] = set()
        for reco, src in wav.items():
            i = audio_info(src)
            total += i.duration
            rates.add(i.rate)
            typer.echo(f"{reco} {i.rate} {i.channels} {i.duration:.3f} {i.format}")
        log.info(f"{p}: {len(wav)} recordings, {total / 3600:.3f} h, rates {', '.join(map(str, sorted(rates)))} Hz")
        return
    i = audio_info(target)
    typer.echo(f"{target} {i.rate} {i.channels} {i.duration:.3f} {i.format}")


def register(app: typer.Typer) -> None:
    app.add_typer(audio_app, name="audio")
