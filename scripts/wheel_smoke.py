"""A 3-node cluster on loopback from an installed canonical_raft: what
`make wheels` (and `make wheel`) run in a fresh venv, outside the
source tree, on the package's own testing helpers. Prints the
Python, the libraft/libuv files the process mapped and where the module
came from."""

import sys
import tempfile

import canonical_raft as raft
from canonical_raft.testing import LocalCluster, RecordingFSM

with tempfile.TemporaryDirectory() as base, LocalCluster(3, RecordingFSM, base) as cluster:
    # cluster.apply follows the leader (a loaded machine may re-elect)
    results = [cluster.apply(b"x", timeout=30) for _ in range(10)]
    assert results == list(range(1, 11)), results
    cluster.wait_converged(key=lambda fsm: len(fsm.commands), expected=10, timeout=30)
maps = open("/proc/self/maps").read()
libs = sorted({line.split()[-1] for line in maps.splitlines()
               if "libraft" in line or "libuv" in line})
print("python", ".".join(map(str, sys.version_info[:3])))
print("\n".join(libs))
print("module", raft.__file__)
