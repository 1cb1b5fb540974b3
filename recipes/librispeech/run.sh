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
. "$here/../lib/common.sh"

corpus=
lm_text=
train_set=train-clean-100
dev_set=dev-clean
test_sets="test-clean test-other"
nbpe=5000
bpe_type=unigram
lm_recipe_defaults   # stage, stop_stage, nj, device, dir, ctc_conf, tf_conf, epochs, impl, beam, lm_*, tune_*, ...

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
              (needed by stage 0)
  --lm-text   librispeech-lm-norm.txt(.gz), or a folder holding it (default: the training transcripts)
  --train-set, --dev-set, --test-sets   split folder names (default: $train_set, $dev_set, "$test_sets")
  --nbpe      sentencepiece units, the blank included (default $nbpe); --bpe-type: unigram (default) or bpe
USAGE
  lm_recipe_usage "the dev set"
}

parse_options "$@"
lm_recipe_checks nbpe
case "$bpe_type" in
  unigram|bpe) ;;
  *) echo "$0: --bpe-type takes unigram or bpe (got '$bpe_type')" >&2; exit 2 ;;
esac
read -r -a tests <<< "$test_sets"
[ ${#tests[@]} -gt 0 ] || { echo "$0: --test-sets names no set" >&2; exit 2; }
# the corpus is needed by stage 0; the LM text (when given) by stage 3
if stage_selected 0; then
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
  optional_file lm_text
fi
find_asrkit
enter_dir
ctc_cer=yes   # the CTC model's reports add %CER too (lm_decode)

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
  featurize_sets $train $dev "${sets[@]}" 2>&1 | tee "$log"
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
    [ -n "$lm_arpa" ] || echo "exp/lm/lm_text.txt: $(awk 'END { print NR }' exp/lm/lm_text.txt) sentences from $src"
    build_lm_and_ppl $dev "${sets[@]}"
  } 2>&1 | tee "$log"
fi

if run_stage 4 train_ctc; then
  train_model ctc feats/$train feats/$dev exp/ctc_bpe "$ctc_conf" units.kind=bpe units.dir="$dir/$units"
fi

# stages 5 and 7: the weights tuned on the dev set, beam + LM on every test set, WER and CER
if run_stage 5 decode_ctc; then
  : > "$log"
  lm_decode exp/ctc_bpe ctc $dev $dev "${sets[@]}" 2>&1 | tee -a "$log"
fi

if run_stage 6 train_transformer; then
  train_model transformer feats/$train feats/$dev exp/transformer "$tf_conf" units.kind=bpe units.dir="$dir/$units"
fi

if run_stage 7 decode_transformer; then
  : > "$log"
  lm_decode exp/transformer att $dev $dev "${sets[@]}" 2>&1 | tee -a "$log"
fi

if run_stage 8 results; then
  results_table "${sets[@]}" > exp/results.md
  { echo "%WER (beam search + the ${lm_order}-gram; tuned on $dev):"; cat exp/results.md; } | tee "$log"
fi
