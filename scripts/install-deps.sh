#!/bin/sh
# Install the system packages canonical_raft builds against: libraft >= 0.22
# (the cowsql fork), libuv1 and pkg-config. Idempotent; run as root.
#
# Debian 13 (trixie) ships libraft 0.22 in main. Debian 12 (bookworm) ships
# 0.15, which has known safety bugs, so there we add bookworm-backports and
# take libraft from it; no other release gets that source.
set -eu

PACKAGES="libraft-dev libuv1-dev pkg-config"
MIN_RAFT=0.22.0

have_deps() {
    pkg-config --exists libuv 2>/dev/null &&
        pkg-config --atleast-version="$MIN_RAFT" raft 2>/dev/null
}

if have_deps; then
    echo "install-deps: libraft $(pkg-config --modversion raft) and libuv $(pkg-config --modversion libuv) already present"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: need root to install $PACKAGES (or install them yourself)" >&2
    exit 1
fi

if [ ! -r /etc/debian_version ]; then
    echo "install-deps: not a Debian system; install libraft >= $MIN_RAFT, libuv1 and pkg-config by hand" >&2
    exit 1
fi

. /etc/os-release
export DEBIAN_FRONTEND=noninteractive
apt_target=""

case "${VERSION_CODENAME:-}" in
bookworm)
    list=/etc/apt/sources.list.d/bookworm-backports.list
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" > "$list"
    fi
    apt_target="-t bookworm-backports"
    ;;
esac

apt-get update -qq
# Only libraft comes from backports; everything else from the release itself.
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends libuv1-dev pkg-config
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $apt_target libraft-dev libraft0 2>/dev/null ||
    apt-get install -y -qq --no-install-recommends $apt_target libraft-dev

if ! have_deps; then
    echo "install-deps: libraft >= $MIN_RAFT not available (found: $(pkg-config --modversion raft 2>/dev/null || echo none))" >&2
    exit 1
fi
echo "install-deps: libraft $(pkg-config --modversion raft), libuv $(pkg-config --modversion libuv)"
