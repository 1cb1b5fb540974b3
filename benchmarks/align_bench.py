"""Phone boundary accuracy of ``asrkit align`` against the tiny corpus's exact alignments.

    .venv/bin/python benchmarks/align_bench.py --exp /tmp/w/exp/phone --feats /tmp/w/feats --data /tmp/w/data
    .venv/bin/python benchmarks/align_bench.py --work /tmp/align_bench     # builds everything (minutes)

The tiny corpus is synthesized, so its ``ali`` (one phone per 10 ms frame,
from the synthesizer's phone end times) is exact. This bench forced-aligns
each split's transcripts (``text`` spelled with the model's lexicon;
utterances with words the lexicon lacks are left out) with a trained phone
CTC model and compares phone start times (:func:`asrkit.score.boundary.boundary_error`;
``sil`` dropped, phone strings matched by Levenshtein).

- ``--sweep`` (on ``--tune``, default dev): the boundary error for each
  ``offset`` (where in the output frame a unit starts, feature frames from
  ``start x subsampling``) and the frame accuracy for each ``hold`` (how long a
  unit keeps a pause after it before ``sil``), to pick the defaults;
- the report (on ``--report``, default test) with the module's defaults:
  mean / median absolute boundary error (ms), % within 20 / 40 ms, frame
  accuracy, also with the store's ``text.phones`` (the synthesizer's own
  phones, what a phone model is trained on) instead of lexicon spellings.

Without ``--exp`` it makes ``WORK/data`` (asrkit corpus tiny), ``WORK/feats``
(asrkit featurize) and trains ``WORK/exp/phone`` with
recipes/tiny/conf/ctc_phone.yaml (train.threads=1). Target: mean < 40 ms.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _asrkit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "asrkit", "-q", *args], check=True)


def build(work: Path) -> tuple[Path, Path, Path]:
    data, feats, exp = work / "data", work / "feats", work / "exp" / "phone"
    if not (data / "test" / "ali").exists():
        _asrkit("corpus", "tiny", str(data))
    for split in ("train", "dev", "test"):
        if not (feats / split / "index.tsv").exists():
            _asrkit("featurize", str(data / split), str(feats / split))
    if not (exp / "checkpoints" / "best.pt").exists():
        _asrkit("train", "ctc", "--conf", str(ROOT / "recipes/tiny/conf/ctc_phone.yaml"), "--train",
                str(feats / "train"), "--dev", str(feats / "dev"), "--out", str(exp), "train.threads=1")
    return exp, feats, data


def _ref_ali(feats: Path, data: Path | None, split: str) -> dict[str, str]:
    from asrkit.data.table import read_table

    p = data / split / "ali" if data is not None else feats / split / "ali"
    return read_table(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", type=Path, help="trained phone CTC exp dir (default: build one in --work)")
    ap.add_argument("--feats", type=Path, help="folder with feature stores dev/ and test/")
    ap.add_argument("--data", type=Path, help="folder with data dirs dev/ and test/ holding the exact ali "
                                              "(default: the stores' ali)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/align_bench"), help="where to build without --exp")
    ap.add_argument("--tune", default="dev", help="split for --sweep")
    ap.add_argument("--report", default="test", help="split to report on")
    ap.add_argument("--sweep", action="store_true", help="also sweep offset and hold on --tune")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from asrkit.data import FeatureStore
    from asrkit.decode import load_exp
    from asrkit.decode.align import (
        DEFAULT_HOLD,
        DEFAULT_OFFSET,
        _labels,
        align_store,
        frame_spans,
        make_targets,
        store_transcripts,
    )
    from asrkit.score.boundary import boundary_error, frame_accuracy

    if args.exp is None:
        exp_dir, feats, data = build(args.work)
    else:
        exp_dir, feats, data = args.exp, args.feats, args.data
        if feats is None:
            ap.error("--feats is needed with --exp")
    exp = load_exp(exp_dir, device=args.device, task="ctc")

    def run(split: str, phones: bool):
        store = FeatureStore(feats / split)
        shift_ms = float(store.conf.get("frame_shift", 10.0))
        ph = store._table("text.phones") if phones else None
        skipped: list[str] = []
        t0 = time.perf_counter()
        res = list(align_store(exp, store, phones=ph, oov="skip", skipped=skipped))
        dt = time.perf_counter() - t0
        table, where = store_transcripts(store)
        tg = {t.utt: t for t in make_targets(exp.units, [r.utt for r in res], table, where, ph, "skip")}
        return store, res, tg, skipped, dt, shift_ms

    def relabel(res, tg, offset, hold):
        out = {}
        for r in res:
            t = tg[r.utt]
            spans = frame_spans(t, r.segments, r.frames, exp.subsampling, offset, hold)
            out[r.utt] = _labels([exp.units.units[i] for i in t.ids], spans, r.frames)
        return out

    print(f"exp {exp_dir} ({exp.units.kind} units, subsampling {exp.subsampling}, {exp.checkpoint.name}); "
          f"defaults offset {DEFAULT_OFFSET}, hold {DEFAULT_HOLD}")
    if args.sweep:
        _, res, tg, skipped, _, shift = run(args.tune, False)
        ref = _ref_ali(feats, data, args.tune)
        print(f"\n[{args.tune}] offset sweep (hold {DEFAULT_HOLD}), {len(res)} utterances "
              f"({len(skipped)} skipped for OOV words)")
        for off in range(-6, 3):
            be = boundary_error(ref, relabel(res, tg, off, DEFAULT_HOLD), shift)
            print(f"  offset {off:+d} frames: {be}")
        print(f"[{args.tune}] hold sweep (offset {DEFAULT_OFFSET}): frame accuracy")
        for hold in (None, 0, 4, 8, 12, 16, 24):
            hyp = relabel(res, tg, DEFAULT_OFFSET, hold)
            acc = frame_accuracy({u: ref[u] for u in hyp}, hyp)
            print(f"  hold {hold!s:>4}: {100 * acc:.1f}%")

    ref = _ref_ali(feats, data, args.report)
    for phones in (False, True):
        _store, res, tg, skipped, dt, shift = run(args.report, phones)
        hyp = {r.utt: r.labels for r in res}
        be = boundary_error(ref, hyp, shift)
        acc = frame_accuracy({u: ref[u] for u in hyp}, hyp)
        what = "text.phones (synthesizer phones)" if phones else "text spelled with the model's lexicon"
        print(f"\n[{args.report}] {what}: {len(res)} utterances aligned in {dt:.1f} s "
              f"({len(skipped)} skipped for OOV words)")
        print(f"  boundary error: mean {be.mean_ms:.1f} ms, median {be.median_ms:.1f} ms, "
              f"{100 * be.within_20:.1f}% within 20 ms, {100 * be.within_40:.1f}% within 40 ms; "
              f"{be.compared} phone starts compared ({be.ref_phones} ref / {be.hyp_phones} hyp)")
        print(f"  frame accuracy: {100 * acc:.1f}%   target mean < 40 ms: "
              f"{'met' if be.mean_ms < 40 else 'NOT met'}")


if __name__ == "__main__":
    main()
