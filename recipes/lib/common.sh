# Shared by recipes/*/run.sh (like Kaldi's utils/): source it after the options are parsed.
# Uses: $here (the recipe folder), $stage, $stop_stage, $dir, $logdir.

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
