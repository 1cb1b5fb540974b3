"""``asrkit.train.distributed.launch``: how the ranks' ends are counted."""
from __future__ import annotations

import atexit
import os

import pytest

from asrkit.errors import DataError, TrainingError
from asrkit.train.distributed import launch


def _done_then_abort_at_exit(path: str) -> None:
    """Finishes its work, then would abort while the interpreter shuts down (as gloo's threads did:
    "terminate called without an active exception", exit -6)."""
    with open(os.path.join(path, f"rank{os.environ['RANK']}"), "w") as f:
        f.write("done\n")
    atexit.register(os.abort)


def _fails_on_rank_1(path: str) -> None:
    if os.environ["RANK"] == "1":
        raise DataError("rank 1 has bad data")


def _crashes_on_rank_1(path: str) -> None:
    if os.environ["RANK"] == "1":
        os.abort()  # dies before reporting


def test_a_rank_that_finished_is_not_failed_by_its_teardown(tmp_path):
    launch(2, _done_then_abort_at_exit, str(tmp_path))  # no error: both ranks finished
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0", "rank1"]


def test_a_failing_rank_still_fails_the_run(tmp_path):
    with pytest.raises(DataError, match="rank 1 has bad data"):
        launch(2, _fails_on_rank_1, str(tmp_path))
    with pytest.raises(TrainingError, match=r"rank 1 \(exit -6\)"):
        launch(2, _crashes_on_rank_1, str(tmp_path))
