"""asrkit.score.score vs jiwer.process_words, side by side in one process.

    .venv/bin/python benchmarks/score_bench.py [--pairs 100000] [--repeats 3]

Generates utterance pairs (3-40 words from a 5,000 word vocabulary, ~15%
errors: substitutions, deletions, insertions), then times, from the same
list of sentence strings:

- jiwer: ``jiwer.process_words(refs, hyps)`` (its default transform splits
  the strings; it keeps every alignment as AlignmentChunk lists);
- asrkit: splitting the strings into ``{utt-id: words}`` dicts and
  ``asrkit.score.score(refs, hyps)`` (keeps every alignment as op codes,
  materialized per utterance by ``result.alignment(utt)``).

Both keep the full alignment. The best of ``--repeats`` runs is reported, and
the two totals are checked to agree.
"""
from __future__ import annotations

import argparse
import gc
import platform
import random
import time

import jiwer
import numpy as np

from asrkit.score import score


def generate(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` (reference, hypothesis) sentence strings."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    refs, hyps = [], []
    for _ in range(n):
        ref = [rng.choice(vocab) for _ in range(rng.randint(3, 40))]
        hyp = []
        for w in ref:
            x = rng.random()
            if x < 0.05:
                continue  # deletion
            if x < 0.12:
                hyp.append(rng.choice(vocab))  # substitution
                continue
            hyp.append(w)
            if x > 0.97:
                hyp.append(rng.choice(vocab))  # insertion
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp))
    return refs, hyps


def run_jiwer(refs: list[str], hyps: list[str]):
    return jiwer.process_words(refs, hyps)


def run_asrkit(refs: list[str], hyps: list[str]):
    ids = [f"spk{k % 100}-utt{k:06d}" for k in range(len(refs))]
    r = {u: s.split() for u, s in zip(ids, refs)}
    h = {u: s.split() for u, s in zip(ids, hyps)}
    return score(r, h)


def best_time(fn, *args, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        out = None
        gc.collect()
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    refs, hyps = generate(args.pairs, args.seed)
    words = sum(len(s.split()) for s in refs)
    t_jiwer, j = best_time(run_jiwer, refs, hyps, repeats=args.repeats)
    t_asrkit, a = best_time(run_asrkit, refs, hyps, repeats=args.repeats)

    j_errors = j.substitutions + j.deletions + j.insertions
    assert a.words.errors == j_errors, (a.words.errors, j_errors)
    assert abs(a.wer - 100 * j.wer) < 1e-9
    # the alignments are kept: every 1000th utterance's alignment has the
    # same number of errors as jiwer's chunks for it
    for k in range(0, args.pairs, 1000):
        al = a.alignment(k)
        mine = sum(op != "C" for op in al.ops)
        theirs = sum(
            max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
            for c in j.alignments[k]
            if c.type != "equal"
        )
        assert mine == theirs, (k, al.ops)

    print(f"pairs: {args.pairs:,}  reference words: {words:,}  WER: {a.wer:.2f}%  "
          f"(python {platform.python_version()}, numpy {np.__version__}, best of {args.repeats})")
    print(f"{'scorer':<40} {'seconds':>8} {'pairs/s':>10}")
    print(f"{'jiwer.process_words':<40} {t_jiwer:8.3f} {args.pairs / t_jiwer:10,.0f}")
    print(f"{'asrkit.score.score (incl. str.split)':<40} {t_asrkit:8.3f} {args.pairs / t_asrkit:10,.0f}")
    print(f"speed-up vs jiwer: {t_jiwer / t_asrkit:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
