"""`asrkit decode` and `asrkit tune` of attention exp dirs (task las / transformer).

The exp dirs hold a real config.yaml and units/; the model is the fake of
attention_util.py, handed to load_exp by replacing asrkit.models.load_model
(the real LAS / transformer models are tested end to end elsewhere).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import asrkit.models
from asrkit.cli.main import main
from asrkit.data import FeatureStore
from asrkit.data.tokenizer import train_tokenizer
from asrkit.data.units import load_units_dir
from asrkit.decode.attention import AttentionSearch, attention_decode
from asrkit.decode.exp import load_exp
from asrkit.errors import ConfigError, UsageError

from attention_util import FakeSeq2Seq
from decode_util import PHONE_WORDS

ARPA = "\\data\\\nngram 1=7\nngram 2=2\n\n\\1-grams:\n" + "".join(
    f"-1\t{w}\t0\n" for w in ["<s>", "</s>", "<unk>", "a", "cat", "sat", "mat"]) + \
    "\n\\2-grams:\n-0.2\t<s> a\n-0.3\ta cat\n\n\\end\\\n"


def _attention_exp(path: Path, task: str) -> Path:
    path.mkdir(parents=True)
    (path / "text").write_text("".join(f"u{i} {w} {' '.join(PHONE_WORDS)}\n" for i, w in enumerate(PHONE_WORDS)))
    train_tokenizer("char", path / "text", path / "units")
    units = load_units_dir(path / "units", "char")
    cfg = {"task": task, "units": {"kind": "char"}, "data": {"cmvn": None},
           "model": {"type": task, "input_dim": 20, "num_classes": units.num_classes}}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def tf_exp(tmp_path_factory):
    return _attention_exp(tmp_path_factory.mktemp("att") / "tf", "transformer")


@pytest.fixture(scope="module")
def las_exp(tmp_path_factory):
    return _attention_exp(tmp_path_factory.mktemp("att") / "las", "las")


@pytest.fixture
def fake_models(monkeypatch):
    """load_model builds the fake: a CTC head for task transformer, none for las; ``opts`` tweaks it."""
    opts: dict = {}

    def load_model(exp_dir, checkpoint="best", device="cpu", impl=None):
        config = yaml.safe_load((Path(exp_dir) / "config.yaml").read_text())
        m = config["model"]
        return FakeSeq2Seq(m["num_classes"], has_ctc=config["task"] == "transformer", input_dim=m["input_dim"],
                           **opts), config

    monkeypatch.setattr(asrkit.models, "load_model", load_model)
    return opts


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["-q", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_load_exp_accepts_the_attention_tasks(tf_exp, fake_models):
    loaded = load_exp(tf_exp, device="cpu", task=("las", "transformer"))
    assert loaded.task == "transformer" and loaded.model.has_ctc
    with pytest.raises(UsageError, match="is an attention model"):
        load_exp(tf_exp, device="cpu", task="ctc")
    with pytest.raises(ConfigError, match="expected 'las'"):
        load_exp(tf_exp, device="cpu", task="las")


def test_decode_greedy_text_matches_the_function(capsys, tf_exp, store, fake_models):
    code, out, err = _run(capsys, "decode", str(tf_exp), str(store), "--device", "cpu", "--batch-size", "3")
    assert code == 0, err
    fs = FeatureStore(store)
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == fs.keys()
    loaded = load_exp(tf_exp, device="cpu", task="transformer")
    want = {h.utt: h.text for h in attention_decode(loaded, fs, AttentionSearch(), batch_size=2)}
    assert {line.split(" ", 1)[0]: line.partition(" ")[2] for line in lines} == want
    assert any(want.values())


def test_decode_beam_jsonl_nbest(capsys, tf_exp, store, fake_models):
    code, out, err = _run(capsys, "decode", str(tf_exp), str(store), "--device", "cpu", "--beam", "4",
                          "--nbest", "3", "--ctc-weight", "0.4", "--length-bonus", "0.5")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(FeatureStore(store))
    for r in rows:
        assert {"att_score", "ctc_score", "length", "attention_max", "hit_max_len", "nbest"} <= set(r)
        assert r["nbest"][0]["hyp"] == r["hyp"] and r["nbest"][0]["score"] == r["score"]
        scores = [n["score"] for n in r["nbest"]]
        assert scores == sorted(scores, reverse=True) and 1 <= len(scores) <= 3
        assert r["score"] == pytest.approx(0.6 * r["att_score"] + 0.4 * r["ctc_score"] + 0.5 * r["length"], abs=1e-3)
        assert 0 < r["attention_max"] <= 1 and r["out_frames"] == (r["frames"] + 1) // 2


def test_decode_joins_the_pieces_of_a_long_utterance(capsys, tf_exp, fake_models, tmp_path):
    from decode_util import make_store

    make_store(tmp_path / "long", n=3, min_frames=250, max_frames=300)
    code, out, err = _run(capsys, "decode", str(tf_exp), str(tmp_path / "long"), "--device", "cpu", "--beam", "3",
                          "--nbest", "2", "--chunk-seconds", "1")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3
    for r in rows:
        assert 3 <= r["pieces"] <= 6 and r["out_frames"] == (r["frames"] + 1) // 2  # 250-300 frames, pieces of 50-100
        assert r["nbest"][0]["hyp"] == r["hyp"] and r["nbest"][0]["score"] == pytest.approx(r["score"], abs=1e-3)
    code, whole, err = _run(capsys, "decode", str(tf_exp), str(tmp_path / "long"), "--device", "cpu", "--beam", "3",
                            "--nbest", "2", "--chunk-seconds", "0")
    assert code == 0 and all("pieces" not in json.loads(line) for line in whole.splitlines())


def test_decode_with_an_lm(capsys, tf_exp, store, fake_models, tmp_path):
    lm = tmp_path / "lm.arpa"
    lm.write_text(ARPA)
    code, out, err = _run(capsys, "decode", str(tf_exp), str(store), "--device", "cpu", "--lm", str(lm),
                          "--lm-weight", "0.7", "--format", "jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert all("lm_score" in r and r["lm_score"] < 0 for r in rows)


def test_max_length_warns_once_with_the_count(capsys, tf_exp, store, fake_models):
    fake_models["never_eos"] = True
    code, out, err = main(["decode", str(tf_exp), str(store), "--device", "cpu", "--max-len-ratio", "0.5"]), \
        *capsys.readouterr()
    assert code == 0, err
    n = len(FeatureStore(store))
    assert err.count("reached the maximum length") == 1 and f"{n} of {n} utterances" in err
    assert len(out.splitlines()) == n


@pytest.mark.parametrize("args,message", [
    (["--backend", "plain"], "--backend picks a CTC beam search"),
    (["--lexicon", "x.txt"], "--lexicon lists the words of a CTC LM search"),
    (["--extra-lexicon", "x.txt"], "--extra-lexicon adds words"),
    (["--save-emissions", "em"], "--save-emissions saves CTC log-probabilities"),
    (["--word-bonus", "1"], "--word-bonus is the CTC LM search's"),
    (["--jobs", "2"], "--jobs runs CTC searches in worker processes"),
    (["--warps", "0.9,1,1.1"], "--warps averages CTC log-probabilities over warped copies"),
    (["--format", "ctm"], "ctm needs frame times; attention models do not give them"),
    (["--lm-weight", "1"], "--lm-weight weighs an LM"),
    (["--nbest", "2", "--format", "text"], "--nbest writes its hypotheses in the jsonl"),
    (["--ctc-weight", "1.5"], "--ctc-weight must be between 0 and 1"),
    (["--max-len-ratio", "0"], "--max-len-ratio must be a finite number > 0"),
])
def test_ctc_options_on_an_attention_model_are_refused(capsys, tf_exp, store, fake_models, args, message):
    code, out, err = _run(capsys, "decode", str(tf_exp), str(store), "--device", "cpu", *args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_saved_ctc_emissions_for_an_attention_model_are_refused(capsys, tf_exp, fake_models, tmp_path):
    em = tmp_path / "em"
    em.mkdir()
    (em / "emissions.json").write_text('{"kind": "ctc-log-probs"}\n')
    code, out, err = _run(capsys, "decode", str(tf_exp), str(em), "--device", "cpu")
    assert code == 2 and out == ""
    assert "holds saved CTC emissions" in err and len(err.strip().splitlines()) == 1


def test_ctc_weight_on_las_is_refused(capsys, las_exp, store, fake_models):
    code, out, err = _run(capsys, "decode", str(las_exp), str(store), "--device", "cpu", "--ctc-weight", "0.3")
    assert code == 2 and "has no CTC head" in err and len(err.strip().splitlines()) == 1
    code, out, err = _run(capsys, "decode", str(las_exp), str(store), "--device", "cpu", "--beam", "2")
    assert code == 0, err  # no CTC weight by default for LAS


@pytest.mark.parametrize("args", [["--ctc-weight", "0.3"], ["--length-bonus", "1"], ["--max-len-ratio", "3"],
                                  ["--length-norm"]])
def test_attention_options_on_a_ctc_model_are_refused(capsys, ctc_exp, store, args):
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(store), "--device", "cpu", *args)
    assert code == 2 and out == ""
    assert f"{args[0]} is for attention models" in err and len(err.strip().splitlines()) == 1


def test_tune_writes_the_weights_decode_then_uses(capsys, tf_exp, store, fake_models, tmp_path):
    lm = tmp_path / "lm.arpa"
    lm.write_text(ARPA)
    ref = Path(store) / "text"
    code, out, err = _run(capsys, "tune", str(tf_exp), str(store), str(ref), "--lm", str(lm), "--lm-weights", "0,1",
                          "--ctc-weights", "0,0.5", "--length-bonuses", "0,2", "--beam", "3", "--device", "cpu")
    assert code == 0, err
    lines = out.splitlines()
    assert "LM_WEIGHT" in out and "CTC_WEIGHT" in out and lines[-1].startswith("best: lm_weight ")
    assert sum(1 for line in lines if line.rstrip().endswith("*")) == 1
    doc = yaml.safe_load((tf_exp / "lm_tuning.yaml").read_text())
    assert doc["search"] == "attention" and doc["grid_size"] == 8 and doc["lm"] == str(lm.resolve())
    assert doc["lm_weights"] == [0.0, 1.0] and doc["ctc_weights"] == [0.0, 0.5] and doc["beam"] == 3
    # decode --lm LM takes the tuned weights; explicit ones give the same result
    _, tuned, err1 = _run(capsys, "decode", str(tf_exp), str(store), "--device", "cpu", "--lm", str(lm), "--beam", "3",
                          "--format", "jsonl")
    _, explicit, err2 = _run(capsys, "decode", str(tf_exp), str(store), "--device", "cpu", "--lm", str(lm), "--beam",
                             "3", "--format", "jsonl", "--lm-weight", str(doc["lm_weight"]), "--ctc-weight",
                             str(doc["ctc_weight"]), "--length-bonus", str(doc["length_bonus"]))
    assert tuned == explicit and tuned, err1 + err2
    # with another LM (none) the file does not apply: one warning, the defaults
    code, _, err = main(["decode", str(tf_exp), str(store), "--device", "cpu", "--beam", "2"]), *capsys.readouterr()
    assert code == 0 and "was tuned for LM" in err
    (tf_exp / "lm_tuning.yaml").unlink()


def test_a_ctc_tuning_file_is_not_read_as_an_attention_one(capsys, tf_exp, store, fake_models):
    (tf_exp / "lm_tuning.yaml").write_text("lm_weight: 0.5\nword_bonus: 1.0\nbackend: flashlight\n")
    try:
        code, out, err = _run(capsys, "decode", str(tf_exp), str(store), "--device", "cpu", "--beam", "2")
        assert code == 1 and out == "" and "not the tuning of an attention model" in err
        code, out, err = _run(capsys, "decode", str(tf_exp), str(store), "--device", "cpu")
        assert code == 0, err  # greedy reads no tuning
    finally:
        (tf_exp / "lm_tuning.yaml").unlink()


@pytest.mark.parametrize("args,message", [
    (["--word-bonuses", "0,1"], "--word-bonuses are the CTC LM search's"),
    (["--backend", "flashlight"], "--backend picks a CTC beam search"),
    (["--jobs", "2"], "--jobs spreads CTC grid points"),
    (["--lm-weights", "0,1"], "--lm-weights weigh an LM"),
    (["--ctc-weights", "0,2"], "values must be <= 1"),
])
def test_tune_refusals(capsys, tf_exp, store, fake_models, args, message):
    code, out, err = _run(capsys, "tune", str(tf_exp), str(store), str(Path(store) / "text"), *args)
    assert code == 2 and out == "" and message in err, err


def test_tune_searches_long_utterances_in_pieces_as_decode_does(capsys, tf_exp, fake_models, tmp_path):
    from decode_util import make_store

    make_store(tmp_path / "long", n=3, min_frames=250, max_frames=300)
    ref = tmp_path / "long" / "text"
    code, out, err = _run(capsys, "tune", str(tf_exp), str(tmp_path / "long"), str(ref), "--length-bonuses", "0,1",
                          "--ctc-weights", "0.5", "--beam", "3", "--device", "cpu", "--chunk-seconds", "1")
    assert code == 0, err
    doc = yaml.safe_load((tf_exp / "lm_tuning.yaml").read_text())
    (tf_exp / "lm_tuning.yaml").unlink()
    code, hyp, err = _run(capsys, "decode", str(tf_exp), str(tmp_path / "long"), "--device", "cpu", "--beam", "3",
                          "--ctc-weight", "0.5", "--length-bonus", str(doc["length_bonus"]), "--chunk-seconds", "1")
    assert code == 0, err
    (tmp_path / "hyp").write_text(hyp)
    code, out, err = _run(capsys, "score", str(ref), str(tmp_path / "hyp"), "--json")
    assert json.loads(out)["wer"] == pytest.approx(doc["wer"], abs=1e-3)
    code, out, err = _run(capsys, "tune", str(tf_exp), str(tmp_path / "long"), str(ref), "--chunk-seconds", "0.2")
    assert code == 2 and "--chunk-seconds must be 0" in err


def test_tune_las_without_lm(capsys, las_exp, store, fake_models):
    code, out, err = _run(capsys, "tune", str(las_exp), str(store), str(Path(store) / "text"), "--length-bonuses",
                          "0,1", "--beam", "2", "--device", "cpu")
    assert code == 0, err
    doc = yaml.safe_load((las_exp / "lm_tuning.yaml").read_text())
    assert doc["lm"] is None and doc["ctc_weights"] == [0.0] and doc["grid_size"] == 2
    code, out, err = _run(capsys, "tune", str(las_exp), str(store), str(Path(store) / "text"), "--ctc-weights", "0.3")
    assert code == 2 and "has no CTC head" in err
    (las_exp / "lm_tuning.yaml").unlink()


def test_forward_options_on_an_attention_model(capsys, tf_exp, store, fake_models):
    """--batch-frames gives the --batch-size hypotheses; --timing adds its line (the encoder is the forward
    pass); --quantize int8 goes through (the fake has no Linear layer to quantize: the same output)."""
    args = ("decode", str(tf_exp), str(store), "--device", "cpu")
    _, want, _ = _run(capsys, *args, "--batch-size", "2")
    code, got, err = _run(capsys, *args, "--batch-frames", "100", "--timing")
    assert code == 0, err
    assert got == want
    timing = [ln for ln in err.splitlines() if ln.startswith("timing:")]
    assert len(timing) == 1 and "forward" in timing[0] and "search" in timing[0]
    code, got, err = _run(capsys, *args, "--quantize", "int8")
    assert code == 0 and got == want, err
    code, _, err = _run(capsys, *args, "--batch-frames", "-3")
    assert code == 2 and "--batch-frames" in err
