"""The face ResNet, scratch vs native layers, side by side in one process.

    .venv/bin/python benchmarks/face_bench.py                      # CPU, one thread, conf/face_resnet.yaml's model
    .venv/bin/python benchmarks/face_bench.py --threads 2 --batch 64 --repeat 8 --head softmax cosface
    .venv/bin/python benchmarks/face_bench.py --repeat 16 --clock cpu          # on a shared machine

One training step of the ``asrkit train face`` model (``conf/face_resnet.yaml``:
64x64 RGB, stages of 32/64/128/256 channels, a 128-d embedding, 500
identities): forward with the margin head, cross entropy (asrkit
``CrossEntropyLoss`` with the same impl), backward and an SGD update, on a batch of random images. One model,
its layers switched between ``impl=scratch`` and ``impl=native`` (so both
run the same weights), alternating step by step so both see the same machine
load; the table reports the minimum and median over ``--repeat`` steps,
images per second, and the scratch/native ratio (the aim: at most 1.3x).
``--clock cpu`` times each step by this process's CPU seconds instead of the
wall clock: with one thread and other jobs on the cores, a step's wall time
includes the slices the scheduler gave to them, its CPU time does not (cache
and memory-bandwidth sharing still show).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import yaml  # noqa: E402

from asrkit.models import build_model  # noqa: E402
from asrkit.nn import CrossEntropyLoss, set_impl  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf" / "face_resnet.yaml"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(head: str, args) -> dict:
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    cfg = dict(yaml.safe_load(CONF.read_text())["model"])
    cfg.update({"in_channels": 3, "image_size": args.size, "num_classes": args.classes, "head": head,
                "impl": "native"})
    if head == "cosface":
        cfg["margin"] = 0.35
    model = build_model(cfg).to(args.device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    crit = CrossEntropyLoss(reduction="sum")
    x = torch.rand(args.batch, 3, args.size, args.size, device=args.device) * 2 - 1
    y = torch.randint(0, args.classes, (args.batch,), device=args.device)
    times: dict[str, list[float]] = {"scratch": [], "native": []}
    for rep in range(args.repeat + 1):  # first round: warm-up
        for impl in ("scratch", "native"):
            set_impl(model, impl)
            set_impl(crit, impl)
            _sync(args.device)
            t0 = clock()
            opt.zero_grad(set_to_none=True)
            loss = crit(model(x, y), y) / args.batch
            loss.backward()
            opt.step()
            _sync(args.device)
            if rep:
                times[impl].append(clock() - t0)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    row = {"case": f"{head}, {params:.2f} M params, B={args.batch}, {args.size}x{args.size}"}
    for impl in ("scratch", "native"):
        row[impl] = (min(times[impl]), statistics.median(times[impl]))
        row[impl + "_ips"] = args.batch / min(times[impl])
    row["ratio"] = min(times["scratch"]) / min(times["native"])
    row["ratio_med"] = statistics.median(times["scratch"]) / statistics.median(times["native"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--head", nargs="+", default=["arcface"], choices=["softmax", "arcface", "cosface"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--classes", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="wall: elapsed time; cpu: this process's CPU time (one thread on a shared machine)")
    args = ap.parse_args()
    if args.clock == "cpu" and args.device != "cpu":
        ap.error("--clock cpu times the CPU only; use --clock wall with --device cuda")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} thread(s), "
          f"{args.repeat} timed steps each (forward + cross entropy + backward + SGD step), {args.clock} clock")
    print(f"| {'case':<44} | {'scratch s (min/med)':>20} | {'native s (min/med)':>20} | "
          f"{'scratch img/s':>13} | {'native img/s':>12} | {'ratio min (med)':>15} |")
    print(f"|{'-' * 46}|{'-' * 22}|{'-' * 22}|{'-' * 15}|{'-' * 14}|{'-' * 17}|")
    for head in args.head:
        r = bench(head, args)
        print(f"| {r['case']:<44} | {r['scratch'][0]:>9.3f} / {r['scratch'][1]:<8.3f} | "
              f"{r['native'][0]:>9.3f} / {r['native'][1]:<8.3f} | {r['scratch_ips']:>13.0f} | "
              f"{r['native_ips']:>12.0f} | {r['ratio']:>6.2f} ({r['ratio_med']:.2f})   |", flush=True)


if __name__ == "__main__":
    main()
