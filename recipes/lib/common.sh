# Shared by recipes/*/run.sh and recipes/11785/*.sh (like Kaldi's utils/): source it, set the option
# defaults (by hand, or with recipe_defaults / lm_recipe_defaults / course_defaults), define usage(), then
# `parse_options "$@"`. Uses: $here (the recipe folder), $stage, $stop_stage, $dir, $logdir, and the
# recipe's usage() function.

# parse_options ARGS...: like Kaldi's utils/parse_options.sh. `--some-name VALUE` sets the variable
# some_name, which the recipe must have set to its default before (so a misspelt option is an
# error, not a silent new variable); -h/--help prints usage() and exits 0. Errors exit 2.
parse_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      -h|--help) usage; exit 0 ;;
      --*) ;;
      *) echo "$0: unexpected argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    local name=${1#--}
    name=${name//-/_}
    if ! [[ "$name" =~ ^[a-z][a-z0-9_]*$ ]] || ! declare -p "$name" >/dev/null 2>&1; then
      echo "$0: unknown option '$1'" >&2; usage >&2; exit 2
    fi
    [ $# -ge 2 ] || { echo "$0: option '$1' needs a value" >&2; usage >&2; exit 2; }
    printf -v "$name" '%s' "$2"
    shift 2
  done
}

# recipe_defaults DIR: the defaults of --stage 0, --stop-stage 100 (all stages), --device auto, --dir DIR and
# --impl '' (the configs' own) (call before parse_options)
recipe_defaults() {
  stage=0
  stop_stage=100
  device=auto
  dir=$1
  impl=
}

# check_numbers NAME...: each named variable holds a whole number (else exit 2 naming its option)
check_numbers() {
  local v
  for v in "$@"; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$0: --${v//_/-} takes a number (got '${!v}')" >&2; exit 2; }
  done
}

# impl_overrides: check $impl (empty: the configs' own, scratch) and set the array train_overrides
impl_overrides() {
  case "$impl" in
    ""|scratch|native) ;;
    *) echo "$0: --impl takes scratch or native (got '$impl')" >&2; exit 2 ;;
  esac
  train_overrides=()
  [ -z "$impl" ] || train_overrides=("model.impl=$impl")
}

# find_asrkit: set ASRKIT to $ASRKIT, else the asrkit on PATH, else the repository's .venv
find_asrkit() {
  if [ -z "${ASRKIT:-}" ]; then
    if command -v asrkit >/dev/null 2>&1; then ASRKIT=asrkit
    elif [ -x "$here/../../.venv/bin/asrkit" ]; then ASRKIT=$(realpath "$here/../../.venv/bin/asrkit")
    else echo "$0: asrkit not found: activate its venv (make setup; source .venv/bin/activate) or set ASRKIT" >&2; exit 1
    fi
  fi
}

# stage_selected N: stage N lies within --stage .. --stop-stage (says nothing; run_stage does)
stage_selected() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

# run_stage N NAME [SUFFIX]: true when stage N is selected; says so and sets $log to its log file
run_stage() {
  if stage_selected "$1"; then
    log=$logdir/$(printf %02d "$1")_$2${3:-}.log
    echo "== stage $1: $2 (log: $dir/$log)"
    return 0
  fi
  return 1
}

# enter_dir: make --dir and go there, with the log folder exp/log ($logdir); call it after every check, so that
# a refused run writes nothing
enter_dir() {
  mkdir -p "$dir"
  cd "$dir"
  logdir=exp/log
  mkdir -p "$logdir"
}

# require_confs NAME...: each named variable (a --*-conf option) names a config file; made absolute, else exit 2
require_confs() {
  local v
  for v in "$@"; do
    printf -v "$v" '%s' "$(realpath -m "${!v}")"
    [ -f "${!v}" ] || { echo "$0: no such config file: ${!v}" >&2; exit 2; }
  done
}

# optional_file NAME: the variable NAME (option --NAME, '_' read as '-') is empty or names a file; made absolute,
# else exit 1
optional_file() {
  [ -n "${!1}" ] || return 0
  [ -f "${!1}" ] || { echo "$0: --${1//_/-} ${!1}: no such file" >&2; exit 1; }
  printf -v "$1" '%s' "$(realpath "${!1}")"
}

# set_att_opts: the array att_opts of the attention decodes' options (--max-len-ratio when $max_len_ratio is set)
set_att_opts() {
  att_opts=()
  [ -z "$max_len_ratio" ] || att_opts=(--max-len-ratio "$max_len_ratio")
}

# train_model TASK TRAIN DEV EXP CONF [OVERRIDE...]: asrkit train TASK on the feature stores TRAIN and DEV into EXP,
# resumed from its last checkpoint, on $device, with the OVERRIDEs and then $train_overrides; logged to $log
train_model() {
  local task=$1 train=$2 dev=$3 exp=$4 conf=$5
  shift 5
  $ASRKIT train "$task" --train "$train" --dev "$dev" --out "$exp" --conf "$conf" --device "$device" --resume \
    "$@" ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
}

# featurize_sets SET...: asrkit featurize data/SET into feats/SET with $nj jobs, unless feats/SET is there
featurize_sets() {
  local s
  for s in "$@"; do
    if [ -f "feats/$s/index.tsv" ]; then echo "feats/$s is there"
    else $ASRKIT featurize "data/$s" "feats/$s" --jobs "$nj"
    fi
  done
}

# newer A B: A exists and is newer than B
newer() { [ -f "$1" ] && [ -f "$2" ] && [ "$1" -nt "$2" ]; }

# needs N M FILE...: stage N reads each FILE (relative to --dir), which stage M makes; else exit 1 saying so
needs() {
  local n=$1 m=$2 f
  shift 2
  for f in "$@"; do
    [ -e "$f" ] || { echo "$0: stage $n needs $dir/$f: run stage $m first" >&2; exit 1; }
  done
}

# require_corpus OPTION DIR PART...: DIR (given by --OPTION) exists and holds every PART (a path relative
# to DIR; a glob matches if any file does), else exit 1 naming the first missing one
require_corpus() {
  local opt=$1 root=$2 part
  shift 2
  [ -n "$root" ] || { echo "$0: --$opt is required (the corpus folder)" >&2; exit 2; }
  [ -d "$root" ] || { echo "$0: --$opt $root: no such folder" >&2; exit 1; }
  for part in "$@"; do
    if ! compgen -G "$root/$part" >/dev/null; then
      echo "$0: --$opt $root is incomplete: $part is missing" >&2; exit 1
    fi
  done
}

# find_python: set PYTHON to $PYTHON, else the interpreter of $ASRKIT when it is 'PYTHON -m asrkit', else the
# repository's .venv, else python3 (call find_asrkit first); the repository goes on PYTHONPATH
find_python() {
  if [ -z "${PYTHON:-}" ]; then
    case "$ASRKIT" in
      *" -m asrkit") PYTHON=${ASRKIT% -m asrkit} ;;
      *) # (not realpath: the venv's python is a link to the base interpreter, which lacks the packages)
         if [ -x "$here/../../.venv/bin/python" ]; then PYTHON=$(cd "$here/../.." && pwd)/.venv/bin/python
         else PYTHON=python3; fi ;;
    esac
  fi
  export PYTHONPATH=$(realpath "$here/../.."):${PYTHONPATH:-}
}

# conf_value TASK CONF KEY [OVERRIDE...]: print a value of a training config as asrkit resolves it (the task's
# defaults, the file, the overrides), e.g. conf_value ctc conf/ctc.yaml units.kind (call find_python first)
conf_value() {
  "$PYTHON" -c 'import sys
from asrkit.errors import AsrkitError
from asrkit.train.config import load_config
try:
    cfg = load_config(sys.argv[1], sys.argv[2], sys.argv[4:])
except AsrkitError as e:
    sys.exit(f"{sys.argv[2]}: {e}")
for part in sys.argv[3].split("."):
    cfg = cfg[part]
print(cfg)' "$@"
}

# require_11785_corpus DIR: DIR (given by --corpus) holds one of the 11-785 course's npy layouts, each with
# labelled train and dev splits and a test split (else exit 1 naming the first missing part), and sets
# course_layout: "arrays" (whole-split object arrays: train.npy train_labels.npy dev.npy dev_labels.npy
# test.npy) when DIR has a train.npy or train_labels.npy, else "folders" (per-utterance files:
# train*/mfcc/*.npy with train*/transcript/*.npy, the same for dev*, and test*/mfcc/*.npy; the transcripts
# may be in transcript/raw/ instead, as a HW4P2 year has them)
require_11785_corpus() {
  require_corpus corpus "$1"
  if [ -e "$1/train.npy" ] || [ -e "$1/train_labels.npy" ]; then
    course_layout=arrays
    require_corpus corpus "$1" train.npy train_labels.npy dev.npy dev_labels.npy test.npy
  else
    course_layout=folders
    local labels=transcript
    if compgen -G "$1/train*/transcript/raw/*.npy" >/dev/null; then labels=transcript/raw; fi
    require_corpus corpus "$1" "train*/mfcc/*.npy" "train*/$labels/*.npy" "dev*/mfcc/*.npy" \
      "dev*/$labels/*.npy" "test*/mfcc/*.npy"
  fi
}

# course_split DATA PREFIX [NAME]: print NAME when given (it must be a folder of DATA), else the one folder
# of DATA whose name starts with PREFIX (exit 1 when there is none, or several: then NAME picks one)
course_split() {
  local data=$1 prefix=$2 name=${3:-} found=() d
  if [ -n "$name" ]; then
    [ -d "$data/$name" ] || { echo "$0: --$prefix-split $name: no such split in $data" >&2; exit 1; }
    echo "$name"; return
  fi
  for d in "$data/$prefix"*/; do [ -d "$d" ] && found+=("$(basename "$d")"); done
  case ${#found[@]} in
    1) echo "${found[0]}" ;;
    0) echo "$0: $data has no $prefix split (imported folders: $(ls "$data" | tr '\n' ' '))" >&2; exit 1 ;;
    *) echo "$0: $data has several $prefix splits (${found[*]}): choose one with --$prefix-split NAME" >&2; exit 1 ;;
  esac
}

# course_defaults NAME: the defaults of the options the 11-785 recipes share (--dir: $here/NAME); call before
# usage and parse_options
course_defaults() {
  recipe_defaults "$here/$1"
  corpus=
  train_split=
  dev_split=
  test_split=
}

# course_usage NAME: the usage lines of the options the 11-785 recipes share, with the course years whose Kaggle
# layouts the corpus check and the import accept (docs/recipes.md says where each was checked)
course_usage() {
  cat <<USAGE
  --corpus     the course's Kaggle data for ${1^^}, in either layout ('asrkit data import kaggle-11785'):
               folders, the LibriSpeech years (checked: fall 2023 HW1P2, fall 2025 HW3P2, a HW4P2 year
                 with transcript/raw/): SPLIT/mfcc/*.npy + SPLIT/transcript/*.npy (or transcript/raw/*.npy)
                 for train* and dev*, test*/mfcc/*.npy
               arrays, the earlier years (checked: spring 2019 HW1P2, a LibriSpeech HW1P2 and a HW3P2 year):
                 train.npy train_labels.npy dev.npy dev_labels.npy test.npy (object arrays)
  --dir        where data/ and exp/ go (default: $here/$1)
  --device     auto (default), cpu or cuda; --impl: scratch or native layers (default: the config's)
  --*-split    which imported split is train / dev / test (default: the one whose name starts so)
USAGE
}

# course_setup NAME...: the checks and the start shared by the 11-785 recipes: --stage, --stop-stage (and the numbers
# NAME...), --impl, --conf, and, when stage 0 runs, the corpus (require_11785_corpus); then find asrkit and enter
# --dir. Exits on the first bad option before anything is written.
course_setup() {
  dir=$(realpath -m "$dir")  # a relative --dir stays right after the cd below
  check_numbers stage stop_stage "$@"
  impl_overrides
  require_confs conf
  if stage_selected 0; then
    require_11785_corpus "$corpus"
    corpus=$(realpath "$corpus")
  fi
  find_asrkit
  enter_dir
}

# course_import: stage 0 of the 11-785 recipes (asrkit data import kaggle-11785 of --corpus into data/, once),
# then set train, dev and test to the imported splits (--train-split, --dev-split, --test-split pick among several)
course_import() {
  if run_stage 0 import; then
    if [ -f data/.imported ]; then echo "data/ is there"
    else
      echo "$corpus: $course_layout layout"
      $ASRKIT data import kaggle-11785 "$corpus" data 2>&1 | tee "$log"
      touch data/.imported
    fi
  fi
  train=$(course_split data train "$train_split")
  dev=$(course_split data dev "$dev_split")
  test=$(course_split data test "$test_split")
}

# decode_beam STORE OUT [OPTION...]: beam search (--beam $beam, on $device, the OPTIONs) of the model $exp on the
# feature store STORE into OUT, unless OUT is newer than the model; errors to $log
decode_beam() {
  local store=$1 out=$2
  shift 2
  if newer "$out" $exp/checkpoints/best.pt; then echo "$out is up to date"
  else
    $ASRKIT decode $exp "$store" --beam "$beam" --device "$device" "$@" > "$out.tmp" 2>> "$log"
    mv "$out.tmp" "$out"
  fi
}

# course_submission [OPTION...]: the submission stage of HW3P2/HW4P2: decode_beam of the test split into
# $exp/test_hyp.txt, then the Kaggle csv $exp/submission.csv
course_submission() {
  : > "$log"
  decode_beam data/$test/feats $exp/test_hyp.txt "$@"
  kaggle_csv $exp/test_hyp.txt $exp/submission.csv
  echo "Kaggle submission: $dir/$exp/submission.csv ($(($(wc -l < $exp/submission.csv) - 1)) utterances of $test)"
}

# results_rows OUT NAME VALUE [NAME VALUE...]: the 'metric value' table of a course recipe's score stage, on stdout
# and into OUT
results_rows() {
  local out=$1
  shift
  printf '  %-30s %10s\n' metric value "$@" | tee "$out"
}

# kaggle_csv TEXT OUT: Kaldi text 'utt-id tokens...' (in utt-id order) -> the course's Kaggle submission
# 'id,label': id runs from 0 in the order of TEXT, label = the tokens joined by one space (a label with a
# comma or a double quote is quoted). Written to OUT.tmp, then renamed.
kaggle_csv() {
  awk 'BEGIN { print "id,label" }
       { label = ""; for (i = 2; i <= NF; i++) label = label (i > 2 ? " " : "") $i
         if (label ~ /[",]/) { gsub(/"/, "\"\"", label); label = "\"" label "\"" }
         print NR - 1 "," label }' "$1" > "$2.tmp"
  mv "$2.tmp" "$2"
}

# results_table SET...: a Markdown table of the %WER of every exp/*/decode_<SET>/wer.txt (one row per model,
# one column per SET; '-' where a model has no score for a set yet), on stdout
results_table() {
  local e s f row
  printf '| model |'; printf ' %s |' "$@"; echo
  printf '|---|'; printf -- '---:|%.0s' "$@"; echo
  for e in exp/*/; do
    e=${e%/}
    row=""
    for s in "$@"; do
      f=$e/decode_$s/wer.txt
      if [ -f "$f" ]; then row+=" $(awk '$1 == "%WER" { print $2; exit }' "$f") |"; else row+=" - |"; fi
    done
    [[ "$row" =~ [0-9] ]] && echo "| ${e#exp/} |$row"
  done
  return 0
}

# -- the corpus recipes that train CTC and transformer models and decode them with a word n-gram LM
#    (recipes/wsj, recipes/librispeech): their shared options, the LM and the decoding

# lm_recipe_defaults: set the defaults of the options these recipes share (call before usage and parse_options)
lm_recipe_defaults() {
  recipe_defaults "$here"
  nj=2
  ctc_conf=$here/conf/ctc.yaml
  tf_conf=$here/conf/transformer.yaml
  epochs=
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
}

# lm_recipe_usage DEV: the usage lines of the shared options (DEV: the set the weights are tuned on)
lm_recipe_usage() {
  cat <<USAGE
  --dir       where data/, feats/ and exp/ go (default: $here)
  --nj        featurize, tune and decode processes (default $nj); --device: auto (default), cpu or cuda
  --ctc-conf, --tf-conf   the CTC and the transformer models' configs (default: conf/ctc.yaml, conf/transformer.yaml)
  --epochs    training epochs of every model (default: the configs')
  --impl      layer implementation of every model (default: the configs', scratch)
  --beam      CTC beam (default $beam); --att-beam: the transformer's (default $att_beam)
  --lm-order  n-gram order (default $lm_order); --lm-prune: lm build --prune thresholds ('' none; default $lm_prune)
  --lm-arpa   a ready word LM (ARPA, or a kenlm binary) to decode with instead of building one in stage 3
  --tune-*    tuning grids on $1 (comma lists or START:STOP:STEP; empty: asrkit tune's defaults)
  --max-len-ratio  the transformer decodes' maximum output length per encoder frame (default: decode's)
USAGE
}

# lm_recipe_checks NAME...: check the shared options (and the numbers NAME...), exit 2 (or 1: --lm-arpa) on the
# first bad one; sets dir, the confs and lm_arpa absolute, the arrays train_overrides and att_opts. Writes nothing.
lm_recipe_checks() {
  check_numbers stage stop_stage nj beam att_beam lm_order "$@"
  [ -z "$epochs" ] || check_numbers epochs
  impl_overrides
  [ -z "$epochs" ] || train_overrides+=("train.epochs=$epochs")
  dir=$(realpath -m "$dir")
  require_confs ctc_conf tf_conf
  optional_file lm_arpa
  set_att_opts
}

# build_lm_and_ppl SET...: stage 3's end: unless --lm-arpa, estimate $lm from exp/lm/lm_text.txt when the text
# is newer; then the perplexity of each data/SET/text under $lm -> exp/lm/ppl_SET.txt
build_lm_and_ppl() {
  local s
  if [ -z "$lm_arpa" ]; then
    if newer $lm exp/lm/lm_text.txt; then echo "$lm is up to date"
    else $ASRKIT lm build exp/lm/lm_text.txt --order "$lm_order" ${lm_prune:+--prune "$lm_prune"} -o $lm
    fi
  fi
  for s in "$@"; do
    echo "-- $s"
    cut -d' ' -f2- data/$s/text | $ASRKIT lm ppl $lm - | tee exp/lm/ppl_$s.txt
  done
}

# lm_decode EXP KIND DEV NAME SET...: the weights tuned on data/DEV with feats/DEV into EXP/lm_tuning.yaml (KIND
# ctc: LM weight and word bonus, beam $beam; att: LM weight x CTC weight x length bonus, beam $att_beam; NAME names
# DEV in EXP/tune_NAME.txt and the messages), then beam + $lm on feats/SET of every SET -> EXP/decode_SET/hyp.txt,
# scored against data/SET/text -> wer.txt (%WER; %CER too for att, and for ctc when $ctc_cer is yes) and
# per_utt.txt. Tuning is redone only when the model or the LM is newer, decoding when the tuning is.
lm_decode() {
  local exp=$1 kind=$2 dev=$3 name=$4 s out keys
  shift 4
  local opts=(--lm $lm --device "$device") tune_opts score_opts=(--cer)
  if [ $kind = ctc ]; then
    opts+=(--beam "$beam" --jobs "$nj")
    tune_opts=(${tune_lm_weights:+--lm-weights "$tune_lm_weights"} ${tune_word_bonuses:+--word-bonuses "$tune_word_bonuses"})
    keys="lm_weight|word_bonus|wer"
    [ "${ctc_cer:-no}" = yes ] || score_opts=()
  else
    opts+=(--beam "$att_beam" ${att_opts[@]+"${att_opts[@]}"})
    tune_opts=(--lm-weights "$tune_att_lm_weights" --ctc-weights "$tune_ctc_weights" --length-bonuses "$tune_length_bonuses")
    keys="lm_weight|ctc_weight|length_bonus|wer"
  fi
  if newer $exp/lm_tuning.yaml $exp/checkpoints/best.pt && newer $exp/lm_tuning.yaml $lm; then
    echo "$exp/lm_tuning.yaml is up to date"
  else
    $ASRKIT tune $exp feats/$dev data/$dev/text "${opts[@]}" ${tune_opts[@]+"${tune_opts[@]}"} > $exp/tune_$name.txt 2>> "$log"
  fi
  grep -E "^($keys):" $exp/lm_tuning.yaml | sed "s/^/tuned on $name: /"
  for s in "$@"; do
    out=$exp/decode_$s
    mkdir -p $out
    if newer $out/hyp.txt $exp/lm_tuning.yaml; then echo "$out/hyp.txt is up to date"
    else
      $ASRKIT decode $exp feats/$s "${opts[@]}" > $out/hyp.txt.tmp 2>> "$log"
      mv $out/hyp.txt.tmp $out/hyp.txt
    fi
    echo "-- $s: $out/hyp.txt"
    $ASRKIT score data/$s/text $out/hyp.txt ${score_opts[@]+"${score_opts[@]}"} --per-utt $out/per_utt.txt 2>> "$log" \
      | tee $out/wer.txt
  done
}
