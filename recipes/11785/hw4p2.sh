#!/usr/bin/env bash
# CMU 11-785 HW4P2: attention-based speech to text on characters (Listen, Attend and Spell, or the
# joint CTC/attention Transformer) from the course's Kaggle data (MFCC .npy files). The metric is the
# course's: the Levenshtein distance between the predicted and the true transcript strings (spaces
# count), averaged over utterances (asrkit score --metric levenshtein).
#
# Layouts accepted (--corpus DIR; 'asrkit data import kaggle-11785' reads both):
#   folders: per-utterance files, the course's layout in its LibriSpeech years (checked against
#            students' code for fall 2023 HW1P2 and fall 2025 HW3P2; see docs/recipes.md):
#            DIR/train-clean-100/{mfcc,transcript}/*.npy, DIR/dev-clean/{mfcc,transcript}/*.npy,
#            DIR/test-clean/mfcc/*.npy (any split names starting with train, dev, test); transcripts
#            as arrays of characters (<sos>/<eos> dropped, the characters joined into words), in
#            SPLIT/transcript/ or, as a HW4P2 year has them, SPLIT/transcript/raw/. Not read: a later
#            year's SPLIT/fbank/*.npy + SPLIT/text/*.npy (its features are stored (F, T)).
#   arrays:  whole-split object arrays named as the importer reads them: DIR/train.npy
#            DIR/train_labels.npy DIR/dev.npy DIR/dev_labels.npy DIR/test.npy, labels arrays of
#            characters (an older year's train_transcripts.npy of words is not read: rename and
#            convert it to train_labels.npy of characters first)
#
#   0  import         asrkit data import kaggle-11785       -> data/{TRAIN,DEV,TEST}
#   1  train          asrkit train las (--model las, default) or train transformer, char units
#                                                          -> exp/las or exp/transformer
#   2  score dev      beam search (--beam); mean Levenshtein distance of the strings, %WER, %CER
#                                                          -> exp/MODEL/dev/{hyp.txt,results.txt}
#   3  submission     beam search on test, the Kaggle csv 'id,label' (id: the test utterances in
#                     file-name order from 0; label: the transcript)
#                                                          -> exp/MODEL/submission.csv
#
# Every stage is resumable (finished outputs are kept, training continues from its last checkpoint).
# Logs: exp/log/NN_<stage>.log.
#
#   recipes/11785/hw4p2.sh --corpus /data/hw4p2                      # LAS, into recipes/11785/hw4p2/
#   recipes/11785/hw4p2.sh --corpus /data/hw4p2 --model transformer --dir /tmp/hw4p2_tf --device cuda
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib/common.sh"

course_defaults hw4p2   # stage, stop_stage, device, corpus, dir, the *_split names, impl
model=las
conf=
beam=10
max_len_ratio=

usage() {
  cat <<USAGE
usage: $0 --corpus DIR [--stage N] [--stop-stage N] [--dir DIR] [--device auto|cpu|cuda]
          [--model las|transformer] [--conf FILE] [--beam N] [--max-len-ratio R] [--impl scratch|native]
          [--train-split NAME] [--dev-split NAME] [--test-split NAME]
  stages: 0 import, 1 train, 2 score dev (Levenshtein, WER, CER), 3 submission (Kaggle csv)
  --model          las (default) or transformer
  --conf           the model's config (default: conf/las.yaml or conf/transformer.yaml of the repository)
  --beam           attention beam width of the dev and test decodes (default $beam)
  --max-len-ratio  at most R output characters per encoder frame (default: decode's)
USAGE
  course_usage hw4p2
  echo "  (HW4P2's labels: arrays of characters, <sos>/<eos> dropped. Not read: an older year's train_transcripts.npy"
  echo "   of words, and the fbank/ + text/ folders of a later year, whose features are stored (F, T))"
}

parse_options "$@"
case "$model" in
  las|transformer) ;;
  *) echo "$0: --model takes las or transformer (got '$model')" >&2; exit 2 ;;
esac
[ -n "$conf" ] || conf=$here/../../conf/$model.yaml
set_att_opts
course_setup beam
exp=exp/$model
course_import

if run_stage 1 train; then
  train_model $model data/$train/feats data/$dev/feats $exp "$conf"
fi

if run_stage 2 score_dev; then
  out=$exp/dev
  mkdir -p $out
  : > "$log"
  decode_beam data/$dev/feats $out/hyp.txt ${att_opts[@]+"${att_opts[@]}"}
  $ASRKIT score data/$dev/text $out/hyp.txt --metric levenshtein 2>> "$log" > $out/levenshtein.txt
  $ASRKIT score data/$dev/text $out/hyp.txt --cer 2>> "$log" > $out/wer.txt
  echo "HW4P2 results ($dev, $(wc -l < data/$dev/text) utterances, $model, beam $beam)"
  results_rows $out/results.txt "mean Levenshtein distance" "$(awk '{ print $2 }' $out/levenshtein.txt)" \
    "%WER" "$(awk '$1 == "%WER" { print $2 }' $out/wer.txt)" \
    "%CER" "$(awk '$1 == "%CER" { print $2 }' $out/wer.txt)"
  cat $out/levenshtein.txt $out/wer.txt | tee -a "$log"
fi

if run_stage 3 submission; then
  course_submission ${att_opts[@]+"${att_opts[@]}"}
fi
