"""recipes/tiny/run.sh, every stage, with very small configs: the outputs of
each stage, the frame accuracy and Kaggle csv of stage 6, and a second run
that keeps finished outputs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_helpers import write_conf

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "recipes" / "tiny" / "run.sh"


@pytest.mark.slow
def test_run_sh_all_stages(tmp_path):
    write_conf(tmp_path / "ctc.yaml", "ctc")
    write_conf(tmp_path / "frame.yaml", "frame", context=1)
    env = dict(os.environ, ASRKIT=f"{sys.executable} -m asrkit")
    work = tmp_path / "work"
    cmd = ["bash", str(SCRIPT), "--dir", str(work), "--nj", "2", "--device", "cpu",
           "--ctc-conf", str(tmp_path / "ctc.yaml"), "--frame-conf", str(tmp_path / "frame.yaml")]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    for n, name in enumerate(["corpus", "features", "train_ctc", "decode", "score", "train_frame", "predict_frame",
                              "lm", "decode_lm"]):
        assert (work / "exp" / "log" / f"{n:02d}_{name}.log").exists() or n == 0
    dec = work / "exp" / "ctc_phone" / "decode_test"
    hyp = (dec / "hyp.txt").read_text().splitlines()
    assert len(hyp) == 60 and len((dec / "hyp.jsonl").read_text().splitlines()) == 60
    assert "%PER" in (dec / "per.txt").read_text() and "%PER" in p.stdout
    pred = work / "exp" / "frame_mlp" / "predict_test"
    acc = (pred / "accuracy.txt").read_text()
    assert acc.startswith("frame accuracy ")
    csv = (pred / "submission.csv").read_text().splitlines()
    ali = (pred / "ali").read_text().splitlines()
    frames = sum(len(line.split()) - 1 for line in ali)
    assert csv[0] == "id,label" and len(csv) == frames + 1 and csv[-1].startswith(f"{frames - 1},")
    # stages 7-8: the LM, tuned weights, words and their times, the WER report
    assert (work / "exp" / "lm3.arpa").is_file() and (work / "exp" / "ctc_phone" / "lm_tuning.yaml").is_file()
    words = (dec / "hyp_lm.txt").read_text().splitlines()
    ctm = (dec / "hyp_lm.ctm").read_text().splitlines()
    assert len(words) == 60 and len(ctm) == sum(len(w.split()) - 1 for w in words)
    assert "%WER" in (dec / "wer.txt").read_text()
    # a second run of decode and score keeps the hypotheses (best.pt did not change)
    before = (dec / "hyp.txt").stat().st_mtime_ns
    p = subprocess.run(cmd + ["--stage", "2", "--stop-stage", "4"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "up to date" in p.stdout and (dec / "hyp.txt").stat().st_mtime_ns == before
    # the attention stages are opt-in: not in the run above
    assert not (work / "exp" / "transformer").exists()
    write_conf(tmp_path / "transformer.yaml", "transformer")
    write_conf(tmp_path / "las.yaml", "las")
    # an untrained decoder never says <eos>: short maximum lengths and a one-point grid keep it quick
    p = subprocess.run(cmd + ["--stage", "9", "--transformer-conf", str(tmp_path / "transformer.yaml"),
                              "--las-conf", str(tmp_path / "las.yaml"), "--max-len-ratio", "0.2",
                              "--tune-lm-weights", "0.5", "--tune-ctc-weights", "0.3", "--tune-length-bonuses", "0"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    for exp, names in (("transformer", ("greedy", "beam10_lm")), ("las", ("greedy", "beam10"))):
        out = work / "exp" / exp / "decode_test"
        for name in names:
            assert len((out / f"hyp_{name}.txt").read_text().splitlines()) == 60
            report = (out / f"wer_{name}.txt").read_text()
            assert "%WER" in report and "%CER" in report
    assert (work / "exp" / "transformer" / "lm_tuning.yaml").is_file()
    las_dec = work / "exp" / "las" / "decode_test"
    assert (las_dec / "attention.png").read_bytes()[:4] == b"\x89PNG"
    assert (las_dec / "attention.txt").read_text().splitlines()[-1].startswith("diagonality ")
    assert sorted(p.name for p in (work / "exp" / "las" / "plots").iterdir()) == ["attention-epoch-1.png"]
