#!/usr/bin/env bash
# CMU 11-785 HW3P2: utterance -> phone sequence with CTC and a beam search, from the course's Kaggle
# data (MFCC .npy files). The metric is the course's: the Levenshtein distance between the predicted and
# the true phone sequence, averaged over utterances (asrkit score --metric levenshtein --unit token: one
# edit per phone, as the course's distance between strings of one character per phone).
#
# Layouts accepted (--corpus DIR; 'asrkit data import kaggle-11785' reads both):
#   folders: per-utterance files, the course's layout in its LibriSpeech years (checked against
#            students' code for fall 2023 HW1P2 and fall 2025 HW3P2; see docs/recipes.md):
#            DIR/train-clean-100/{mfcc,transcript}/*.npy, DIR/dev-clean/{mfcc,transcript}/*.npy,
#            DIR/test-clean/mfcc/*.npy (any split names starting with train, dev, test); transcripts
#            of ARPAbet phone names in any case ('AA', 'sil', '[SIL]'; [SOS]/[EOS] dropped)
#   arrays:  whole-split object arrays (the earlier years): DIR/train.npy DIR/train_labels.npy
#            DIR/dev.npy DIR/dev_labels.npy DIR/test.npy; integer labels need --phone-map
#
#   0  import         asrkit data import kaggle-11785       -> data/{TRAIN,DEV,TEST}
#   1  phones         the transcripts as ARPAbet phones (lower case, [SIL] -> sil, or through
#                     --phone-map) into each labelled store's text.phones
#                                                          -> data/{TRAIN,DEV}/feats/text.phones
#   2  train ctc      BiLSTM-CTC on phones                  -> exp/ctc_phone
#   3  score dev      beam search (--beam, no LM); mean Levenshtein distance and %PER against the
#                     dev phones without sil                -> exp/ctc_phone/dev/{hyp.txt,results.txt}
#   4  submission     beam search on test, the Kaggle csv 'id,label' (id: the test utterances in
#                     file-name order from 0; label: the phones, space-separated)
#                                                          -> exp/ctc_phone/submission.csv
#
# Every stage is resumable (finished outputs are kept, training continues from its last checkpoint).
# Logs: exp/log/NN_<stage>.log.
#
#   recipes/11785/hw3p2.sh --corpus /data/hw3p2                 # into recipes/11785/hw3p2/
#   recipes/11785/hw3p2.sh --corpus /data/hw3p2_2020 --phone-map phones.txt --dir /tmp/hw3p2
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib/common.sh"

course_defaults hw3p2   # stage, stop_stage, device, corpus, dir, the *_split names, impl
conf=$here/conf/ctc_phone.yaml
beam=20
phone_map=

usage() {
  cat <<USAGE
usage: $0 --corpus DIR [--stage N] [--stop-stage N] [--dir DIR] [--device auto|cpu|cuda] [--beam N]
          [--phone-map FILE] [--conf FILE] [--impl scratch|native]
          [--train-split NAME] [--dev-split NAME] [--test-split NAME]
  stages: 0 import, 1 phones, 2 train ctc, 3 score dev (Levenshtein, PER), 4 submission (Kaggle csv)
  --phone-map  'label phone' lines: the ARPAbet phone (or sil) of each of the course's labels, needed
               when the labels are integers (the earlier years' arrays)
  --beam       CTC prefix beam width of the dev and test decodes (default $beam)
  --conf       the CTC model's config (default: $here/conf/ctc_phone.yaml)
USAGE
  course_usage hw3p2
  echo "  (HW3P2's labels: ARPAbet phone names in any case, '[SIL]' as sil; an older year's wsj0_*_merged_labels.npy"
  echo "   is not read: rename its files to train.npy train_labels.npy ...)"
}

parse_options "$@"
optional_file phone_map
course_setup beam
exp=exp/ctc_phone
course_import

# to_phones TEXT OUT: the course's labels as phones: through --phone-map, else lower case with brackets
# dropped ([SIL] -> sil); integer labels without a map, or a label the map lacks, stop here naming it
to_phones() {
  awk -v map="$phone_map" -v src="$1" -v me="$0" '
    BEGIN { if (map != "") while ((getline line < map) > 0) { n = split(line, f, " "); if (n >= 2) to[f[1]] = f[2] } }
    { printf "%s", $1
      for (i = 2; i <= NF; i++) {
        p = $i
        if (map != "") {
          if (!(p in to)) { printf "%s: %s: utterance %s: label %s is not in --phone-map %s\n", me, src, $1, p, map > "/dev/stderr"; exit 1 }
          p = to[p]
        } else if (p ~ /^[0-9]+$/) {
          printf "%s: %s: utterance %s: the labels are integers (%s); give --phone-map FILE (label phone lines)\n", me, src, $1, p > "/dev/stderr"; exit 1
        }
        p = tolower(p); gsub(/[][<>]/, "", p)
        printf " %s", p
      }
      print "" }' "$1" > "$2.tmp"
  mv "$2.tmp" "$2"
}

if run_stage 1 phones; then
  : > "$log"
  for s in $train $dev; do
    [ -f data/$s/text ] || { echo "$0: data/$s has no text: its transcripts did not import" >&2; exit 1; }
    to_phones data/$s/text data/$s/text.phones 2> >(tee -a "$log" >&2)
    cp data/$s/text.phones data/$s/feats/text.phones
    echo "data/$s/feats/text.phones: $(wc -l < data/$s/text.phones) utterances" | tee -a "$log"
  done
fi

if run_stage 2 train_ctc; then
  train_model ctc data/$train/feats data/$dev/feats $exp "$conf"
fi

if run_stage 3 score_dev; then
  out=$exp/dev
  mkdir -p $out
  : > "$log"
  decode_beam data/$dev/feats $out/hyp.txt
  # the references: the dev phones without sil (the CTC units have no sil)
  awk '{ printf "%s", $1; for (i = 2; i <= NF; i++) if ($i != "sil") printf " %s", $i; print "" }' \
    data/$dev/text.phones > $out/ref.txt
  $ASRKIT score $out/ref.txt $out/hyp.txt --metric levenshtein --unit token 2>> "$log" > $out/levenshtein.txt
  $ASRKIT score $out/ref.txt $out/hyp.txt 2>> "$log" | sed 's/%WER/%PER/' > $out/per.txt
  echo "HW3P2 results ($dev, $(wc -l < $out/ref.txt) utterances, beam $beam)"
  results_rows $out/results.txt "mean Levenshtein distance" "$(awk '{ print $2 }' $out/levenshtein.txt)" \
    "%PER" "$(awk 'NR == 1 { print $2 }' $out/per.txt)"
  cat $out/levenshtein.txt $out/per.txt | tee -a "$log"
fi

if run_stage 4 submission; then
  course_submission
fi
