"""No change of behaviour: fixed-seed short runs of frame, ctc (phone) and
ctc (char, plateau schedule) log the same train losses, learning rates and
dev metrics as the trainer did before tasks were split out of it
(``data/golden_losses.json``, written by ``golden.py --write``).

One thread (``train.threads=1``) on CPU: the runs are deterministic, so the
tolerance only absorbs the 6-decimal rounding of ``metrics.jsonl``."""
from __future__ import annotations

import json

import pytest
from golden import DATA, RUNS, make_stores, run

GOLDEN = json.loads(DATA.read_text())


@pytest.fixture(scope="module")
def golden_stores(tmp_path_factory):
    return make_stores(tmp_path_factory.mktemp("golden"))


def _close(got, want, where):
    if isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=2e-6), where
    else:
        assert got == want, where


@pytest.mark.parametrize("name", sorted(RUNS))
def test_run_logs_the_recorded_losses(name, golden_stores, tmp_path):
    got = run(name, *golden_stores, tmp_path / name)
    want = GOLDEN[name]
    for kind in ("train", "dev"):
        assert len(got[kind]) == len(want[kind]), f"{name}: {kind} events"
        for i, (g, w) in enumerate(zip(got[kind], want[kind])):
            assert set(w) <= set(g), f"{name} {kind}[{i}]: keys {sorted(set(w) - set(g))} missing"
            for k, v in w.items():
                _close(g[k], v, f"{name} {kind}[{i}].{k}")


def test_the_recorded_runs_learn():
    """The golden numbers are of runs that do something (the comparison is not of noise)."""
    for name in RUNS:
        losses = [e["loss"] for e in GOLDEN[name]["train"]]
        assert len(losses) >= 15 and losses[-1] < 0.7 * losses[0], name
        assert GOLDEN[name]["dev"][-1]["dev_loss"] < GOLDEN[name]["dev"][0]["dev_loss"], name
