#!/usr/bin/env bash
# Wall Street Journal (LDC93S6B WSJ0 + LDC94S13B WSJ1, which you license from the LDC) end to end,
# as numbered stages (Kaldi egs/wsj/s5, ESPnet egs2/wsj/asr1): train on si284, tune on dev93,
# test on dev93 and eval92 (Kaldi's test_dev93, test_eval92: 20k open vocabulary, no verbalized
# punctuation), with a word n-gram LM from the WSJ LM training text on the discs.
#
#   0  data         asrkit data import wsj --drop-noise; si284 = WSJ0 + WSJ1 si_tr_s without
#                   speaker 401, dev93 = WSJ1 si_dt_20, eval92 = WSJ0 si_et_20, each only what the
#                   discs' index files (*.ndx) list where they are there
#                                                   -> data/{train_si284,test_dev93,test_eval92}
#   1  dict         phone spellings (CMU dict + local/lexicon_vp.txt for the verbalized punctuation);
#                   utterances with a word neither spells are left out of the phone model's data
#                                                   -> data/local/dict/, data/{train_si284,test_dev93}_phone
#   2  features     asrkit featurize (80 fbank)     -> feats/*
#   3  lm           word n-gram (--lm-order, pruned with --lm-prune) on the si284 transcripts + the
#                   1987-89 WSJ text of 13-32.1/wsj1/doc/lng_modl/lm_train/np_data; perplexities
#                                                   -> exp/lm/{lm_text.txt,lmN.arpa,ppl_*.txt}
#   4  train ctc_phone   CTC on phones (--ctc-conf, units.kind=phone)   -> exp/ctc_phone
#   5  decode ctc_phone  LM weight / word bonus tuned on dev93, beam --beam + LM through the lexicon,
#                        WER on dev93 and eval92    -> exp/ctc_phone/decode_{test_dev93,test_eval92}/
#   6  train ctc_char    CTC on characters (--ctc-conf, units.kind=char) -> exp/ctc_char
#   7  decode ctc_char   as stage 5                 -> exp/ctc_char/decode_*/
#   8  train transformer joint CTC/attention on characters (--tf-conf) -> exp/transformer
#   9  decode transformer LM weight x CTC weight x length bonus tuned on dev93, beam --att-beam + LM
#                                                   -> exp/transformer/decode_*/
#  10  results      %WER of every model on dev93 and eval92 -> exp/results.md
#
# Every stage is resumable: finished outputs are kept, training continues from its last
# checkpoint. Logs: exp/log/NN_<stage>.log.
#
#   recipes/wsj/run.sh --corpus /corpora/wsj --dir /work/wsj --nj 8 --device cuda
#   recipes/wsj/run.sh --corpus /corpora/wsj --dir /work/wsj --stage 5 --stop-stage 5   # decode again
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib/common.sh"

corpus=
lm_recipe_defaults   # stage, stop_stage, nj, device, dir, ctc_conf, tf_conf, epochs, impl, beam, lm_*, tune_*, ...

usage() {
  cat <<USAGE
usage: $0 --corpus DIR [--stage N] [--stop-stage N] [--dir DIR] [--nj N] [--device auto|cpu|cuda]
          [--ctc-conf FILE] [--tf-conf FILE] [--epochs N] [--impl scratch|native]
          [--beam N] [--att-beam N] [--lm-order N] [--lm-prune T1,T2,...] [--lm-arpa FILE]
          [--tune-lm-weights L] [--tune-word-bonuses B]
          [--tune-att-lm-weights L] [--tune-ctc-weights C] [--tune-length-bonuses B] [--max-len-ratio R]
  stages: 0 data, 1 dict, 2 features, 3 lm, 4 train ctc_phone, 5 decode ctc_phone,
          6 train ctc_char, 7 decode ctc_char, 8 train transformer, 9 decode transformer, 10 results
  --corpus    the LDC WSJ tree: a folder holding the discs (11-1.1 ... 11-14.1 of WSJ0,
              13-1.1 ... 13-34.1 of WSJ1) as they come off the LDC release; needed by stage 0,
              and by stage 3 unless --lm-arpa is given
USAGE
  lm_recipe_usage dev93
  echo "  (--ctc-conf is both CTC models' config: the recipe sets units.kind)"
}

parse_options "$@"
lm_recipe_checks
np_data=13-32.1/wsj1/doc/lng_modl/lm_train/np_data
# the corpus is needed by stage 0 (audio, transcripts) and, without --lm-arpa, stage 3 (LM text)
parts=()
if stage_selected 0; then
  parts+=("*/wsj0/si_tr_s" "*/wsj1/si_tr_s" "*/wsj1/si_dt_20" "*/wsj0/si_et_20")
fi
if stage_selected 3 && [ -z "$lm_arpa" ]; then
  parts+=("$np_data/87/*.z" "$np_data/88/*.z" "$np_data/89/*.z")
fi
if [ ${#parts[@]} -gt 0 ]; then
  require_corpus corpus "$corpus" "${parts[@]}"
  corpus=$(realpath "$corpus")
fi
find_asrkit
enter_dir

vp_lex=$here/local/lexicon_vp.txt
lm=${lm_arpa:-exp/lm/lm$lm_order.arpa}
test_sets="test_dev93 test_eval92"

# phone_set NAME: the phone model's version of data set NAME (NAME_phone when stage 1 had to leave
# utterances out)
phone_set() { if [ -d "data/${1}_phone" ]; then echo "${1}_phone"; else echo "$1"; fi; }

# index_filter LIST NDX...: keep the utterances of LIST that the disc index files NDX (relative to the
# corpus; lines 'disc_id:path/to/UTT[.wv1]', ';' comments) list; LIST unchanged when one is missing
index_filter() {
  local list=$1 f
  shift
  for f in "$@"; do
    [ -f "$corpus/$f" ] || { echo "$list: no $f: the whole folder is taken"; return 0; }
  done
  (cd "$corpus" && cat "$@") |
    awk '{ sub(/\r$/, "") } !/^;/ && /:/ { n = split($1, p, "/"); u = tolower(p[n]); sub(/\.wv1$/, "", u); print u }' \
    > $list.ndx
  awk 'NR == FNR { listed[$1] = 1; next } $1 in listed' $list.ndx $list > $list.tmp
  mv $list.tmp $list
  echo "$list: $(awk 'END { print NR }' $list) utterances listed by $*"
}

if run_stage 0 data; then
  {
    if [ -f data/test_eval92/text ]; then echo "data/ is there"
    else
      $ASRKIT data import wsj "$corpus" data/wsj --drop-noise
      # the lists as Kaldi's local/wsj_data_prep.sh makes them: si284 without WSJ0's speaker 401,
      # dev93 from WSJ1 only (WSJ0 has a si_dt_20 too), eval92 from WSJ0
      awk '$1 !~ /^401/ { print $1 }' data/wsj/si_tr_s/wav.scp > data/wsj/train_si284.list
      grep -i '/wsj1/si_dt_20/' data/wsj/si_dt_20/wav.scp | cut -d' ' -f1 > data/wsj/test_dev93.list
      grep -i '/wsj0/si_et_20/' data/wsj/si_et_20/wav.scp | cut -d' ' -f1 > data/wsj/test_eval92.list
      # ... and, where the discs have them, only the utterances their index files list (Kaldi's sets exactly:
      # 503 dev93 utterances from the Hub 1 index h1_p0, 333 eval92 from the non-verbalized one)
      index_filter data/wsj/train_si284.list 13-34.1/wsj1/doc/indices/si_tr_s.ndx \
        11-13.1/wsj0/doc/indices/train/tr_s_wv1.ndx
      index_filter data/wsj/test_dev93.list 13-34.1/wsj1/doc/indices/h1_p0.ndx
      index_filter data/wsj/test_eval92.list 11-13.1/wsj0/doc/indices/test/nvp/si_et_20.ndx
      $ASRKIT data subset data/wsj/si_tr_s data/train_si284 --utt-list data/wsj/train_si284.list
      $ASRKIT data subset data/wsj/si_dt_20 data/test_dev93 --utt-list data/wsj/test_dev93.list
      $ASRKIT data subset data/wsj/si_et_20 data/test_eval92 --utt-list data/wsj/test_eval92.list
    fi
    for s in train_si284 $test_sets; do echo "data/$s: $(awk 'END { print NR }' data/$s/text) utterances"; done
  } 2>&1 | tee "$log"
fi

if run_stage 1 dict; then
  {
    mkdir -p data/local/dict
    for s in train_si284 test_dev93; do
      d=data/local/dict/$s
      if [ -f $d/text.phones ]; then echo "$d is there"
      else $ASRKIT tokenizer train data/$s/text $d --kind phone --oov skip --lexicon "$vp_lex"
      fi
      n_all=$(awk 'END { print NR }' data/$s/text)
      n=$(awk 'END { print NR }' $d/text.phones)
      if [ "$n" -lt "$n_all" ] && [ ! -f data/${s}_phone/text ]; then
        cut -d' ' -f1 $d/text.phones > $d/utts
        $ASRKIT data subset data/$s data/${s}_phone --utt-list $d/utts
      fi
      echo "$s: $n of $n_all utterances spelled with phones (the phone model's data/$(phone_set $s))"
    done
  } 2>&1 | tee "$log"
fi

if run_stage 2 features; then
  featurize_sets train_si284 $test_sets $(phone_set train_si284) $(phone_set test_dev93) 2>&1 | tee "$log"
fi

if run_stage 3 lm; then
  {
    mkdir -p exp/lm
    if [ -n "$lm_arpa" ]; then echo "the LM: $lm (--lm-arpa; none is built)"
    elif [ -s exp/lm/lm_text.txt ]; then echo "exp/lm/lm_text.txt is there"
    else
      # the training transcripts, then the newswire text as ESPnet's WSJ recipe reads it: markup lines
      # (<art ...>, <p>, <s>) dropped, upper case
      { cut -d' ' -f2- data/train_si284/text
        find "$corpus/$np_data" -name '*.z' | LC_ALL=C sort | while read -r f; do gunzip -c "$f"; done |
          awk '/^</ { next } NF { print toupper($0) }'
      } > exp/lm/lm_text.txt.tmp
      mv exp/lm/lm_text.txt.tmp exp/lm/lm_text.txt
    fi
    [ -n "$lm_arpa" ] || echo "exp/lm/lm_text.txt: $(awk 'END { print NR }' exp/lm/lm_text.txt) sentences"
    build_lm_and_ppl $test_sets
  } 2>&1 | tee "$log"
fi

if run_stage 4 train_ctc_phone; then
  train_model ctc feats/$(phone_set train_si284) feats/$(phone_set test_dev93) exp/ctc_phone "$ctc_conf" \
    units.kind=phone units.lexicon="$vp_lex"
fi

# stages 5, 7, 9: the weights tuned on dev93, beam + LM on dev93 and eval92, WER (the transformer's: and CER)
if run_stage 5 decode_ctc_phone; then
  : > "$log"
  lm_decode exp/ctc_phone ctc test_dev93 dev93 $test_sets 2>&1 | tee -a "$log"
fi

if run_stage 6 train_ctc_char; then
  train_model ctc feats/train_si284 feats/test_dev93 exp/ctc_char "$ctc_conf" units.kind=char
fi

if run_stage 7 decode_ctc_char; then
  : > "$log"
  lm_decode exp/ctc_char ctc test_dev93 dev93 $test_sets 2>&1 | tee -a "$log"
fi

if run_stage 8 train_transformer; then
  train_model transformer feats/train_si284 feats/test_dev93 exp/transformer "$tf_conf"
fi

if run_stage 9 decode_transformer; then
  : > "$log"
  lm_decode exp/transformer att test_dev93 dev93 $test_sets 2>&1 | tee -a "$log"
fi

if run_stage 10 results; then
  results_table $test_sets > exp/results.md
  { echo "%WER (beam search + the ${lm_order}-gram; tuned on test_dev93):"; cat exp/results.md; } | tee "$log"
fi
