"""N-best rescoring: sentence LM scores (asrkit.lm.scorer), the rescoring rule and its choices on a
hand-built n-best file and a hand-written bigram ARPA (asrkit.pipeline.rescore, ``asrkit rescore``),
the output formats, bad input, and ``asrkit tune`` on an n-best file.

The ARPA below gives (log10, by hand, bigram or backoff 0 + unigram):

    the cat sat : <s> the -0.2, the cat -0.3, cat sat -0.1, sat </s> -0.1   = -0.7
    the hat sat : -0.2, the hat -1.0, hat sat -2.0, sat </s> -0.1            = -3.3
    the cat     : -0.2, -0.3, cat </s> -1.0                                  = -1.5
    a cat       : <s> <unk> -1.0, <unk> cat -1.0, cat </s> -1.0              = -3.0  ("a" is not in the model)
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from asrkit.cli.main import main
from asrkit.errors import DataError, InputError, UsageError
from asrkit.lm.scorer import LN10, KenLMScorer, SentenceLM, open_sentence_lm, score_unique
from asrkit.pipeline import tune
from asrkit.pipeline.rescore import read_nbest, rescore_all, score_candidates

ASRKIT = [sys.executable, "-m", "asrkit"]

ARPA = """\\data\\
ngram 1=7
ngram 2=4

\\1-grams:
-1.0\t</s>
-99\t<s>\t0
-1.0\t<unk>
-0.5\tthe\t0
-1.0\tcat\t0
-1.0\that\t0
-2.0\tsat\t0

\\2-grams:
-0.2\t<s> the
-0.3\tthe cat
-0.1\tcat sat
-0.1\tsat </s>

\\end\\
"""
LOG10 = {"the cat sat": -0.7, "the hat sat": -3.3, "the cat": -1.5, "a cat": -3.0}

# A CTC decode's n-best lists (am_score: the CTC part of each hypothesis). With the LM above,
# u1 = am + w * ln P:
#   w = 0:   the hat sat -4.0 | the cat sat -4.5 | the cat -4.2                      -> the hat sat
#   w = 0.1: -4.0 - 0.7598 = -4.7598 | -4.5 - 0.1612 = -4.6612 | -4.2 - 0.3454 = -4.5454 -> the cat
#   w = 1:   -11.598 | -6.1118 | -7.6539                                              -> the cat sat
#   w = 0.1, length bonus 0.5: -3.2598 | -3.1612 | -3.5454                             -> the cat sat
# u2: w = 0: a cat -1.0 | the cat -1.5 -> a cat; w = 1: -7.9078 | -4.9539 -> the cat
CTC = [
    {"utt": "u1", "hyp": "the hat sat", "score": -3.0, "frames": 40, "out_frames": 10, "units": ["t", "h"],
     "am_score": -4.0, "nbest": [{"hyp": "the hat sat", "score": -3.0, "am_score": -4.0},
                                 {"hyp": "the cat sat", "score": -3.5, "am_score": -4.5},
                                 {"hyp": "the cat", "score": -3.8, "am_score": -4.2}]},
    {"utt": "u2", "hyp": "a cat", "score": -1.0, "frames": 20, "out_frames": 5, "units": ["a"], "am_score": -1.0,
     "nbest": [{"hyp": "a cat", "score": -1.0, "am_score": -1.0},
               {"hyp": "the cat", "score": -1.5, "am_score": -1.5}]},
]
# An attention decode with --lm at weight 0.5 (score = att + 0.5 lm here): acoustic = score - 0.5 lm_score:
#   a cat: -2.0 + 1.5 = -0.5; the cat: -2.2 + 0.5 = -1.7.  New LM at w = 0.2:
#   replaced: -0.5 - 0.2 * 6.9078 = -1.8816 | -1.7 - 0.2 * 3.4539 = -2.3908 -> a cat
#   stacked (score + new LM): -3.3816 | -2.8908 -> the cat
ATT = [
    {"utt": "u3", "hyp": "a cat", "score": -2.0, "frames": 30, "out_frames": 30, "units": ["a", "|", "c"],
     "att_score": -3.5, "lm_score": -3.0, "length": 5, "attention_max": 0.9, "hit_max_len": False,
     "nbest": [{"hyp": "a cat", "score": -2.0, "att_score": -3.5, "lm_score": -3.0},
               {"hyp": "the cat", "score": -2.2, "att_score": -2.7, "lm_score": -1.0},
               {"hyp": "", "score": None, "att_score": None, "lm_score": None}]},
]


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def arpa(tmp_path: Path) -> Path:
    p = tmp_path / "lm2.arpa"
    p.write_text(ARPA, encoding="utf-8")
    return p


def _rescore(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["-q", "rescore", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- sentence LM scores ---------------------------------------------------------------------------------


def test_kenlm_sentence_scores_are_natural_log_with_bos_eos(arpa: Path):
    lm = open_sentence_lm(arpa)
    assert isinstance(lm, SentenceLM) and isinstance(lm, KenLMScorer) and lm.name == str(arpa)
    sentences = list(LOG10)
    got = lm.sentence_scores([s.split() for s in sentences])
    assert got == pytest.approx([LOG10[s] * math.log(10) for s in sentences], abs=1e-5)
    assert LN10 == pytest.approx(2.302585093)
    # the empty hypothesis: <s> </s> backs off to the unigram </s>
    assert lm.sentence_scores([[]]) == pytest.approx([-1.0 * LN10], abs=1e-5)


def test_unigram_arpa_is_scored_like_lm_ppl(tmp_path: Path):
    p = tmp_path / "uni.arpa"
    p.write_text("\\data\\\nngram 1=4\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\n-1.5\t<unk>\n-0.25\tcat\n\n\\end\\\n")
    lm = open_sentence_lm(p)
    # cat cat </s>, and an unknown word as <unk>
    assert lm.sentence_scores([["cat", "cat"], ["dog"]]) == pytest.approx([-1.0 * LN10, -2.0 * LN10], abs=1e-6)


def test_score_unique_scores_each_distinct_sentence_once(arpa: Path):
    calls = []

    class Counting:
        name = "counting"

        def sentence_scores(self, sentences):
            calls.append([list(s) for s in sentences])
            return [-float(len(s)) for s in sentences]

    assert score_unique(Counting(), [["a", "b"], ["a"], ["a", "b"], []]) == [-2.0, -1.0, -2.0, -0.0]
    assert calls == [[["a", "b"], ["a"], []]]


def test_open_sentence_lm_refuses_a_missing_path_and_a_file_that_is_no_model(tmp_path: Path):
    with pytest.raises(InputError, match="no such file or folder"):
        open_sentence_lm(tmp_path / "nope.arpa")
    bad = tmp_path / "notes.txt"
    bad.write_text("hello world\n")
    with pytest.raises(InputError, match="notes.txt"):
        open_sentence_lm(bad)


# -- the rescoring rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight, bonus, best", [
    (0.0, 0.0, "the hat sat"), (0.1, 0.0, "the cat"), (1.0, 0.0, "the cat sat"), (0.1, 0.5, "the cat sat"),
])
def test_choice_follows_the_hand_computed_scores(tmp_path: Path, arpa: Path, weight, bonus, best):
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC)
    hyps = list(rescore_all(read_nbest(nbest), open_sentence_lm(arpa), weight, bonus))
    assert hyps[0].text == best
    am = {"the hat sat": -4.0, "the cat sat": -4.5, "the cat": -4.2}[best]
    want = am + weight * LOG10[best] * LN10 + bonus * len(best.split())
    assert hyps[0].score == pytest.approx(want, abs=1e-4)
    assert hyps[1].text == ("the cat" if weight >= 1 else "a cat")


def test_cli_text_output_and_stdin(tmp_path: Path, arpa: Path, capsys):
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC)
    code, out, _ = _rescore([str(nbest), "--lm", str(arpa), "--lm-weight", "1"], capsys)
    assert code == 0 and out == "u1 the cat sat\nu2 the cat\n"
    p = subprocess.run([*ASRKIT, "-q", "rescore", "-", "--lm", str(arpa), "--lm-weight", "0.1", "--format", "trn"],
                       input=nbest.read_bytes(), capture_output=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == "the cat (u1)\na cat (u2)\n"


def test_jsonl_output_fields_and_a_second_rescoring_starts_from_the_acoustic_scores(tmp_path: Path, arpa: Path,
                                                                                     capsys):
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC)
    out1 = tmp_path / "out" / "rescored.jsonl"
    code, out, _ = _rescore([str(nbest), "--lm", str(arpa), "--lm-weight", "0.1", "--length-bonus", "0.5",
                             "--format", "jsonl", "-o", str(out1)], capsys)
    assert code == 0 and out == ""
    rows = [json.loads(line) for line in out1.read_text().splitlines()]
    u1 = rows[0]
    assert u1["utt"] == "u1" and u1["hyp"] == "the cat sat" and u1["nbest_rank"] == 2
    assert u1["frames"] == 40 and u1["out_frames"] == 10
    assert u1["units"] == []  # the decoder's best ("the hat sat") lost: its units are not this hypothesis'
    assert rows[1]["units"] == ["a"]  # u2's decoder best won
    assert u1["am_score"] == -4.5 and u1["decoder_score"] == -3.5
    assert u1["lm_score"] == pytest.approx(-0.7 * LN10, abs=1e-4)
    assert u1["score"] == pytest.approx(-3.1612, abs=1e-4)
    assert [e["hyp"] for e in u1["nbest"]] == ["the cat sat", "the hat sat", "the cat"]
    assert [e["score"] for e in u1["nbest"]] == pytest.approx([-3.1612, -3.2599, -3.5454], abs=1e-4)
    # rescoring the output again with other weights gives what rescoring the decode's file gives
    code, again, _ = _rescore([str(out1), "--lm", str(arpa), "--lm-weight", "0"], capsys)
    code2, direct, _ = _rescore([str(nbest), "--lm", str(arpa), "--lm-weight", "0"], capsys)
    assert code == code2 == 0 and again == direct == "u1 the hat sat\nu2 a cat\n"
    assert not list(out1.parent.glob(".*.tmp"))


def test_ties_keep_the_decoders_order(tmp_path: Path, arpa: Path):
    rows = [{"utt": "u", "hyp": "the cat", "score": 0.0,
             "nbest": [{"hyp": "the cat", "score": 0.0, "am_score": -1.0},
                       {"hyp": "the  cat", "score": -0.1, "am_score": -1.0}]}]
    (h,) = rescore_all(read_nbest(_jsonl(tmp_path / "n.jsonl", rows)), open_sentence_lm(arpa), 1.0)
    assert h.extra["nbest_rank"] == 1


def test_attention_lm_part_is_replaced_not_stacked(tmp_path: Path, arpa: Path, capsys):
    nbest = _jsonl(tmp_path / "att.jsonl", ATT)
    code, out, _ = _rescore([str(nbest), "--lm", str(arpa), "--lm-weight", "0.2", "--decoder-lm-weight", "0.5",
                             "--format", "jsonl"], capsys)
    assert code == 0
    row = json.loads(out)
    assert row["hyp"] == "a cat" and row["am_score"] == -0.5  # -2.0 - 0.5 x -3.0
    assert row["score"] == pytest.approx(-0.5 + 0.2 * -3.0 * LN10, abs=1e-4)
    # the unfinished hypothesis (null scores) is ranked last, its scores null
    assert row["nbest"][-1] == {"hyp": "", "score": None, "am_score": None, "lm_score": row["nbest"][-1]["lm_score"],
                                "decoder_score": None}
    # weight 0 for the decoder's LM keeps it in (stacking): then "the cat" wins, as computed above
    code, out, _ = _rescore([str(nbest), "--lm", str(arpa), "--lm-weight", "0.2", "--decoder-lm-weight", "0"],
                            capsys)
    assert code == 0 and out == "u3 the cat\n"


def test_decoder_lm_weight_is_asked_for_when_needed_and_refused_when_not(tmp_path: Path, arpa: Path, capsys):
    att = _jsonl(tmp_path / "att.jsonl", ATT)
    code, out, err = _rescore([str(att), "--lm", str(arpa), "--lm-weight", "0.2"], capsys)
    assert code == 2 and out == "" and "--decoder-lm-weight" in err and "lm_score" in err
    ctc = _jsonl(tmp_path / "ctc.jsonl", CTC)
    code, _, err = _rescore([str(ctc), "--lm", str(arpa), "--lm-weight", "0.2", "--decoder-lm-weight", "0.5"], capsys)
    assert code == 2 and "am_score" in err and "drop --decoder-lm-weight" in err
    plain = _jsonl(tmp_path / "plain.jsonl", [{"utt": "u", "hyp": "x", "score": -1,
                                              "nbest": [{"hyp": "x", "score": -1}]}])
    code, _, err = _rescore([str(plain), "--lm", str(arpa), "--lm-weight", "0.2", "--decoder-lm-weight", "0.5"],
                            capsys)
    assert code == 2 and "no decoder LM part" in err


def test_score_candidates_fills_every_hypothesis(tmp_path: Path, arpa: Path):
    utts = list(read_nbest(_jsonl(tmp_path / "n.jsonl", CTC)))
    score_candidates(utts, open_sentence_lm(arpa))
    got = {c.hyp: c.lm_score for u in utts for c in u.candidates}
    assert got == pytest.approx({s: v * LN10 for s, v in LOG10.items()}, abs=1e-5)


# -- bad input: one line each ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rows, message", [
    (["{not json"], "nbest.jsonl:1: not JSON"),
    ([CTC[0], "[1, 2]"], "nbest.jsonl:2: not an object with an 'utt'"),
    ([{"utt": "u1", "hyp": "a", "score": -1}], "utterance u1 has no 'nbest' field; decode with --nbest N"),
    ([{"utt": "u1", "hyp": "a", "score": -1, "nbest": []}], "'nbest' is empty"),
    ([{"utt": "u1", "nbest": [{"score": -1}]}], "hypothesis 1: expected an object with 'hyp'"),
    ([{"utt": "u1", "nbest": [{"hyp": "a", "score": "high"}]}], "'score' is not a number"),
    (['{"utt": "u1", "nbest": [{"hyp": "a", "score": NaN}]}'], "'score' is not a number"),
    (['{"utt": "u1", "nbest": [{"hyp": "a", "score": 0, "am_score": Infinity}]}'], "'am_score' is not a number"),
    (["", "  "], "nbest.jsonl: empty"),
])
def test_bad_input_is_one_line(tmp_path: Path, arpa: Path, capsys, rows, message):
    nbest = _jsonl(tmp_path / "nbest.jsonl", rows)
    code, out, err = _rescore([str(nbest), "--lm", str(arpa), "--lm-weight", "1"], capsys)
    assert code == 1 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_bad_input_on_the_command_line_is_one_red_line_without_traceback(tmp_path: Path, arpa: Path):
    nbest = _jsonl(tmp_path / "nbest.jsonl", [{"utt": "u1", "hyp": "a", "score": -1}])
    p = subprocess.run([*ASRKIT, "-q", "rescore", str(nbest), "--lm", str(arpa), "--lm-weight", "1"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert "no 'nbest' field" in p.stderr


def test_a_repeated_utterance_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="u1 is listed twice"):
        list(read_nbest(_jsonl(tmp_path / "n.jsonl", [CTC[0], CTC[0]])))


@pytest.mark.parametrize("args, message", [
    (["--lm-weight", "-1"], "--lm-weight must be a finite number >= 0"),
    (["--lm-weight", "1", "--format", "ctm"], "no token times"),
    (["--lm-weight", "1", "--decoder-lm-weight", "-0.5"], "--decoder-lm-weight must be"),
    (["--lm-weight", "1", "--length-bonus", "nan"], "--length-bonus must be a finite number"),
])
def test_bad_options_exit_2(tmp_path: Path, arpa: Path, capsys, args, message):
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC)
    code, out, err = _rescore([str(nbest), "--lm", str(arpa), *args], capsys)
    assert code == 2 and out == "" and message in err


def test_a_missing_lm_is_one_line(tmp_path: Path, capsys):
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC)
    code, _, err = _rescore([str(nbest), "--lm", str(tmp_path / "none.arpa"), "--lm-weight", "1"], capsys)
    assert code == 1 and "none.arpa: no such file or folder" in err


def test_a_failed_rescoring_leaves_no_output_file(tmp_path: Path, arpa: Path, capsys):
    nbest = _jsonl(tmp_path / "nbest.jsonl", [CTC[0], "oops"])
    out = tmp_path / "out.txt"
    code, _, err = _rescore([str(nbest), "--lm", str(arpa), "--lm-weight", "1", "-o", str(out)], capsys)
    assert code == 1 and "nbest.jsonl:2: not JSON" in err
    assert not out.exists() and not list(tmp_path.glob(".out.txt*"))


# -- asrkit tune on an n-best file ------------------------------------------------------------------------------


def test_rescore_grid_points_and_best(tmp_path: Path, arpa: Path):
    utts = list(read_nbest(_jsonl(tmp_path / "n.jsonl", CTC)))
    score_candidates(utts, open_sentence_lm(arpa))
    refs = {"u1": "the cat sat".split(), "u2": "the cat".split()}
    points = tune.rescore_search_grid(utts, refs, lm_weights=[0, 0.1, 1], length_bonuses=[0, 0.5])
    errors = {(p.lm_weight, p.length_bonus): p.errors for p in points}
    # u1: hat->cat sub at w 0 / (0.1, 0) "the cat" one deletion; u2: "a cat" one sub until w 1
    assert errors == {(0, 0): 2, (0, 0.5): 2, (0.1, 0): 2, (0.1, 0.5): 1, (1, 0): 0, (1, 0.5): 0}
    best = tune.best_rescore_point(points)
    assert (best.lm_weight, best.length_bonus) == (1.0, 0.0)  # tie with (1, 0.5): the smaller |bonus|
    assert tune.best_rescore_point(list(reversed(points))) == best


def test_tune_cli_on_an_nbest_file(tmp_path: Path, arpa: Path, capsys):
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC)
    ref = tmp_path / "ref.txt"
    ref.write_text("u1 the cat sat\nu2 the cat\n")
    exp = tmp_path / "exp"
    exp.mkdir()
    assert main(["-q", "tune", str(exp), str(nbest), str(ref), "--lm", str(arpa), "--lm-weights", "0,0.1,1",
                 "--length-bonuses", "0,0.5"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("best: lm_weight 1 length_bonus 0 %WER 0.00")
    assert "LENGTH_BONUS" in out
    import yaml

    doc = yaml.safe_load((exp / tune.RESCORE_TUNING_FILE).read_text())
    assert doc["search"] == "rescore" and doc["lm_weight"] == 1.0 and doc["length_bonus"] == 0.0
    assert doc["errors"] == 0 and doc["words"] == 5 and doc["utterances"] == 2 and doc["hypotheses"] == 5
    assert doc["grid_size"] == 6 and not (exp / tune.TUNING_FILE).exists()


@pytest.mark.parametrize("args, message", [
    (["--beam", "3"], "--beam sets a decoder's search"),
    (["--word-bonuses", "0"], "--word-bonuses sets a decoder's search"),
    (["--lm-weights", "-1,0"], "values must be >= 0"),
])
def test_tune_on_an_nbest_file_refuses_search_options(tmp_path: Path, arpa: Path, capsys, args, message):
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC)
    ref = tmp_path / "ref.txt"
    ref.write_text("u1 the cat sat\nu2 the cat\n")
    assert main(["-q", "tune", str(tmp_path), str(nbest), str(ref), "--lm", str(arpa), *args]) == 2
    assert message in capsys.readouterr().err


def test_tune_on_an_nbest_file_needs_lm_and_references(tmp_path: Path, arpa: Path, capsys):
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC)
    ref = tmp_path / "ref.txt"
    ref.write_text("u1 the cat sat\n")
    assert main(["-q", "tune", str(tmp_path), str(nbest), str(ref)]) == 2
    assert "Missing option '--lm'" in capsys.readouterr().err
    assert main(["-q", "tune", str(tmp_path), str(nbest), str(ref), "--lm", str(arpa)]) == 1
    assert "no reference for 1 of the 2 utterances" in capsys.readouterr().err


def test_errors_are_raised_as_asrkit_errors(tmp_path: Path, arpa: Path):
    with pytest.raises(UsageError):
        list(rescore_all(read_nbest(_jsonl(tmp_path / "n.jsonl", CTC)), open_sentence_lm(arpa), -1.0))


# -- a neural LM exp dir (asrkit.lm.neural) ---------------------------------------------------------------------


def _neural_exp(path: Path) -> Path:
    """A small untrained word LSTM LM exp dir, as 'asrkit train lm' leaves one."""
    pytest.importorskip("asrkit.lm.neural")
    import torch
    import yaml

    from asrkit.checkpoint import save_checkpoint
    from asrkit.data.units import UnitMap, save_units
    from asrkit.models import build_model

    units = UnitMap("word", ["<eos>", "<unk>", "the", "cat", "hat", "sat"])
    torch.manual_seed(0)
    model = build_model({"type": "lm_lstm", "embed_dim": 8, "hidden": 8, "layers": 1, "dropout": 0.0,
                         "embed_dropout": 0.0, "num_classes": units.num_classes})
    (path / "checkpoints").mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"task": "lm", "model": dict(model.config),
                                                      "units": {"kind": "word"}}))
    save_checkpoint({"model": model.state_dict()}, path / "checkpoints" / "best.pt")
    save_units(units, path / "units")
    return path


def test_a_neural_lm_exp_dir_rescores_with_its_sentence_scores(tmp_path: Path, capsys):
    exp = _neural_exp(tmp_path / "lm")
    from asrkit.lm.neural import NeuralLM

    lm = open_sentence_lm(exp)
    assert isinstance(lm, SentenceLM) and lm.name == str(exp)
    sentences = [c["hyp"].split() for c in CTC[0]["nbest"]]
    want = NeuralLM.load(exp).sentence_scores(sentences)
    assert lm.sentence_scores(sentences) == pytest.approx(want, abs=1e-9)
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC[:1])
    code, out, _ = _rescore([str(nbest), "--lm", str(exp), "--lm-weight", "2", "--format", "jsonl",
                             "--device", "cpu"], capsys)
    assert code == 0
    row = json.loads(out)
    totals = [c["am_score"] + 2 * s for c, s in zip(CTC[0]["nbest"], want)]
    best = max(range(3), key=lambda i: totals[i])
    assert row["hyp"] == CTC[0]["nbest"][best]["hyp"]
    assert row["lm_score"] == pytest.approx(want[best], abs=1e-4)


def test_a_folder_that_is_not_an_lm_exp_dir_is_one_line(tmp_path: Path, capsys):
    pytest.importorskip("asrkit.lm.neural")
    nbest = _jsonl(tmp_path / "nbest.jsonl", CTC)
    (tmp_path / "empty").mkdir()
    code, out, err = _rescore([str(nbest), "--lm", str(tmp_path / "empty"), "--lm-weight", "1"], capsys)
    assert code == 1 and out == ""
    assert "not a neural LM exp dir" in err and len(err.strip().splitlines()) == 1
