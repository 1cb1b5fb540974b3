#!/usr/bin/env bash
# Install the Debian tools some tests compare against or drive, where this
# machine lets us: sclite (sctk), sox, flite, festival and three festival
# voices, and the Fashion-MNIST data set (dataset-fashion-mnist). `make test` (and so CI) runs this before pytest.
#
# - all present: says nothing;
# - missing, root and apt-get available: installs them (apt-get update first);
# - otherwise: one line saying what is missing and how to install it.
# Always exits 0: the tests decide. A test needing a missing tool skips on a
# developer's machine and fails when CI=true (tests/conftest.py).
set -uo pipefail

need=()
{ command -v sclite || test -x /usr/lib/sctk/bin/sclite; } >/dev/null 2>&1 || need+=(sctk)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v flite >/dev/null 2>&1 || need+=(flite)
command -v festival >/dev/null 2>&1 || need+=(festival)
[ -d /usr/share/festival/voices/english/kal_diphone ] || need+=(festvox-kallpc16k)
[ -d /usr/share/festival/voices/english/ked_diphone ] || need+=(festvox-kdlpc16k)
[ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || need+=(festvox-us-slt-hts)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)

[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    why="not root"; command -v apt-get >/dev/null 2>&1 || why="no apt-get"
    echo "install_debian_deps: missing ${need[*]} ($why, not installed): tests that need them skip (fail under CI=true); install with: sudo apt-get install ${need[*]}" >&2
    exit 0
fi

echo "install_debian_deps: apt-get install ${need[*]}" >&2
log=$(mktemp)
if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >"$log" 2>&1; then
    rm -f "$log"
else
    echo "install_debian_deps: could not install ${need[*]} ($(tail -n 1 "$log")): tests that need them skip (fail under CI=true)" >&2
    rm -f "$log"
fi
exit 0
