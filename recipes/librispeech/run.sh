#!/usr/bin/env bash
# LibriSpeech (openslr.org/12, which you download yourself) end to end on the 100-hour training
# set, as numbered stages (ESPnet egs2/librispeech_100/asr1): train on train-clean-100, tune on
# dev-clean, test on test-clean and test-other, sentencepiece units, a word n-gram LM.
#
#   0  data         asrkit data import librispeech, one split folder at a time
#                                                   -> data/{train_clean_100,dev_clean,test_clean,test_other}
#   1  units        sentencepiece (--bpe-type, --nbpe units with the blank) on the training transcripts
#                                                   -> data/local/bpe<nbpe>/
#   2  features     asrkit featurize (80 fbank)     -> feats/*
#   3  lm           word n-gram (--lm-order, pruned with --lm-prune) on the LibriSpeech LM text
#                   (--lm-text: librispeech-lm-norm.txt or .txt.gz, or a folder holding it), else on
#                   the training transcripts; perplexities    -> exp/lm/{lm_text.txt,lmN.arpa,ppl_*.txt}
#   4  train ctc    CTC on the units (--ctc-conf)   -> exp/ctc_bpe
#   5  decode ctc   LM weight / word bonus tuned on dev-clean, beam --beam + LM, WER of every
#                   test set                        -> exp/ctc_bpe/decode_<set>/
#   6  train transformer joint CTC/attention on the units (--tf-conf) -> exp/transformer
#   7  decode transformer LM weight x CTC weight x length bonus tuned on dev-clean, beam --att-beam
#                   + CTC + LM                      -> exp/transformer/decode_<set>/
#   8  results      %WER of every model on every test set -> exp/results.md
#
# Every stage is resumable: finished outputs are kept, training continues from its last
# checkpoint. Logs: exp/log/NN_<stage>.log.
#
#   recipes/librispeech/run.sh --corpus /corpora/LibriSpeech --lm-text /corpora/librispeech-lm-norm.txt.gz \
#     --dir /work/libri --nj 8 --device cuda
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

corpus=
lm_text=
stage=0
stop_stage=100
nj=2
device=auto
dir=$here
train_set=train-clean-100
dev_set=dev-clean
test_sets="test-clean test-other"
nbpe=5000
bpe_type=unigram
ctc_conf=$here/conf/ctc.yaml
tf_conf=$here/conf/transformer.yaml
epochs=
impl=
beam=20
att_beam=10
lm_order=4
lm_prune=0,0,1
lm_arpa=
tune_lm_weights=
tune_word_bonuses=
tune_att_lm_weights=0.3,0.5,0.7
tune_ctc_weights=0.3,0.5
tune_length_bonuses=0,1
max_len_ratio=

usage() {
  cat <<USAGE
usage: $0 --corpus DIR [--lm-text FILE|DIR] [--stage N] [--stop-stage N] [--dir DIR] [--nj N]
          [--device auto|cpu|cuda] [--train-set S] [--dev-set S] [--test-sets "S S"] [--nbpe N]
          [--bpe-type unigram|bpe] [--ctc-conf FILE] [--tf-conf FILE] [--epochs N] [--impl scratch|native]
          [--beam N] [--att-beam N] [--lm-order N] [--lm-prune T1,T2,...] [--lm-arpa FILE]
          [--tune-lm-weights L] [--tune-word-bonuses B]
          [--tune-att-lm-weights L] [--tune-ctc-weights C] [--tune-length-bonuses B] [--max-len-ratio R]
  stages: 0 data, 1 units, 2 features, 3 lm, 4 train ctc, 5 decode ctc, 6 train transformer,
          7 decode transformer, 8 results
  --corpus    the LibriSpeech folder: SPLIT/READER/CHAPTER/*.flac + *.trans.txt for the sets below
  --lm-text   librispeech-lm-norm.txt(.gz), or a folder holding it (default: the training transcripts)
  --train-set, --dev-set, --test-sets   split folder names (default: $train_set, $dev_set, "$test_sets")
  --nbpe      sentencepiece units, the blank included (default $nbpe); --bpe-type: unigram (default) or bpe
  --dir       where data/, feats/ and exp/ go (default: $here)
  --ctc-conf, --tf-conf   the models' configs; --epochs: training epochs of both (default: the configs')
  --impl      layer implementation of both models (default: the configs', scratch)
  --beam      CTC beam (default $beam); --att-beam: the transformer's (default $att_beam)
  --lm-order  n-gram order (default $lm_order); --lm-prune: lm build --prune thresholds ('' none; default $lm_prune)
  --lm-arpa   a ready word LM (ARPA, or a kenlm binary) to decode with instead of building one in stage 3
  --tune-*    tuning grids on the dev set (comma lists or START:STOP:STEP; empty: asrkit tune's defaults)
USAGE
}

. "$here/../lib/common.sh"
parse_options "$@"
check_numbers stage stop_stage nj beam att_beam lm_order nbpe
[ -z "$epochs" ] || check_numbers epochs
impl_overrides
[ -z "$epochs" ] || train_overrides+=("train.epochs=$epochs")
case "$bpe_type" in
  unigram|bpe) ;;
  *) echo "$0: --bpe-type takes unigram or bpe (got '$bpe_type')" >&2; exit 2 ;;
esac
dir=$(realpath -m "$dir")
ctc_conf=$(realpath -m "$ctc_conf")
tf_conf=$(realpath -m "$tf_conf")
for f in "$ctc_conf" "$tf_conf"; do
  [ -f "$f" ] || { echo "$0: no such config file: $f" >&2; exit 2; }
done
read -r -a tests <<< "$test_sets"
[ ${#tests[@]} -gt 0 ] || { echo "$0: --test-sets names no set" >&2; exit 2; }
if [ -n "$lm_arpa" ]; then
  [ -f "$lm_arpa" ] || { echo "$0: --lm-arpa $lm_arpa: no such file" >&2; exit 1; }
  lm_arpa=$(realpath "$lm_arpa")
fi
att_opts=()
[ -z "$max_len_ratio" ] || att_opts=(--max-len-ratio "$max_len_ratio")
# the corpus is needed by stage 0; the LM text (when given) by stage 3
if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  parts=()
  for s in "$train_set" "$dev_set" "${tests[@]}"; do parts+=("$s/*/*/*.trans.txt"); done
  require_corpus corpus "$corpus" "${parts[@]}"
  corpus=$(realpath "$corpus")
fi
if [ -n "$lm_text" ]; then
  if [ -d "$lm_text" ]; then
    found=$(compgen -G "$lm_text/librispeech-lm-norm.txt*" | head -1 || true)
    [ -n "$found" ] || { echo "$0: --lm-text $lm_text: no librispeech-lm-norm.txt(.gz) in that folder" >&2; exit 1; }
    lm_text=$found
  fi
  [ -f "$lm_text" ] || { echo "$0: --lm-text $lm_text: no such file" >&2; exit 1; }
  lm_text=$(realpath "$lm_text")
fi
find_asrkit

mkdir -p "$dir"
cd "$dir"
logdir=exp/log
mkdir -p "$logdir"
# data dir names: dev-clean -> dev_clean
train=${train_set//-/_}
dev=${dev_set//-/_}
sets=()
for s in "${tests[@]}"; do sets+=("${s//-/_}"); done
units=data/local/bpe$nbpe
lm=${lm_arpa:-exp/lm/lm$lm_order.arpa}

if run_stage 0 data; then
  {
    for s in "$train_set" "$dev_set" "${tests[@]}"; do
      d=data/${s//-/_}
      if [ -f $d/text ]; then echo "$d is there"
      else $ASRKIT data import librispeech "$corpus/$s" $d
      fi
      echo "$d: $(awk 'END { print NR }' $d/text) utterances"
    done
  } 2>&1 | tee "$log"
fi

if run_stage 1 units; then
  {
    if [ -f $units/units.txt ]; then echo "$units is there"
    else $ASRKIT tokenizer train data/$train/text $units --kind bpe --vocab-size "$nbpe" --bpe-type "$bpe_type"
    fi
  } 2>&1 | tee "$log"
fi

if run_stage 2 features; then
  {
    for s in $train $dev "${sets[@]}"; do
      if [ -f "feats/$s/index.tsv" ]; then echo "feats/$s is there"
      else $ASRKIT featurize "data/$s" "feats/$s" --jobs "$nj"
      fi
    done
  } 2>&1 | tee "$log"
fi

if run_stage 3 lm; then
  {
    mkdir -p exp/lm
    # the LM text, remade when its source changed
    src=${lm_text:-$dir/data/$train/text}
    if [ -n "$lm_arpa" ]; then echo "the LM: $lm (--lm-arpa; none is built)"
    elif newer exp/lm/lm_text.txt "$src" && [ "$(cat exp/lm/lm_text.source 2>/dev/null)" = "$src" ]; then
      echo "exp/lm/lm_text.txt is there"
    else
      case "$src" in
        *.gz) gunzip -c "$src" ;;
        */text) cut -d' ' -f2- "$src" ;;
        *) cat "$src" ;;
      esac > exp/lm/lm_text.txt.tmp
      mv exp/lm/lm_text.txt.tmp exp/lm/lm_text.txt
      echo "$src" > exp/lm/lm_text.source
    fi
    if [ -z "$lm_arpa" ]; then
      echo "exp/lm/lm_text.txt: $(awk 'END { print NR }' exp/lm/lm_text.txt) sentences from $src"
      if newer $lm exp/lm/lm_text.txt; then echo "$lm is up to date"
      else $ASRKIT lm build exp/lm/lm_text.txt --order "$lm_order" ${lm_prune:+--prune "$lm_prune"} -o $lm
      fi
    fi
    for s in $dev "${sets[@]}"; do
      echo "-- $s"
      cut -d' ' -f2- data/$s/text | $ASRKIT lm ppl $lm - | tee exp/lm/ppl_$s.txt
    done
  } 2>&1 | tee "$log"
fi

# decode EXP KIND: the weights tuned on the dev set (KIND ctc: LM weight, word bonus; att: LM weight,
# CTC weight, length bonus), then beam + LM on every test set, WER (and CER)
decode() {
  local exp=$1 kind=$2 s out
  local opts=(--lm $lm --device "$device")
  if [ $kind = ctc ]; then
    opts+=(--beam "$beam" --jobs "$nj")
  else
    opts+=(--beam "$att_beam" ${att_opts[@]+"${att_opts[@]}"})
  fi
  if newer $exp/lm_tuning.yaml $exp/checkpoints/best.pt && newer $exp/lm_tuning.yaml $lm; then
    echo "$exp/lm_tuning.yaml is up to date"
  elif [ $kind = ctc ]; then
    $ASRKIT tune $exp feats/$dev data/$dev/text "${opts[@]}" \
      ${tune_lm_weights:+--lm-weights "$tune_lm_weights"} ${tune_word_bonuses:+--word-bonuses "$tune_word_bonuses"} \
      > $exp/tune_$dev.txt 2>> "$log"
  else
    $ASRKIT tune $exp feats/$dev data/$dev/text "${opts[@]}" --lm-weights "$tune_att_lm_weights" \
      --ctc-weights "$tune_ctc_weights" --length-bonuses "$tune_length_bonuses" > $exp/tune_$dev.txt 2>> "$log"
  fi
  grep -E '^(lm_weight|word_bonus|ctc_weight|length_bonus|wer):' $exp/lm_tuning.yaml | sed "s/^/tuned on $dev: /"
  for s in "${sets[@]}"; do
    out=$exp/decode_$s
    mkdir -p $out
    if newer $out/hyp.txt $exp/lm_tuning.yaml; then echo "$out/hyp.txt is up to date"
    else
      $ASRKIT decode $exp feats/$s "${opts[@]}" > $out/hyp.txt.tmp 2>> "$log"
      mv $out/hyp.txt.tmp $out/hyp.txt
    fi
    echo "-- $s: $out/hyp.txt"
    $ASRKIT score data/$s/text $out/hyp.txt --cer --per-utt $out/per_utt.txt 2>> "$log" | tee $out/wer.txt
  done
}

if run_stage 4 train_ctc; then
  $ASRKIT train ctc --train feats/$train --dev feats/$dev --out exp/ctc_bpe --conf "$ctc_conf" --device "$device" \
    --resume units.kind=bpe units.dir="$dir/$units" ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if run_stage 5 decode_ctc; then
  : > "$log"
  decode exp/ctc_bpe ctc 2>&1 | tee -a "$log"
fi

if run_stage 6 train_transformer; then
  $ASRKIT train transformer --train feats/$train --dev feats/$dev --out exp/transformer --conf "$tf_conf" \
    --device "$device" --resume units.kind=bpe units.dir="$dir/$units" ${train_overrides[@]+"${train_overrides[@]}"} \
    2>&1 | tee "$log"
fi

if run_stage 7 decode_transformer; then
  : > "$log"
  decode exp/transformer att 2>&1 | tee -a "$log"
fi

if run_stage 8 results; then
  results_table "${sets[@]}" > exp/results.md
  { echo "%WER (beam search + the ${lm_order}-gram; tuned on $dev):"; cat exp/results.md; } | tee "$log"
fi
