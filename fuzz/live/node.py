"""One node process of the live fuzzer's cluster.

    python -m fuzz.live.node --id 1 --address 127.0.0.1:P --data-dir D \
        [--bootstrap 1=...,2=...] [--tls-dir DIR]

Driven with canonical_raft.testing.procs. Commands:

    status          state, term, leader, count (commands applied), refused
                    (stats()["refused"]), commit_index, last_applied
    write command   apply one command here; {"ok": true, "result": n} or
                    {"ok": false, "error": NAME}
    transfer id     leadership transfer; {"ok": true, "leader": id}
    close           closes the node and exits
"""

import argparse
import sys
from concurrent.futures import Future

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM, procs


def handlers(node, fsm):
    def status():
        s = node.stats()
        return {"state": s["state"].name, "term": s["term"], "leader": s["leader_id"] or None,
                "count": len(fsm.commands), "refused": s["refused"],
                "commit_index": s["commit_index"], "last_applied": s["last_applied"],
                "error": s["error"]}

    def finish(future, value):
        reply = Future()

        def done(f):
            exc = f.exception()
            reply.set_result({"ok": False, "error": type(exc).__name__} if exc is not None
                             else {"ok": True, **value(f.result())})
        future.add_done_callback(done)
        return reply

    def write(command):
        return finish(node.apply(command.encode()), lambda n: {"result": n})

    def transfer(id=0):
        return finish(node.transfer(id), lambda s: {"leader": s.id if s else None})

    return {"status": status, "write": write, "transfer": transfer}


def main(argv=None):
    p = procs.node_arguments(argparse.ArgumentParser(prog="python -m fuzz.live.node"),
                             election_timeout=1.0, heartbeat_timeout=0.1,
                             snapshot_threshold=1024, snapshot_trailing=128)
    p.add_argument("--tls-dir", default=None)
    args = p.parse_args(argv)
    channel = procs.Child(f"node {args.id}")
    fsm = RecordingFSM()
    tls = raft.TLS.from_dir(args.tls_dir, args.id) if args.tls_dir else None
    node = raft.Node(args.id, args.address, args.data_dir, fsm, tls=tls,
                     **procs.node_settings(args))
    try:
        procs.start_node(node, args)
    except BaseException as exc:        # start_node closed the node
        channel.failed(exc)
        channel.flush()
        return 3
    channel.serve_node(node.close, handlers(node, fsm), id=args.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
