#!/usr/bin/env bash
# CMU 11-785 HW4P2: attention-based speech to text on characters (Listen, Attend and Spell, or the
# joint CTC/attention Transformer) from the course's Kaggle data (MFCC .npy files). The metric is the
# course's: the Levenshtein distance between the predicted and the true transcript strings (spaces
# count), averaged over utterances (asrkit score --metric levenshtein).
#
# Layouts accepted (--corpus DIR; 'asrkit data import kaggle-11785' reads both):
#   folders: per-utterance files, the course's layout from 2021 on:
#            DIR/train-clean-100/{mfcc,transcript}/*.npy, DIR/dev-clean/{mfcc,transcript}/*.npy,
#            DIR/test-clean/mfcc/*.npy (any split names starting with train, dev, test); transcripts
#            as arrays of characters (<sos>/<eos> dropped, the characters joined into words)
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

stage=0
stop_stage=100
device=auto
corpus=
dir=$here/hw4p2
model=las
conf=
beam=10
max_len_ratio=
train_split=
dev_split=
test_split=
impl=

usage() {
  cat <<USAGE
usage: $0 --corpus DIR [--stage N] [--stop-stage N] [--dir DIR] [--device auto|cpu|cuda]
          [--model las|transformer] [--conf FILE] [--beam N] [--max-len-ratio R] [--impl scratch|native]
          [--train-split NAME] [--dev-split NAME] [--test-split NAME]
  stages: 0 import, 1 train, 2 score dev (Levenshtein, WER, CER), 3 submission (Kaggle csv)
  --corpus         the course's data: per-utterance folders (SPLIT/mfcc/*.npy + SPLIT/transcript/*.npy)
                   or whole-split arrays (train.npy train_labels.npy dev.npy dev_labels.npy test.npy)
  --model          las (default) or transformer
  --conf           the model's config (default: conf/las.yaml or conf/transformer.yaml of the repository)
  --beam           attention beam width of the dev and test decodes (default $beam)
  --max-len-ratio  at most R output characters per encoder frame (default: decode's)
  --dir            where data/ and exp/ go (default: $here/hw4p2)
  --*-split        which imported split is train / dev / test (default: the one whose name starts so)
USAGE
}

. "$here/../lib/common.sh"
parse_options "$@"
dir=$(realpath -m "$dir")  # a relative --dir stays right after the cd below
check_numbers stage stop_stage beam
impl_overrides
case "$model" in
  las|transformer) ;;
  *) echo "$0: --model takes las or transformer (got '$model')" >&2; exit 2 ;;
esac
[ -n "$conf" ] || conf=$here/../../conf/$model.yaml
conf=$(realpath -m "$conf")
att_opts=()
[ -z "$max_len_ratio" ] || att_opts=(--max-len-ratio "$max_len_ratio")
if [ "$stage" -le 0 ]; then
  require_11785_corpus "$corpus"
  corpus=$(realpath "$corpus")
fi
find_asrkit

mkdir -p "$dir"
cd "$dir"
logdir=exp/log
mkdir -p "$logdir"
exp=exp/$model

if run_stage 0 import; then
  if [ -f data/.imported ]; then echo "data/ is there"
  else
    echo "$corpus: $course_layout layout"
    $ASRKIT data import kaggle-11785 "$corpus" data 2>&1 | tee "$log"
    touch data/.imported
  fi
fi
train=$(course_split data train "$train_split")
dev=$(course_split data dev "$dev_split")
test=$(course_split data test "$test_split")

if run_stage 1 train; then
  $ASRKIT train $model --train data/$train/feats --dev data/$dev/feats --out $exp --conf "$conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

# decode_beam STORE OUT: beam search transcripts of STORE into OUT, unless OUT is newer than the model
decode_beam() {
  if newer "$2" $exp/checkpoints/best.pt; then echo "$2 is up to date"
  else
    $ASRKIT decode $exp "$1" --beam "$beam" --device "$device" ${att_opts[@]+"${att_opts[@]}"} > "$2.tmp" 2>> "$log"
    mv "$2.tmp" "$2"
  fi
}

if run_stage 2 score_dev; then
  out=$exp/dev
  mkdir -p $out
  : > "$log"
  decode_beam data/$dev/feats $out/hyp.txt
  $ASRKIT score data/$dev/text $out/hyp.txt --metric levenshtein 2>> "$log" > $out/levenshtein.txt
  $ASRKIT score data/$dev/text $out/hyp.txt --cer 2>> "$log" > $out/wer.txt
  echo "HW4P2 results ($dev, $(wc -l < data/$dev/text) utterances, $model, beam $beam)"
  printf '  %-30s %10s\n' metric value \
    "mean Levenshtein distance" "$(awk '{ print $2 }' $out/levenshtein.txt)" \
    "%WER" "$(awk '$1 == "%WER" { print $2 }' $out/wer.txt)" \
    "%CER" "$(awk '$1 == "%CER" { print $2 }' $out/wer.txt)" | tee $out/results.txt
  cat $out/levenshtein.txt $out/wer.txt | tee -a "$log"
fi

if run_stage 3 submission; then
  : > "$log"
  decode_beam data/$test/feats $exp/test_hyp.txt
  kaggle_csv $exp/test_hyp.txt $exp/submission.csv
  echo "Kaggle submission: $dir/$exp/submission.csv ($(($(wc -l < $exp/submission.csv) - 1)) utterances of $test)"
fi
