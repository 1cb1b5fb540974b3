"""The errors a user can cause.

Every exception here carries a message that names the file / utterance and what
to do. The CLI prints ``str(err)`` as one red line on stderr and exits with
``err.exit_code`` (1 for data/runtime problems, 2 for usage problems); with
``asrkit --debug`` it shows the traceback too.
"""
from __future__ import annotations


class AsrkitError(Exception):
    """Base class of every user-facing asrkit error (exit status 1)."""

    exit_code = 1


class UsageError(AsrkitError):
    """Bad command-line usage: conflicting options, bad values (exit status 2)."""

    exit_code = 2


class InputError(AsrkitError):
    """A file is missing, unreadable, not UTF-8, or malformed."""


class DataError(AsrkitError):
    """Data is inconsistent: utt-id mismatches, duplicates, missing labels."""


class AudioError(InputError):
    """Audio that cannot be read or decoded."""


class ConfigError(UsageError):
    """An unknown config key or a bad config value."""


class TrainingError(AsrkitError):
    """Training cannot go on (NaN loss streaks, dimension mismatches...)."""


def quote(value: object, limit: int = 60) -> str:
    """``value`` in single quotes for an error message, cut to ``limit`` characters.

    User data (a token, a line, a config value) can be megabytes long or hold
    control characters; a message quotes at most ``limit`` characters of it,
    control characters escaped, and says how long the whole was::

        quote("abc")        -> "'abc'"
        quote("x" * 10**6)  -> "'xxx…' (1000000 characters)"
    """
    s = value if isinstance(value, str) else str(value)
    head = s[:limit]
    if not head.isprintable():
        head = "".join(c if c.isprintable() else repr(c)[1:-1] for c in head)
    if len(s) > limit:
        return f"'{head}…' ({len(s)} characters)"
    return f"'{head}'"


class OutputError(AsrkitError):
    """An output cannot be written: a folder in use by another run, a path
    under a regular file, a read-only place, a full disk."""
