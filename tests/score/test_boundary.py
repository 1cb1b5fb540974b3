"""Phone boundary error and frame accuracy between two frame labellings (asrkit.score.boundary)."""
from __future__ import annotations

import numpy as np
import pytest

from asrkit.score.boundary import boundary_error, frame_accuracy, phone_starts


def test_boundary_error_hand_cases():
    ref = {"u": ["sil", "sil", "k", "k", "k", "ae", "ae", "t", "t", "t", "sil"]}
    assert phone_starts(ref["u"]) == [("k", 2), ("ae", 5), ("t", 7)]
    same = boundary_error(ref, ref, 10)
    assert same.mean_ms == 0 and same.compared == 3 and same.within_20 == 1.0
    # 'ae' one frame late, 't' two frames late; sil is never compared
    hyp = {"u": ["sil", "sil", "k", "k", "k", "k", "ae", "ae", "ae", "t", "t"]}
    be = boundary_error(ref, hyp, 10)
    assert be.compared == 3 and be.mean_ms == pytest.approx(10.0) and be.median_ms == 10.0
    assert sorted(be.errors_ms.tolist()) == [0.0, 10.0, 20.0]
    assert be.within_20 == 1.0 and be.within_40 == 1.0
    # different phone strings: an extra phone (ih) and a substitution (d for t) are not compared
    hyp2 = {"u": ["k", "ih", "ih", "ae", "ae", "ae", "d", "d", "d", "d", "d"], "other": "k"}
    be2 = boundary_error(ref, hyp2, 10)
    assert be2.compared == 2 and be2.utterances == 1  # k and ae
    assert be2.errors_ms.tolist() == [20.0, 20.0] and be2.ref_phones == 3 and be2.hyp_phones == 4
    # frame shift scales; strings and lists both work
    assert boundary_error({"u": "sil a b"}, {"u": "a a b"}, 25).errors_ms.tolist() == [25.0, 0.0]
    none = boundary_error({"u": "sil"}, {"u": "sil"})
    assert none.compared == 0 and np.isnan(none.mean_ms)


def test_frame_accuracy_counts_frames_of_utterances_of_equal_length():
    ref = {"a": "k k ae", "b": "t t", "c": "x"}
    hyp = {"a": ["k", "ae", "ae"], "b": "t t t", "d": "x"}  # b: other length, skipped; c, d: in one only
    assert frame_accuracy(ref, hyp) == pytest.approx(2 / 3)
    assert np.isnan(frame_accuracy({"a": "x"}, {"b": "x"}))
