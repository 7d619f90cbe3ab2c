"""A single-node process for tests/test_integrity.py, on a data dir:

    python integrity_child.py DATA_DIR ADDRESS COUNT SEGMENT_SIZE THRESHOLD

Bootstraps the dir if it is empty, starts, and prints ``have N CRC`` (the
commands its FSM holds after a barrier and a CRC of them), then applies
COUNT commands (``c<number>``, numbered on from N; COUNT 0: for ever),
printing ``ack K`` once commands up to number K are acknowledged, then
``done APPLIED`` (its last_applied index) once the high-water mark covers
them all; it then waits to be
killed (never closes: the open segments stay as a crash leaves them). A
start failure prints ``error CLASS MESSAGE``."""

import sys
import time
import zlib

import canonical_raft as raft
from canonical_raft import integrity
from canonical_raft.testing import RecordingFSM


def main():
    data_dir, address, count, segment, threshold = sys.argv[1:6]
    count, segment, threshold = int(count), int(segment), int(threshold)
    fsm = RecordingFSM()
    node = raft.Node(1, address, data_dir, fsm, segment_size=segment,
                     snapshot_threshold=threshold, snapshot_trailing=64,
                     max_batch_bytes=0)
    try:
        try:
            node.bootstrap([(1, address)])
        except raft.CantBootstrapError:
            pass
        node.start()
    except raft.RaftError as exc:
        print("error", type(exc).__name__, exc, flush=True)
        return
    node.wait_for_leader(10)
    node.barrier().result(10)
    have = len(fsm.commands)
    print("have", have, zlib.crc32(b"".join(fsm.commands)), flush=True)
    number = have
    window = []
    while count == 0 or number < have + count:
        window.append(node.apply(b"c%d" % number))
        number += 1
        if len(window) >= 16:
            window.pop(0).result(10)
            print("ack", number - 16, flush=True)
    for i, fut in enumerate(window):
        fut.result(10)
    print("ack", number - 1, flush=True)
    # The high-water mark follows last_applied within a fraction of a second:
    # wait for it, so that "done" means the mark covers every file.
    applied = node.stats()["last_applied"]
    deadline = time.monotonic() + 5
    while integrity.read_mark(data_dir) < applied and time.monotonic() < deadline:
        time.sleep(0.02)
    print("done", applied, flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
