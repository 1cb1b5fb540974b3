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
