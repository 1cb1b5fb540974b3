"""recipes/asterisk/run.sh: syntax, options and its bad-option handling, the
configs it ships, the extra pronunciations it writes (fast, nothing
downloaded); and every stage on the real Asterisk packages with very small
configs (slow, skipped where apt-get cannot fetch them)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from asrkit.corpora.asterisk import fetch_packages, fetch_problem
from asrkit.errors import AsrkitError
from recipe_helpers import run_script, write_conf

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "asterisk"
SCRIPT = RECIPE / "run.sh"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_script(SCRIPT, *args, cwd=cwd)


def test_syntax():
    p = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_help_lists_stages_and_options():
    p = run("--help")
    assert p.returncode == 0, p.stderr
    for word in ("--stage", "--stop-stage", "--dir", "--ctc-conf", "--fbank-conf", "--exp", "--beam", "--from",
                 "0 corpus", "1 features", "2 lm", "3 train ctc", "4 decode", "5 decode lm", "--attention",
                 "6 train transformer", "7 decode transformer", "--transformer-conf", "--extra", "--average",
                 "--finetune-lr", "8 lm open", "12 results"):
        assert word in p.stdout, word


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option '--bogus'"),
    (["--stage"], "option '--stage' needs a value"),
    (["--dir"], "option '--dir' needs a value"),
    (["--stage", "x"], "--stage takes a number (got 'x')"),
    (["--beam", "-3"], "--beam takes a number (got '-3')"),
    (["--exp", "../x"], "--exp takes a folder name (got '../x')"),
    (["--ctc-conf", "/nonexistent/ctc.yaml"], "no such config file: /nonexistent/ctc.yaml"),
    (["--attention", "maybe"], "--attention takes yes or no (got 'maybe')"),
    (["--average", "0"], "--average takes a number of epochs >= 1 (got 0)"),
    (["--big-conf", "/nonexistent/big.yaml"], "no such config file: /nonexistent/big.yaml"),
    (["--extra", "maybe"], "--extra takes yes or no (got 'maybe')"),
])
def test_bad_options_exit_2(tmp_path, args, message):
    p = run("--dir", str(tmp_path / "work"), *args)
    assert p.returncode == 2 and message in p.stderr, p.stdout + p.stderr
    assert not (tmp_path / "work").exists()   # nothing written before the options are checked


def test_a_config_asrkit_refuses_exits_2(tmp_path):
    (tmp_path / "ctc.yaml").write_text("units: {kind: syllable}\n")
    p = run("--dir", str(tmp_path / "work"), "--ctc-conf", str(tmp_path / "ctc.yaml"))
    assert p.returncode == 2 and "the ctc task takes phone, char, bpe (got 'syllable')" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "work").exists()


def test_no_stage_selected_does_nothing(tmp_path):
    # stages 13..14 do not exist (the last is 12): no stage runs, nothing is downloaded or computed
    p = run("--dir", str(tmp_path), "--stage", "13", "--stop-stage", "14")
    assert p.returncode == 0, p.stderr
    assert "== stage" not in p.stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["exp"]


def test_configs_load():
    from asrkit.features.config import FeatureConfig
    from asrkit.train.config import load_config

    confs = sorted((RECIPE / "conf").glob("ctc_*.yaml"))
    assert RECIPE / "conf" / "ctc_phone.yaml" in confs
    for conf in confs:
        cfg = load_config("ctc", conf)
        assert cfg["units"]["kind"] == "phone" and cfg["train"]["threads"] == 1, conf
    tf = load_config("transformer", RECIPE / "conf" / "transformer_char.yaml")
    assert tf["units"]["kind"] == "char" and tf["model"]["ctc_weight"] == 0.3 and tf["model"]["impl"] == "scratch"
    fb = FeatureConfig.load(RECIPE / "conf" / "fbank40_8k.yaml")
    assert fb.type == "fbank" and fb.sample_rate == 8000 and fb.dim == 40


def _extra_lexicon() -> list[list[str]]:
    text = SCRIPT.read_text()
    m = re.search(r"<<'LEX'\n(.*?)\nLEX\n", text, re.S)
    assert m, "run.sh has no <<'LEX' here-document"
    return [line.split() for line in m.group(1).splitlines()]


def test_extra_lexicon_is_needed_and_valid():
    """Each extra word is missing from the CMU dict (else the entry would be
    dead) and is spelled with the 39 ARPAbet phones of the model's units."""
    from asrkit.data.lexicon import ARPABET39, Lexicon

    cmu = Lexicon.default()
    entries = _extra_lexicon()
    words = [e[0] for e in entries]
    assert len(words) == len(set(words)) >= 25
    for word, *phones in entries:
        assert word not in cmu, word
        assert phones and all(p in ARPABET39 for p in phones), (word, phones)
    # the prompts' known words that the CMU dict lacks are covered
    assert {"pbx", "iax", "digium", "dahdi", "unmute", "unmuted", "represenatives"} <= set(words)


# -- the real corpus --------------------------------------------------------


@pytest.mark.slow
def test_run_sh_all_stages(tmp_path):
    # Only the download may skip (no apt, no package lists, no network); every stage after it must work.
    reason = fetch_problem()
    if reason:
        pytest.skip(reason)
    try:
        packages = fetch_packages(tmp_path / "cache")
    except AsrkitError as e:
        pytest.skip(f"apt-get download failed (no network?): {e}")
    write_conf(tmp_path / "ctc.yaml", "ctc", threads=1)
    work = tmp_path / "work"
    cmd = ["--dir", str(work), "--device", "cpu", "--beam", "4", "--ctc-conf", str(tmp_path / "ctc.yaml"),
           "--from", str(packages)]
    p = run(*cmd, "--stop-stage", "0")
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(*cmd, "--stage", "1")
    assert p.returncode == 0, p.stdout + p.stderr
    for n, name in enumerate(["corpus", "features", "lm", "train_ctc", "decode", "decode_lm"]):
        assert (work / "exp" / "log" / f"{n:02d}_{name}.log").exists(), name
    # dev is held out of train_nodev, and no test or dev sentence is in the LM text
    dev = (work / "data" / "dev" / "text").read_text().splitlines()
    nodev = (work / "data" / "train_nodev" / "text").read_text().splitlines()
    assert len(dev) == 40 and len(dev) + len(nodev) == len((work / "data" / "train" / "text").read_text().splitlines())
    assert not {u.split()[0] for u in dev} & {u.split()[0] for u in nodev}
    held = {line.split(" ", 1)[1] for s in ("dev", "test") for line in
            (work / "data" / s / "text").read_text().splitlines()}
    lm_text = (work / "exp" / "lm" / "lm_text.txt").read_text().splitlines()
    assert len(lm_text) > 4000 and not held & set(lm_text)
    assert "oov_rate" in (work / "exp" / "lm" / "ppl_test.txt").read_text()
    ctc = work / "exp" / "ctc_phone"
    test_utts = len((work / "data" / "test" / "text").read_text().splitlines())
    assert len((ctc / "decode_test" / "hyp.txt").read_text().splitlines()) == test_utts
    assert len((ctc / "decode_test" / "ref.txt").read_text().splitlines()) == test_utts
    assert "%PER" in (ctc / "decode_test" / "per.txt").read_text() and "%PER" in p.stdout
    assert (ctc / "lm_tuning.yaml").exists() and "lm_weight: 0.0" in (ctc / "lm_tuning_lex.yaml").read_text()
    for v in ("lm", "lex"):
        assert len((ctc / f"decode_test_{v}" / "hyp.txt").read_text().splitlines()) == test_utts
        assert "%WER" in (ctc / f"decode_test_{v}" / "wer.txt").read_text()
    # a char model (--ctc-conf with units kind char): no lexicon, stage 4 scores words (WER, CER), stage 5
    # searches with the LM only (the lexicon-only search needs phones)
    write_conf(tmp_path / "ctc_char.yaml", "ctc", units="char", threads=1)
    p = run(*cmd[:-4], "--ctc-conf", str(tmp_path / "ctc_char.yaml"), "--exp", "ctc_char", "--stage", "3",
            "--stop-stage", "5")
    assert p.returncode == 0, p.stdout + p.stderr
    char = work / "exp" / "ctc_char"
    assert "%CER" in (char / "decode_test" / "wer.txt").read_text() and not (char / "decode_test" / "per.txt").exists()
    assert len((char / "decode_test_lm" / "hyp.txt").read_text().splitlines()) == test_utts
    assert (char / "lm_tuning.yaml").exists() and not (char / "lm_tuning_lex.yaml").exists()
    assert not (char / "decode_test_lex").exists()
    # a second run of stage 4 keeps the hypotheses (best.pt did not change)
    before = (ctc / "decode_test" / "hyp.txt").stat().st_mtime_ns
    p = run(*cmd, "--stage", "3", "--stop-stage", "4")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (ctc / "decode_test" / "hyp.txt").stat().st_mtime_ns == before


def test_a_later_stage_without_its_inputs_says_which_stage_makes_them(tmp_path):
    p = run("--dir", str(tmp_path), "--stage", "12", "--stop-stage", "12")
    assert p.returncode == 1
    assert p.stderr.strip() == f"{RECIPE / 'run.sh'}: stage 12 needs {tmp_path}/exp/ctc_phone/lm_tuning.yaml: run stage 5 first", p.stderr
