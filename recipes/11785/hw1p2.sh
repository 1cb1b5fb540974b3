#!/usr/bin/env bash
# CMU 11-785 HW1P2: frame-level phoneme classification from the course's Kaggle data (MFCC .npy files):
# an MLP over a window of +-15 frames (asrkit train frame), frame accuracy on dev, the Kaggle
# submission 'id,label' of the test frames.
#
# Layouts accepted (--corpus DIR; 'asrkit data import kaggle-11785' reads both):
#   folders: per-utterance files, the course's layout from 2021 on:
#            DIR/train-clean-100/{mfcc,transcript}/*.npy, DIR/dev-clean/{mfcc,transcript}/*.npy,
#            DIR/test-clean/mfcc/*.npy (any split names starting with train, dev, test; labels one per
#            frame, as strings or integers, [SOS]/[EOS] dropped)
#   arrays:  whole-split object arrays, the course's layout up to 2020:
#            DIR/train.npy DIR/train_labels.npy DIR/dev.npy DIR/dev_labels.npy DIR/test.npy
#
#   0  import         asrkit data import kaggle-11785 (feature stores of the course's features, ali)
#                                                    -> data/{TRAIN,DEV,TEST}
#   1  train frame    MLP frame classifier            -> exp/frame_mlp
#   2  score dev      per-frame labels of dev, frame accuracy
#                                                    -> exp/frame_mlp/dev/{ali,accuracy.txt}
#   3  submission     per-frame labels of test as the Kaggle csv 'id,label' (id: running frame
#                     number over the test utterances in file-name order)
#                                                    -> exp/frame_mlp/submission.csv
#
# Every stage is resumable (finished outputs are kept, training continues from its last checkpoint).
# Logs: exp/log/NN_<stage>.log.
#
#   recipes/11785/hw1p2.sh --corpus /data/hw1p2                   # into recipes/11785/hw1p2/
#   recipes/11785/hw1p2.sh --corpus /data/hw1p2 --dir /tmp/hw1p2 --device cuda --stage 2
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

stage=0
stop_stage=100
device=auto
corpus=
dir=$here/hw1p2
conf=$here/conf/frame_mlp.yaml
train_split=
dev_split=
test_split=
impl=

usage() {
  cat <<USAGE
usage: $0 --corpus DIR [--stage N] [--stop-stage N] [--dir DIR] [--device auto|cpu|cuda]
          [--conf FILE] [--impl scratch|native] [--train-split NAME] [--dev-split NAME] [--test-split NAME]
  stages: 0 import, 1 train frame, 2 score dev (frame accuracy), 3 submission (Kaggle csv)
  --corpus  the course's data: per-utterance folders (SPLIT/mfcc/*.npy + SPLIT/transcript/*.npy, 2021 on)
            or whole-split arrays (train.npy train_labels.npy dev.npy dev_labels.npy test.npy, up to 2020)
  --dir     where data/ and exp/ go (default: $here/hw1p2)
  --conf    the frame classifier's config (default: $here/conf/frame_mlp.yaml)
  --*-split which imported split is train / dev / test (default: the one whose name starts so)
USAGE
}

. "$here/../lib/common.sh"
parse_options "$@"
dir=$(realpath -m "$dir")  # a relative --dir stays right after the cd below
check_numbers stage stop_stage
impl_overrides
conf=$(realpath -m "$conf")
if [ "$stage" -le 0 ]; then
  require_11785_corpus "$corpus"
  corpus=$(realpath "$corpus")
fi
find_asrkit

mkdir -p "$dir"
cd "$dir"
logdir=exp/log
mkdir -p "$logdir"
exp=exp/frame_mlp

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

if run_stage 1 train_frame; then
  $ASRKIT train frame --train data/$train/feats --dev data/$dev/feats --out $exp --conf "$conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if run_stage 2 score_dev; then
  mkdir -p $exp/dev
  if newer $exp/dev/ali $exp/checkpoints/best.pt; then echo "$exp/dev/ali is up to date"
  else
    $ASRKIT predict frame $exp data/$dev/feats --device "$device" > $exp/dev/ali.tmp 2> "$log"
    mv $exp/dev/ali.tmp $exp/dev/ali
  fi
  $ASRKIT score data/$dev/ali $exp/dev/ali --metric frame-accuracy 2>> "$log" > $exp/dev/accuracy.txt
  acc=$(awk '{ print $2 }' $exp/dev/accuracy.txt)
  echo "HW1P2 results ($dev, $(wc -l < data/$dev/ali) utterances)"
  printf '  %-24s %10s\n' metric value "frame accuracy (%)" "$acc" | tee $exp/dev/results.txt
  cat $exp/dev/accuracy.txt | tee -a "$log"
fi

if run_stage 3 submission; then
  if newer $exp/submission.csv $exp/checkpoints/best.pt; then echo "$exp/submission.csv is up to date"
  else
    $ASRKIT predict frame $exp data/$test/feats --csv --device "$device" > $exp/submission.csv.tmp 2> "$log"
    mv $exp/submission.csv.tmp $exp/submission.csv
  fi
  echo "Kaggle submission: $dir/$exp/submission.csv ($(($(wc -l < $exp/submission.csv) - 1)) frames of $test)"
fi
