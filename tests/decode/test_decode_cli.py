"""`asrkit decode` and `asrkit predict frame` from the command line."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from asrkit.cli.main import main
from asrkit.data import FeatureStore
from asrkit.data.table import write_table

from decode_util import make_frame_exp

ASRKIT = [sys.executable, "-m", "asrkit"]


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["-q", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_decode_text_is_sorted_and_scores(capsys, ctc_exp, store, tmp_path):
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(store), "--device", "cpu", "--batch-size", "3")
    assert code == 0, err
    lines = out.splitlines()
    fs = FeatureStore(store)
    assert [line.split()[0] for line in lines] == fs.keys()
    # a reference from the hypotheses themselves scores 0% errors; a changed one does not
    ref = tmp_path / "ref"
    ref.write_text(out)
    hyp = tmp_path / "hyp"
    hyp.write_text(out)
    assert main(["score", str(ref), str(hyp), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["wer"] == 0.0 and res["ref_words"] > 0


@pytest.mark.parametrize("fmt", ["trn", "jsonl"])
def test_decode_formats_agree_with_text(capsys, ctc_exp, store, fmt):
    _, text, _ = _run(capsys, "decode", str(ctc_exp), str(store), "--device", "cpu")
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(store), "--device", "cpu", "--format", fmt)
    assert code == 0, err
    want = {line.split()[0]: line.split()[1:] for line in text.splitlines()}
    if fmt == "trn":
        got = {line.rsplit("(", 1)[1].rstrip(")"): line.rsplit("(", 1)[0].split() for line in out.splitlines()}
    else:
        rows = [json.loads(line) for line in out.splitlines()]
        got = {r["utt"]: r["hyp"].split() for r in rows}
        assert all(r["score"] <= 0 and r["frames"] > r["out_frames"] > 0 for r in rows)
    assert got == want


def test_decode_pipes_into_score(ctc_exp, store, tmp_path):
    """The shell pipe: asrkit decode EXP FEATS | asrkit score REF -."""
    ref = tmp_path / "ref.txt"
    fs = FeatureStore(store)
    write_table(ref, {u: "k ae t" for u in fs.keys()})
    dec = subprocess.Popen([*ASRKIT, "decode", str(ctc_exp), str(store), "--device", "cpu", "--impl", "native"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sc = subprocess.run([*ASRKIT, "score", str(ref), "-"], stdin=dec.stdout, capture_output=True, text=True)
    dec.stdout.close()
    assert dec.wait() == 0, dec.stderr.read().decode()
    dec.stderr.close()
    assert sc.returncode == 0, sc.stderr
    assert "%WER" in sc.stdout


def test_decode_usage_errors(capsys, ctc_exp, store, tmp_path):
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(store), "--format", "ctm-nope")
    assert code == 2 and out == "" and "--format" in err
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(store), "--batch-size", "0")
    assert code == 2 and "--batch-size" in err
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(tmp_path / "nope"))
    assert code == 1 and out == "" and "not a feature store" in err
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(store), "--checkpoint", "epoch-7")
    assert code == 1 and "epoch-7" in err
    frame = make_frame_exp(tmp_path / "frame", ["sil", "aa"])
    code, out, err = _run(capsys, "decode", str(frame), str(store))
    assert code == 2 and "predict frame" in err


def test_decode_error_is_one_red_line(ctc_exp, tmp_path):
    p = subprocess.run([*ASRKIT, "decode", str(ctc_exp), str(tmp_path / "missing")], capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


LABELS = ["sil", "aa", "ae", "b"]


def test_predict_frame_text_and_csv(capsys, tmp_path, store):
    exp = make_frame_exp(tmp_path / "frame", LABELS, impl="scratch")
    fs = FeatureStore(store)
    code, out, err = _run(capsys, "predict", "frame", str(exp), str(store), "--device", "cpu", "--batch-size", "2")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert [r[0] for r in rows] == fs.keys()
    for r in rows:
        assert len(r) - 1 == fs.num_frames(r[0]) and set(r[1:]) <= set(LABELS)
    assert len({lab for r in rows for lab in r[1:]}) > 1
    # native decodes the scratch-trained checkpoint to the same labels
    code, out_native, _ = _run(capsys, "predict", "frame", str(exp), str(store), "--device", "cpu", "--impl", "native")
    assert out_native == out
    code, csv, err = _run(capsys, "predict", "frame", str(exp), str(store), "--device", "cpu", "--csv")
    assert code == 0, err
    lines = csv.splitlines()
    assert lines[0] == "id,label"
    flat = [lab for r in rows for lab in r[1:]]
    assert lines[1:] == [f"{i},{lab}" for i, lab in enumerate(flat)]


def test_predict_frame_matches_model_argmax(tmp_path, store):
    """The labels are the argmax of the model's own forward pass on the CMVN'd features."""
    import torch

    from asrkit.decode import load_exp, predict_frames

    exp = load_exp(make_frame_exp(tmp_path / "f", LABELS), device="cpu", task="frame")
    fs = FeatureStore(store)
    u = fs.keys()[2]
    x = torch.from_numpy(fs.get(u, cmvn=exp.cmvn))[None]
    with torch.no_grad():
        logits, _ = exp.model(x, torch.tensor([x.shape[1]]))
    logits[..., 0] = float("-inf")  # id 0 is <blank>, never a frame label
    want = [(["<blank>"] + LABELS)[i] for i in logits[0].argmax(-1).tolist()]
    got = next(p for p in predict_frames(exp, fs, batch_size=5) if p.utt == u)
    assert got.labels == want


def test_predict_frame_refuses_ctc_exp(capsys, ctc_exp, store):
    code, out, err = _run(capsys, "predict", "frame", str(ctc_exp), str(store))
    assert code == 2 and "asrkit decode" in err and out == ""

