"""One raft node in its own process, for the multi-process tests.

    python node_proc.py --id 1 --address 127.0.0.1:P --data-dir D \
        [--bootstrap 1=127.0.0.1:P1,2=127.0.0.1:P2,...] [--election-timeout S] [--heartbeat-timeout S]

Driven with canonical_raft.testing.procs (JSON lines on stdin/stdout; a
"ready" event with the pid once started). Commands:

    status                          state, leader, is_leader, count, term, commit_index
    apply  commands=[...] timeout   per command: {"ok": true, "result": n}
                                    or {"ok": false, "error": "NotLeaderError"}
    barrier timeout                 {"ok": true}
    items                           every command applied so far, in order
    close                           closes the node and exits
"""

import argparse
import json
import sys

import canonical_raft as raft
from canonical_raft.testing import procs


class Log(raft.FSM):
    def __init__(self):
        self.items = []

    def apply(self, command):
        self.items.append(command.decode())
        return len(self.items)

    def snapshot(self):
        return json.dumps(self.items).encode()

    def restore(self, data):
        self.items = json.loads(bytes(data).decode())


def handlers(node, fsm):
    def status():
        leader = node.leader
        stats = node.stats()
        return {"state": node.state.name, "is_leader": node.is_leader,
                "leader": leader.id if leader else None, "count": len(fsm.items),
                "term": stats["term"], "commit_index": stats["commit_index"]}

    def apply(commands, timeout=10):
        out = []
        for f in node.apply_many([c.encode() for c in commands]):
            try:
                out.append({"ok": True, "result": f.result(timeout=timeout)})
            except Exception as e:
                out.append({"ok": False, "error": type(e).__name__, "message": str(e)})
        return {"results": out}

    def barrier(timeout=10):
        node.barrier().result(timeout=timeout)
        return {"ok": True}

    def close():
        node.close()
        return {"ok": True}

    return {"status": status, "apply": apply, "barrier": barrier,
            "items": lambda: {"items": list(fsm.items)}, "close": close}


def main():
    p = procs.node_arguments(argparse.ArgumentParser(), election_timeout=0.5, heartbeat_timeout=0.05,
                             snapshot_threshold=64, snapshot_trailing=16)
    args = p.parse_args()
    channel = procs.Child(f"node {args.id}")
    fsm = Log()
    node = raft.Node(args.id, args.address, args.data_dir, fsm, **procs.node_settings(args))
    procs.start_node(node, args)
    channel.serve_node(node.close, handlers(node, fsm), id=args.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
