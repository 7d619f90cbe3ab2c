#!/bin/sh
# Debian's chromium, for the status page's browser test
# (tests/test_server_admin.py::test_status_page_in_headless_chromium, which
# skips without it). `make test` runs this once, best effort; not in
# install-deps.sh (about 350 MB and 40 s, and only the tests need it). Root.
set -eu
if command -v chromium >/dev/null 2>&1; then
    echo "install-chromium: $(chromium --version 2>/dev/null || echo chromium) already present"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium
