"""Training speed of the demo's model with 1 vs 2 torch threads, with and
without CPU-bound jobs competing for the cores, side by side.

    .venv/bin/python benchmarks/threads_bench.py                    # threads 1,2; 0 and 1 competing jobs
    .venv/bin/python benchmarks/threads_bench.py --threads 1,2,4 --busy 0,1,3 --steps 20 --repeat 3
    .venv/bin/python benchmarks/threads_bench.py model.impl=native

It writes the embedded tiny corpus and featurizes it into a temporary folder,
then trains the demo's config (``asrkit.pipeline.demo.demo_train_config``:
Conformer-CTC, scratch layers) from the same seed for ``--steps`` updates
(less than one epoch, so no dev evaluation) per run. For each number of
competing jobs (``python -c 'while 1: pass'`` processes, started before and
stopped after that condition's runs) the thread counts alternate, so they see
the same machine load. Speed is training frames/s over the updates after the
first (``metrics.jsonl``, ``train.log_every=1``). On a shared machine the
absolute numbers move with the other jobs; compare the ratios within one
condition.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch


def _tiny(root: Path) -> tuple[Path, Path]:
    from asrkit.corpora.tiny import write_tiny
    from asrkit.features.pipeline import featurize

    write_tiny(root / "tiny")
    for split in ("train", "dev"):
        featurize(root / "tiny" / split, root / "feats" / split)
    return root / "feats" / "train", root / "feats" / "dev"


def _run(threads: int, steps: int, overrides: list[str], train: Path, dev: Path, exp: Path) -> float:
    """Train ``steps`` updates on ``threads`` torch threads; frames/s after the first update."""
    from asrkit import log
    from asrkit.pipeline.demo import demo_train_config
    from asrkit.train import train as run

    cfg = demo_train_config(overrides=[*overrides, "train.log_every=1", f"train.max_steps={steps}",
                                       "train.save_every_min=0"])
    torch.set_num_threads(threads)
    log.set_quiet(True)
    run(cfg, train, dev, exp)
    ev = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    ev = [e for e in ev if e["event"] == "train"][1:]
    return sum(e["frames"] for e in ev) / sum(e["seconds"] for e in ev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. model.impl=native)")
    ap.add_argument("--threads", default="1,2", help="torch thread counts to compare")
    ap.add_argument("--busy", default="0,1", help="numbers of competing CPU-bound jobs")
    ap.add_argument("--steps", type=int, default=15, help="updates per run (an epoch is ~21)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    threads = [int(x) for x in args.threads.split(",")]
    busy = [int(x) for x in args.busy.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train, dev = _tiny(work / "data")
        k = 0
        for n in busy:
            spinners = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]
            try:
                time.sleep(0.5 if n else 0.0)
                fps: dict[int, list[float]] = {t: [] for t in threads}
                for _ in range(args.repeat):
                    for t in threads:
                        k += 1
                        fps[t].append(_run(t, args.steps, args.overrides, train, dev, work / f"exp{k}"))
                        print(f"busy {n} threads {t}: {fps[t][-1]:.0f} frames/s", file=sys.stderr, flush=True)
            finally:
                for p in spinners:
                    p.kill()
                    p.wait()
            base = statistics.median(fps[threads[0]])
            for t in threads:
                m = statistics.median(fps[t])
                rows.append((n, t, m, m / base, fps[t]))
    print(f"# {args.steps} updates per run, {args.repeat} runs each, overrides: {' '.join(args.overrides) or '-'}")
    print(f"{'busy jobs':>9} {'threads':>7} {'frames/s':>9} {'x vs ' + str(threads[0]) + ' thr':>11}  runs")
    for n, t, m, ratio, all_ in rows:
        print(f"{n:>9} {t:>7} {m:>9.0f} {ratio:>11.2f}  {' '.join(f'{x:.0f}' for x in all_)}")


if __name__ == "__main__":
    main()
