"""asrkit lm prune (relative-entropy pruning) and asrkit lm interpolate (EM-weighted mix)."""
from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import kenlm
import numpy as np
import pytest

from asrkit.cli.main import main
from asrkit.lm import prob_sum, read_arpa
from asrkit.lm.arpa import recompute_backoffs
from asrkit.lm.counts import BOS
from asrkit.lm.mix import em_weights, merge
from asrkit.lm.ppl import perplexity
from asrkit.lm.prune import prune_scores

ASRKIT = [sys.executable, "-m", "asrkit"]
TEXT = Path(__file__).resolve().parents[2] / "asrkit" / "resources" / "tiny" / "lm_text.txt"


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("prune")
    lines = TEXT.read_text(encoding="utf-8").splitlines()
    out = {"a": lines[:600], "b": lines[600:1000], "dev": lines[1000:1100], "test": lines[1100:1300]}
    paths = {}
    for name, ls in out.items():
        paths[name] = d / f"{name}.txt"
        paths[name].write_text("\n".join(ls) + "\n", encoding="utf-8")
    for name, order in (("a", 3), ("b", 2)):
        paths[f"{name}.arpa"] = d / f"{name}.arpa"
        assert main(["-q", "lm", "build", str(paths[name]), "-n", str(order), "-o", str(paths[f"{name}.arpa"])]) == 0
    return paths


def _histories(lm, n=4):
    hs = [(), (BOS,)]
    for k in range(2, lm.order):
        hs += list(lm.ngrams[k])[:n]
    return hs + [h for h in list(lm.ngrams[1])[:n] if h != ("</s>",)]


def test_threshold_zero_keeps_everything(texts, tmp_path):
    out = tmp_path / "p0.arpa"
    assert main(["-q", "lm", "prune", str(texts["a.arpa"]), "--threshold", "0", "-o", str(out)]) == 0
    a, p = read_arpa(texts["a.arpa"]), read_arpa(out)
    for k in (1, 2, 3):
        assert a.ngrams[k].keys() == p.ngrams[k].keys()
        for g, (lp, bo) in a.ngrams[k].items():
            assert p.ngrams[k][g][0] == lp and p.ngrams[k][g][1] == pytest.approx(bo, abs=2e-5)


def test_pruned_model_is_smaller_valid_and_close(texts, tmp_path):
    sizes, ppls = [], []
    for t in ("0", "1e-6", "1e-5"):
        out = tmp_path / f"p{t}.arpa"
        assert main(["-q", "lm", "prune", str(texts["a.arpa"]), "--threshold", t, "-o", str(out)]) == 0
        kenlm.Model(str(out))  # kenlm reads it
        lm = read_arpa(out)
        sizes.append(sum(len(lm.ngrams[k]) for k in (2, 3)))
        ppls.append(perplexity(out, texts["test"]).perplexity)
        for h in _histories(lm):
            assert prob_sum(lm, h) == pytest.approx(1.0, abs=1e-4), h
        for k in (2, 3):  # every n-gram's history is listed
            assert all(g[:-1] in lm.ngrams[k - 1] for g in lm.ngrams[k])
    assert sizes[0] > sizes[1] > sizes[2]
    assert sizes[1] < 0.8 * sizes[0]
    assert ppls[1] < 1.05 * ppls[0]  # a small price for a 20%+ smaller model
    assert ppls[2] > ppls[1]


def test_delta_matches_the_kl_divergence_of_one_removal(texts):
    """D(h, w) of the formula equals P(h) KL(p(.|h) || p'(.|h)) computed over the
    whole vocabulary with (h, w) removed and bo(h) recomputed."""
    lm = read_arpa(texts["a.arpa"])
    scores = prune_scores(lm, 3)
    vocab = [w for w in lm.vocab if w != BOS]
    for g in list(scores)[:: max(1, len(scores) // 3)][:3]:
        h, w = g[:-1], g[-1]
        pruned = copy.deepcopy(lm)
        del pruned.ngrams[3][g]
        recompute_backoffs(pruned, [2])
        ph = 10.0 ** (lm.logprob(h[1], h[:1]))  # h = (<s>, x) or (x, y): P(h) by the chain rule
        if h[0] != BOS:
            ph *= 10.0 ** lm.logprob(h[0], ())
        kl = sum(10.0 ** lm.logprob(v, h) * (lm.logprob(v, h) - pruned.logprob(v, h)) * math.log(10.0) for v in vocab)
        assert scores[g] == pytest.approx(ph * kl, rel=1e-3, abs=1e-12)


def test_prune_bad_input(texts, tmp_path):
    for args, code in ((["--threshold", "-1"], 2), (["--threshold", "nan"], 2)):
        p = subprocess.run([*ASRKIT, "lm", "prune", str(texts["a.arpa"]), "-o", str(tmp_path / "x.arpa"), *args],
                           capture_output=True)
        assert p.returncode == code and len(p.stderr.decode().strip().splitlines()) == 1, p.stderr
    assert main(["lm", "prune", str(texts["a"]), "--threshold", "1e-7", "-o", str(tmp_path / "x.arpa")]) == 1
    assert not (tmp_path / "x.arpa").exists()


def test_interpolate_tunes_weights_and_normalizes(texts, tmp_path, capsys):
    out = tmp_path / "mix.arpa"
    capsys.readouterr()
    assert main(["lm", "interpolate", str(texts["a.arpa"]), str(texts["b.arpa"]), "--dev", str(texts["dev"]),
                 "-o", str(out)]) == 0
    lines = [ln.split() for ln in capsys.readouterr().out.strip().splitlines()]
    w = [float(x[2]) for x in lines if x[0] == "weight"]
    assert len(w) == 2 and sum(w) == pytest.approx(1.0) and 0 < w[1] < w[0]  # the 3-gram on more text leads
    kenlm.Model(str(out))
    lm = read_arpa(out)
    assert lm.order == 3
    for h in _histories(lm):
        assert prob_sum(lm, h) == pytest.approx(1.0, abs=1e-4), h
    # the merged backoff model stays close to the exact mixture on the same dev tokens
    exact = float(next(x[2] for x in lines if x[:2] == ["dev_perplexity", "mixture"]))
    merged = perplexity(out, texts["dev"])
    assert merged.words - merged.oovs + merged.sentences == int(next(x[1] for x in lines if x[0] == "dev_tokens"))
    assert merged.perplexity == pytest.approx(exact, rel=0.02)


def test_em_finds_the_maximum():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.001, 1.0, size=(500, 3)) * np.array([1.0, 0.5, 0.2])
    lam, _ = em_weights(p)

    def ll(x):
        return np.log(p @ x).sum()

    for d in np.eye(3):
        for s in (0.05, -0.05):
            x = np.clip(lam + s * (d - lam), 0, None)
            assert ll(x / x.sum()) <= ll(lam) + 1e-9


def test_weights_one_and_zero_give_the_first_model(texts):
    a, b = read_arpa(texts["a.arpa"]), read_arpa(texts["b.arpa"])
    m = merge([a, b], [1.0, 0.0])
    for sent in ("the congress of the united states", "we shall"):
        hist = [BOS]
        for word in sent.split():
            assert m.logprob(word, hist) == pytest.approx(a.logprob(word, hist), abs=1e-4)
            hist.append(word)


def test_interpolate_bad_input(texts, tmp_path):
    x = str(tmp_path / "x.arpa")
    assert main(["lm", "interpolate", str(texts["a.arpa"]), "--dev", str(texts["dev"]), "-o", x]) == 2
    assert main(["lm", "interpolate", str(texts["a.arpa"]), str(texts["b.arpa"]), "-o", x]) == 2
    assert main(["lm", "interpolate", str(texts["a.arpa"]), str(texts["b.arpa"]), "--weights", "1", "-o", x]) == 2
    assert not Path(x).exists()
