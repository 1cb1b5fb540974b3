"""``asrkit lm build``: text -> counts -> modified Kneser-Ney -> ARPA."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from asrkit import log
from asrkit.errors import InputError, UsageError
from asrkit.io import display_name
from asrkit.lm.arpa import write_arpa
from asrkit.lm.counts import Vocabulary, count_text
from asrkit.lm.kneser_ney import KneserNeyModel, estimate, parse_prune


# kenlm (and so the beam decoders and `asrkit lm ppl`) is built with
# KENLM_MAX_ORDER=6 unless recompiled: a higher order would write an ARPA file
# that nothing here can load.
MAX_ORDER = 6


@dataclass
class BuildStats:
    """What :func:`build_lm` did: sizes and timings."""

    sentences: int
    tokens: int
    windows: int  # n-gram occurrences counted (tokens + sentences)
    ngrams: list[int]  # per order, as written
    count_seconds: float
    estimate_seconds: float
    write_seconds: float

    @property
    def seconds(self) -> float:
        return self.count_seconds + self.estimate_seconds + self.write_seconds


def build_model(
    text: str | os.PathLike,
    order: int,
    prune: str | list[int] | None = None,
    vocab: str | os.PathLike | None = None,
    keep_unk: bool = False,
    progress: bool = True,
) -> tuple[KneserNeyModel, BuildStats]:
    """Count ``text`` (``-`` = stdin) and estimate an order-``order`` model.

    ``prune``: per-order count thresholds (``"0,1,1"`` or a list), see
    :mod:`asrkit.lm.kneser_ney`; ``vocab``: a word-list file that fixes the
    vocabulary (other tokens become ``<unk>``); ``keep_unk``: estimate
    ``<unk>`` like a word instead of leaving its n-grams out."""
    if order < 1:
        raise UsageError(f"--order {order}: the order must be at least 1")
    if order > MAX_ORDER:
        raise UsageError(
            f"--order {order}: kenlm, which the decoders and 'lm ppl' load models with, reads orders up to "
            f"{MAX_ORDER} (KENLM_MAX_ORDER); use --order {MAX_ORDER} or lower"
        )
    thresholds = parse_prune(prune, order) if not isinstance(prune, list) else parse_prune(",".join(map(str, prune)), order)
    voc = Vocabulary.from_file(vocab) if vocab is not None else Vocabulary()
    t0 = time.perf_counter()
    counter = count_text(text, order, voc, progress=progress)
    rows, counts = counter.result()
    if counter.sentences == 0:
        raise InputError(f"{display_name(text)}: no text (every line is blank); nothing to estimate")
    t1 = time.perf_counter()
    log.info(f"counted {counter.sentences} sentences, {counter.tokens} tokens, {len(voc)} types, "
             f"{len(rows)} distinct {order}-gram windows")
    model = estimate(rows, counts, voc.words, order, keep_unk=keep_unk, prune=thresholds)
    t2 = time.perf_counter()
    stats = BuildStats(
        sentences=counter.sentences,
        tokens=counter.tokens,
        windows=counter.windows,
        ngrams=model.ngram_counts(),
        count_seconds=t1 - t0,
        estimate_seconds=t2 - t1,
        write_seconds=0.0,
    )
    return model, stats


def build_lm(
    text: str | os.PathLike,
    output: str | os.PathLike,
    order: int,
    prune: str | list[int] | None = None,
    vocab: str | os.PathLike | None = None,
    keep_unk: bool = False,
    progress: bool = True,
) -> BuildStats:
    """Build an ARPA model from ``text`` and write it to ``output`` (atomically;
    ``-`` writes to stdout). Returns :class:`BuildStats`."""
    model, stats = build_model(text, order, prune=prune, vocab=vocab, keep_unk=keep_unk, progress=progress)
    t = time.perf_counter()
    if str(output) == "-":
        write_arpa(model, output, stream=sys.stdout)
        sys.stdout.flush()
    else:
        write_arpa(model, output)
    stats.write_seconds = time.perf_counter() - t
    return stats


# -- kenlm binaries ------------------------------------------------------------------------------

#: kenlm's ARPA -> binary converter, looked up on PATH. The kenlm Python module (pip) loads ARPA
#: and binary files but cannot write binaries, and Debian ships no kenlm package: the program
#: comes from a kenlm build (cmake; its bin/ folder).
BUILD_BINARY = "build_binary"


def binary_path(arpa: str | os.PathLike) -> str:
    """Where ``asrkit lm build --binary`` writes the binary of ``arpa``: the same name with the
    suffix ``.bin`` (``lm3.arpa`` -> ``lm3.bin``; ``lm3`` -> ``lm3.bin``)."""
    from pathlib import Path

    p = Path(arpa)
    return str(p.with_suffix(".bin") if p.suffix and p.suffix != ".bin" else p.with_name(p.name + ".bin"))


def find_build_binary() -> str:
    """The path of kenlm's ``build_binary``; a :class:`UsageError` (one line, what to do) when it
    is not on PATH."""
    import shutil

    found = shutil.which(BUILD_BINARY)
    if found is None:
        raise UsageError(f"--binary needs kenlm's {BUILD_BINARY} program, which is not on PATH (the pip kenlm "
                         f"module reads binaries but cannot write them); build kenlm and put its bin/ folder on "
                         f"PATH, or leave --binary out: the decoders load the ARPA file")
    return found


def write_binary(arpa: str | os.PathLike, output: str | os.PathLike, program: str | None = None) -> float:
    """Convert ``arpa`` to a kenlm binary at ``output`` with ``build_binary`` (kenlm's probing
    hash tables, the default), atomically; returns the seconds it took. The binary loads faster
    than the ARPA and gives the same scores."""
    import subprocess
    import tempfile
    from pathlib import Path

    program = program or find_build_binary()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    t = time.perf_counter()
    try:
        run = subprocess.run([program, str(arpa), tmp], capture_output=True, text=True)
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
            raise InputError(f"{display_name(arpa)}: {BUILD_BINARY} failed: {last}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return time.perf_counter() - t
