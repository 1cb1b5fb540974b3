# Shared by recipes/*/run.sh (like Kaldi's utils/): source it after the option defaults are set,
# then `parse_options "$@"`. Uses: $here (the recipe folder), $stage, $stop_stage, $dir, $logdir,
# and a usage() function of the recipe.

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

# run_stage N NAME [SUFFIX]: true when stage N is selected; says so and sets $log to its log file
run_stage() {
  if [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; then
    log=$logdir/$(printf %02d "$1")_$2${3:-}.log
    echo "== stage $1: $2 (log: $dir/$log)"
    return 0
  fi
  return 1
}

# newer A B: A exists and is newer than B
newer() { [ -f "$1" ] && [ -f "$2" ] && [ "$1" -nt "$2" ]; }

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
# train*/mfcc/*.npy with train*/transcript/*.npy, the same for dev*, and test*/mfcc/*.npy)
require_11785_corpus() {
  require_corpus corpus "$1"
  if [ -e "$1/train.npy" ] || [ -e "$1/train_labels.npy" ]; then
    course_layout=arrays
    require_corpus corpus "$1" train.npy train_labels.npy dev.npy dev_labels.npy test.npy
  else
    course_layout=folders
    require_corpus corpus "$1" "train*/mfcc/*.npy" "train*/transcript/*.npy" "dev*/mfcc/*.npy" \
      "dev*/transcript/*.npy" "test*/mfcc/*.npy"
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
