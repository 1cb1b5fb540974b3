"""Sequence layers of asrkit.nn, scratch vs native, side by side in one process.

    .venv/bin/python benchmarks/nn_seq_bench.py            # CPU, one thread
    .venv/bin/python benchmarks/nn_seq_bench.py --device cuda --repeat 10

Forward + backward of each case (the aim: scratch at most 1.5x the reference):

* 2-layer BiLSTM, input 80, hidden 256, batch 16, T=500: asrkit LSTM (scratch) vs ``torch.nn.LSTM``
* CTC loss, B=16, T=800, C=42, U=150: asrkit ``ctc_loss`` vs ``F.ctc_loss``
* MultiheadAttention, B=16, T=400, d=256, 4 heads: asrkit scratch vs native (need_weights=True,
  torch's default, and need_weights=False, where native uses the fused SDPA kernel)

Runs alternate scratch/native so that both see the same machine load; the
table reports the minimum (and median) over ``--repeat`` runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

from asrkit.nn.attention import MultiheadAttention  # noqa: E402
from asrkit.nn.functional.ctc import ctc_loss  # noqa: E402
from asrkit.nn.rnn import LSTM  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn: Callable[[], None], device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _pair(scratch: Callable[[], None], native: Callable[[], None], repeat: int, device: str):
    scratch()
    native()  # warm-up
    ts, tn = [], []
    for _ in range(repeat):
        ts.append(_time(scratch, device))
        tn.append(_time(native, device))
    return ts, tn


def bench_lstm(device: str, repeat: int):
    torch.manual_seed(0)
    ours = LSTM(80, 256, num_layers=2, bidirectional=True).to(device)
    ref = torch.nn.LSTM(80, 256, num_layers=2, bidirectional=True).to(device)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(500, 16, 80, device=device, requires_grad=True)

    def run(m):
        def f():
            y, _ = m(x)
            y.sum().backward()
        return f
    return _pair(run(ours), run(ref), repeat, device)


def bench_ctc(device: str, repeat: int):
    torch.manual_seed(0)
    T, B, C, U = 800, 16, 42, 150
    logits = torch.randn(T, B, C, device=device) * 4
    targets = torch.randint(1, C, (B, U), device=device)
    il = torch.full((B,), T, dtype=torch.long, device=device)
    tl = torch.full((B,), U, dtype=torch.long, device=device)
    lp0 = TF.log_softmax(logits, -1)

    def run(fn):
        def f():
            lp = lp0.detach().requires_grad_()
            fn(lp, targets, il, tl).backward()
        return f
    return _pair(run(ctc_loss), run(TF.ctc_loss), repeat, device)


def bench_mha(device: str, repeat: int, need_weights: bool):
    torch.manual_seed(0)
    ours = MultiheadAttention(256, 4, batch_first=True).to(device)
    nat = MultiheadAttention(256, 4, batch_first=True, impl="native").to(device)
    nat.load_state_dict(ours.state_dict())
    x = torch.randn(16, 400, 256, device=device, requires_grad=True)

    def run(m):
        def f():
            y, _ = m(x, x, x, need_weights=need_weights)
            y.sum().backward()
        return f
    return _pair(run(ours), run(nat), repeat, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = [
        ("BiLSTM 2x256, B16 T500", "torch.nn.LSTM", lambda: bench_lstm(args.device, args.repeat)),
        ("CTC B16 T800 C42 U150", "F.ctc_loss", lambda: bench_ctc(args.device, args.repeat)),
        ("MHA B16 T400 d256 h4 (weights)", "native", lambda: bench_mha(args.device, args.repeat, True)),
        ("MHA B16 T400 d256 h4 (no weights)", "native", lambda: bench_mha(args.device, args.repeat, False)),
    ]
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {args.threads} thread(s)"
    print(f"# asrkit.nn sequence layers, forward+backward, {dev}, torch {torch.__version__}, "
          f"min (median) of {args.repeat}")
    print("| case | scratch s | reference | reference s | ratio (min) | ratio (median) | target |")
    print("|---|---|---|---|---|---|---|")
    for name, refname, fn in cases:
        ts, tn = fn()
        r_min = min(ts) / min(tn)
        r_med = statistics.median(ts) / statistics.median(tn)
        print(f"| {name} | {min(ts):.3f} ({statistics.median(ts):.3f}) | {refname} | "
              f"{min(tn):.3f} ({statistics.median(tn):.3f}) | {r_min:.2f}x | {r_med:.2f}x | <= 1.5x |")


if __name__ == "__main__":
    main()
