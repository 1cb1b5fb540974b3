"""Test setup shared by every test: the Debian tools some tests drive.

A few tests compare against, or drive, Debian programs: sclite (package
sctk), sox, flite, festival and three festival voices, espeak-ng, mbrola and
four MBROLA voices. ``make test``
installs them first where it can (``tools/install_debian_deps.sh``). A test
that needs one that is missing:

- skips on a developer's machine, saying what to ``apt-get install``;
- FAILS when the environment has ``CI=true``: CI installs these tools, so a
  missing one there is a broken setup, not a reason to run fewer tests.

Use it as a marker (``@pytest.mark.needs_tool("flite", "sox")``, also as a
module's ``pytestmark``) or through the ``require_tool`` /
``require_festival_voice`` fixtures inside a test. Skips for anything else
are only for what a machine truly cannot provide (no GPU).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, NoReturn

import pytest

# tool -> (the Debian package that provides it, other places that package puts it)
TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sclite": ("sctk", ("/usr/lib/sctk/bin/sclite",)),
    "sox": ("sox", ()),
    "flite": ("flite", ()),
    "festival": ("festival", ()),
    "espeak-ng": ("espeak-ng", ()),
    "mbrola": ("mbrola", ()),  # in Debian's contrib section; its voices (mbrola-us1, ...) in non-free
}


@pytest.fixture(autouse=True)
def _loud_log():
    """Each test starts with asrkit's log not quiet: ``main(["-q", ...])`` sets the process-wide quiet
    flag and leaves it set, which would silence the next test's ``log.info`` lines (a test that reads
    them then fails only after some other test, depending on the order)."""
    from asrkit import log

    log.set_quiet(False)
    yield


def under_ci() -> bool:
    """True when the environment says this is CI (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def _missing(what: str, package: str) -> NoReturn:
    message = f"{what} not installed (apt-get install {package})"
    if under_ci():
        pytest.fail(f"{message}; CI=true, and CI installs it (tools/install_debian_deps.sh): the setup is broken",
                    pytrace=False)
    pytest.skip(message)


def tool_path(name: str) -> str | None:
    """Where the tool ``name`` (a key of :data:`TOOLS`) is, or None."""
    found = shutil.which(name)
    if found:
        return found
    for path in TOOLS[name][1]:
        if Path(path).exists():
            return path
    return None


def require_tool(name: str) -> str:
    """The path of the Debian tool ``name``; skips the test when it is missing
    (fails under ``CI=true``)."""
    if name not in TOOLS:
        raise KeyError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}")
    path = tool_path(name)
    if path is None:
        _missing(name, TOOLS[name][0])
    return path


def require_festival_voice(voice: str) -> None:
    """Skip (fail under ``CI=true``) unless festival and its voice ``voice`` are installed."""
    from asrkit.corpora import synth
    from asrkit.errors import AsrkitError

    require_tool("festival")
    try:
        synth.check_voices([voice])
    except AsrkitError as e:
        _missing(f"festival voice {voice} ({e})", synth.VOICES[voice].package)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_tool(*names): the test drives these Debian tools (sclite, sox, flite, festival, espeak-ng, mbrola); "
        "skipped where missing, failed where missing under CI=true",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers(name="needs_tool"):
        for name in marker.args:
            require_tool(name)


@pytest.fixture(name="require_tool")
def _require_tool_fixture() -> Callable[[str], str]:
    return require_tool


def require_file(path: str | Path, package: str) -> Path:
    """``path``, a file that the Debian ``package`` installs; skips the test when it
    is missing (fails under ``CI=true``)."""
    if not Path(path).is_file():
        _missing(str(path), package)
    return Path(path)


@pytest.fixture(name="require_file")
def _require_file_fixture() -> Callable[[str | Path, str], Path]:
    return require_file


@pytest.fixture(name="require_festival_voice")
def _require_festival_voice_fixture() -> Callable[[str], None]:
    return require_festival_voice


@pytest.fixture
def one_thread():
    """torch on one intra-op thread for the test (restored after): tiny shapes gain nothing
    from threads, and one keeps timings steady on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_tf32():
    """Full-precision CUDA matmuls and convolutions for a comparison with the CPU
    (TF32 off); the flags are restored after the test."""
    import torch

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
