"""Scratch vs native speed of asrkit.nn layers: forward + backward, CPU, one thread.

Both implementations run side by side in this one process, alternating, and
the table reports the median time of each and their ratio (scratch / native).

    .venv/bin/python benchmarks/nn_bench.py            # Linear, Conv1d, Conv2d, BatchNorm1d
    .venv/bin/python benchmarks/nn_bench.py --repeats 9
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

import asrkit.nn as nn


def _step(layer: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> None:
    x.grad = None
    layer.zero_grad(set_to_none=True)
    y = layer(x)
    y.backward(g)


def bench(make: Callable[[str], torch.nn.Module], shape: tuple[int, ...], repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    scratch, native = make("scratch"), make("native")
    native.load_state_dict(scratch.state_dict())
    x = torch.randn(shape, requires_grad=True)
    g = torch.randn_like(native(x))
    times: dict[str, list[float]] = {"scratch": [], "native": []}
    for layer in (scratch, native):           # warm-up
        _step(layer, x, g)
    for _ in range(repeats):
        for name, layer in (("native", native), ("scratch", scratch)):
            t0 = time.perf_counter()
            _step(layer, x, g)
            times[name].append(time.perf_counter() - t0)
    return statistics.median(times["scratch"]), statistics.median(times["native"])


CASES: list[tuple[str, Callable[[str], torch.nn.Module], tuple[int, ...]]] = [
    ("Linear B=256 1024->1024", lambda i: nn.Linear(1024, 1024, impl=i), (256, 1024)),
    ("Conv1d B=16 80->256 T=800 k=3", lambda i: nn.Conv1d(80, 256, 3, padding=1, impl=i), (16, 80, 800)),
    ("Conv2d B=32 32->64 56x56 k=3", lambda i: nn.Conv2d(32, 64, 3, padding=1, impl=i), (32, 32, 56, 56)),
    ("BatchNorm1d B=32 C=256 T=800", lambda i: nn.BatchNorm1d(256, impl=i), (32, 256, 800)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7, help="timed runs of each (median reported)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, CPU, 1 thread, forward+backward, median of {args.repeats}")
    print(f"| {'case':32s} | scratch ms | native ms | ratio |")
    print(f"|{'-' * 34}|-----------:|----------:|------:|")
    for name, make, shape in CASES:
        s, n = bench(make, shape, args.repeats)
        print(f"| {name:32s} | {s * 1e3:10.1f} | {n * 1e3:9.1f} | {s / n:5.2f} |")


if __name__ == "__main__":
    main()
