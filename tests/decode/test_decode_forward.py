"""The forward pass of `asrkit decode`: --batch-frames, --quantize int8, --timing."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asrkit.cli.main import main
from asrkit.data import FeatureStore
from asrkit.decode import iter_outputs, length_batches, load_exp
from asrkit.decode.quantize import check_quantize, quantize_model
from asrkit.errors import UsageError
from asrkit.score import score

from decode_util import DIM, make_ctc_exp, make_store

ASRKIT = [sys.executable, "-m", "asrkit"]


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["-q", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def conformer_exp(tmp_path_factory) -> Path:
    return make_ctc_exp(tmp_path_factory.mktemp("exp") / "conformer", encoder="conformer", kind="char")


@pytest.fixture(scope="module")
def big_store(tmp_path_factory) -> Path:
    """30 utterances: enough tokens for an error rate to mean something."""
    p = tmp_path_factory.mktemp("feats") / "big"
    make_store(p, n=30, seed=3)
    return p


# -- --batch-frames ------------------------------------------------------------------------------------


def test_length_batches_by_frames_fill_the_budget():
    lengths = [50, 10, 40, 40, 10, 200, 30]
    utts = [f"u{i}" for i in range(len(lengths))]
    batches = length_batches(utts, lengths, 16, batch_frames=100)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every utterance once
    assert batches[0] == [5]  # longer than the budget: a batch of its own
    for b in batches:
        assert len(b) == 1 or len(b) * lengths[b[0]] <= 100  # padded frames within the budget
        assert lengths[b[0]] == max(lengths[i] for i in b)  # longest first
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)  # sorted by length: little padding
    assert batches[1] == [0, 2]  # 50 + 40 padded to 2 x 50 = 100 frames
    with pytest.raises(UsageError, match="--batch-frames"):
        length_batches(utts, lengths, 16, batch_frames=0)


@pytest.mark.parametrize("frames", ["1", "120", "100000"])
def test_batch_frames_gives_the_batch_size_hypotheses(capsys, ctc_exp, big_store, frames):
    _, want, _ = _run(capsys, "decode", str(ctc_exp), str(big_store), "--device", "cpu", "--batch-size", "3")
    code, got, err = _run(capsys, "decode", str(ctc_exp), str(big_store), "--device", "cpu", "--batch-frames",
                          frames)
    assert code == 0, err
    assert got == want  # same hypotheses, same (utt-id) order
    assert [line.split()[0] for line in got.splitlines()] == FeatureStore(big_store).keys()


def test_batches_by_frames_are_the_default_and_batch_size_switches(capsys, ctc_exp, big_store, monkeypatch):
    import asrkit.decode.emissions as em

    seen = []
    real = em.length_batches
    monkeypatch.setattr(em, "length_batches", lambda utts, lengths, size, frames=None:
                        seen.append(frames) or real(utts, lengths, size, frames))
    code, default, err = _run(capsys, "decode", str(ctc_exp), str(big_store), "--device", "cpu")
    assert code == 0, err
    from asrkit.cli.decode import DEFAULT_BATCH_FRAMES

    assert seen and set(seen) == {DEFAULT_BATCH_FRAMES}
    seen.clear()
    code, counted, err = _run(capsys, "decode", str(ctc_exp), str(big_store), "--device", "cpu", "--batch-size", "2")
    assert code == 0 and counted == default
    assert set(seen) <= {None}
    code, _, err = _run(capsys, "decode", str(ctc_exp), str(big_store), "--batch-size", "2", "--batch-frames", "9")
    assert code == 2 and "not both" in err


def test_batch_frames_log_probs_match(ctc_exp, big_store):
    exp = load_exp(ctc_exp, device="cpu", task="ctc")
    fs = FeatureStore(big_store)
    a = list(iter_outputs(exp.model, fs, cmvn=exp.cmvn, batch_size=4))
    b = list(iter_outputs(exp.model, fs, cmvn=exp.cmvn, batch_frames=150))
    assert [o.utt for o in a] == [o.utt for o in b] == fs.keys()
    for x, y in zip(a, b):
        torch.testing.assert_close(x.log_probs, y.log_probs, rtol=1e-4, atol=1e-4)


def test_batch_frames_bad_value_is_one_line(ctc_exp, store):
    p = subprocess.run([*ASRKIT, "decode", str(ctc_exp), str(store), "--batch-frames", "0"], capture_output=True,
                       text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "--batch-frames must be >= 1" in p.stderr


# -- --quantize int8 -----------------------------------------------------------------------------------


def _units(out: str) -> dict[str, list[str]]:
    """utt -> the model units of each jsonl hypothesis (a finer measure than the words)."""
    rows = [json.loads(line) for line in out.splitlines()]
    return {r["utt"]: r["units"] for r in rows}


@pytest.mark.parametrize("which", ["lstm", "conformer"])
def test_quantize_int8_decodes_close_to_float32(capsys, ctc_exp, conformer_exp, big_store, which):
    exp = ctc_exp if which == "lstm" else conformer_exp
    args = ("decode", str(exp), str(big_store), "--device", "cpu", "--format", "jsonl")
    _, want, _ = _run(capsys, *args)
    code, got, err = _run(capsys, *args, "--quantize", "int8")
    assert code == 0, err
    want, got = _units(want), _units(got)
    assert list(got) == list(want)
    # the int8 hypotheses' units, scored against the float32 ones: a few may differ, most do not
    diff = score(want, got)
    assert int(diff.ref_lens.sum()) > 200
    # (8.5% BiLSTM, 9.9% Conformer when written: the random test models are sharpened to switch units from
    # frame to frame, so they are touchier than a trained one; the tiny recipe's model: see docs/benchmarks.md)
    assert diff.wer < 20.0, f"int8 differs from float32 in {diff.wer:.1f}% of the units"


@pytest.mark.parametrize("which", ["lstm", "conformer"])
def test_quantize_int8_swaps_layers_and_keeps_log_probs_close(ctc_exp, conformer_exp, big_store, which):
    exp = load_exp(ctc_exp if which == "lstm" else conformer_exp, device="cpu", task="ctc")
    float_model = exp.model
    q = copy.deepcopy(float_model)
    report = quantize_model(q, "int8")
    assert report.linear > 0 and report.switched_to_native
    assert (report.recurrent > 0) == (which == "lstm")
    kinds = {type(m).__module__ for m in q.modules()}
    assert any("quantized.dynamic" in k for k in kinds)
    fs = FeatureStore(big_store)
    a = list(iter_outputs(float_model, fs, cmvn=exp.cmvn, batch_size=8))
    b = list(iter_outputs(q, fs, cmvn=exp.cmvn, batch_size=8))
    probs_a = torch.cat([o.log_probs.exp() for o in a])
    probs_b = torch.cat([o.log_probs.exp() for o in b])
    diff = (probs_a - probs_b).abs()
    # quantized (not the same numbers), and close: 3e-4 (BiLSTM) and 3e-3 (Conformer) on the mean when written;
    # these random models are sharpened to switch units from frame to frame, so a few frames move more
    assert 0 < diff.mean().item() < 0.01 and diff.max().item() < 0.6


def test_quantize_las_recurrent_layers_and_cells():
    """A LAS model: its BiLSTMs (called with lengths=) and its LSTMCell speller quantize, and the
    encoder output stays close."""
    from asrkit.decode.attention import attention_greedy
    from asrkit.models import build_model

    torch.manual_seed(0)
    model = build_model({"type": "las", "input_dim": DIM, "num_classes": 12, "listener_hidden": 16,
                         "listener_layers": 1, "pyramid_layers": 1, "attention_dim": 16, "embed_dim": 8,
                         "speller_hidden": 16, "speller_layers": 1, "dropout": 0.0}).eval()
    q = copy.deepcopy(model)
    report = quantize_model(q, "int8")
    assert report.recurrent >= 2 and report.cells >= 1 and report.linear > 0
    x = torch.randn(3, 40, DIM)
    lengths = torch.tensor([40, 31, 17])
    with torch.no_grad():
        ea, eb = model.encode(x, lengths), q.encode(x, lengths)
        ta, tb = ea.memory, eb.memory  # (B, S, M)
        assert ta.shape == tb.shape
        assert (ta - tb).abs().max().item() < 0.1 * ta.abs().max().item() + 1e-3
        assert len(attention_greedy(q, eb)) == 3


def test_quantize_bad_value_is_one_line(ctc_exp, store):
    p = subprocess.run([*ASRKIT, "decode", str(ctc_exp), str(store), "--quantize", "int4"], capture_output=True,
                       text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "--quantize must be int8, got 'int4'" in p.stderr


def test_quantize_is_for_the_cpu():
    check_quantize("int8", "cpu")
    with pytest.raises(UsageError, match="CPU only"):
        check_quantize("int8", "cuda")


# -- --timing ------------------------------------------------------------------------------------------


def test_timing_line_even_with_q(capsys, ctc_exp, store):
    _, want, _ = _run(capsys, "decode", str(ctc_exp), str(store), "--device", "cpu")
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(store), "--device", "cpu", "--timing")
    assert code == 0 and out == want  # stdout unchanged
    lines = [ln for ln in err.splitlines() if ln.startswith("timing:")]
    assert len(lines) == 1
    for phase in ("model load", "features", "forward", "search", "output", "total", "utt/s", "RTF"):
        assert phase in lines[0]
    assert "LM load" not in lines[0]  # greedy: no LM
