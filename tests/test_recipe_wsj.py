"""recipes/wsj/run.sh: its options and refusals (fast), the verbalized-punctuation lexicon it
ships, the configs; and every stage on a WSJ miniature in the LDC disc layout made from the
embedded tiny corpus (slow): the Kaldi sets, the phone model's data, the LM text, decoding with
the LM, the results table, and a second run that keeps finished outputs."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from miniature_corpora import NOISE, OOV_WORD, VP_WORD, make_wsj, write_sphere
from recipe_helpers import (ENV, ROOT, check_refusal, check_rerun_keeps, check_results_table, check_stage_logs,
                            check_syntax_and_help, corpus_refusals, ids, run_script, write_conf)

RECIPE = ROOT / "recipes" / "wsj"
SCRIPT = RECIPE / "run.sh"
NP = "13-32.1/wsj1/doc/lng_modl/lm_train/np_data"
PARTS = ["*/wsj0/si_tr_s", "*/wsj1/si_tr_s", "*/wsj1/si_dt_20", "*/wsj0/si_et_20",
         f"{NP}/87/*.z", f"{NP}/88/*.z", f"{NP}/89/*.z"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_script(SCRIPT, *args, env=env)


def test_syntax_and_help():
    check_syntax_and_help(SCRIPT, ["--corpus", "--stage", "--stop-stage", "--dir", "--ctc-conf", "--tf-conf", "--epochs", "--beam",
                 "--lm-order", "--lm-prune", "--lm-arpa", "0 data", "1 dict", "2 features", "3 lm", "4 train ctc_phone",
                 "5 decode ctc_phone", "6 train ctc_char", "8 train transformer", "10 results"])


def _skeleton(root: Path, leave_out: str | None = None) -> Path:
    """The folders (and LM files) require_corpus looks for, without ``leave_out``."""
    for part, real in zip(PARTS, ["11-2.1/wsj0/si_tr_s", "13-2.1/wsj1/si_tr_s", "13-16.1/wsj1/si_dt_20",
                                  "11-14.1/wsj0/si_et_20", f"{NP}/87/w870101.z", f"{NP}/88/w880101.z",
                                  f"{NP}/89/w890101.z"]):
        if part == leave_out:
            continue
        p = root / real
        if p.suffix == ".z":
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"")
        else:
            p.mkdir(parents=True, exist_ok=True)
    return root


@pytest.mark.parametrize("args, code, message", corpus_refusals("/nonexistent/wsj") + [
    (["--stage", "x"], 2, "--stage takes a number (got 'x')"),
    (["--epochs", "two"], 2, "--epochs takes a number (got 'two')"),
    (["--tf-conf", "/nonexistent/tf.yaml"], 2, "no such config file: /nonexistent/tf.yaml"),
])
def test_refusals(tmp_path, args, code, message):
    check_refusal(SCRIPT, tmp_path / "work", args, code, message)  # nothing written before the options and the corpus are checked


@pytest.mark.parametrize("missing", PARTS)
def test_incomplete_corpus_names_the_missing_part(tmp_path, missing):
    corpus = _skeleton(tmp_path / "wsj", leave_out=missing)
    check_refusal(SCRIPT, tmp_path / "work", ["--corpus", corpus], 1,
                  f"--corpus {corpus} is incomplete: {missing} is missing", at_end=True)


def test_corpus_not_needed_after_stage_3(tmp_path):
    # decoding and scoring again needs no corpus; stages past 10 do nothing
    p = run("--dir", str(tmp_path), "--stage", "11")
    assert p.returncode == 0 and "== stage" not in p.stdout, p.stdout + p.stderr


def test_lm_arpa_needs_no_lm_text(tmp_path):
    # with a ready LM, stage 3 needs no corpus: it only measures the perplexities
    work = tmp_path / "work"
    for s, line in (("test_dev93", "4k0c0201 THE CAT SAT"), ("test_eval92", "440c0201 A DOG SAT")):
        (work / "data" / s).mkdir(parents=True)
        (work / "data" / s / "text").write_text(line + "\n")
    (tmp_path / "text.txt").write_text("THE CAT SAT\nA DOG SAT DOWN\nTHE DOG SAT\n")
    subprocess.run([sys.executable, "-m", "asrkit", "-q", "lm", "build", str(tmp_path / "text.txt"), "-n", "2",
                    "-o", str(tmp_path / "ready.arpa")], check=True)
    p = run("--dir", str(work), "--stage", "3", "--stop-stage", "3", "--lm-arpa", str(tmp_path / "ready.arpa"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "(--lm-arpa; none is built)" in p.stdout and not (work / "exp" / "lm" / "lm_text.txt").exists()
    for s in ("test_dev93", "test_eval92"):
        assert "perplexity" in (work / "exp" / "lm" / f"ppl_{s}.txt").read_text(), s
    # without it, stage 3 needs the corpus's LM text
    p = run("--dir", str(work), "--stage", "3", "--stop-stage", "3")
    assert p.returncode == 2 and "--corpus is required" in p.stderr, p.stderr


def test_shortened_audio_without_sph2pipe_stops_with_one_line(tmp_path):
    corpus = _skeleton(tmp_path / "wsj")
    import numpy as np

    write_sphere(corpus / "11-2.1/wsj0/si_tr_s/01a/01ac0201.wv1", np.zeros(1600, np.float32),
                 coding="pcm,embedded-shorten-v2.00")
    (corpus / "11-2.1/wsj0/si_tr_s/01a/01ac02.dot").write_text("Hello world (01ac0201)\n")
    env = dict(ENV, PATH=f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert subprocess.run(["bash", "-c", "command -v sph2pipe"], env=env).returncode != 0
    p = run("--corpus", str(corpus), "--dir", str(tmp_path / "work"), "--stop-stage", "0", env=env)
    assert p.returncode != 0
    assert "shorten-compressed SPHERE and sph2pipe is not on PATH" in p.stdout + p.stderr, p.stdout + p.stderr


def test_vp_lexicon_is_needed_and_valid():
    from asrkit.data.lexicon import ARPABET39, Lexicon

    lex = Lexicon.load(RECIPE / "local" / "lexicon_vp.txt")
    cmu = Lexicon.default()
    assert len(lex) >= 40 and {",COMMA", ".PERIOD", "-DASH", '"QUOTE', "?QUESTION-MARK"} <= set(lex)
    for w in lex:
        assert w not in cmu, w
        assert all(p in ARPABET39 for p in lex.pron(w)), w


def test_configs_load():
    from asrkit.train.config import load_config

    ctc = load_config("ctc", RECIPE / "conf" / "ctc.yaml")
    tf = load_config("transformer", RECIPE / "conf" / "transformer.yaml")
    assert ctc["model"]["impl"] == tf["model"]["impl"] == "scratch"
    assert tf["units"]["kind"] == "char" and tf["model"]["ctc_weight"] == 0.3


# -- the miniature ---------------------------------------------------------------------------


@pytest.mark.slow
def test_run_sh_all_stages_on_a_miniature(tmp_path):
    corpus = tmp_path / "wsj"
    expect = make_wsj(corpus)
    write_conf(tmp_path / "ctc.yaml", "ctc", epochs=3, threads=1)
    write_conf(tmp_path / "tf.yaml", "transformer", epochs=3, threads=1)
    work = tmp_path / "work"
    # one-point tuning grids, the untrained decoder kept short: the miniature checks the plumbing
    cmd = ["--corpus", str(corpus), "--dir", str(work), "--nj", "1", "--device", "cpu",
           "--ctc-conf", str(tmp_path / "ctc.yaml"), "--tf-conf", str(tmp_path / "tf.yaml"), "--epochs", "2",
           "--lm-order", "3", "--lm-prune", "", "--beam", "8", "--att-beam", "4", "--max-len-ratio", "0.2",
           "--tune-lm-weights", "0.5", "--tune-word-bonuses", "0", "--tune-att-lm-weights", "0.3",
           "--tune-ctc-weights", "0.5", "--tune-length-bonuses", "0"]
    t0 = time.monotonic()
    p = run(*cmd)
    seconds = time.monotonic() - t0
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    print(f"\nrecipes/wsj/run.sh on the miniature: {seconds:.0f} s\n{p.stdout[p.stdout.rfind('== stage 10'):]}")
    check_stage_logs(work, ["data", "dict", "features", "lm", "train_ctc_phone", "decode_ctc_phone", "train_ctc_char",
                            "decode_ctc_char", "train_transformer", "decode_transformer", "results"])
    data = work / "data"
    # the Kaldi sets: si284 without speaker 401, dev93 only from WSJ1, eval92 from WSJ0, as the indices list
    for s in ("train_si284", "test_dev93", "test_eval92"):
        assert ids(data / s / "text") == sorted(expect[s]), s
    sets = ("train_si284", "test_dev93", "test_eval92")
    assert not set(expect["decoys"]) & {u for s in sets for u in ids(data / s / "text")}
    data_log = (work / "exp" / "log" / "00_data.log").read_text()
    for s in sets:   # the disc index files picked them (each leaves out an utterance its folder has)
        assert f"data/wsj/{s}.list: {len(expect[s])} utterances listed by" in data_log, s
    train_text = (data / "train_si284" / "text").read_text()
    assert "[LOUD_BREATH]" not in train_text and NOISE.upper() not in train_text     # --drop-noise
    assert VP_WORD in train_text and OOV_WORD.upper() in train_text
    # the phone model's sets leave out exactly the utterances with a word neither lexicon spells
    from asrkit.data.lexicon import Lexicon

    lex = Lexicon.combine([Lexicon.load(RECIPE / "local" / "lexicon_vp.txt"), Lexicon.default()])
    for s in ("train_si284", "test_dev93"):
        lines = (data / s / "text").read_text().splitlines()
        spelled = [line.split()[0] for line in lines if all(w in lex for w in line.split()[1:])]
        if len(spelled) < len(lines):
            assert ids(data / f"{s}_phone" / "text") == spelled, s
        else:
            assert not (data / f"{s}_phone").exists(), s
    assert expect["oov"] and expect["oov"][0] not in ids(data / "train_si284_phone" / "text")
    assert "lexicon.txt" in os.listdir(data / "local" / "dict" / "train_si284")
    for s in ("train_si284", "train_si284_phone", "test_dev93", "test_eval92"):
        assert (work / "feats" / s / "index.tsv").is_file(), s
    assert (work / "feats" / "test_dev93_phone").exists() == (data / "test_dev93_phone").exists()
    # the LM text: the si284 transcripts, then the newswire sentences without their markup, upper case
    lm_text = (work / "exp" / "lm" / "lm_text.txt").read_text().splitlines()
    n_train = len(expect["train_si284"])
    assert len(lm_text) == n_train + 4000
    assert not any(line.startswith("<") for line in lm_text) and all(line == line.upper() for line in lm_text)
    assert (work / "exp" / "lm" / "lm3.arpa").is_file()
    assert "perplexity" in (work / "exp" / "lm" / "ppl_test_eval92.txt").read_text()
    # every model: tuned weights, hypotheses of every utterance, a WER report
    for exp in ("ctc_phone", "ctc_char", "transformer"):
        assert (work / "exp" / exp / "lm_tuning.yaml").is_file(), exp
        for s in ("test_dev93", "test_eval92"):
            out = work / "exp" / exp / f"decode_{s}"
            assert ids(out / "hyp.txt") == sorted(expect[s]), (exp, s)
            assert (out / "wer.txt").read_text().startswith("%WER "), (exp, s)
    assert "%CER" in (work / "exp" / "transformer" / "decode_test_eval92" / "wer.txt").read_text()
    # the results table: one row per model, its two numbers those of the WER reports
    check_results_table(work, p.stdout, ["ctc_char", "ctc_phone", "transformer"], ["test_dev93", "test_eval92"])
    # a second run of the decoding keeps the hypotheses
    check_rerun_keeps(SCRIPT, cmd, 5, work / "exp" / "ctc_phone" / "decode_test_eval92" / "hyp.txt")
