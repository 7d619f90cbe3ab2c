"""A one-node storage="lmdb" cluster in its own process, for the crash tests
(tests/test_lmdb_io.py): driven with canonical_raft.testing.procs.

    python lmdb_crash_child.py --id 1 --address A --data-dir D [--bootstrap 1=A]
                               [--pad BYTES] [--snapshot-every N]

Commands: ``load`` starts applying "0", "1", ... in batches from a thread,
pushing an ``acked`` event (upto=the highest number whose future resolved,
all below it resolved too) after each batch, until a batch fails (this node
is no longer the leader, or it closes); ``items`` is everything the FSM
holds after a barrier (restored snapshot and replayed log), ``held`` the
same with no barrier (on a follower too); ``role``:
whether it is the leader and how many snapshots it installed from one. Small snapshot settings make
snapshots, and the deletion of the log prefix they cover, frequent; --pad pads each command
(spaces) so that the write-ahead file's checkpoints run between snapshots and the file fills
(a batch then goes straight to LMDB).
"""

import argparse
import sys
import threading

import canonical_raft as raft
from canonical_raft.testing import procs

BATCH = 64


class Items(raft.FSM):
    def __init__(self):
        self.items = []

    def apply(self, command):
        self.items.append(int(bytes(command)))
        return len(self.items)

    def snapshot(self):
        return ",".join(map(str, self.items)).encode()

    def restore(self, data):
        text = bytes(data).decode()
        self.items = [int(x) for x in text.split(",")] if text else []


def main():
    parser = procs.node_arguments(argparse.ArgumentParser())
    parser.add_argument("--pad", type=int, default=0)
    parser.add_argument("--snapshot-every", type=int, default=200)
    args = parser.parse_args()
    pad = b" " * args.pad
    channel = procs.Child(f"node {args.id}")
    fsm = Items()
    node = raft.Node(args.id, args.address, args.data_dir, fsm, storage="lmdb",
                     election_timeout=0.5, heartbeat_timeout=0.05,
                     snapshot_threshold=args.snapshot_every, snapshot_trailing=50, max_batch_bytes=0)
    if args.bootstrap:
        node.bootstrap([raft.Server(*s) for s in procs.parse_servers(args.bootstrap)])
    node.start()
    node.wait_for_leader(20)
    stop = threading.Event()

    def load(start):
        i = start
        while not stop.is_set():
            futures = node.apply_many([str(n).encode() + pad for n in range(i, i + BATCH)])
            for f in futures:
                f.result(20)
            i += BATCH
            channel.event("acked", upto=i - 1)

    def start_load():
        start = len(fsm.items)
        threading.Thread(target=load, args=(start,), daemon=True).start()
        return {"start": start}

    def close():
        stop.set()
        node.close()

    def items():
        node.barrier().result(20)       # everything committed is applied
        return {"items": list(fsm.items)}

    installs = []
    node.on_event(lambda event: installs.append(event.index), kinds=["snapshot_installed"])

    def role():
        return {"leader": node.is_leader, "installs": len(installs)}

    def held():
        return {"items": list(fsm.items)}   # no barrier: a follower's too

    handlers = {"load": start_load, "items": items, "held": held, "role": role}
    channel.serve_node(close, handlers, id=args.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
