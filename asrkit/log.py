"""Process-wide console, quiet flag and progress bars.

stdout carries only results; everything a person reads while a command runs
(progress, info) goes to stderr through :data:`console` and is silenced by
``asrkit -q``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

class _StderrConsole(Console):
    """rich's console on stderr that hard-wraps only on a terminal: redirected
    to a file or a pipe, every message stays one line (grep-able logs)."""

    @property
    def soft_wrap(self) -> bool:  # read by Console.print when soft_wrap=None
        return self._soft_wrap or not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        self._soft_wrap = value


console = _StderrConsole(stderr=True)
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def info(message: str) -> None:
    """Print an informational line on stderr unless ``-q`` was given."""
    if not _quiet:
        console.print(message, highlight=False)


def warn(message: str) -> None:
    """Print a warning on stderr (even with ``-q``: warnings are not progress)."""
    console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)


@contextmanager
def progress(*extra_columns, transient: bool = False) -> Iterator[Progress]:
    """A rich progress bar on stderr, disabled by ``-q`` (and when not a terminal
    rich only prints the final state)."""
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, disable=_quiet, transient=transient) as bar:
        yield bar
