"""One raft node in its own process, for the multi-process tests.

    python node_proc.py --id 1 --address 127.0.0.1:P --data-dir D \
        [--bootstrap 1=127.0.0.1:P1,2=127.0.0.1:P2,...] [--election-timeout S] [--heartbeat-timeout S]

Reads one JSON request per line on stdin and writes one JSON reply per line on
stdout (every reply carries the request's "seq"). Requests:

    {"op": "status"}                               state, leader, is_leader, stats, count
    {"op": "apply", "commands": ["a", "b"], "timeout": 10}
                                                   per command: {"ok": true, "result": n}
                                                   or {"ok": false, "error": "NotLeaderError"}
    {"op": "barrier", "timeout": 10}
    {"op": "items"}                                every command applied so far, in order
    {"op": "close"}                                closes the node and exits
"""

import argparse
import json
import os
import signal
import sys

import canonical_raft as raft


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


def reply(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    p = argparse.ArgumentParser()
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--bootstrap", default="")
    p.add_argument("--election-timeout", type=float, default=0.5)
    p.add_argument("--heartbeat-timeout", type=float, default=0.05)
    p.add_argument("--snapshot-threshold", type=int, default=64)
    p.add_argument("--snapshot-trailing", type=int, default=16)
    args = p.parse_args()

    fsm = Log()
    node = raft.Node(args.id, args.address, args.data_dir, fsm,
                     election_timeout=args.election_timeout,
                     heartbeat_timeout=args.heartbeat_timeout,
                     snapshot_threshold=args.snapshot_threshold,
                     snapshot_trailing=args.snapshot_trailing)
    try:
        if args.bootstrap:
            servers = []
            for item in args.bootstrap.split(","):
                id, address = item.split("=", 1)
                servers.append(raft.Server(int(id), address))
            node.bootstrap(servers)
        node.start()
        reply({"event": "started", "pid": os.getpid(), "id": args.id})
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            seq, op = req.get("seq"), req["op"]
            try:
                if op == "status":
                    leader = node.leader
                    stats = node.stats()
                    reply({"seq": seq, "state": node.state.name, "is_leader": node.is_leader,
                           "leader": leader.id if leader else None, "count": len(fsm.items),
                           "term": stats["term"], "commit_index": stats["commit_index"]})
                elif op == "apply":
                    futures = node.apply_many([c.encode() for c in req["commands"]])
                    out = []
                    for f in futures:
                        try:
                            out.append({"ok": True, "result": f.result(timeout=req.get("timeout", 10))})
                        except Exception as e:
                            out.append({"ok": False, "error": type(e).__name__, "message": str(e)})
                    reply({"seq": seq, "results": out})
                elif op == "barrier":
                    node.barrier().result(timeout=req.get("timeout", 10))
                    reply({"seq": seq, "ok": True})
                elif op == "items":
                    reply({"seq": seq, "items": list(fsm.items)})
                elif op == "close":
                    node.close()
                    reply({"seq": seq, "ok": True})
                    return 0
                else:
                    reply({"seq": seq, "error": "BadRequest", "message": op})
            except Exception as e:
                reply({"seq": seq, "error": type(e).__name__, "message": str(e)})
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
