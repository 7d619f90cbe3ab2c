#!/bin/sh
# Install the system packages canonical_raft builds against: libraft >= 0.22
# (the cowsql fork), libuv1, OpenSSL (libssl-dev: the peer port's mutual TLS),
# liblmdb (storage="lmdb": the binding's own log store) and pkg-config; and iproute2 and iptables, which
# the fault-injection tests (chaos/) use for network partitions. Idempotent;
# run as root.
#
# Debian 13 (trixie) ships libraft 0.22 in main. Debian 12 (bookworm) ships
# 0.15, which has known safety bugs, so there we add bookworm-backports,
# from the same mirror as the machine's bookworm source, and take libraft
# from it; no other release gets that source.
set -eu

MIN_RAFT=0.22.0

have_deps() {
    pkg-config --exists libuv 2>/dev/null &&
        pkg-config --exists libssl libcrypto 2>/dev/null &&
        pkg-config --exists lmdb 2>/dev/null &&
        pkg-config --atleast-version="$MIN_RAFT" raft 2>/dev/null &&
        command -v ip >/dev/null 2>&1 &&
        { command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ]; }
}

if have_deps; then
    echo "install-deps: libraft $(pkg-config --modversion raft) and libuv $(pkg-config --modversion libuv) already present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root, or install libraft-dev (>= $MIN_RAFT), libuv1-dev, libssl-dev, liblmdb-dev, pkg-config, iproute2 and iptables yourself" >&2
    exit 1
fi
if [ ! -r /etc/debian_version ] || [ ! -r /etc/os-release ]; then
    echo "install-deps: not Debian; install libraft >= $MIN_RAFT, libuv1, OpenSSL, liblmdb and pkg-config by hand" >&2
    exit 1
fi
. /etc/os-release

# The URI of the apt source that serves bookworm's main archive, in either
# the deb822 (.sources) or the one-line (.list) format.
bookworm_mirror() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             { uri = ""; ok = 0
               for (i = 1; i <= NF; i++) {
                 if ($i ~ /^URIs:/) { split($i, a, " "); uri = a[2] }
                 if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) ok = 1 }
               if (ok && uri != "") { print uri; exit } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++
                           if ($2 ~ /^\[/) i++
                           if ($(i + 1) == "bookworm") { print $i; exit } }' "$f"
    done
}

export DEBIAN_FRONTEND=noninteractive
target=""
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        mirror=$(bookworm_mirror | head -n 1)
        if [ -z "$mirror" ]; then
            echo "install-deps: no apt source for bookworm found to add bookworm-backports beside" >&2
            exit 1
        fi
        echo "deb $mirror bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
        echo "install-deps: added bookworm-backports from $mirror"
    fi
    target="-t bookworm-backports"
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends libuv1-dev libssl-dev liblmdb-dev pkg-config iproute2 iptables
# Only libraft (and its runtime library) comes from backports.
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $target libraft-dev

if ! have_deps; then
    echo "install-deps: libraft >= $MIN_RAFT is not installable here (found: $(pkg-config --modversion raft 2>/dev/null || echo none))" >&2
    exit 1
fi
echo "install-deps: libraft $(pkg-config --modversion raft), libuv $(pkg-config --modversion libuv), lmdb $(pkg-config --modversion lmdb)"
