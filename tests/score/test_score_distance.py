"""The course metrics: mean Levenshtein distance (chars / tokens) and frame
accuracy, as functions and through `asrkit score --metric`."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from asrkit.cli.main import main
from asrkit.errors import DataError
from asrkit.score.distance import frame_accuracy, levenshtein


def _lev(a, b) -> int:
    """Textbook dynamic programme (the reference the batched one is checked against)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_char_distance_counts_spaces_like_the_course():
    refs = {"a": ["HELLO", "WORLD"], "b": ["A", "B"], "c": ["xyz"]}
    hyps = {"a": ["HELO", "WORL", "D"], "b": ["AB"], "c": []}
    d = levenshtein(refs, hyps)
    # HELLO WORLD -> HELO WORL D: one deletion, one inserted space; "A B" -> "AB": the space; xyz -> "": 3
    assert d.distances.tolist() == [2, 1, 3]
    assert d.edits == 6 and d.mean == pytest.approx(2.0) and d.ref_units == 11 + 3 + 3
    t = levenshtein(refs, hyps, unit="token")
    assert t.distances.tolist() == [3, 2, 1] and t.ref_units == 5


def test_distance_matches_a_plain_dp_on_random_strings():
    rng = random.Random(0)
    refs, hyps = {}, {}
    for k in range(60):
        refs[f"u{k}"] = ["".join(rng.choice("ab c") for _ in range(rng.randint(0, 6))) or "a" for _ in range(rng.randint(0, 5))]
        hyps[f"u{k}"] = ["".join(rng.choice("abd") for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(0, 5))]
    d = levenshtein(refs, hyps)
    want = [_lev(" ".join(refs[u]), " ".join(hyps[u])) for u in refs]
    assert d.distances.tolist() == want
    t = levenshtein(refs, hyps, unit="token")
    assert t.distances.tolist() == [_lev(refs[u], hyps[u]) for u in refs]


def test_distance_modes_and_normalization():
    refs = {"a": ["Hi", "there"], "b": ["yo"]}
    hyps = {"a": ["hi", "there"]}
    with pytest.raises(DataError, match="no hypothesis.*--mode all counts missing ones as empty hypotheses"):
        levenshtein(refs, hyps)
    assert levenshtein(refs, hyps, mode="present").distances.tolist() == [1]
    assert levenshtein(refs, hyps, mode="all", ignore_case=True).distances.tolist() == [0, 2]


def test_frame_accuracy_and_length_mismatch():
    refs = {"a": list("xyzz"), "b": list("qq")}
    fa = frame_accuracy(refs, {"a": list("xyzy"), "b": list("qq")})
    assert (fa.total_correct, fa.total_frames) == (5, 6) and fa.accuracy == pytest.approx(500 / 6)
    assert frame_accuracy(refs, {"a": list("xyzz")}, mode="all").accuracy == pytest.approx(400 / 6)
    with pytest.raises(DataError, match=r"utterance 'b': 2 reference frame labels \(R\) but 3 predicted \(H\)"):
        frame_accuracy(refs, {"a": list("xyzz"), "b": list("qqq")}, ref_name="R", hyp_name="H")


def run(capsys, *args):
    code = main(["score", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.out, " ".join(cap.err.split())


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    texts = {
        "ref": "u1 HELLO WORLD\nu2 A B\nu3 xyz\n",
        "hyp": "u1 HELO WORL D\nu2 A B\nu3\n",
        "ali": "u1 sil aa aa b\nu2 b b\n",
        "pred": "u1 sil aa b b\nu2 b b\n",
        "short": "u1 sil aa b\nu2 b b\n",
    }
    out = {}
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        out[name] = tmp_path / name
    return out


def test_cli_levenshtein_report_and_json(capsys, files):
    code, out, _ = run(capsys, files["ref"], files["hyp"], "--metric", "levenshtein")
    assert code == 0
    assert out == "Levenshtein 1.67 [ 5 edits / 3 utts, mean per utterance, chars; 17 reference chars ]\n"
    code, out, _ = run(capsys, files["ref"], files["hyp"], "--metric", "levenshtein", "--unit", "token", "--json", "--check")
    assert code == 0
    assert json.loads(out) == {"metric": "levenshtein", "unit": "token", "levenshtein": 1.3333, "edits": 4, "utts": 3,
                               "ref_units": 5, "hyp_units": 5, "missing": 0, "jiwer": {"edits": 4, "agree": True}}
    code, out, _ = run(capsys, files["ref"], files["hyp"], "--metric", "levenshtein", "--check")
    assert code == 0 and out.splitlines()[1] == "Levenshtein 1.67 [ 5 edits ] (jiwer, second opinion: same edits)"


def test_cli_frame_accuracy(capsys, files):
    code, out, _ = run(capsys, files["ali"], files["pred"], "--metric", "frame-accuracy")
    assert code == 0 and out == "%ACC 83.33 [ 5 / 6 frames, 2 utts ] (frame accuracy)\n"
    code, out, _ = run(capsys, files["ali"], files["pred"], "--metric", "frame-accuracy", "--json")
    assert json.loads(out) == {"metric": "frame-accuracy", "frame_accuracy": 83.3333, "correct": 5, "frames": 6,
                               "utts": 2, "missing": 0}
    code, out, err = run(capsys, files["ali"], files["short"], "--metric", "frame-accuracy")
    assert code == 1 and out == ""
    assert "utterance 'u1': 4 reference frame labels" in err and "but 3 predicted" in err


@pytest.mark.parametrize("args, message", [
    (["--metric", "bleu"], "--metric must be one of wer, levenshtein, frame-accuracy"),
    (["--unit", "char"], "--unit applies to --metric levenshtein only"),
    (["--metric", "levenshtein", "--unit", "word"], "--unit must be one of char, token"),
    (["--metric", "levenshtein", "--per-spk"], "--per-spk does not apply to --metric levenshtein"),
    (["--metric", "frame-accuracy", "--ignore-case"], "--ignore-case does not apply to --metric frame-accuracy"),
])
def test_cli_metric_usage_errors(capsys, files, args, message):
    code, out, err = run(capsys, files["ref"], files["hyp"], *args)
    assert code == 2 and out == "" and message in err


def test_wer_report_unchanged_by_the_new_options(capsys, files):
    code, out, _ = run(capsys, files["ref"], files["hyp"], "--metric", "wer")
    code2, out2, _ = run(capsys, files["ref"], files["hyp"])
    assert code == code2 == 0 and out == out2 and out.startswith("%WER ")


def test_predict_frame_text_scores_against_ali(capsys, files, tmp_path):
    """The text form 'asrkit predict frame' writes (write_frame_text) is what --metric frame-accuracy reads."""
    import io

    from asrkit.decode.frame import FramePrediction, write_frame_text

    buf = io.StringIO()
    write_frame_text([FramePrediction("u1", ["sil", "aa", "b", "b"]), FramePrediction("u2", ["b", "b"])], buf)
    (tmp_path / "pred2").write_text(buf.getvalue())
    code, out, _ = run(capsys, files["ali"], tmp_path / "pred2", "--metric", "frame-accuracy")
    assert code == 0 and out.startswith("%ACC 83.33 ")
    assert np.isclose(83.3333, json.loads(run(capsys, files["ali"], tmp_path / "pred2", "--metric", "frame-accuracy",
                                              "--json")[1])["frame_accuracy"])
