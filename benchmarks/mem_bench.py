"""Peak memory of one CTC training step, and what stays alive after backward.

    .venv/bin/python benchmarks/mem_bench.py                      # BiLSTM-CTC and Conformer-CTC, scratch
    .venv/bin/python benchmarks/mem_bench.py --impl scratch native
    git archive <commit> asrkit | tar -x -C /tmp/base             # another version of the code ...
    .venv/bin/python benchmarks/mem_bench.py --compare /tmp/base  # ... measured the same way, side by side

The models are the ``model`` sections of ``conf/ctc_bilstm.yaml`` and
``conf/ctc_conformer.yaml`` (80-dim features, 40 units, ``impl`` from
``--impl``; dropout as configured), one step on a batch of ``--batch``
utterances of ``--frames`` frames (random features and targets, fixed seed):
forward, log-softmax, CTC loss, backward, one thread.

Each measurement runs in a fresh Python process, so nothing of one case
(allocator caches, workspaces, imported code) leaks into the next, and it
reads the operating system's numbers, which see every torch CPU allocation:

* **peak**: ``ru_maxrss`` (the process's high-water resident size) after the
  step, minus the resident size before it (model and batch built);
* **kept**: the resident size after backward while the step's loss and
  logits are still referenced (as a training loop holds them until the next
  step), minus the size before the step and minus the parameters' ``.grad``
  (which a step is meant to leave). That is what the autograd graph still
  holds after backward: saved tensors nobody will use again.

Large allocations are served by ``mmap`` in the child
(``MALLOC_MMAP_THRESHOLD_``) and ``malloc_trim`` runs before each reading, so
freed memory is returned to the system and the resident size tracks live
tensors.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {"bilstm": ROOT / "conf" / "ctc_bilstm.yaml", "conformer": ROOT / "conf" / "ctc_conformer.yaml"}


def _rss_mb() -> float:
    """Current resident size in MiB (after returning free heap pages to the system)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the reading is a little higher, no harm
        pass
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(case: str, impl: str, batch: int, frames: int) -> dict:
    """One measurement, in this (fresh) process; the code under test is first on sys.path."""
    import torch
    import yaml

    from asrkit.models import build_model
    from asrkit.nn import CTCLoss

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = dict(yaml.safe_load(CASES[case].read_text())["model"])
    cfg.update({"impl": impl, "input_dim": 80, "num_classes": 40})
    model = build_model(cfg).train()
    g = torch.Generator().manual_seed(0)
    lengths = torch.full((batch,), frames)
    lengths[1::2] = frames * 3 // 4  # a padded batch
    feats = torch.randn(batch, frames, 80, generator=g)
    target_lengths = torch.randint(frames // 20, frames // 10, (batch,), generator=g)
    targets = torch.randint(1, 40, (int(target_lengths.sum()),), generator=g)
    loss_fn = CTCLoss(zero_infinity=True, impl=impl)
    gc.collect()
    before = _rss_mb()
    top_before = _maxrss_mb()
    logits, out_lengths = model(feats, lengths)  # (B, T', C)
    loss = loss_fn(logits.log_softmax(-1).transpose(0, 1), targets, out_lengths, target_lengths)
    loss.backward()
    peak = _maxrss_mb()
    gc.collect()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None) / 2**20
    kept = _rss_mb() - before - grads  # loss and logits still referenced here
    del loss, logits
    gc.collect()
    if peak <= top_before:  # the step never went above what building the model reached: no reading
        raise RuntimeError(f"the step's peak is hidden by the setup's ({top_before:.0f} MiB); use a bigger batch")
    return {"case": case, "impl": impl, "step_peak_mb": peak - before, "kept_mb": kept, "grads_mb": grads,
            "params": sum(p.numel() for p in model.parameters())}


def run(root: Path, case: str, impl: str, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root), MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, impl,
           "--batch", str(args.batch), "--frames", str(args.frames)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if out.returncode != 0:
        raise SystemExit(f"mem_bench: {case}/{impl} under {root} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impl", nargs="+", default=["scratch"], choices=["scratch", "native"])
    ap.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=400, help="frames of the longest utterance")
    ap.add_argument("--compare", type=Path, default=None,
                    help="a folder holding another version of asrkit/ to measure the same way")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per measurement")
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.batch, args.frames)))
        return
    roots = [("this", ROOT)] + ([("compare", args.compare.resolve())] if args.compare else [])
    rows = []
    for case in args.case:
        for impl in args.impl:
            for label, root in roots:
                r = run(root, case, impl, args)
                r["code"] = label
                rows.append(r)
                if args.json:
                    print(json.dumps(r), flush=True)
    if args.json:
        return
    print(f"one training step, batch {args.batch} x {args.frames} frames, 80-dim, 40 units, 1 thread")
    print(f"{'model':10s} {'impl':8s} {'code':8s} {'params':>9s} {'step peak MiB':>14s} {'kept MiB':>9s} "
          f"{'.grad MiB':>9s}")
    for r in rows:
        print(f"{r['case']:10s} {r['impl']:8s} {r['code']:8s} {r['params']:9d} {r['step_peak_mb']:14.1f} "
              f"{r['kept_mb']:9.1f} {r['grads_mb']:9.1f}")


if __name__ == "__main__":
    main()
