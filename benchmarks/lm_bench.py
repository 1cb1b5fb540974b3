"""Held-out perplexity and speed of ``asrkit lm build`` against IRSTLM.

IRSTLM (Debian package ``irstlm``) estimates an interpolated modified
shift-beta model (``tlm -lm=msb``, its modified Kneser-Ney). Both models are
trained on the same text and scored on the same held-out text by the same
code (:func:`asrkit.lm.perplexity`, kenlm; OOVs left out, ``</s>`` counted),
so only the estimators differ. Target: our perplexity within 3% of IRSTLM's,
or better.

    apt-get install -y irstlm
    .venv/bin/python benchmarks/lm_bench.py                 # text: vim's help files
    .venv/bin/python benchmarks/lm_bench.py --text corpus.txt --orders 2 3 4

Without ``--text`` the corpus is the English prose of vim's documentation
(``/usr/share/vim/vim*/doc/*.txt``), lowercased, letters only, lines of >= 3
words. Every 10th line is held out for testing. IRSTLM's default singleton
pruning is switched off (``-ps=no``) so both models keep every n-gram; a
second IRSTLM row shows its default (pruned) setting for reference.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asrkit import log  # noqa: E402
from asrkit.lm import build_lm, perplexity  # noqa: E402

TLM_CANDIDATES = ["tlm", "/usr/lib/irstlm/bin/tlm"]


def _find_tlm() -> str:
    for c in TLM_CANDIDATES:
        path = shutil.which(c) or (c if os.access(c, os.X_OK) else None)
        if path:
            return path
    sys.exit("lm_bench: IRSTLM's tlm not found; apt-get install -y irstlm")


def _default_corpus() -> list[str]:
    files = sorted(glob.glob("/usr/share/vim/vim*/doc/*.txt"))
    if not files:
        sys.exit("lm_bench: no vim documentation found; pass --text FILE (one sentence per line)")
    lines = []
    for p in files:
        with open(p, encoding="utf-8", errors="replace") as f:
            for line in f:
                toks = re.findall(r"[a-z]+(?:'[a-z]+)?", line.lower())
                if len(toks) >= 3:
                    lines.append(" ".join(toks))
    return lines


def _split(lines: list[str], work: Path) -> tuple[Path, Path]:
    train = [s for i, s in enumerate(lines) if i % 10]
    test = [s for i, s in enumerate(lines) if i % 10 == 0]
    tr, te = work / "train.txt", work / "test.txt"
    tr.write_text("\n".join(train) + "\n", encoding="utf-8")
    te.write_text("\n".join(test) + "\n", encoding="utf-8")
    return tr, te


def _irstlm(tlm: str, train_se: Path, order: int, out: Path, prune_singletons: bool) -> float:
    cmd = [tlm, f"-tr={train_se}", f"-n={order}", "-lm=msb", f"-ps={'yes' if prune_singletons else 'no'}", f"-o={out}"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def _ngrams(arpa: Path) -> list[int]:
    counts = []
    with open(arpa, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"ngram\s+(\d+)\s*=\s*(\d+)", line)
            if m:
                counts.append(int(m.group(2)))
            elif line.startswith("\\1-grams"):
                break
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", help="corpus, one sentence per line (default: vim's help files)")
    ap.add_argument("--orders", type=int, nargs="+", default=[2, 3, 4])
    args = ap.parse_args()
    log.set_quiet(True)
    tlm = _find_tlm()
    with tempfile.TemporaryDirectory(prefix="lm_bench.") as tmp:
        work = Path(tmp)
        if args.text:
            lines = [" ".join(s.split()) for s in Path(args.text).read_text(encoding="utf-8").splitlines() if s.strip()]
        else:
            lines = _default_corpus()
        train, test = _split(lines, work)
        train_se = work / "train.se"  # IRSTLM wants explicit sentence markers
        train_se.write_text("".join(f"<s> {s} </s>\n" for s in train.read_text().splitlines()), encoding="utf-8")
        ntrain = sum(len(s.split()) for s in train.read_text().splitlines())
        ntest = sum(len(s.split()) for s in test.read_text().splitlines())
        print(f"corpus: {'vim help files' if not args.text else args.text}; train {ntrain} words, test {ntest} words")
        print()
        print("| order | estimator | n-grams (1..N) | held-out ppl | OOV rate | ppl ratio vs irstlm | build s | n-grams/s |")
        print("|---|---|---|---|---|---|---|---|")
        ok = True
        for n in args.orders:
            ours = work / f"ours{n}.arpa"
            stats = build_lm(train, ours, n, progress=False)
            p_ours = perplexity(ours, test)
            irst = work / f"irst{n}.arpa"
            t_irst = _irstlm(tlm, train_se, n, irst, prune_singletons=False)
            p_irst = perplexity(irst, test)
            irst_p = work / f"irstp{n}.arpa"
            t_irst_p = _irstlm(tlm, train_se, n, irst_p, prune_singletons=True)
            p_irst_p = perplexity(irst_p, test)
            ratio = p_ours.perplexity / p_irst.perplexity
            ok &= ratio <= 1.03
            rate = stats.windows / stats.seconds
            print(f"| {n} | asrkit lm build | {'/'.join(map(str, stats.ngrams))} | {p_ours.perplexity:.2f} | "
                  f"{p_ours.oov_rate:.2%} | {ratio:.3f} | {stats.seconds:.2f} (count {stats.count_seconds:.2f}, "
                  f"estimate {stats.estimate_seconds:.2f}, write {stats.write_seconds:.2f}) | {rate:,.0f} |")
            print(f"| {n} | irstlm tlm -lm=msb -ps=no | {'/'.join(map(str, _ngrams(irst)))} | {p_irst.perplexity:.2f} | "
                  f"{p_irst.oov_rate:.2%} | 1.000 | {t_irst:.2f} | {stats.windows / t_irst:,.0f} |")
            print(f"| {n} | irstlm tlm -lm=msb (default: singletons pruned) | {'/'.join(map(str, _ngrams(irst_p)))} | "
                  f"{p_irst_p.perplexity:.2f} | {p_irst_p.oov_rate:.2%} | {p_irst_p.perplexity / p_irst.perplexity:.3f} | "
                  f"{t_irst_p:.2f} | {stats.windows / t_irst_p:,.0f} |")
        print()
        print("n-grams/s: n-gram occurrences in the training text (tokens + sentences) per second of the whole build.")
        print(f"target (ours within 3% of irstlm or better): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
