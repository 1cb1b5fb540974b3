"""CTC models, scratch vs native layers, side by side in one process.

    .venv/bin/python benchmarks/model_bench.py                   # CPU, one thread, BiLSTM-CTC 2 and 3 layers
    .venv/bin/python benchmarks/model_bench.py --encoder gru conformer --layers 2 --repeat 5

One training step of the CTC model (the defaults of ``conf/ctc_bilstm.yaml``:
80-dim features, Conv2d subsampling x4, hidden 256 per direction): forward,
log-softmax, CTC loss (asrkit ``CTCLoss`` with the same impl), backward, over a
batch of 16 utterances of 250..350 frames (random features, 40 units). The
same weights run with ``impl=scratch`` and ``impl=native``, alternating so both
see the same machine load; the table reports the minimum and median over
``--repeat`` steps, input frames per second, and the scratch/native ratio (the
aim: scratch at most 1.5x native per epoch).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from asrkit.models import build_model  # noqa: E402
from asrkit.nn import CTCLoss, set_impl  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _step(model: torch.nn.Module, loss_fn: CTCLoss, feats, lengths, targets, target_lengths) -> float:
    model.zero_grad(set_to_none=True)
    logits, out_lengths = model(feats, lengths)  # (B, T', C)
    log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T', B, C)
    loss = loss_fn(log_probs, targets, out_lengths, target_lengths)
    loss.backward()
    return float(loss.detach())


def bench(encoder: str, layers: int, args) -> dict:
    torch.manual_seed(0)
    cfg = {"type": "ctc", "impl": "native", "input_dim": 80, "num_classes": 40, "subsampling": 4,
           "encoder": encoder, "hidden": args.hidden, "layers": layers, "dropout": 0.1}
    model = build_model(cfg).to(args.device).train()
    B = args.batch
    lengths = torch.randint(250, 351, (B,))
    lengths[0] = 350
    feats = torch.randn(B, int(lengths.max()), 80, device=args.device)
    target_lengths = torch.randint(20, 40, (B,))
    targets = torch.randint(1, 40, (int(target_lengths.sum()),))
    loss_fn = CTCLoss(zero_infinity=True)
    times = {"scratch": [], "native": []}
    losses = {}
    for rep in range(args.repeat + 1):  # first round: warm-up
        for impl in ("scratch", "native"):
            set_impl(model, impl)
            set_impl(loss_fn, impl)
            torch.manual_seed(rep)  # both impls draw their dropout masks from the same seed
            _sync(args.device)
            t0 = time.perf_counter()
            losses[impl] = _step(model, loss_fn, feats, lengths, targets, target_lengths)
            _sync(args.device)
            if rep:
                times[impl].append(time.perf_counter() - t0)
    frames = int(lengths.sum())
    row = {"case": f"{encoder} x{layers}, H={args.hidden}, B={B}, T~300"}
    for impl in ("scratch", "native"):
        row[impl] = (min(times[impl]), statistics.median(times[impl]))
        row[impl + "_fps"] = frames / min(times[impl])
    row["ratio"] = min(times["scratch"]) / min(times["native"])
    row["ratio_med"] = statistics.median(times["scratch"]) / statistics.median(times["native"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", nargs="+", default=["lstm"], choices=["lstm", "gru", "conformer"])
    ap.add_argument("--layers", nargs="+", type=int, default=[2, 3])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} thread(s), "
          f"{args.repeat} timed steps each (forward + CTC loss + backward)")
    print(f"| {'case':<34} | {'scratch s (min/med)':>20} | {'native s (min/med)':>20} | "
          f"{'scratch fr/s':>12} | {'native fr/s':>11} | {'ratio min (med)':>15} |")
    print(f"|{'-' * 36}|{'-' * 22}|{'-' * 22}|{'-' * 14}|{'-' * 13}|{'-' * 17}|")
    for enc in args.encoder:
        for layers in args.layers:
            r = bench(enc, layers, args)
            print(f"| {r['case']:<34} | {r['scratch'][0]:>9.3f} / {r['scratch'][1]:<8.3f} | "
                  f"{r['native'][0]:>9.3f} / {r['native'][1]:<8.3f} | {r['scratch_fps']:>12.0f} | "
                  f"{r['native_fps']:>11.0f} | {r['ratio']:>6.2f} ({r['ratio_med']:.2f})   |", flush=True)


if __name__ == "__main__":
    main()
