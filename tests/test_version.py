"""One version, and the libraft version the core was built with."""

import re
import subprocess

import pytest

import canonical_raft as raft


@pytest.mark.timeout(30)
def test_version_and_libraft_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", raft.__version__)
    built = subprocess.run(["pkg-config", "--modversion", "raft"], capture_output=True,
                           text=True, timeout=10).stdout.strip()
    assert raft.libraft_version() == built
    major, minor, _ = map(int, raft.libraft_version().split("."))
    assert (major, minor) >= (0, 22)
