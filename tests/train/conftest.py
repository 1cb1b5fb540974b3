"""Fixtures of the trainer tests."""
from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import make_store


@pytest.fixture(scope="session")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    return {"train": make_store(root / "train", n=16, seed=1),
            "dev": make_store(root / "dev", n=6, seed=2)}
