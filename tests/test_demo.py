"""The demo pipeline end to end on a few utterances of the tiny corpus with a
very short training run: every stage's output, the PER table, a re-run that
skips finished stages, the decode | score pipe on the demo's model, and the
opt-in time budget. (Timings live in benchmarks/, not here.)"""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from asrkit.pipeline.demo import DEMO_WARPS, run_demo
from asrkit.errors import TrainingError

WARPS = ",".join(f"{a:g}" for a in DEMO_WARPS)  # the demo's test-time VTLP, for asrkit decode --warps
TINY = ["model.hidden=32", "model.layers=2", "model.subsampling=2", "data.max_frames=6000",
        "optim.warmup_steps=2", "optim.lr=5e-3"]


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    # an opt-in budget that runs out before the first epoch ends: a clear error, nothing to decode yet
    with pytest.raises(TrainingError, match="--minutes"):
        run_demo(out, minutes=1e-4, epochs=2, overrides=TINY, utts_per_split=8, device="cpu", jobs=1,
                 stdout=io.StringIO())
    # the same folder continues without a budget: corpus and features are kept, the fixed epochs run
    shown = io.StringIO()
    r = run_demo(out, epochs=2, overrides=TINY, utts_per_split=8, device="cpu", jobs=1, stdout=shown)
    assert r.epochs == r.epochs_planned == 2 and not r.out_of_time
    assert r.impl == "scratch" and r.threads == 1 and r.train_frames_per_s > 0
    for split in ("train", "dev", "test"):
        assert (out / "feats" / split / "index.tsv").exists()
    assert (r.exp / "checkpoints" / "best.pt").exists()
    hyp = r.hyp.read_text().splitlines()
    ref = r.ref.read_text().splitlines()
    assert [h.split()[0] for h in hyp] == [x.split()[0] for x in ref] and len(ref) == 8
    assert all("sil" not in x.split()[1:] for x in ref)
    # groups: all, voices heard in training, the voice heard only in test (ked_diphone)
    names = [g.name for g in r.groups]
    assert names == ["test, all voices", "voices heard in training", "voice heard only in test"]
    assert all(s.startswith("ked_diphone") for s in r.groups[2].speakers)
    total = r.groups[0].counts
    assert total.ref == sum(len(x.split()) - 1 for x in ref)
    assert total.errors == r.groups[1].counts.errors + r.groups[2].counts.errors
    assert total.hyp == sum(len(x.split()) - 1 for x in hyp)
    assert 0.0 <= r.per and r.per == pytest.approx(100.0 * total.errors / total.ref)
    assert sum(s.counts.errors for s in r.speakers) == total.errors
    text = shown.getvalue()
    assert "%PER" in text and str(r.hyp) in text and f"{r.per:.2f}" in text
    summary = json.loads((out / "demo.json").read_text())
    assert summary["per"] == round(r.per, 2) and summary["epochs"] == 2 and summary["impl"] == "scratch"
    assert r.warps == DEMO_WARPS and summary["warps"] == list(DEMO_WARPS) and f"warps {WARPS} (5 forward" in text
    assert summary["groups"][0]["errors"] == total.errors and summary["groups"][0]["ref"] == total.ref
    assert "PER" in r.report.read_text() and r.per_utt.read_text().count("id: (") == 8

    # the LM stage: the words table (greedy phones / lexicon only / lexicon + LM), its files, tuned weights
    assert [x.search for x in r.searches] == ["greedy CTC (phones)", "beam 20 + lexicon, no LM",
                                              "beam 20 + lexicon + 3-gram LM"]
    assert r.searches[0].wer is None and r.searches[0].per == pytest.approx(r.per)
    # each search's PER on the held-out voice alone; greedy's is the held-out group's
    assert r.searches[0].per_held_out == pytest.approx(r.groups[2].per)
    assert all(x.per_held_out is not None and 0 <= x.per_held_out for x in r.searches)
    assert "HELD-OUT" in text and f"{r.searches[2].per_held_out:.2f}" in text
    assert summary["searches"][2]["per_held_out"] == round(r.searches[2].per_held_out, 2)
    assert all(x.wer is not None and 0 <= x.wer for x in r.searches[1:])
    assert "%WER" in text and f"{r.searches[2].wer:.2f}" in text
    assert [x["search"] for x in summary["searches"]] == [x.search for x in r.searches]
    dec_dir = r.hyp.parent
    lm_hyp = (dec_dir / "hyp_lm.txt").read_text().splitlines()
    ctm = (dec_dir / "hyp_lm.ctm").read_text().splitlines()
    assert len(lm_hyp) == 8 and len(ctm) == sum(len(x.split()) - 1 for x in lm_hyp)
    assert (r.exp / "lm_tuning.yaml").is_file() and (out / "exp" / "lm3.arpa").is_file()
    # asrkit decode with the tuned weights (read from lm_tuning.yaml) writes the demo's LM hypotheses
    lm_cli = subprocess.run([sys.executable, "-m", "asrkit", "-q", "decode", str(r.exp), str(out / "feats" / "test"),
                             "--device", "cpu", "--lm", str(out / "exp" / "lm3.arpa"), "--warps", WARPS],
                            capture_output=True, text=True)
    assert lm_cli.returncode == 0 and lm_cli.stdout.splitlines() == lm_hyp, lm_cli.stderr

    # decode | score on the demo's model (trained scratch, decoded with torch's layers) gives the demo's PER
    dec = subprocess.Popen([sys.executable, "-m", "asrkit", "-q", "decode", str(r.exp), str(out / "feats" / "test"),
                            "--device", "cpu", "--impl", "native", "--warps", WARPS], stdout=subprocess.PIPE)
    sc = subprocess.run([sys.executable, "-m", "asrkit", "score", str(r.ref), "-", "--json"], stdin=dec.stdout,
                        capture_output=True, text=True)
    dec.stdout.close()
    assert dec.wait() == 0 and sc.returncode == 0, sc.stderr
    assert json.loads(sc.stdout)["wer"] == pytest.approx(r.per, abs=0.01)

    # a re-run skips every finished stage and prints the same numbers
    before = r.hyp.stat().st_mtime_ns
    again = run_demo(out, epochs=2, overrides=TINY, utts_per_split=8, device="cpu", jobs=1, stdout=io.StringIO())
    assert again.per == r.per and again.hyp.stat().st_mtime_ns == before
    assert again.searches == r.searches

    # without test-time VTLP (--warps 1) the greedy stage decodes again, as plain asrkit decode does
    shown = io.StringIO()
    plain = run_demo(out, epochs=2, overrides=TINY, utts_per_split=8, device="cpu", jobs=1, warps=(1.0,),
                     stdout=shown)
    assert plain.warps == () and "one plain forward pass" in shown.getvalue()
    cli = subprocess.run([sys.executable, "-m", "asrkit", "-q", "decode", str(r.exp), str(out / "feats" / "test"),
                          "--device", "cpu"], capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stdout.splitlines() == plain.hyp.read_text().splitlines(), cli.stderr
