"""How well ``asrkit segment`` (the energy measure) finds utterances in long recordings.

    .venv/bin/python benchmarks/segment_bench.py --work /tmp/segment_bench            # noise 0, 0.003, 0.01, 0.03
    .venv/bin/python benchmarks/segment_bench.py --work /tmp/segment_bench --noise 0.01 --min-silence 0.4

Ten recordings, each six tiny-corpus test utterances (16 kHz, rms about 0.1 over the files) joined by
pauses of 0.4..1.5 s (uniform, seeded) of very low noise (rms 1e-4), with white noise of ``--noise``
rms over the whole recording (0.003, 0.01, 0.03: about 30, 20 and 10 dB below the speech). Reports
segments found against utterances, the recordings where every utterance became exactly one segment,
and for those the mean / max distance (s) between a segment's start/end and its utterance file's (the
files hold some silence of their own at both ends; segments also carry 0.1 s of padding).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from asrkit.audio import load
from asrkit.corpora.tiny import tiny_root
from asrkit.data import DataDir
from asrkit.data.table import read_table
from asrkit.pipeline.segment import SegmentOptions, segment_datadir


def make(work: Path, noise: float, seed: int = 0) -> dict[str, list[tuple[float, float]]]:
    root = tiny_root()
    wav = read_table(root / "test" / "wav.scp")
    utts = sorted(wav)
    rng = np.random.default_rng(seed)
    (work / "recs").mkdir(parents=True, exist_ok=True)
    truth, scp, k = {}, {}, 0
    for r in range(10):
        parts, spans, t = [], [], 0
        for j in range(6):
            gap = rng.uniform(0.4, 1.5) if j else 0.5
            g = (rng.standard_normal(int(gap * 16000)) * 1e-4).astype(np.float32)
            x = load(root / wav[utts[k % len(utts)]], 16000)[0]
            k += 1
            parts += [g, x]
            t += len(g)
            spans.append((t / 16000, (t + len(x)) / 16000))
            t += len(x)
        parts.append((rng.standard_normal(8000) * 1e-4).astype(np.float32))
        y = np.concatenate(parts)
        y = y + (rng.standard_normal(len(y)) * noise).astype(np.float32)
        path = work / "recs" / f"r{r}.wav"
        sf.write(path, y, 16000, subtype="PCM_16")
        scp[f"spk-r{r}"] = str(path.resolve())
        truth[f"spk-r{r}"] = spans
    DataDir(wav_scp=scp, utt2spk={u: "spk" for u in scp}).save(work / "data")
    return truth


def report(work: Path, truth: dict, opts: SegmentOptions) -> str:
    segment_datadir(work / "data", work / "seg", opts, overwrite=True)
    found: dict[str, list[tuple[float, float]]] = {}
    for s in DataDir.load(work / "seg").segments.values():
        found.setdefault(s.reco, []).append((s.start, s.end))
    errs, exact = [], 0
    for r, spans in truth.items():
        got = sorted(found.get(r, []))
        if len(got) == len(spans):
            exact += 1
            errs += [abs(a - s) for (a, _), (s, _) in zip(spans, got)] + [abs(b - e) for (_, b), (_, e) in zip(spans, got)]
    n_true, n_got = sum(map(len, truth.values())), sum(map(len, found.values()))
    err = f"mean {np.mean(errs):.3f} s, max {np.max(errs):.3f} s" if errs else "-"
    return (f"{n_got} segments for {n_true} utterances; one segment per utterance in {exact}/{len(truth)} "
            f"recordings; boundary distance there: {err}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--noise", type=float, nargs="*", default=[0.0, 0.003, 0.01, 0.03])
    ap.add_argument("--min-silence", type=float, default=0.3)
    ap.add_argument("--threshold", type=float, default=0.3)
    a = ap.parse_args()
    for noise in a.noise:
        truth = make(a.work, noise)
        opts = SegmentOptions(min_silence=a.min_silence, threshold=a.threshold)
        print(f"noise rms {noise:g}: {report(a.work, truth, opts)}", flush=True)


if __name__ == "__main__":
    main()
