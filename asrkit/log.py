"""Process-wide console, quiet flag and progress bars.

stdout carries only results; everything a person reads while a command runs
(progress, info) goes to stderr through :data:`console` and is silenced by
``asrkit -q``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

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


_forward: Callable[[str, str], None] | None = None


def forward_to(send: Callable[[str, str], None] | None) -> None:
    """In a worker process: hand each :func:`info` and :func:`warn` line to
    ``send(kind, message)`` (kind ``"info"`` or ``"warn"``) instead of
    printing it, for the parent to print with :func:`relay` (under its
    progress bar, which a worker's own print would break)."""
    global _forward
    _forward = send


def relay(kind: str, message: str) -> None:
    """Print a line a worker forwarded (see :func:`forward_to`)."""
    (warn if kind == "warn" else info)(message)


def info(message: str) -> None:
    """Print an informational line on stderr unless ``-q`` was given."""
    if _quiet:
        return
    if _forward is not None:
        _forward("info", message)
    else:
        console.print(message, highlight=False)


def warn(message: str) -> None:
    """Print a warning on stderr (even with ``-q``: warnings are not progress)."""
    if _forward is not None:
        _forward("warn", message)
    else:
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
