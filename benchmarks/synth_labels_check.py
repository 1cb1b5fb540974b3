"""Do a synthesized data dir's frame labels line up with its audio and features?

    asrkit corpus synth --text T --out data/synth8k --rate-hz 8000 --voices mb-us1,en-us+f3,slt --jobs 2
    asrkit featurize data/synth8k feats/synth8k --conf recipes/asterisk/conf/fbank40_8k.yaml
    .venv/bin/python benchmarks/synth_labels_check.py data/synth8k feats/synth8k

Prints whether every utterance's ``ali`` has as many labels as the feature
store has frames, then per voice: the mean frame energy (dB) of ``sil`` and of
speech frames, the share of power above 2 kHz in s/sh frames and in vowel
frames, and where speech starts and ends (5 ms RMS within 30 dB of the
utterance's loudest) relative to the first and last non-``sil`` label, in ms
(median [5th, 95th percentile]; frames quantize these to about +-5 ms; a stop
at either end counts its silent closure, so the tails are long).
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from asrkit.corpora.synth import frame_geometry
from asrkit.data.table import read_table

VOWELS = ["aa", "ae", "ah", "ao", "eh", "ih", "iy", "uw", "ey", "ay", "ow", "er", "uh", "aw", "oy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="data dir written by asrkit corpus synth")
    ap.add_argument("feats", type=Path, help="its feature store (asrkit featurize)")
    args = ap.parse_args()
    rate = json.loads((args.data / "synth.json").read_text()).get("sample_rate", 16000)
    win, shift = frame_geometry(rate)
    frames = {}
    for line in (args.feats / "index.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            f = line.split("\t")
            frames[f[0]] = int(f[3])
    wav = read_table(args.data / "wav.scp")
    ali = {k: v.split() for k, v in read_table(args.data / "ali").items()}
    bad = [u for u in wav if frames.get(u) != len(ali[u])]
    print(f"{len(wav)} utterances at {rate} Hz: ali length == feature frames for {len(wav) - len(bad)}, "
          f"mismatches {len(bad)} {bad[:5]}")
    stats: dict = collections.defaultdict(lambda: collections.defaultdict(list))
    for utt, path in sorted(wav.items()):
        voice = json.loads((args.data / ".synth" / f"{utt}.json").read_text())["voice"]
        audio, sr = sf.read(path, dtype="float64")
        assert sr == rate, (path, sr)
        lab = np.array(ali[utt])
        fr = audio[np.arange(len(lab))[:, None] * shift + np.arange(win)[None, :]]  # (T, win)
        energy = 10 * np.log10(np.mean(fr**2, axis=1) + 1e-12)
        power = np.abs(np.fft.rfft(fr * np.hanning(win), axis=1)) ** 2
        freq = np.fft.rfftfreq(win, 1 / rate)
        high = power[:, freq >= 2000].sum(1) / (power[:, freq >= 100].sum(1) + 1e-12)
        s = stats[voice]
        s["sil"].append(energy[lab == "sil"].mean())
        s["speech"].append(energy[lab != "sil"].mean())
        s["fric"].extend(high[np.isin(lab, ["s", "sh"])])
        s["vowel"].extend(high[np.isin(lab, VOWELS)])
        k = int(0.005 * rate)
        env = np.sqrt(np.convolve(audio**2, np.ones(k) / k, mode="same") + 1e-20)
        loud = np.flatnonzero(env > env.max() * 10 ** (-30 / 20))
        speech = np.flatnonzero(lab != "sil")
        if len(loud) and len(speech):
            # the first/last non-sil frame's 10 ms step around its centre (0.010 i + 0.0125 s)
            s["onset"].append((loud[0] / rate - (speech[0] * 0.010 + 0.0075)) * 1000)
            s["offset"].append((loud[-1] / rate - (speech[-1] * 0.010 + 0.0175)) * 1000)

    def spread(x: list) -> str:
        a = np.array(x)
        return f"{np.median(a):6.1f} [{np.percentile(a, 5):6.1f}, {np.percentile(a, 95):6.1f}]"

    print(f"{'voice':20} {'sil dB':>7} {'speech dB':>9} {'s/sh >2k':>8} {'vowel >2k':>9} "
          f"{'onset ms':>24} {'offset ms':>24}")
    for voice, s in sorted(stats.items()):
        print(f"{voice:20} {np.mean(s['sil']):7.1f} {np.mean(s['speech']):9.1f} {np.mean(s['fric']):8.2f} "
              f"{np.mean(s['vowel']):9.2f} {spread(s['onset']):>24} {spread(s['offset']):>24}")


if __name__ == "__main__":
    main()
