"""Small file helpers shared by every command: atomic writes and strict
line reading with file:line error messages."""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

from asrkit.errors import InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write ``path`` through a temporary file in the same folder, renamed into
    place only when the block finishes without an exception. An interrupted
    write never leaves a file that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def display_name(path: str | os.PathLike) -> str:
    return "<stdin>" if str(path) == "-" else str(path)


def read_text(path: str | os.PathLike) -> str:
    """Read a whole UTF-8 text file (``-`` is stdin). Missing/unreadable files
    and invalid UTF-8 raise :class:`InputError` naming the file and line."""
    name = display_name(path)
    f, _ = open_binary(path)
    try:
        data = f.read()
    except OSError as e:
        raise InputError(f"{name}: read error: {e.strerror}") from None
    finally:
        if f is not getattr(sys.stdin, "buffer", None):
            f.close()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{name}:{line}: invalid UTF-8 (byte {e.start})") from None


def open_binary(path: str | os.PathLike) -> tuple[IO[bytes], int | None]:
    """Open ``path`` (``-`` = stdin) for binary reading; returns the file and
    its size in bytes (None for stdin). Missing or unreadable files raise
    :class:`InputError` naming the file."""
    name = display_name(path)
    if str(path) == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise InputError("<stdin>: stdin is closed; give a file path instead of '-'")
        return sys.stdin.buffer, None
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, expected a file") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read: {e.strerror}") from None
    try:
        size: int | None = os.fstat(f.fileno()).st_size
    except OSError:
        size = None
    return f, size


def iter_lines(
    path: str | os.PathLike, progress: Callable[[int, int | None], None] | None = None
) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, stripped_line)`` for the non-blank lines of a UTF-8
    text file (``-`` for stdin), reading it as a stream (memory stays flat).

    Invalid UTF-8 raises :class:`InputError` naming the file and line.
    ``progress(bytes_read, total_bytes_or_None)`` is called every 16384 lines
    and once at the end, for a progress bar.
    """
    name = display_name(path)
    f, size = open_binary(path)
    done = 0
    try:
        for lineno, raw in enumerate(f, start=1):
            done += len(raw)
            if progress is not None and lineno & 0x3FFF == 0:
                progress(done, size)
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise InputError(f"{name}:{lineno}: invalid UTF-8 (byte {e.start} of the line)") from None
            if line:
                yield lineno, line
        if progress is not None:
            progress(done, size)
    except OSError as e:
        raise InputError(f"{name}: read error: {e.strerror}") from None
    finally:
        if f is not getattr(sys.stdin, "buffer", None):
            f.close()
