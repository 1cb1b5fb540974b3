#!/usr/bin/env bash
# The embedded tiny corpus end to end, as numbered stages (Kaldi / ESPnet style):
#
#   0  corpus          asrkit corpus tiny               -> data/{train,dev,test}
#   1  features        asrkit featurize (fbank 80)      -> feats/{train,dev,test}
#   2  train ctc       Conformer-CTC on phones          -> exp/ctc_phone
#   3  decode          greedy CTC on the test set, test-time VTLP (--warps) -> exp/ctc_phone/decode_test/hyp.txt
#   4  score           PER against text.phones (no sil) -> exp/ctc_phone/decode_test/per.txt
#   5  train frame     MLP frame classifier on the exact alignments (ali) -> exp/frame_mlp
#   6  predict frame   per-frame labels of the test set, frame accuracy, Kaggle csv
#                                                       -> exp/frame_mlp/predict_test/
#   7  lm              3-gram on the corpus's LM text   -> exp/lm3.arpa
#   8  decode lm       LM weights tuned on dev (asrkit tune on dev emissions made with --warps), then beam 20 + LM to words through
#                      the CMU lexicon, WER             -> exp/ctc_phone/decode_test/{hyp_lm.txt,hyp_lm.ctm,wer.txt}
#
# Attention models (only with --attention yes, or when --stage starts at 9 or later):
#   9  train transformer  joint CTC/attention on chars     -> exp/transformer
#  10  decode transformer greedy, and beam 10 + CTC prefix score + the 3-gram (weights tuned on
#                         dev); WER and CER               -> exp/transformer/decode_test/{hyp_*.txt,wer_*.txt}
#  11  train las          Listen, Attend and Spell on chars -> exp/las
#  12  decode las         greedy and beam 10; WER and CER, the attention map of a test utterance
#                                                          -> exp/las/decode_test/{hyp_*.txt,wer_*.txt,attention.png}
#
# Every stage is resumable: finished outputs are kept, training continues from
# its last checkpoint. Logs: exp/log/NN_<stage>.log.
#
#   recipes/tiny/run.sh                          # everything, into recipes/tiny/{data,feats,exp}
#   recipes/tiny/run.sh --stage 3 --stop-stage 4 # only decode and score
#   recipes/tiny/run.sh --dir /tmp/tiny --nj 4 --device cuda
#   recipes/tiny/run.sh --dir /tmp/tiny_native --impl native   # torch's layers instead of asrkit's (scratch)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

stage=0
stop_stage=100
nj=2
device=auto
dir=$here
ctc_conf=$here/conf/ctc_phone.yaml
frame_conf=$here/conf/frame_mlp.yaml
transformer_conf=$here/conf/transformer.yaml
las_conf=$here/conf/las.yaml
attention=no
tune_lm_weights=0.5,1.0
tune_ctc_weights=0.3,0.5
tune_length_bonuses=0,1,2
max_len_ratio=
impl=
warps=0.9,0.95,1,1.05,1.1

usage() {
  cat <<USAGE
usage: $0 [--stage N] [--stop-stage N] [--nj N] [--device auto|cpu|cuda] [--dir DIR]
          [--ctc-conf FILE] [--frame-conf FILE] [--impl scratch|native]
          [--attention yes|no] [--transformer-conf FILE] [--las-conf FILE] [--max-len-ratio R]
          [--tune-lm-weights L] [--tune-ctc-weights C] [--tune-length-bonuses B] [--warps A,B,...]
  stages: 0 corpus, 1 features, 2 train ctc, 3 decode, 4 score, 5 train frame, 6 predict frame,
          7 lm, 8 decode with the lm (tune on dev, WER on test);
          with --attention yes (or --stage 9 and up): 9 train transformer, 10 decode transformer,
          11 train las, 12 decode las
  --max-len-ratio  the attention decodes' maximum output length per encoder frame (default: decode's)
  --tune-*         the transformer's tuning grid on dev (comma lists; defaults $tune_lm_weights,
                   $tune_ctc_weights, $tune_length_bonuses)
  --dir   where data/, feats/ and exp/ go (default: $here)
  --impl  layer implementation of both models (default: the configs', scratch)
  --warps the CTC decodes' test-time VTLP factors, as the demo's (default $warps; 1: one plain pass)
USAGE
}

. "$here/../lib/common.sh"
parse_options "$@"
dir=$(realpath -m "$dir")  # a relative --dir stays right after the cd below
check_numbers stage stop_stage nj
impl_overrides
ctc_conf=$(realpath -m "$ctc_conf")
frame_conf=$(realpath -m "$frame_conf")
transformer_conf=$(realpath -m "$transformer_conf")
las_conf=$(realpath -m "$las_conf")
case "$attention" in
  yes|no) ;;
  *) echo "$0: --attention takes yes or no (got '$attention')" >&2; exit 2 ;;
esac
att_opts=()
[ -z "$max_len_ratio" ] || att_opts=(--max-len-ratio "$max_len_ratio")
# the attention stages are opt-in: they run with --attention yes or when asked for by number
[ "$attention" = yes ] || [ "$stage" -ge 9 ] || { [ "$stop_stage" -le 8 ] || stop_stage=8; }
find_asrkit

mkdir -p "$dir"
cd "$dir"
logdir=exp/log
mkdir -p "$logdir"
ctc=exp/ctc_phone
frame=exp/frame_mlp

if run_stage 0 corpus; then
  if [ -f data/lm_text.txt ]; then echo "data/ is there"
  else $ASRKIT corpus tiny data 2>&1 | tee "$log"
  fi
fi

if run_stage 1 features; then
  {
    for s in train dev test; do
      if [ -f "feats/$s/index.tsv" ]; then echo "feats/$s is there"
      else $ASRKIT featurize "data/$s" "feats/$s" --jobs "$nj"
      fi
    done
  } 2>&1 | tee "$log"
fi

if run_stage 2 train_ctc; then
  $ASRKIT train ctc --train feats/train --dev feats/dev --out $ctc --conf "$ctc_conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if run_stage 3 decode; then
  mkdir -p $ctc/decode_test
  if newer $ctc/decode_test/hyp.txt $ctc/checkpoints/best.pt && [ "$(cat $ctc/decode_test/warps 2>/dev/null)" = "$warps" ]; then
    echo "$ctc/decode_test/hyp.txt is up to date"
  else
    $ASRKIT decode $ctc feats/test --device "$device" --warps "$warps" > $ctc/decode_test/hyp.txt.tmp 2> "$log"
    mv $ctc/decode_test/hyp.txt.tmp $ctc/decode_test/hyp.txt
    $ASRKIT decode $ctc feats/test --device "$device" --warps "$warps" --format jsonl > $ctc/decode_test/hyp.jsonl 2>> "$log"
    echo "$warps" > $ctc/decode_test/warps
  fi
fi

if run_stage 4 score; then
  # the references: test phones without sil (the CTC units have no sil)
  awk '{ printf "%s", $1; for (i = 2; i <= NF; i++) if ($i != "sil") printf " %s", $i; print "" }' \
    data/test/text.phones > $ctc/decode_test/ref.txt
  # (asrkit score counts tokens as "words": here they are phones, so %WER is the PER)
  $ASRKIT score $ctc/decode_test/ref.txt $ctc/decode_test/hyp.txt --per-spk --utt2spk data/test/utt2spk \
    --per-utt $ctc/decode_test/per_utt.txt 2> "$log" | sed 's/%WER/%PER/; s/#WRD/#PHN/' | tee $ctc/decode_test/per.txt
  cat $ctc/decode_test/per.txt >> "$log"
fi

if run_stage 5 train_frame; then
  $ASRKIT train frame --train feats/train --dev feats/dev --out $frame --conf "$frame_conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if run_stage 6 predict_frame; then
  out=$frame/predict_test
  mkdir -p $out
  $ASRKIT predict frame $frame feats/test --device "$device" > $out/ali.tmp 2> "$log"
  mv $out/ali.tmp $out/ali
  $ASRKIT predict frame $frame feats/test --device "$device" --csv > $out/submission.csv.tmp 2>> "$log"
  mv $out/submission.csv.tmp $out/submission.csv
  # frame accuracy against the exact alignments
  awk 'NR == FNR { ref[$1] = $0; next }
       { n = split(ref[$1], r, " ");
         if (n != NF) { printf "%s: %d reference labels, %d predicted\n", $1, n - 1, NF - 1 > "/dev/stderr"; bad = 1 }
         for (i = 2; i <= NF; i++) { total++; if ($i == r[i]) correct++ } }
       END { if (bad) exit 1; printf "frame accuracy %.2f%% [ %d / %d frames ]\n", 100 * correct / total, correct, total }' \
    data/test/ali $out/ali | tee $out/accuracy.txt | tee -a "$log"
  echo "predictions: $dir/$out/ali, Kaggle csv: $dir/$out/submission.csv"
fi

if run_stage 7 lm; then
  if [ -f exp/lm3.arpa ]; then echo "exp/lm3.arpa is there"
  else $ASRKIT lm build data/lm_text.txt --order 3 -o exp/lm3.arpa 2>&1 | tee "$log"
  fi
fi

if run_stage 8 decode_lm; then
  out=$ctc/decode_test
  mkdir -p $out
  # the LM weight and word bonus with the lowest dev WER -> $ctc/lm_tuning.yaml (decode's defaults),
  # tuned on the dev log-probabilities of the same test-time VTLP as the test decode
  $ASRKIT decode $ctc feats/dev --device "$device" --warps "$warps" --save-emissions $ctc/emissions_dev \
    > /dev/null 2> "$log"
  $ASRKIT tune $ctc $ctc/emissions_dev data/dev/text --lm exp/lm3.arpa > $ctc/tune_dev.txt 2>> "$log"
  tail -1 $ctc/tune_dev.txt
  $ASRKIT decode $ctc feats/test --beam 20 --lm exp/lm3.arpa --device "$device" --warps "$warps" \
    > $out/hyp_lm.txt.tmp 2>> "$log"
  mv $out/hyp_lm.txt.tmp $out/hyp_lm.txt
  $ASRKIT decode $ctc feats/test --beam 20 --lm exp/lm3.arpa --device "$device" --warps "$warps" --format ctm \
    > $out/hyp_lm.ctm.tmp 2>> "$log"
  mv $out/hyp_lm.ctm.tmp $out/hyp_lm.ctm
  $ASRKIT score data/test/text $out/hyp_lm.txt --per-spk --utt2spk data/test/utt2spk 2>> "$log" | tee $out/wer.txt
  cat $out/wer.txt >> "$log"
fi

transformer=exp/transformer
las=exp/las

if run_stage 9 train_transformer; then
  $ASRKIT train transformer --train feats/train --dev feats/dev --out $transformer --conf "$transformer_conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

# decode_attention EXP SEARCH_NAME [decode options]: hypotheses on test, WER and CER against the words
decode_attention() {
  local exp=$1 name=$2 out=$1/decode_test
  shift 2
  mkdir -p $out
  $ASRKIT decode $exp feats/test --device "$device" ${att_opts[@]+"${att_opts[@]}"} "$@" \
    > $out/hyp_$name.txt.tmp 2>> "$log"
  mv $out/hyp_$name.txt.tmp $out/hyp_$name.txt
  $ASRKIT score data/test/text $out/hyp_$name.txt --cer 2>> "$log" | tee $out/wer_$name.txt
  cat $out/wer_$name.txt >> "$log"
}

if run_stage 10 decode_transformer; then
  : > "$log"
  decode_attention $transformer greedy
  # LM weight x CTC weight x length bonus with the lowest dev WER -> $transformer/lm_tuning.yaml
  $ASRKIT tune $transformer feats/dev data/dev/text --lm exp/lm3.arpa --beam 10 --device "$device" \
    --lm-weights "$tune_lm_weights" --ctc-weights "$tune_ctc_weights" --length-bonuses "$tune_length_bonuses" \
    ${att_opts[@]+"${att_opts[@]}"} > $transformer/tune_dev.txt 2>> "$log"
  tail -1 $transformer/tune_dev.txt
  decode_attention $transformer beam10_lm --beam 10 --lm exp/lm3.arpa
fi

if run_stage 11 train_las; then
  $ASRKIT train las --train feats/train --dev feats/dev --out $las --conf "$las_conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if run_stage 12 decode_las; then
  : > "$log"
  decode_attention $las greedy
  decode_attention $las beam10 --beam 10
  utt=$(head -1 data/test/text | cut -d' ' -f1)
  $ASRKIT plot attention $las feats/test --utt "$utt" --out $las/decode_test/attention.png --device "$device" \
    2>> "$log" | tee $las/decode_test/attention.txt
fi
