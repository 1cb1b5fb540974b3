#!/usr/bin/env bash
# The Asterisk prompts (real speech: one speaker, 8 kHz, ~24 min) end to end, as
# numbered stages (Kaldi / ESPnet style): a CTC phone model, decoded greedily to
# phones (PER) and with a beam search + word 3-gram LM to words (WER).
#
#   0  corpus      asrkit corpus asterisk (apt-get download), dev = every 11th
#                  train prompt, the tiny corpus's LM text, extra pronunciations
#                                        -> data/{train,train_nodev,dev,test}, data/local
#   1  features    asrkit featurize (fbank 40 at 8 kHz)  -> feats/{train_nodev,dev,test}
#   2  lm          word 3-gram on train_nodev + tiny LM text (never test sentences),
#                  perplexity and OOV rate of dev and test    -> exp/lm/{lm3.arpa,ppl_*.txt}
#   3  train ctc   CTC on phones (CMU dict + data/local/lexicon_extra.txt) -> exp/ctc_phone
#                  (or on the units of --ctc-conf: char and bpe models get no lexicon)
#   4  decode      greedy CTC on test, PER against the phones of the test text
#                                        -> exp/ctc_phone/decode_test/{hyp.txt,per.txt}
#                  (char/bpe: WER and CER of the words -> decode_test/{hyp.txt,wer.txt})
#   5  decode lm   LM weight / word bonus tuned on dev (asrkit tune), beam 20 + 3-gram
#                  on test, and the same search with --lm-weight 0 (lexicon only; phones only)
#                                        -> exp/ctc_phone/decode_test_lm/{hyp.txt,wer.txt},
#                                           exp/ctc_phone/decode_test_lex/{hyp.txt,wer.txt}
#
# Attention model (only with --attention yes, or when --stage starts at 6 or later):
#   6  train transformer  joint CTC/attention on chars (Conformer encoder + CTC head, Transformer
#                         decoder; --transformer-conf)             -> exp/transformer_char
#   7  decode transformer greedy, and beam 10 + CTC prefix score + the 3-gram, weights tuned on dev;
#                         WER and CER   -> exp/transformer_char/decode_test/{hyp_*.txt,wer_*.txt}
#
# Every stage is resumable: finished outputs are kept, training continues from
# its last checkpoint. Logs: exp/log/NN_<stage>.log.
#
#   recipes/asterisk/run.sh                            # everything, into recipes/asterisk/{data,feats,exp}
#   recipes/asterisk/run.sh --stage 4 --stop-stage 5   # only decode and score
#   recipes/asterisk/run.sh --dir /tmp/ast --device cuda
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

stage=0
stop_stage=100
nj=2
device=auto
dir=$here
ctc_conf=$here/conf/ctc_phone.yaml
fbank_conf=$here/conf/fbank40_8k.yaml
beam=20
from=
exp=ctc_phone
impl=
transformer_conf=$here/conf/transformer_char.yaml
attention=no

usage() {
  cat <<USAGE
usage: $0 [--stage N] [--stop-stage N] [--nj N] [--device auto|cpu|cuda] [--dir DIR]
          [--ctc-conf FILE] [--fbank-conf FILE] [--exp NAME] [--beam N] [--from DIR] [--impl scratch|native]
  stages: 0 corpus, 1 features, 2 lm, 3 train ctc, 4 decode (greedy, PER), 5 decode lm (WER);
          with --attention yes (or --stage 6 and up): 6 train transformer, 7 decode transformer
  --attention yes|no, --transformer-conf FILE: the attention stages and their model's config
  --dir   where data/, feats/ and exp/ go (default: $here)
  --exp   the model's exp dir: exp/NAME (default: ctc_phone; one per --ctc-conf tried)
  --from  folder with asterisk-core-sounds-en(-wav) unpacked (default: apt-get download)
  --impl  the model's layer implementation (default: the config's, scratch)
USAGE
}

. "$here/../lib/common.sh"
parse_options "$@"
dir=$(realpath -m "$dir")  # a relative --dir stays right after the cd below
check_numbers stage stop_stage nj beam
impl_overrides
ctc_conf=$(realpath -m "$ctc_conf")
fbank_conf=$(realpath -m "$fbank_conf")
transformer_conf=$(realpath -m "$transformer_conf")
case "$attention" in
  yes|no) ;;
  *) echo "$0: --attention takes yes or no (got '$attention')" >&2; exit 2 ;;
esac
# the attention stages are opt-in: they run with --attention yes or when asked for by number
[ "$attention" = yes ] || [ "$stage" -ge 6 ] || { [ "$stop_stage" -le 5 ] || stop_stage=5; }
[ -z "$from" ] || from=$(realpath -m "$from")
exp_name=$exp
[[ "$exp_name" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "$0: --exp takes a folder name (got '$exp_name')" >&2; exit 2; }
for f in "$ctc_conf" "$fbank_conf" "$transformer_conf"; do
  [ -f "$f" ] || { echo "$0: no such config file: $f" >&2; exit 2; }
done

find_asrkit
find_python
# the model's units (phone: spelled with the CMU dict + the extra lexicon; char, bpe: no lexicon)
units_kind=$(conf_value ctc "$ctc_conf" units.kind) || exit 2

mkdir -p "$dir"
cd "$dir"
logdir=exp/log
mkdir -p "$logdir"
ctc=exp/$exp_name
lm=exp/lm/lm3.arpa
extra_lex=data/local/lexicon_extra.txt

# the model stages' logs of another --exp: NN_<stage>.<exp>.log
sfx=
[ "$exp_name" = ctc_phone ] || sfx=.$exp_name

if run_stage 0 corpus; then
  {
    if [ -f data/test/text ]; then echo "data/ is there"
    else $ASRKIT corpus asterisk data ${from:+--from "$from"}
    fi
    # dev: every 11th training prompt (40 of 440), for training's dev set and LM tuning
    if [ ! -f data/dev/text ]; then
      awk 'NR % 11 == 0 { print $1 }' data/train/text > data/dev.list
      awk 'NR % 11 != 0 { print $1 }' data/train/text > data/train_nodev.list
      $ASRKIT data subset data/train data/train_nodev --utt-list data/train_nodev.list
      $ASRKIT data subset data/train data/dev --utt-list data/dev.list
    fi
    # general-vocabulary LM text: the tiny corpus's 4000 State of the Union sentences
    if [ -f data/tiny/lm_text.txt ]; then echo "data/tiny is there"
    else $ASRKIT corpus tiny data/tiny
    fi
    # pronunciations (ARPAbet 39, no stress) of the prompt words the CMU dict lacks,
    # typos of the prompt texts spelled as the speaker says them
    mkdir -p data/local
    cat > $extra_lex.tmp <<'LEX'
backtick b ae k t ih k
caret k eh r ah t
dahdi d aa d iy
digium d ih jh iy ah m
exclaimation eh k s k l ah m ey sh ah n
forevermore f er eh v er m ao r
fourtieth f ao r t iy ah th
iax ay ey eh k s
indentified ay d eh n t ah f ay d
ivr ay v iy aa r
lowercase l ow er k ey s
mgcp eh m jh iy s iy p iy
pbx p iy b iy eh k s
prepend p r iy p eh n d
prepending p r iy p eh n d ih ng
represenatives r eh p r ah z eh n t ah t ih v z
rerecord r iy r ah k ao r d
semicolon s eh m iy k ow l ah n
touchtone t ah ch t ow n
umute ah n m y uw t
undelete ah n d ih l iy t
undeleted ah n d ih l iy t ih d
unistim y uw n ih s t ih m
unmute ah n m y uw t
unmuted ah n m y uw t ih d
uppercase ah p er k ey s
waldo's w ao l d ow z
witheld w ih th hh eh l d
www d ah b ah l y uw d ah b ah l y uw d ah b ah l y uw
xray eh k s r ey
LEX
    mv $extra_lex.tmp $extra_lex
    echo "wrote $extra_lex ($(wc -l < $extra_lex) words)"
  } 2>&1 | tee "$log"
fi

if run_stage 1 features; then
  {
    for s in train_nodev dev test; do
      if [ -f "feats/$s/index.tsv" ]; then echo "feats/$s is there"
      else $ASRKIT featurize "data/$s" "feats/$s" --conf "$fbank_conf" --jobs "$nj"
      fi
    done
  } 2>&1 | tee "$log"
fi

if run_stage 2 lm; then
  {
    mkdir -p exp/lm
    # LM text: the train_nodev prompts + the tiny corpus's LM text, without any line
    # that is also a test (or dev) sentence: the test prompts must not be in the LM
    cut -d' ' -f2- data/dev/text data/test/text | sort -u > exp/lm/heldout_sentences.txt
    { cut -d' ' -f2- data/train_nodev/text; cat data/tiny/lm_text.txt; } |
      awk 'NR == FNR { held[$0] = 1; next } !($0 in held) { print; next } { dropped++ }
           END { printf "lm text: dropped %d lines that are dev/test sentences\n", dropped > "/dev/stderr" }' \
        exp/lm/heldout_sentences.txt - > exp/lm/lm_text.txt.tmp
    if cmp -s exp/lm/lm_text.txt.tmp exp/lm/lm_text.txt; then rm exp/lm/lm_text.txt.tmp
    else mv exp/lm/lm_text.txt.tmp exp/lm/lm_text.txt
    fi
    if newer $lm exp/lm/lm_text.txt; then echo "$lm is up to date"
    else $ASRKIT lm build exp/lm/lm_text.txt --order 3 -o $lm
    fi
    for s in dev test; do
      cut -d' ' -f2- data/$s/text | $ASRKIT lm ppl $lm - | tee exp/lm/ppl_$s.txt
    done
  } 2>&1 | tee "$log"
fi

if run_stage 3 train_ctc "$sfx"; then
  lexicon=()
  [ "$units_kind" != phone ] || lexicon=(units.lexicon="$dir/$extra_lex")
  $ASRKIT train ctc --train feats/train_nodev --dev feats/dev --out $ctc --conf "$ctc_conf" \
    --device "$device" --resume ${lexicon[@]+"${lexicon[@]}"} ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 \
    | tee "$log"
fi

if run_stage 4 decode "$sfx"; then
  out=$ctc/decode_test
  mkdir -p $out
  {
    if newer $out/hyp.txt $ctc/checkpoints/best.pt; then
      echo "$out/hyp.txt is up to date"
    else
      $ASRKIT decode $ctc feats/test --device "$device" > $out/hyp.txt.tmp
      mv $out/hyp.txt.tmp $out/hyp.txt
    fi
    if [ "$units_kind" = phone ]; then
      # the references: the test text spelled with the CMU dict + the extra lexicon
      # (first pronunciation of each word), as training spells its targets
      $ASRKIT tokenizer train data/test/text $out/ref_units --kind phone --lexicon $extra_lex >/dev/null
      cp $out/ref_units/text.phones $out/ref.txt
    fi
  } 2> "$log"
  if [ "$units_kind" = phone ]; then
    # (asrkit score counts tokens as "words": here they are phones, so %WER is the PER)
    $ASRKIT score $out/ref.txt $out/hyp.txt --per-utt $out/per_utt.txt 2>> "$log" |
      sed 's/%WER/%PER/; s/#WRD/#PHN/' | tee $out/per.txt
    cat $out/per.txt >> "$log"
  else
    # a char/bpe model decodes greedily to words
    $ASRKIT score data/test/text $out/hyp.txt --cer --per-utt $out/per_utt.txt 2>> "$log" | tee $out/wer.txt
    cat $out/wer.txt >> "$log"
  fi
fi

if run_stage 5 decode_lm "$sfx"; then
  {
    # LM weight and word bonus tuned on dev (emissions computed once); first the word
    # bonus of the search without the LM (lm weight 0), kept as lm_tuning_lex.yaml
    # the lexicon-only search (lm weight 0) needs a lexicon: phone models only
    if newer $ctc/lm_tuning.yaml $ctc/checkpoints/best.pt && newer $ctc/lm_tuning.yaml $lm &&
       { [ "$units_kind" != phone ] || newer $ctc/lm_tuning_lex.yaml $ctc/checkpoints/best.pt; }; then
      echo "$ctc/lm_tuning.yaml is up to date"
    else
      rm -rf $ctc/emissions_dev $ctc/lm_tuning.yaml
      $ASRKIT decode $ctc feats/dev --device "$device" --save-emissions $ctc/emissions_dev > /dev/null
      if [ "$units_kind" = phone ]; then
        $ASRKIT tune $ctc $ctc/emissions_dev data/dev/text --lm $lm --beam "$beam" --jobs "$nj" \
          --lm-weights 0 --word-bonuses -8:2:1 > $ctc/lm_tuning_lex_grid.txt
        mv $ctc/lm_tuning.yaml $ctc/lm_tuning_lex.yaml
      fi
      $ASRKIT tune $ctc $ctc/emissions_dev data/dev/text --lm $lm --beam "$beam" --jobs "$nj" \
        --lm-weights 0:2:0.25 --word-bonuses -4:3:1 > $ctc/lm_tuning_grid.txt
    fi
    [ "$units_kind" != phone ] ||
      grep -E '^(lm_weight|word_bonus|wer):' $ctc/lm_tuning_lex.yaml | sed 's/^/lexicon only, dev: /'
    grep -E '^(lm_weight|word_bonus|wer):' $ctc/lm_tuning.yaml | sed 's/^/with the LM, dev: /'
  } 2>&1 | tee "$log"
  variants=(lm)
  [ "$units_kind" != phone ] || variants=(lm lex)
  lex_bonus=
  [ "$units_kind" != phone ] || lex_bonus=$(awk '$1 == "word_bonus:" { print $2 }' $ctc/lm_tuning_lex.yaml)
  # test: beam + 3-gram (the tuned weight and bonus), and lexicon only (--lm-weight 0)
  for v in "${variants[@]}"; do
    out=$ctc/decode_test_$v
    mkdir -p $out
    opts=()
    [ $v = lex ] && opts=(--lm-weight 0 --word-bonus "$lex_bonus")
    $ASRKIT decode $ctc feats/test --device "$device" --beam "$beam" --lm $lm "${opts[@]}" \
      > $out/hyp.txt.tmp 2>> "$log"
    mv $out/hyp.txt.tmp $out/hyp.txt
    echo "-- $v: $out/hyp.txt" | tee -a "$log"
    $ASRKIT score data/test/text $out/hyp.txt --per-utt $out/per_utt.txt 2>> "$log" | tee $out/wer.txt
    cat $out/wer.txt >> "$log"
  done
fi

transformer=exp/transformer_char

if run_stage 6 train_transformer; then
  $ASRKIT train transformer --train feats/train_nodev --dev feats/dev --out $transformer --conf "$transformer_conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if run_stage 7 decode_transformer; then
  out=$transformer/decode_test
  mkdir -p $out
  : > "$log"
  # the average of the kept epoch checkpoints (ESPnet decodes an average too); greedy; then LM weight x
  # CTC weight x length bonus on dev -> $transformer/lm_tuning.yaml, beam 10 + LM
  avg=$($ASRKIT average $transformer --last 2 2>> "$log")
  $ASRKIT decode $transformer feats/test --checkpoint "$avg" --device "$device" > $out/hyp_greedy.txt.tmp 2>> "$log"
  mv $out/hyp_greedy.txt.tmp $out/hyp_greedy.txt
  $ASRKIT tune $transformer feats/dev data/dev/text --lm $lm --beam 10 --checkpoint "$avg" --device "$device" \
    --lm-weights 0.35,0.5,0.7 --ctc-weights 0.3,0.5 --length-bonuses 0,1 > $transformer/tune_dev.txt 2>> "$log"
  tail -1 $transformer/tune_dev.txt
  $ASRKIT decode $transformer feats/test --beam 10 --lm $lm --checkpoint "$avg" --device "$device" \
    > $out/hyp_beam10_lm.txt.tmp 2>> "$log"
  mv $out/hyp_beam10_lm.txt.tmp $out/hyp_beam10_lm.txt
  for name in greedy beam10_lm; do
    $ASRKIT score data/test/text $out/hyp_$name.txt --cer 2>> "$log" | tee $out/wer_$name.txt
  done
fi
