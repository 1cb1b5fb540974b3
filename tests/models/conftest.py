"""Tiny shapes gain nothing from intra-op threads; one thread keeps timings steady on a busy machine."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test of this folder runs on one thread (``one_thread``, tests/conftest.py)."""
    yield
