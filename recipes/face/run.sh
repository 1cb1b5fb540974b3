#!/usr/bin/env bash
# Face identification and open-set verification on the drawn faces corpus, as numbered stages
# (Kaldi / ESPnet style), on asrkit's own layers (impl: scratch):
#
#   0  corpus      asrkit corpus faces: 500 identities x (20 train + 5 dev) images, 64x64, and
#                  100 further identities for verification with balanced pairs
#                                                  -> data/faces/{train,dev,verify}
#   1  train       asrkit train face: ResNet + ArcFace on train, dev accuracy per epoch
#                                                  -> exp/face
#   2  predict     asrkit predict face on the dev images (Kaggle csv), identification accuracy
#                                                  -> exp/face/predict_dev/{submission.csv,accuracy.txt}
#   3  verify      asrkit verify on the unseen identities' pairs: scores, AUC/EER/TAR@FAR, ROC plot
#                                                  -> exp/face/verify/{scores.txt,report.json,roc.png}
#   4  results     the results table               -> exp/face/results.txt
#
# Every stage is resumable: finished outputs are kept, training continues from its last
# checkpoint. Logs: exp/log/NN_<stage>.log.
#
#   recipes/face/run.sh                             # everything, into recipes/face/{data,exp}
#   recipes/face/run.sh --stage 2 --stop-stage 4    # predict, verify, results of a trained model
#   recipes/face/run.sh --dir /tmp/face --identities 50 --epochs 2      # a quick smaller run
#   recipes/face/run.sh --dir /tmp/face_native --impl native            # torch's layers instead
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

stage=0
stop_stage=100
dir=$here
device=auto
threads=1
conf=$here/conf/face_resnet.yaml
identities=500
per_identity=20
dev_per_identity=5
verify_identities=100
pairs=2000
size=64
seed=0
epochs=
impl=

usage() {
  cat <<USAGE
usage: $0 [--stage N] [--stop-stage N] [--dir DIR] [--device auto|cpu|cuda] [--threads N] [--conf FILE]
          [--identities N] [--per-identity N] [--dev-per-identity N] [--verify-identities N] [--pairs N]
          [--size N] [--seed N] [--epochs N] [--impl scratch|native]
  stages: 0 corpus, 1 train, 2 predict (dev accuracy), 3 verify (unseen identities), 4 results
  --dir      where data/ and exp/ go (default: $here)
  --threads  CPU threads of training and scoring (default: $threads; 2 on an otherwise idle 2-core machine)
  --epochs   training epochs (default: the config's)
  --impl     layer implementation (default: the config's, scratch)
USAGE
}

. "$here/../lib/common.sh"
parse_options "$@"
dir=$(realpath -m "$dir")  # a relative --dir stays right after the cd below
check_numbers stage stop_stage threads identities per_identity dev_per_identity verify_identities pairs size seed
[ -z "$epochs" ] || check_numbers epochs
impl_overrides
[ -z "$epochs" ] || train_overrides+=("train.epochs=$epochs")
conf=$(realpath -m "$conf")
find_asrkit
export OMP_NUM_THREADS=$threads

mkdir -p "$dir"
cd "$dir"
logdir=exp/log
mkdir -p "$logdir"
faces=data/faces
exp=exp/face

# results: one row per measured number, from the files the stages wrote
results() {
  printf "%-44s %10s\n" "measure" "value"
  [ -f $exp/predict_dev/accuracy.txt ] && printf "%-44s %10s\n" "dev identification accuracy (%)" \
    "$(cat $exp/predict_dev/accuracy.txt)"
  if [ -f $exp/verify/report.json ]; then
    awk -F'[:,]' '/"auc"/ { printf "%-44s %10.2f\n", "verification AUC, unseen identities (%)", 100 * $2 }
                  /"eer"/ { printf "%-44s %10.2f\n", "verification EER (%)", 100 * $2 }
                  /"tar@far=0.01"/ { printf "%-44s %10.2f\n", "TAR @ FAR=1e-2 (%)", 100 * $2 }
                  /"tar@far=0.001"/ { printf "%-44s %10.2f\n", "TAR @ FAR=1e-3 (%)", 100 * $2 }
                  /"pairs"/ { printf "%-44s %10d\n", "verification pairs", $2 }' $exp/verify/report.json
  fi
  [ -f $exp/train_minutes.txt ] && printf "%-44s %10s\n" "training minutes" "$(cat $exp/train_minutes.txt)"
  return 0
}

if run_stage 0 corpus; then
  if [ -f $faces/verify/pairs_labels.txt ]; then echo "$faces is there" | tee "$log"
  else
    $ASRKIT corpus faces $faces --identities "$identities" --per-identity "$per_identity" \
      --dev-per-identity "$dev_per_identity" --verify-identities "$verify_identities" --pairs "$pairs" --size "$size" \
      --seed "$seed" --overwrite 2>&1 | tee "$log"
  fi
fi

if run_stage 1 train; then
  start=$(date +%s)
  $ASRKIT train face --train $faces/train --dev $faces/dev --out $exp --conf "$conf" --device "$device" \
    --resume "train.threads=$threads" ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
  awk -v s=$(( $(date +%s) - start )) 'BEGIN { printf "%.1f\n", s / 60 }' > $exp/train_minutes.txt
fi

if run_stage 2 predict; then
  mkdir -p $exp/predict_dev
  {
    $ASRKIT predict face $exp $faces/dev --device "$device" > $exp/predict_dev/submission.csv.tmp
    mv $exp/predict_dev/submission.csv.tmp $exp/predict_dev/submission.csv
    # the dev images lie in <identity>/ folders: a prediction is right when it names that folder
    awk -F, 'NR > 1 { n++; split($1, p, "/"); if (p[1] == $2) ok++ } END { printf "%.2f\n", 100 * ok / n }' \
      $exp/predict_dev/submission.csv > $exp/predict_dev/accuracy.txt
    echo "dev identification accuracy: $(cat $exp/predict_dev/accuracy.txt)% ($exp/predict_dev/submission.csv)"
  } 2>&1 | tee "$log"
fi

if run_stage 3 verify; then
  mkdir -p $exp/verify
  {
    $ASRKIT verify $exp $faces/verify/pairs.txt --labels $faces/verify/pairs_labels.txt --device "$device" \
      --roc $exp/verify/roc.png --report $exp/verify/report.json > $exp/verify/scores.txt.tmp
    mv $exp/verify/scores.txt.tmp $exp/verify/scores.txt
  } 2>&1 | tee "$log"
fi

if run_stage 4 results; then
  results | tee $exp/results.txt.tmp "$log"
  mv $exp/results.txt.tmp $exp/results.txt
fi
