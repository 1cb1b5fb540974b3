"""Training speed of the demo's model with 1 vs 2 torch threads, with and
without CPU-bound jobs competing for the cores, side by side.

    .venv/bin/python benchmarks/threads_bench.py                    # threads 1,2; 0 and 1 competing jobs
    .venv/bin/python benchmarks/threads_bench.py --threads 1,2,4 --busy 0,1,3 --seconds 20 --repeat 3
    .venv/bin/python benchmarks/threads_bench.py model.impl=native

It writes the embedded tiny corpus and featurizes it into a temporary folder,
then trains the demo's config (``asrkit.pipeline.demo.demo_train_config``:
Conformer-CTC, scratch layers) from the same seed for ``--steps`` updates
(less than one epoch, so no dev evaluation) or ``--seconds``, whichever ends
first, per run (a run slowed down 10x still ends in time). For each number of
competing jobs (``while 1: pass`` python processes, started before and
stopped after that condition's runs) the thread counts alternate, so they see
the same machine load. Speed is training frames/s over the updates after the
first (``metrics.jsonl``, ``train.log_every=1``). On a shared machine the
absolute numbers move with the other jobs; compare the ratios within one
condition.

Measured on a 2-core machine shared with other people's jobs (``--repeat 2
--seconds 10``, median frames/s, scratch layers):

    competing jobs  threads  frames/s  vs 1 thread
    0               1        5238      1.00
    0               2        4270      0.82   (runs: 6175, 2365)
    1               1        4249      1.00
    1               2        1377      0.32

and, earlier, with the machine under a load of about 8: 1 thread 1700-2900,
2 threads 180-210 frames/s (10x slower). Hence the demo's default of one thread.
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
from train_bench import tiny_stores  # the same tiny corpus + features as the training benchmark


class _Enough(Exception):
    pass


def _run(threads: int, steps: int, seconds: float, overrides: list[str], train: Path, dev: Path,
         exp: Path) -> tuple[float, int]:
    """Train up to ``steps`` updates (or ``seconds``) on ``threads`` torch
    threads; (frames/s after the first update, updates measured)."""
    from asrkit import log
    from asrkit.pipeline.demo import demo_train_config
    from asrkit.train import train as run

    cfg = demo_train_config(overrides=[*overrides, "train.log_every=1", f"train.max_steps={steps}",
                                       "train.save_every_min=0"])
    torch.set_num_threads(threads)
    log.set_quiet(True)
    t0 = time.monotonic()

    def enough(step: int, epoch: int, position: int) -> None:
        if step >= 3 and time.monotonic() - t0 > seconds:
            raise _Enough()

    try:
        run(cfg, train, dev, exp, hooks={"after_step": enough})
    except _Enough:
        pass
    ev = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    ev = [e for e in ev if e["event"] == "train"][1:]
    return sum(e["frames"] for e in ev) / sum(e["seconds"] for e in ev), len(ev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. model.impl=native)")
    ap.add_argument("--threads", default="1,2", help="torch thread counts to compare")
    ap.add_argument("--busy", default="0,1", help="numbers of competing CPU-bound jobs")
    ap.add_argument("--steps", type=int, default=15, help="updates per run at most (an epoch is ~21)")
    ap.add_argument("--seconds", type=float, default=12.0, help="stop a run after this long (at least 3 updates)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    threads = [int(x) for x in args.threads.split(",")]
    busy = [int(x) for x in args.busy.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train, dev = tiny_stores(work / "data")
        k = 0
        for n in busy:
            # CPU-bound jobs that also end when this process goes away (killed by a timeout)
            spin = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
            spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n)]
            try:
                time.sleep(0.5 if n else 0.0)
                fps: dict[int, list[float]] = {t: [] for t in threads}
                for _ in range(args.repeat):
                    for t in threads:
                        k += 1
                        speed, updates = _run(t, args.steps, args.seconds, args.overrides, train, dev,
                                              work / f"exp{k}")
                        fps[t].append(speed)
                        print(f"busy {n} threads {t}: {speed:.0f} frames/s ({updates} updates)", file=sys.stderr,
                              flush=True)
            finally:
                for p in spinners:
                    p.kill()
                    p.wait()
            base = statistics.median(fps[threads[0]])
            for t in threads:
                m = statistics.median(fps[t])
                rows.append((n, t, m, m / base, fps[t]))
    print(f"# up to {args.steps} updates or {args.seconds:g} s per run, {args.repeat} runs each, overrides: "
          f"{' '.join(args.overrides) or '-'}")
    print(f"{'busy jobs':>9} {'threads':>7} {'frames/s':>9} {'x vs ' + str(threads[0]) + ' thr':>11}  runs")
    for n, t, m, ratio, all_ in rows:
        print(f"{n:>9} {t:>7} {m:>9.0f} {ratio:>11.2f}  {' '.join(f'{x:.0f}' for x in all_)}")


if __name__ == "__main__":
    main()
