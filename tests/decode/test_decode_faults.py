"""A decode killed at random points (SIGKILL of the whole process group, its
forkserver search workers included), then run again: the output equals an
uninterrupted run, and a cut-short ``--save-emissions`` store never reads as
whole."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from asrkit.decode.emissions import load_emissions
from asrkit.errors import AsrkitError

ASRKIT = [sys.executable, "-m", "asrkit"]


def _decode(exp: Path, store: Path, em: Path, out: Path) -> subprocess.Popen:
    with open(out, "wb") as f:
        return subprocess.Popen([*ASRKIT, "-q", "decode", str(exp), str(store), "--device", "cpu", "--beam", "3",
                                 "--jobs", "2", "--save-emissions", str(em)], stdout=f, stderr=subprocess.PIPE,
                                start_new_session=True)


def _emissions(em: Path) -> dict[str, np.ndarray]:
    return {o.utt: o.log_probs.numpy() for o in load_emissions(em)}


def test_sigkill_then_rerun_equals_uninterrupted(ctc_exp, store, tmp_path):
    ref_out, ref_em = tmp_path / "ref.txt", tmp_path / "ref_em"
    t0 = time.monotonic()
    p = _decode(ctc_exp, store, ref_em, ref_out)
    _, err = p.communicate(timeout=300)
    full = time.monotonic() - t0
    assert p.returncode == 0, err.decode()
    ref = _emissions(ref_em)
    rng = random.Random(7)
    killed = 0
    for k in range(3):
        out, em = tmp_path / f"out{k}.txt", tmp_path / f"em{k}"
        p = _decode(ctc_exp, store, em, out)
        time.sleep(rng.uniform(0.1, 0.9) * full)  # start-up, model forward, search, or saving
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
        p.stderr.close()
        killed += p.returncode != 0
        if p.returncode == 0:  # finished before the kill: must be whole
            assert out.read_bytes() == ref_out.read_bytes()
        else:
            # whatever was left: either refused as incomplete, or complete and equal
            try:
                got = _emissions(em)
            except AsrkitError:
                got = None
            if got is not None:
                assert got.keys() == ref.keys() and all(np.array_equal(got[u], ref[u]) for u in ref)
        # the same command again into the same folder finishes and equals the uninterrupted run
        p = _decode(ctc_exp, store, em, out)
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        assert out.read_bytes() == ref_out.read_bytes()
        got = _emissions(em)
        assert got.keys() == ref.keys() and all(np.array_equal(got[u], ref[u]) for u in ref)
    assert killed >= 1  # the sweep did interrupt runs
