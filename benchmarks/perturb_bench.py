"""The data side of training with VTLP and time stretching: one epoch of
``UtteranceDataset`` items (read, perturb, CMVN, SpecAugment) with each
augmentation and without, side by side in one process.

    .venv/bin/python benchmarks/perturb_bench.py exp/demo/feats/train            # a demo's training store
    .venv/bin/python benchmarks/perturb_bench.py exp/demo/feats/train --repeat 9

The variants alternate within each repeat, so they see the same machine load;
it prints the median seconds per epoch. Compare with the seconds of
training per epoch (``metrics.jsonl``) to see what the augmentation costs.

Measured on the 2-core machine shared with other jobs, beside a demo training
(the demo's 200 training utterances, ``--repeat 3``, 2026-12-05): plain 0.04 s,
SpecAugment 0.11 s, VTLP + time stretch 0.48 s, all three 0.58 s per epoch
(an earlier, busier run: 0.07 s plain, 0.88 s VTLP + time stretch), against
7-17 s of training per epoch of the demo on the same machine.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from asrkit.data.dataset import UtteranceDataset
from asrkit.data.feature_store import FeatureStore
from asrkit.features.perturb import MelGeometry, Perturb
from asrkit.features.specaugment import SpecAugment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", help="an fbank feature store (asrkit featurize)")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    st = FeatureStore(a.store)
    utts = st.keys()
    g = MelGeometry.from_conf(st.conf)
    variants = {"plain": (None, None), "specaugment": (SpecAugment(), None),
                "vtlp + time stretch": (None, Perturb(g, (0.9, 1.1), (0.9, 1.1))),
                "vtlp + time stretch + specaugment": (SpecAugment(), Perturb(g, (0.9, 1.1), (0.9, 1.1)))}
    res: dict[str, list[float]] = {k: [] for k in variants}
    for rep in range(a.repeat):
        for k, (sa, p) in variants.items():
            ds = UtteranceDataset(st, utts, None, "global", True, sa, 0, p)
            ds.set_epoch(rep)
            t = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            res[k].append(time.perf_counter() - t)
    for k, v in res.items():
        print(f"{k:36s} {statistics.median(v):7.3f} s per epoch of {len(utts)} utterances")


if __name__ == "__main__":
    main()
