"""Make tests/data/v1-datadir.tar.gz: the data dir of a one-node cluster
written by a release whose snapshots are version 1 (no data checksum).

Run it with that release's build, from its checkout:

    cd /work/base && .venv/bin/python /path/to/tests/data/make_v1_datadir.py OUT.tar.gz

The node applies 300 commands b"v1-<n>" with snapshot_threshold=100 (so the
dir holds version-1 snapshots and the segments after them) and closes
cleanly. tests/test_integrity.py opens it with the current release.
"""

import os
import sys
import tarfile
import tempfile

sys.path.insert(0, os.getcwd())          # the release checked out here

import canonical_raft as raft  # noqa: E402
from canonical_raft.testing import RecordingFSM  # noqa: E402

ADDRESS = "127.0.0.1:9"                  # never contacted: one node, closed at once
COUNT = 300


def main(out):
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        data_dir = os.path.join(tmp, "node1")
        node = raft.Node(1, ADDRESS, data_dir, RecordingFSM(), segment_size=64 * 1024,
                         snapshot_threshold=100, snapshot_trailing=10)
        node.bootstrap([(1, ADDRESS)])
        node.start()
        node.wait_for_leader(10)
        for i in range(COUNT):
            node.apply(b"v1-%d" % i).result(10)
        node.close()
        print(raft.__file__, sorted(os.listdir(data_dir)))
        with tarfile.open(out, "w:gz") as tar:
            tar.add(data_dir, arcname="node1")


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]))
