"""Shared fixtures of the decode tests (helpers in decode_util.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from decode_util import make_ctc_exp, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("feats") / "test"
    make_store(p)
    return p


@pytest.fixture(scope="module")
def ctc_exp(tmp_path_factory) -> Path:
    """A small BiLSTM-CTC exp dir (trained with impl scratch)."""
    return make_ctc_exp(tmp_path_factory.mktemp("exp") / "ctc")
