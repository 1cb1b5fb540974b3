"""Training throughput of a model through the trainer, impl scratch vs native, side by side.

    .venv/bin/python benchmarks/train_bench.py                      # BiLSTM-CTC on the tiny corpus, CPU, 1 thread
    .venv/bin/python benchmarks/train_bench.py --epochs 1 --repeat 2 model.hidden=256 model.layers=3
    .venv/bin/python benchmarks/train_bench.py --train feats/train --dev feats/dev --conf conf/ctc_conformer.yaml
    .venv/bin/python benchmarks/train_bench.py --task lm --steps 2     # LSTM LM (conf/lm_lstm.yaml), tiny text
    .venv/bin/python benchmarks/train_bench.py --conf conf/lm_lstm.yaml --conf conf/lm_transformer.yaml --repeat 3
    .venv/bin/python benchmarks/train_bench.py --task lm --steps 100 \
        --text recipes/lm/data/train_nodev.txt --dev recipes/lm/data/dev.txt     # recipes/lm's text (stage 1)

Without --train/--dev it writes the embedded tiny corpus and featurizes it
(fbank 80) into a temporary folder. Each run trains the same config from the
same seed for ``--epochs`` epochs (or ``--steps`` updates) with
``model.impl=native`` and ``model.impl=scratch`` in turn (alternating, so both
see the same machine load) and reads the per-update timings from
``metrics.jsonl`` (``train.log_every=1``): frames/s over the updates, dev
evaluation excluded. The aim: scratch at most 1.5x the native time per
epoch.

The LM task (``--task lm``, or a ``--conf`` whose ``task:`` is ``lm``) trains
on text: ``--text`` (the same option as ``--train``) and ``--dev``, text files
of one sentence per line as ``asrkit train lm`` takes them; without them the
embedded tiny corpus's ``lm_text.txt`` (4000 State of the Union sentences,
71k words, about 6.7k word types, so a 6.7k-word output layer, not the
configs' 10,000) and its dev transcripts. Its rate is tokens/s (word units:
words and sentence ends). ``--conf`` may be given more than once: a table
per config. Its default is the task's: ``conf/ctc_bilstm.yaml`` for ``ctc``,
``conf/lm_lstm.yaml`` for ``lm``.
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


def tiny_text(root: Path) -> tuple[Path, Path]:
    """The embedded tiny corpus as LM text: ``lm_text.txt`` to train on, the
    dev transcripts (utterance ids dropped) as dev text."""
    from asrkit.corpora.tiny import tiny_root
    from asrkit.data.table import read_table

    src = tiny_root()
    root.mkdir(parents=True, exist_ok=True)
    train, dev = root / "train.txt", root / "dev.txt"
    train.write_text((src / "lm_text.txt").read_text(encoding="utf-8"), encoding="utf-8")
    dev.write_text("".join(f"{t}\n" for t in read_table(src / "dev" / "text").values()), encoding="utf-8")
    return train, dev


DEFAULT_CONF = {"ctc": "ctc_bilstm.yaml", "lm": "lm_lstm.yaml"}


def _task_of(conf: str) -> str | None:
    from asrkit.config import read_yaml

    t = read_yaml(conf).get("task")
    return t if isinstance(t, str) else None


def _run(impl: str, args, task: str, conf: str, train: Path, dev: Path, work: Path,
         k: str) -> tuple[float, float, str, dict]:
    """One training; returns (units/s over the updates, s per epoch or per
    ``--steps`` updates, the unit (frames, tokens), the train event's
    sizes: units, updates)."""
    from asrkit import log
    from asrkit.train import load_config
    from asrkit.train import train as run

    over = [*args.overrides, f"model.impl={impl}", "train.log_every=1", "train.tensorboard=false",
            "train.device=cpu", f"train.epochs={args.epochs}"]
    if args.steps:
        over.append(f"train.max_steps={args.steps}")
    cfg = load_config(task, conf, over)
    exp = work / f"{Path(conf).stem}-{impl}-{k}"
    log.set_quiet(True)
    run(cfg, train, dev, exp)
    ev = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    ev = [e for e in ev if e["event"] == "train"]
    unit = next(key[:-len("_per_s")] for key in ev[0] if key.endswith("_per_s"))  # frames, tokens
    count = sum(e[unit] for e in ev)
    secs = sum(e["seconds"] for e in ev)
    return count / secs, secs / max(1, args.epochs if not args.steps else 1), unit, \
        {"units": count, "updates": len(ev)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")
    ap.add_argument("--task", default=None,
                    help="the task (default: the --conf's 'task:', else ctc)")
    ap.add_argument("--conf", action="append", default=None,
                    help="config file; repeat for a table per config (default: conf/ctc_bilstm.yaml, "
                         "--task lm: conf/lm_lstm.yaml)")
    ap.add_argument("--train", "--text", dest="train",
                    help="training features (acoustic tasks) or text (lm); default: the tiny corpus")
    ap.add_argument("--dev", help="dev features or text")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="time only this many updates")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if bool(args.train) != bool(args.dev):
        ap.error("--train/--text and --dev go together")
    conf_dir = Path(__file__).resolve().parents[1] / "conf"
    if args.conf:
        runs = [(args.task or _task_of(c) or "ctc", c) for c in args.conf]
    else:
        task = args.task or "ctc"
        if task not in DEFAULT_CONF:
            ap.error(f"--task {task}: give its --conf")
        runs = [(task, str(conf_dir / DEFAULT_CONF[task]))]
    if args.train and len({t == "lm" for t, _ in runs}) > 1:
        ap.error("--train/--text and --dev are either features or text: "
                 "give LM and acoustic configs in separate runs")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs: dict[bool, tuple[Path, Path]] = {}  # is the LM task -> (train, dev)
        for j, (task, conf) in enumerate(runs):  # j: two configs may share a file name
            lm = task == "lm"
            if lm not in inputs:
                if args.train and args.dev:
                    inputs[lm] = Path(args.train), Path(args.dev)
                else:
                    inputs[lm] = tiny_text(work / "text") if lm else tiny_stores(work / "data")
            train, dev = inputs[lm]
            res: dict[str, list[tuple[float, float, str, dict]]] = {"native": [], "scratch": []}
            t0 = time.time()
            for k in range(args.repeat):
                for impl in ("native", "scratch"):
                    res[impl].append(_run(impl, args, task, conf, train, dev, work, f"{j}-{k}"))
            _report(args, task, conf, res, time.time() - t0)


def _report(args, task: str, conf: str, res: dict, total_s: float) -> None:
    fps = {i: statistics.median(x[0] for x in v) for i, v in res.items()}
    ep = {i: statistics.median(x[1] for x in v) for i, v in res.items()}
    unit = res["native"][0][2]
    what = f"{args.steps} updates" if args.steps else "epoch"
    size = ""
    if task == "lm":
        n = res["native"][0][3]
        size = f"; {n['units']} tokens in {n['updates']} updates per run"
    print(f"# {task} {conf} {' '.join(args.overrides)}; CPU, {args.threads} thread(s); "
          f"median of {args.repeat}; {total_s:.0f} s total{size}")
    print(f"| impl | {unit}/s | s per {what} | time vs native |")
    print("|---|---:|---:|---:|")
    for impl in ("native", "scratch"):
        print(f"| {impl} | {fps[impl]:.0f} | {ep[impl]:.1f} | {ep[impl] / ep['native']:.2f}x |")


if __name__ == "__main__":
    main()
