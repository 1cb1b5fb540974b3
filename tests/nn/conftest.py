"""Every test here leaves torch's global switches as it found them."""
from __future__ import annotations

import pytest
import torch


def _flags() -> dict:
    return {
        "num_threads": torch.get_num_threads(),
        "default_dtype": torch.get_default_dtype(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "grad_enabled": torch.is_grad_enabled(),
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "autocast_cpu": torch.is_autocast_enabled("cpu"),
    }


@pytest.fixture(autouse=True)
def _global_flags_restored():
    before = _flags()
    yield
    after = _flags()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"test changed torch's global flags (before, after): {changed}"
