#!/usr/bin/env bash
# CMU 11-785 HW1P2: frame-level phoneme classification from the course's Kaggle data (MFCC .npy files):
# an MLP over a window of +-15 frames (asrkit train frame), frame accuracy on dev, the Kaggle
# submission 'id,label' of the test frames.
#
# Layouts accepted (--corpus DIR; 'asrkit data import kaggle-11785' reads both):
#   folders: per-utterance files, the course's layout in its LibriSpeech years (checked against
#            students' code for fall 2023 HW1P2 and fall 2025 HW3P2; see docs/recipes.md):
#            DIR/train-clean-100/{mfcc,transcript}/*.npy, DIR/dev-clean/{mfcc,transcript}/*.npy,
#            DIR/test-clean/mfcc/*.npy (any split names starting with train, dev, test; labels one per
#            frame, as strings or integers, [SOS]/[EOS] dropped)
#   arrays:  whole-split object arrays, the course's layout in its earlier years (spring 2019 on WSJ,
#            then a LibriSpeech year):
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
. "$here/../lib/common.sh"

course_defaults hw1p2   # stage, stop_stage, device, corpus, dir, the *_split names, impl
conf=$here/conf/frame_mlp.yaml

usage() {
  cat <<USAGE
usage: $0 --corpus DIR [--stage N] [--stop-stage N] [--dir DIR] [--device auto|cpu|cuda]
          [--conf FILE] [--impl scratch|native] [--train-split NAME] [--dev-split NAME] [--test-split NAME]
  stages: 0 import, 1 train frame, 2 score dev (frame accuracy), 3 submission (Kaggle csv)
  --conf       the frame classifier's config (default: $here/conf/frame_mlp.yaml)
USAGE
  course_usage hw1p2
  echo "  (HW1P2's labels: one per frame, strings or integers; [SOS]/[EOS] are dropped)"
}

parse_options "$@"
course_setup
exp=exp/frame_mlp
course_import

if run_stage 1 train_frame; then
  train_model frame data/$train/feats data/$dev/feats $exp "$conf"
fi

if run_stage 2 score_dev; then
  mkdir -p $exp/dev
  if newer $exp/dev/ali $exp/checkpoints/best.pt; then echo "$exp/dev/ali is up to date"
  else
    $ASRKIT predict frame $exp data/$dev/feats --device "$device" > $exp/dev/ali.tmp 2> "$log"
    mv $exp/dev/ali.tmp $exp/dev/ali
  fi
  $ASRKIT score data/$dev/ali $exp/dev/ali --metric frame-accuracy 2>> "$log" > $exp/dev/accuracy.txt
  echo "HW1P2 results ($dev, $(wc -l < data/$dev/ali) utterances)"
  results_rows $exp/dev/results.txt "frame accuracy (%)" "$(awk '{ print $2 }' $exp/dev/accuracy.txt)"
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
