"""Training throughput of a model through the trainer, impl scratch vs native, side by side.

    .venv/bin/python benchmarks/train_bench.py                      # BiLSTM-CTC on the tiny corpus, CPU, 1 thread
    .venv/bin/python benchmarks/train_bench.py --epochs 1 --repeat 2 model.hidden=256 model.layers=3
    .venv/bin/python benchmarks/train_bench.py --train feats/train --dev feats/dev --conf conf/ctc_conformer.yaml

Without --train/--dev it writes the embedded tiny corpus and featurizes it
(fbank 80) into a temporary folder. Each run trains the same config from the
same seed for ``--epochs`` epochs (or ``--steps`` updates) with
``model.impl=native`` and ``model.impl=scratch`` in turn (alternating, so both
see the same machine load) and reads the per-update timings from
``metrics.jsonl`` (``train.log_every=1``): frames/s over the updates, dev
evaluation excluded. The aim: scratch at most 1.5x the native time per
epoch.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch


def tiny_stores(root: Path) -> tuple[Path, Path]:
    from asrkit.corpora.tiny import write_tiny
    from asrkit.features.pipeline import featurize

    write_tiny(root / "tiny")
    for split in ("train", "dev"):
        featurize(root / "tiny" / split, root / "feats" / split)
    return root / "feats" / "train", root / "feats" / "dev"


def _run(impl: str, args, overrides: list[str], train: Path, dev: Path, work: Path, k: int) -> tuple[float, float]:
    from asrkit import log
    from asrkit.train import load_config
    from asrkit.train import train as run

    over = [*overrides, f"model.impl={impl}", "train.log_every=1", "train.tensorboard=false",
            "train.device=cpu", f"train.epochs={args.epochs}"]
    if args.steps:
        over.append(f"train.max_steps={args.steps}")
    cfg = load_config(args.task, args.conf, over)
    exp = work / f"{impl}-{k}"
    log.set_quiet(True)
    run(cfg, train, dev, exp)
    ev = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    ev = [e for e in ev if e["event"] == "train"]
    frames = sum(e["frames"] for e in ev)
    secs = sum(e["seconds"] for e in ev)
    return frames / secs, secs / max(1, args.epochs if not args.steps else 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")
    ap.add_argument("--task", default="ctc")
    ap.add_argument("--conf", default=str(Path(__file__).resolve().parents[1] / "conf" / "ctc_bilstm.yaml"))
    ap.add_argument("--train")
    ap.add_argument("--dev")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="time only this many updates")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.train and args.dev:
            train, dev = Path(args.train), Path(args.dev)
        else:
            train, dev = tiny_stores(work / "data")
        res: dict[str, list[tuple[float, float]]] = {"native": [], "scratch": []}
        t0 = time.time()
        for k in range(args.repeat):
            for impl in ("native", "scratch"):
                res[impl].append(_run(impl, args, args.overrides, train, dev, work, k))
    fps = {i: statistics.median(x[0] for x in v) for i, v in res.items()}
    ep = {i: statistics.median(x[1] for x in v) for i, v in res.items()}
    what = f"{args.steps} updates" if args.steps else "epoch"
    print(f"# {args.task} {Path(args.conf).name} {' '.join(args.overrides)}; CPU, {args.threads} thread(s); "
          f"median of {args.repeat}; {time.time() - t0:.0f} s total")
    print(f"| impl | frames/s | s per {what} | time vs native |")
    print("|---|---:|---:|---:|")
    for impl in ("native", "scratch"):
        print(f"| {impl} | {fps[impl]:.0f} | {ep[impl]:.1f} | {ep[impl] / ep['native']:.2f}x |")


if __name__ == "__main__":
    main()
