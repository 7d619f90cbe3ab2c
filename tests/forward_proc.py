"""One raft node with forward=True in its own process (test_forward_procs.py).

    python forward_proc.py --id 1 --address 127.0.0.1:P --data-dir D \
        [--bootstrap 1=...,2=...] [--forward-timeout S]

Commands (canonical_raft.testing.procs):

    status                   state, leader, is_leader, count
    writes  commands=[...]   apply_many on this node, answered once all are
                             settled: per command {"ok": true} or
                             {"ok": false, "error": "LeadershipLostError"}
    read                     read_barrier(), then {"items": [...]}
    items                    {"items": [...]}: every command applied, in order
    stats                    node.stats()["forwarding"]
"""

import argparse
import json
import sys
import threading
from concurrent.futures import Future

import canonical_raft as raft
from canonical_raft.testing import procs


class Log(raft.FSM):
    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def apply(self, command):
        with self.lock:
            self.items.append(command.decode())
            return len(self.items)

    def snapshot(self):
        with self.lock:
            return json.dumps(self.items).encode()

    def restore(self, data):
        with self.lock:
            self.items = json.loads(bytes(data).decode())

    def copy(self):
        with self.lock:
            return list(self.items)


def settle_all(futures):
    """One Future for the outcomes of many (never blocks the serve loop)."""
    out = Future()
    outcomes = [None] * len(futures)
    left = [len(futures)]
    lock = threading.Lock()

    def done(i, f):
        try:
            f.result()
            outcome = {"ok": True}
        except Exception as exc:
            outcome = {"ok": False, "error": type(exc).__name__}
        with lock:
            outcomes[i] = outcome
            left[0] -= 1
            last = left[0] == 0
        if last:
            out.set_result({"results": outcomes})

    if not futures:
        out.set_result({"results": []})
    for i, f in enumerate(futures):
        f.add_done_callback(lambda f, i=i: done(i, f))
    return out


def handlers(node, fsm):
    def status():
        leader = node.leader
        return {"state": node.state.name, "is_leader": node.is_leader,
                "leader": leader.id if leader else None, "count": len(fsm.items)}

    def writes(commands):
        return settle_all(node.apply_many([c.encode() for c in commands]))

    def read():
        out = Future()

        def done(f):
            try:
                f.result()
                out.set_result({"ok": True, "items": fsm.copy()})
            except Exception as exc:
                out.set_result({"ok": False, "error": type(exc).__name__})

        node.read_barrier().add_done_callback(done)
        return out

    return {"status": status, "writes": writes, "read": read,
            "items": lambda: {"items": fsm.copy()},
            "stats": lambda: node.stats()["forwarding"]}


def main():
    p = procs.node_arguments(argparse.ArgumentParser(), election_timeout=0.5,
                             heartbeat_timeout=0.05, snapshot_threshold=256,
                             snapshot_trailing=32)
    p.add_argument("--forward-timeout", type=float, default=5.0)
    args = p.parse_args()
    channel = procs.Child(f"node {args.id}")
    fsm = Log()
    node = raft.Node(args.id, args.address, args.data_dir, fsm, forward=True,
                     forward_timeout=args.forward_timeout, **procs.node_settings(args))
    procs.start_node(node, args)
    channel.serve_node(node.close, handlers(node, fsm), id=args.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
