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
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", *,
                 fsync: bool = True) -> Iterator[IO]:
    """Write ``path`` through a temporary file in the same folder, renamed into
    place only when the block finishes without an exception. An interrupted
    write never leaves a file that looks complete. ``fsync=False`` skips
    flushing it to the disk before the rename (a few ms each): only for files
    whose loss in a power cut a later check notices (the feature store's
    shard files, checked against their done-marker)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            if fsync:
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
        return data.decode("utf-8-sig")  # a leading byte-order mark is dropped
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

    Invalid UTF-8 raises :class:`InputError` naming the file and line. A
    UTF-8 byte-order mark at the start of the file is dropped (editors on
    Windows write one; it must not become part of the first id or word).
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
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").strip()
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


# ------------------------------------------------------------ output folders
MARKER = ".asrkit"
LOCK = ".lock"
PREPARE_LOCK = ".lock.prepare"  # taken while a run takes LOCK and prepares the folder (output_lock)
_BOOKKEEPING = (MARKER, LOCK, PREPARE_LOCK)


def os_error_line(path: str | os.PathLike, e: OSError) -> str:
    """One line for an OSError met while writing ``path``."""
    import errno

    if e.errno == errno.ENOSPC:
        what = "no space left on the device"
    elif e.errno == errno.EDQUOT:
        what = "disk quota exceeded"
    elif e.errno in (errno.EACCES, errno.EPERM):
        what = "permission denied"
    elif e.errno == errno.EROFS:
        what = "read-only file system"
    elif e.errno == errno.ENOTDIR:
        what = "a part of the path is a regular file, not a folder"
    else:
        what = e.strerror or str(e)
    where = e.filename if e.filename and str(e.filename) != str(path) else None
    return f"{path}: cannot write: {what}" + (f" ({where})" if where else "")


def read_marker(path: str | os.PathLike) -> dict | None:
    """The ``.asrkit`` marker of a folder asrkit made (command, version,
    created), or None when it has none or it is unreadable."""
    import yaml

    try:
        m = yaml.safe_load((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return m if isinstance(m, dict) else None


def write_marker(path: str | os.PathLike, command: str) -> None:
    """Say in ``path/.asrkit`` which command made the folder."""
    import datetime

    import yaml

    from asrkit import __version__

    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    with atomic_write(Path(path) / MARKER) as f:
        yaml.safe_dump({"command": command, "version": __version__, "created": created}, f, sort_keys=False)


def _stale_marker_tmp(name: str) -> bool:
    """A temporary file of :func:`write_marker` left by a run killed while it wrote the marker."""
    return name.startswith(f".{MARKER}.") and name.endswith(".tmp")


def _user_entries(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.name not in _BOOKKEEPING and not _stale_marker_tmp(p.name)]


def _is_within(inner: Path, outer: Path) -> bool:
    try:
        inner.relative_to(outer)
        return True
    except ValueError:
        return False


def check_output_dir(path: str | os.PathLike, command: str, overwrite: bool = False,
                     inputs: tuple = ()) -> bool:
    """The rule for every folder a command writes, checked without changing
    anything. Returns True when the folder holds something to replace
    (``--overwrite`` given), False when it is missing, empty or this
    command's own output (to resume or redo).

    Raises :class:`~asrkit.errors.UsageError` for a non-empty folder that
    ``command`` did not make (without ``overwrite``), and for an output that
    is, or holds, one of ``inputs``; :class:`~asrkit.errors.OutputError` for
    a path that is a regular file or lies under one."""
    from asrkit.errors import OutputError, UsageError

    p = Path(path)
    real = p.resolve()
    for src in inputs:
        s = Path(src).resolve()
        if _is_within(s, real):
            what = "is" if s == real else "holds"
            raise UsageError(f"{p}: the output folder {what} the input {src}; write to another folder")
    if real == Path(real.anchor) or real == Path.home().resolve() or _is_within(Path.cwd().resolve(), real):
        if overwrite or (p.exists() and any(True for _ in p.iterdir())):
            raise UsageError(f"{p}: will not write into the root, home or current folder; name a new folder")
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            where = "is a regular file" if q == p else f"lies under the regular file {q}"
            raise OutputError(f"{p}: cannot make the output folder here: it {where}")
        if q.exists():
            break
    if not p.exists():
        return False
    try:
        entries = _user_entries(p)
    except OSError as e:
        raise OutputError(os_error_line(p, e)) from None
    if not entries:
        return False
    marker = read_marker(p)
    if marker is not None and marker.get("command") == command and not overwrite:
        return False
    if overwrite:
        return True
    if marker is not None and marker.get("command"):
        made = f"it was made by 'asrkit {marker['command']}'"
    else:
        made = f"it was not made by 'asrkit {command}'"
    raise UsageError(f"{p}: folder is not empty and {made}; "
                     f"choose another folder or add --overwrite to replace it")


def _clear(path: Path) -> None:
    """Remove what ``path`` holds (but its lock file, which a waiting run
    may hold open)."""
    import shutil

    for e in _user_entries(path) + ([path / MARKER] if (path / MARKER).exists() else []):
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e)
        else:
            e.unlink()


def prepare_output_dir(path: str | os.PathLike, command: str, overwrite: bool = False,
                       inputs: tuple = ()) -> Path:
    """Make ``path`` ready for ``command`` (e.g. ``"featurize"``,
    ``"data subset"``) to write into, by one rule:

    - missing or empty: made, marked;
    - this command's own output (its ``.asrkit`` marker names ``command``):
      kept, so the command resumes or redoes it;
    - anything else that is not empty: refused with one line naming the
      folder and ``--overwrite``; with ``overwrite`` its contents are
      removed first.

    The marker ``.asrkit`` (YAML: command, version, created) is written into
    the folder. Call :func:`output_lock` around it when two runs could race.
    Errors: see :func:`check_output_dir`; an OSError while making the folder
    becomes one :class:`~asrkit.errors.OutputError` line.
    """
    from asrkit.errors import OutputError

    p = Path(path)
    replace = check_output_dir(p, command, overwrite, inputs)
    try:
        p.mkdir(parents=True, exist_ok=True)
        if replace:
            _clear(p)
        for stale in [q for q in p.iterdir() if _stale_marker_tmp(q.name)]:
            stale.unlink(missing_ok=True)
        m = read_marker(p)
        if m is None or m.get("command") != command:
            write_marker(p, command)
    except OSError as e:
        raise OutputError(os_error_line(p, e)) from None
    return p


@contextmanager
def output_lock(path: str | os.PathLike, shared: bool = False,
                prepare: Callable[[bool], object] | None = None) -> Iterator[Path]:
    """Hold an flock on ``path/.lock`` (made with the folder if missing) while
    the block runs. Exclusive by default; ``shared`` lets runs that write
    disjoint parts (``featurize --shard``) go together while shutting out an
    exclusive one. A lock already held elsewhere raises
    :class:`~asrkit.errors.OutputError` naming the holder's pid. Non-blocking.
    The lock file stays (removing it would race with a waiting run).

    ``prepare(alone)`` (e.g. :func:`prepare_output_dir` and writing a plan)
    runs once the lock is held, before the block, while no other run can
    take the lock or be in its own ``prepare``: the runs that start together
    prepare one after the other, never interleaved (one must not take the
    other's half-written files for stale ones, or clear them). ``alone`` is
    False when other ``shared`` runs already hold the lock: they prepared the
    folder and are writing into it, so ``prepare`` must join their work, not
    replace it. The turn-taking is a blocking flock on ``path/.lock.prepare``,
    held only for the lock taking and ``prepare`` (a file opened for writing:
    NFS emulates flock with fcntl locks, which refuse a read-only
    descriptor such as a folder's)."""
    import errno
    import fcntl

    from asrkit.errors import OutputError

    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        prep_fd = os.open(p / PREPARE_LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    except OSError as e:
        raise OutputError(os_error_line(p, e)) from None
    fd = -1
    try:
        try:
            fcntl.flock(prep_fd, fcntl.LOCK_EX)  # waits for a run that is preparing (short)
            fd = os.open(p / LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except OSError as e:
            raise OutputError(os_error_line(p, e)) from None
        alone = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(os_error_line(p, e)) from None
            alone = False
            try:
                if not shared:
                    raise e
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # other shared runs: join them
            except OSError:
                try:
                    pid = os.pread(fd, 32, 0).decode("ascii", "replace").split()[0]
                except (OSError, IndexError):
                    pid = "unknown"
                raise OutputError(f"{p} is being written by another asrkit process (pid {pid})") from None
        if alone:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError:
                pass  # the pid is for the message only
        if prepare is not None:
            prepare(alone)
        if shared and alone:
            fcntl.flock(fd, fcntl.LOCK_SH)  # others wait on the folder lock, so nobody slips in between
        os.close(prep_fd)
        prep_fd = -1
        yield p
    finally:
        if prep_fd >= 0:
            os.close(prep_fd)
        if fd >= 0:
            os.close(fd)
