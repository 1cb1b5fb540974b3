#!/usr/bin/env bash
# Install the Debian tools some tests compare against or drive, where this
# machine lets us: sclite (sctk), sox, flite, festival and four festival
# voices, espeak-ng, mbrola and four MBROLA voices, and the Fashion-MNIST data
# set (dataset-fashion-mnist). `make test` (and so CI) runs this before pytest.
#
# mbrola is in Debian's contrib section and its voices in non-free: where apt
# has no candidate for them, this adds a sources file that enables those two
# sections for the same mirrors and suites as the main one (deb822
# /etc/apt/sources.list.d/debian.sources, or the deb lines of /etc/apt/sources.list).
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
[ -d /usr/share/festival/voices/english/rab_diphone ] || need+=(festvox-rablpc16k)
[ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || need+=(festvox-us-slt-hts)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
# contrib / non-free: installed in a second step, so that the rest never waits on them
extra=()
command -v mbrola >/dev/null 2>&1 || extra+=(mbrola)
for v in us1 us2 us3 en1; do [ -f /usr/share/mbrola/$v/$v ] || extra+=(mbrola-$v); done

[ ${#need[@]} -eq 0 ] && [ ${#extra[@]} -eq 0 ] && exit 0
need_all=(${need[@]+"${need[@]}"} ${extra[@]+"${extra[@]}"})

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    why="not root"; command -v apt-get >/dev/null 2>&1 || why="no apt-get"
    echo "install_debian_deps: missing ${need_all[*]} ($why, not installed): tests that need them skip (fail under CI=true); install with: sudo apt-get install ${need_all[*]} (mbrola*: Debian contrib/non-free)" >&2
    exit 0
fi

# enable_contrib_non_free: a sources file with the contrib and non-free sections
# of the mirrors and suites apt already uses (Debian only; nothing when present)
enable_contrib_non_free() {
    local list=/etc/apt/sources.list.d/asrkit-contrib-non-free
    [ -f $list.sources ] || [ -f $list.list ] && return 1
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed -E 's/^Components:.*/Components: contrib non-free/' /etc/apt/sources.list.d/debian.sources > $list.sources
    elif [ -f /etc/apt/sources.list ] && grep -qE '^deb .*debian.* main' /etc/apt/sources.list; then
        grep -E '^deb .*debian.* main' /etc/apt/sources.list | sed -E 's/ main( .*)?$/ contrib non-free/' > $list.list
    else
        return 1
    fi
}

install() {  # install WHAT...: quietly, after an update; one line when it fails
    local log; log=$(mktemp)
    echo "install_debian_deps: apt-get install $*" >&2
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >"$log" 2>&1; then
        rm -f "$log"
    else
        echo "install_debian_deps: could not install $* ($(tail -n 1 "$log")): tests that need them skip (fail under CI=true)" >&2
        rm -f "$log"
    fi
}

[ ${#need[@]} -eq 0 ] || install "${need[@]}"
if [ ${#extra[@]} -gt 0 ]; then
    apt-get update -qq >/dev/null 2>&1
    if ! apt-cache policy "${extra[0]}" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        enable_contrib_non_free && echo "install_debian_deps: enabled Debian's contrib and non-free sections (mbrola and its voices)" >&2
    fi
    install "${extra[@]}"
fi
exit 0
