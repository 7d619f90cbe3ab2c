"""A 3-node cluster on loopback from an installed canonical_raft: what
`make wheel`'s test and `make wheels` run in a fresh venv, outside the
source tree (the package's own testing helpers included). Prints the
Python, the libraft/libuv files the process mapped and where the module
came from."""

import sys
import tempfile

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM, free_address

servers = [raft.Server(i, free_address()) for i in (1, 2, 3)]
with tempfile.TemporaryDirectory() as base:
    nodes = [raft.Node(s.id, s.address, f"{base}/{s.id}", RecordingFSM()) for s in servers]
    try:
        for n in nodes:
            n.bootstrap(servers)
            n.start()
        leader = {n.id: n for n in nodes}[nodes[0].wait_for_leader(20).id]
        results = [leader.apply(b"x").result(20) for _ in range(10)]
        assert results == list(range(1, 11)), results
    finally:
        for n in nodes:
            n.close()
maps = open("/proc/self/maps").read()
libs = sorted({line.split()[-1] for line in maps.splitlines()
               if "libraft" in line or "libuv" in line})
print("python", ".".join(map(str, sys.version_info[:3])))
print("\n".join(libs))
print("module", raft.__file__)
