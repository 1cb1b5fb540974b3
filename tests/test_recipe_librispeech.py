"""recipes/librispeech/run.sh: its options and refusals (fast), the configs; and every stage on a
LibriSpeech miniature (SPLIT/READER/CHAPTER/*.flac + *.trans.txt, and librispeech-lm-norm.txt.gz)
made from the embedded tiny corpus (slow): the data dirs, the sentencepiece units, the LM text,
decoding with the LM on both test sets, the results table, and a second run that keeps finished
outputs."""
from __future__ import annotations

import gzip
import subprocess
import time
from pathlib import Path

import pytest
from miniature_corpora import make_librispeech
from recipe_helpers import (ROOT, check_refusal, check_rerun_keeps, check_results_table, check_stage_logs,
                            check_syntax_and_help, corpus_refusals, ids, run_script, write_conf)

RECIPE = ROOT / "recipes" / "librispeech"
SCRIPT = RECIPE / "run.sh"
SPLITS = ["train-clean-100", "dev-clean", "test-clean", "test-other"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_script(SCRIPT, *args, cwd=cwd)


def test_syntax_and_help():
    check_syntax_and_help(SCRIPT, ["--corpus", "--lm-text", "--stage", "--stop-stage", "--dir", "--nbpe", "--bpe-type", "--ctc-conf",
                 "--tf-conf", "--epochs", "--test-sets", "--lm-arpa", "0 data", "1 units", "2 features", "3 lm", "4 train ctc",
                 "5 decode ctc", "6 train transformer", "7 decode transformer", "8 results"])


def _skeleton(root: Path, leave_out: str | None = None) -> Path:
    for s in SPLITS:
        if s != leave_out:
            d = root / s / "19" / "198"
            d.mkdir(parents=True)
            (d / "19-198.trans.txt").write_text("")
    return root


@pytest.mark.parametrize("args, code, message", corpus_refusals("/nonexistent/LibriSpeech") + [
    (["--nbpe", "many"], 2, "--nbpe takes a number (got 'many')"),
    (["--bpe-type", "wordpiece"], 2, "--bpe-type takes unigram or bpe (got 'wordpiece')"),
    (["--test-sets", " "], 2, "--test-sets names no set"),
    (["--ctc-conf", "/nonexistent/ctc.yaml"], 2, "no such config file: /nonexistent/ctc.yaml"),
])
def test_refusals(tmp_path, args, code, message):
    check_refusal(SCRIPT, tmp_path / "work", args, code, message)


@pytest.mark.parametrize("missing", SPLITS)
def test_incomplete_corpus_names_the_missing_split(tmp_path, missing):
    corpus = _skeleton(tmp_path / "LibriSpeech", leave_out=missing)
    check_refusal(SCRIPT, tmp_path / "work", ["--corpus", corpus], 1,
                  f"--corpus {corpus} is incomplete: {missing}/*/*/*.trans.txt is missing", at_end=True)


def test_lm_text_folder_without_the_file(tmp_path):
    corpus = _skeleton(tmp_path / "LibriSpeech")
    (tmp_path / "lm").mkdir()
    check_refusal(SCRIPT, tmp_path / "work", ["--corpus", corpus, "--lm-text", tmp_path / "lm"], 1,
                  "no librispeech-lm-norm.txt(.gz) in that folder")


def test_lm_on_the_transcripts_without_lm_text(tmp_path):
    # stage 3 alone needs no corpus; without --lm-text the LM text is the training transcripts
    # (--dir relative to the current folder)
    work = tmp_path / "work"
    lines = {"train_clean_100": ["19-198-0000 THE CAT SAT", "19-198-0001 THE DOG SAT DOWN", "19-198-0002 A CAT RAN"],
             "dev_clean": ["26-495-0000 THE CAT RAN"], "test_clean": ["27-1-0000 A DOG SAT"],
             "test_other": ["28-2-0000 THE CAT SAT DOWN"]}
    for d, text in lines.items():
        (work / "data" / d).mkdir(parents=True)
        (work / "data" / d / "text").write_text("\n".join(text) + "\n")
    p = run("--dir", "work", "--stage", "3", "--stop-stage", "3", "--lm-order", "2", "--lm-prune", "", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (work / "exp" / "lm" / "lm_text.txt").read_text().splitlines() == [
        line.split(" ", 1)[1] for line in lines["train_clean_100"]]
    assert (work / "exp" / "lm" / "lm2.arpa").read_text().startswith("\\data\\")
    for s in ("dev_clean", "test_clean", "test_other"):
        assert "perplexity" in (work / "exp" / "lm" / f"ppl_{s}.txt").read_text(), s
    # a second run keeps the LM
    before = (work / "exp" / "lm" / "lm2.arpa").stat().st_mtime_ns
    p = run("--dir", str(work), "--stage", "3", "--stop-stage", "3", "--lm-order", "2", "--lm-prune", "")
    assert p.returncode == 0 and "is up to date" in p.stdout, p.stdout + p.stderr
    assert (work / "exp" / "lm" / "lm2.arpa").stat().st_mtime_ns == before
    # --lm-arpa: a ready LM, none built; the perplexities are its own
    ready = tmp_path / "ready.arpa"
    ready.write_bytes((work / "exp" / "lm" / "lm2.arpa").read_bytes())
    (work / "exp" / "lm" / "ppl_test_other.txt").unlink()
    p = run("--dir", str(work), "--stage", "3", "--stop-stage", "3", "--lm-order", "3", "--lm-arpa", str(ready))
    assert p.returncode == 0 and f"the LM: {ready} (--lm-arpa; none is built)" in p.stdout, p.stdout + p.stderr
    assert not (work / "exp" / "lm" / "lm3.arpa").exists()
    assert "perplexity" in (work / "exp" / "lm" / "ppl_test_other.txt").read_text()
    p = run("--dir", str(work), "--stage", "5", "--lm-arpa", str(tmp_path / "nope.arpa"))
    assert p.returncode == 1 and f"--lm-arpa {tmp_path / 'nope.arpa'}: no such file" in p.stderr, p.stderr


def test_configs_load():
    from asrkit.train.config import load_config

    ctc = load_config("ctc", RECIPE / "conf" / "ctc.yaml")
    tf = load_config("transformer", RECIPE / "conf" / "transformer.yaml")
    assert ctc["units"]["kind"] == tf["units"]["kind"] == "bpe"
    assert ctc["model"]["impl"] == tf["model"]["impl"] == "scratch" and tf["model"]["ctc_weight"] == 0.3


# -- the miniature ---------------------------------------------------------------------------


@pytest.mark.slow
def test_run_sh_all_stages_on_a_miniature(tmp_path):
    expect = make_librispeech(tmp_path)
    write_conf(tmp_path / "ctc.yaml", "ctc", units="bpe", epochs=3, threads=1)
    write_conf(tmp_path / "tf.yaml", "transformer", units="bpe", epochs=3, threads=1)
    work = tmp_path / "work"
    cmd = ["--corpus", str(tmp_path / "LibriSpeech"), "--lm-text", str(tmp_path / "lm"), "--dir", str(work),
           "--nj", "1", "--device", "cpu", "--nbpe", "60", "--ctc-conf", str(tmp_path / "ctc.yaml"),
           "--tf-conf", str(tmp_path / "tf.yaml"), "--epochs", "2", "--lm-order", "3", "--lm-prune", "",
           "--beam", "8", "--att-beam", "4", "--max-len-ratio", "0.2", "--tune-lm-weights", "0.5",
           "--tune-word-bonuses", "0", "--tune-att-lm-weights", "0.3", "--tune-ctc-weights", "0.5",
           "--tune-length-bonuses", "0"]
    t0 = time.monotonic()
    p = run(*cmd)
    seconds = time.monotonic() - t0
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    print(f"\nrecipes/librispeech/run.sh on the miniature: {seconds:.0f} s\n{p.stdout[p.stdout.rfind('== stage 8'):]}")
    check_stage_logs(work, ["data", "units", "features", "lm", "train_ctc", "decode_ctc", "train_transformer",
                            "decode_transformer", "results"])
    for split in SPLITS:
        d = split.replace("-", "_")
        assert ids(work / "data" / d / "text") == sorted(expect[split]), split
        assert (work / "feats" / d / "index.tsv").is_file(), split
    units = (work / "data" / "local" / "bpe60" / "units.txt").read_text().split()
    assert units[0] == "<blank>" and (work / "data" / "local" / "bpe60" / "bpe.model").is_file()
    # the LM text is the LibriSpeech LM text as given (not the transcripts)
    with gzip.open(tmp_path / "lm" / "librispeech-lm-norm.txt.gz", "rt") as f:
        assert (work / "exp" / "lm" / "lm_text.txt").read_text() == f.read()
    assert (work / "exp" / "lm" / "lm3.arpa").is_file()
    for exp in ("ctc_bpe", "transformer"):
        # both models use the stage 1 units
        assert (work / "exp" / exp / "units" / "units.txt").read_text().split() == units, exp
        assert (work / "exp" / exp / "lm_tuning.yaml").is_file(), exp
        for s in ("test-clean", "test-other"):
            out = work / "exp" / exp / f"decode_{s.replace('-', '_')}"
            assert ids(out / "hyp.txt") == sorted(expect[s]), (exp, s)
            report = (out / "wer.txt").read_text()
            assert report.startswith("%WER ") and "%CER" in report, (exp, s)
    check_results_table(work, p.stdout, ["ctc_bpe", "transformer"], ["test_clean", "test_other"])
    # a second run of the decoding keeps the hypotheses
    check_rerun_keeps(SCRIPT, cmd, 5, work / "exp" / "ctc_bpe" / "decode_test_other" / "hyp.txt")
