"""Fuzz the readers of user files: mutated seed files end in a result or an
AsrkitError, never another exception, a hang, or an allocation sized by a
header count rather than by the bytes in the file (see ``fuzz_harness.py``).

Mutations are driven by hypothesis with a fixed seed (``derandomize``) and a
bounded number of examples per reader; every input that once crashed a reader
is kept under ``regressions/`` and replayed by :func:`test_regressions`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_harness import OPS, SEEDS, TARGETS, mutate, run_case

EXAMPLES = 80  # per reader; the whole file stays well under a minute
REGRESSIONS = Path(__file__).with_name("regressions")

_mutations = st.lists(
    st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 16), st.integers(0, 1 << 16)), min_size=1, max_size=3
)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutated_inputs_end_in_a_result_or_an_asrkit_error(target: str):
    seed = SEEDS[TARGETS[target][0]]

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(_mutations)
    def check(ops):
        data = seed
        for op, pos, arg in ops:
            data = mutate(data, op, pos, arg)
        with tempfile.TemporaryDirectory() as tmp:
            failure = run_case(target, data, Path(tmp))
        assert failure is None, f"{target}: {failure} on input {data[:200]!r}"

    check()


def test_every_seed_reads_cleanly():
    for target in TARGETS:
        with tempfile.TemporaryDirectory() as tmp:
            assert run_case(target, SEEDS[TARGETS[target][0]], Path(tmp)) is None, target


def _regressions() -> list[Path]:
    return sorted(p for p in REGRESSIONS.iterdir() if p.is_file() and p.name != "README")


def test_regression_files_exist():
    assert _regressions(), "tests/fuzz/regressions/ holds the inputs that once crashed a reader"


@pytest.mark.parametrize("path", _regressions(), ids=lambda p: p.name)
def test_regressions(path: Path):
    """Files are named TARGET--N.bin: the bytes given to that reader."""
    target = path.name.split("--")[0]
    assert target in TARGETS, path.name
    with tempfile.TemporaryDirectory() as tmp:
        assert run_case(target, path.read_bytes(), Path(tmp)) is None
