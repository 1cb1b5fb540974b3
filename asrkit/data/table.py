"""Kaldi table files: one ``key value...`` record per line.

``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, ``segments``, ``utt2dur`` and
``ali`` are all such tables. Keys are sorted in C-locale order (byte order of
UTF-8, which is Python's code-point order for ``str``) when written.

Lines come from :func:`asrkit.io.iter_lines`, the one line reader: it
streams a UTF-8 file (``-`` is stdin), skips blank lines and drops a UTF-8
byte-order mark at the start of the file, so an editor's BOM never becomes
part of the first key.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping

from asrkit.errors import InputError, quote
from asrkit.io import atomic_write, display_name, iter_lines

def table_from_lines(name: str, lines: Iterable[tuple[int, str]], allow_empty_value: bool = True,
                     what: str = "id") -> dict[str, str]:
    """``key rest-of-line`` records of numbered, stripped, non-blank lines
    (as :func:`asrkit.io.iter_lines` yields them) in an insertion-ordered dict.
    ``name`` names the source in errors, ``what`` the keys (``id``, ``utt-id``)."""
    table: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in lines:
        parts = line.split(None, 1)
        key = parts[0]
        value = parts[1] if len(parts) > 1 else ""
        if not value and not allow_empty_value:
            raise InputError(f"{name}:{lineno}: {quote(key)} has no value")
        if key in table:
            raise InputError(f"{name}:{lineno}: duplicate {what} {quote(key)} (first on line {first_line[key]})")
        table[key] = value
        first_line[key] = lineno
    return table


def read_table(path: str | os.PathLike, allow_empty_value: bool = True) -> dict[str, str]:
    """Read ``key rest-of-line`` records into an insertion-ordered dict
    (``-`` reads stdin).

    Blank lines are skipped. A duplicate key, or a missing value when
    ``allow_empty_value`` is False, raises :class:`InputError` naming the file
    and line.
    """
    return table_from_lines(display_name(path), iter_lines(path), allow_empty_value)


def sorted_keys(keys: Iterable[str]) -> list[str]:
    """Keys in C-locale order (``LC_ALL=C sort``)."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def write_table(path: str | os.PathLike, table: Mapping[str, str | Iterable[str]]) -> None:
    """Write ``key value`` lines sorted by key (C locale), atomically.

    A value may be a string or an iterable of tokens (joined with spaces).
    """
    with atomic_write(path) as f:
        for key in sorted_keys(table):
            value = table[key]
            if not isinstance(value, str):
                value = " ".join(str(v) for v in value)
            f.write(f"{key} {value}\n" if value else f"{key}\n")
