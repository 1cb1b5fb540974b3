"""Golden training runs: fixed-seed short runs of the frame and ctc tasks whose
logged losses were recorded on the trainer before it learned about tasks
(``data/golden_losses.json``). ``test_golden_losses.py`` reruns them; a change
in what the loop computes (the loss, its normalizer, the order of the random
draws, the learning rate) shows as a different number.

The frame entry was written again once, when the scratch batch norm's
backward changed its rounding (it reuses the forward's x - mu): the frame
MLP's Linear bias just before BatchNorm has an exactly zero gradient, so its
path is rounding noise that Adam scales up to full steps; it moves the
running mean and so the dev loss (0.08%), never the training losses.

Write the file again (only on purpose)::

    PYTHONPATH=$PWD .venv/bin/python tests/train/golden.py --write
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_helpers import make_store, small_overrides  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "golden_losses.json"

#: name -> (task, overrides after small_overrides(task)); dropout and SpecAugment
#: stay on, so the random streams are part of what is compared
RUNS: dict[str, tuple[str, list[str]]] = {
    "frame": ("frame", ["model.dropout=0.2"]),
    "ctc_phone": ("ctc", ["model.dropout=0.2", "features.specaugment=true", "optim.lr=3e-2"]),
    "ctc_char": ("ctc", ["units.kind=char", "model.dropout=0.2", "optim.scheduler=plateau"]),
}
COMMON = ["train.epochs=4", "data.max_frames=120", "train.threads=1", "train.seed=5", "train.device=cpu", "train.save_every_min=0"]

#: the keys kept of each event (no timings)
TRAIN_KEYS = ("epoch", "step", "loss", "lr", "frames")
DEV_PREFIX = ("epoch", "step", "train_loss", "lr", "best")


def make_stores(root: Path) -> tuple[Path, Path]:
    return make_store(root / "train", n=16, seed=1), make_store(root / "dev", n=6, seed=2)


def run(name: str, train_store: Path, dev_store: Path, exp: Path) -> dict:
    """Train run ``name`` into ``exp``; its train and dev events (numbers only)."""
    from asrkit.train import load_config, train

    task, extra = RUNS[name]
    cfg = load_config(task, None, small_overrides(task) + COMMON + extra)
    train(cfg, train_store, dev_store, exp)
    out: dict[str, list] = {"train": [], "dev": []}
    for line in (exp / "metrics.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev["event"] == "train":
            out["train"].append({k: ev[k] for k in TRAIN_KEYS})
        elif ev["event"] == "dev":
            out["dev"].append({k: v for k, v in ev.items() if k in DEV_PREFIX or k.startswith("dev_")})
    return out


def main() -> None:
    if "--write" not in sys.argv[1:]:
        raise SystemExit("usage: golden.py --write   (rewrites " + str(DATA) + ")")
    with tempfile.TemporaryDirectory() as tmp:
        tr, dv = make_stores(Path(tmp) / "stores")
        result = {name: run(name, tr, dv, Path(tmp) / name) for name in RUNS}
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {DATA}: " + ", ".join(f"{k} {len(v['train'])} steps" for k, v in result.items()))


if __name__ == "__main__":
    main()
