"""One chaos node process: a raft node replicating a key-value store.

    python -m chaos.node --id 1 --address HOST:PORT --data-dir DIR \
        [--bootstrap 1=HOST:PORT,2=...] [--election-timeout S] ...

The harness drives it with canonical_raft.testing.procs over its stdin and
stdout (pipes work across network namespaces, unlike a TCP control port);
replies come in completion order, not request order. Events, as they happen:

    ready {"pid": P, "id": I, "t": T}
    state {"state": "LEADER", "term": 3, "leader": 1, "t": T}
    restore {"count": N, "at_start": false, "t": T}
    node_error {"error": E, "t": T}     closed {"t": T}

Commands (a failure is a reply too: {"ok": false, "error": NAME, ...}):

    write   k v id [pad]    -> {"ok": true} | {"ok": false, "error": NAME, "leader": ID}
                               (pad: that many bytes of ballast in the log entry)
    cas     k e n id [pad]  -> {"ok": true, "out": [true] | [false, current]} | error
    read    k               -> barrier, then this node's value: {"ok": true, "value": V}
                               (--any-node: read_barrier() instead, on any node)
    status                  -> state, term, leader, count, digest, indexes, configuration,
                               tls (bool), refused (peer connections dropped, by reason)
    final                   -> count, digest, applied op ids, data, digest history
    add id address [voter]  /  remove id  /  transfer [id]   -> cluster operations
    close                   -> closes the node, replies, exits 0

Times are time.monotonic() (one clock for every process of the machine).
"""

import argparse
import functools
import hashlib
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import Future

import canonical_raft as raft
from canonical_raft.testing import procs

DIGEST_EVERY = 16        # the digest history keeps every 16th command count


class KV(raft.FSM):
    """The replicated state: registers, written by write and cas commands.

    Besides the data it keeps, as part of the state (so that snapshots
    carry them): the ids of every command applied, in order, their count,
    and a running digest (sha256 chained over the commands' bytes). The
    digest history (count -> digest) is kept in memory only.
    """

    def __init__(self, on_restore=None):
        self.data = {}
        self.ids = []
        self.count = 0
        self.digest = b"\0" * 32
        self.history = {}
        self.on_restore = on_restore

    def apply(self, command):
        c = json.loads(command)
        self.count += 1
        self.digest = hashlib.sha256(self.digest + bytes(command)).digest()
        if self.count % DIGEST_EVERY == 0:
            self.history[self.count] = self.digest.hex()[:16]
        self.ids.append(c.get("id"))
        f, k = c["f"], c.get("k")
        if f == "w":
            self.data[k] = c["v"]
            return None
        if f == "cas":
            cur = self.data.get(k)
            if cur == c["e"]:
                self.data[k] = c["n"]
                return [True]
            return [False, cur]
        if f == "noop":
            return None
        raise ValueError(f"unknown command {f!r}")

    def snapshot(self):
        return json.dumps({"data": self.data, "ids": self.ids, "count": self.count,
                           "digest": self.digest.hex()}, separators=(",", ":")).encode()

    def restore(self, data):
        s = json.loads(bytes(data))
        self.data = s["data"]
        self.ids = s["ids"]
        self.count = s["count"]
        self.digest = bytes.fromhex(s["digest"])
        self.history = {self.count: self.digest.hex()[:16]}
        if self.on_restore is not None:
            self.on_restore(self.count)

    def digest_short(self):
        return self.digest.hex()[:16]


class Server:
    """The node and its handlers (the commands above)."""

    def __init__(self, args, channel):
        self.args = args
        self.channel = channel
        self.started = False
        self.fsm = KV(on_restore=self._restored)
        # The scenarios' addresses live in private network namespaces of this
        # machine (chaos/net.py): plaintext there is insecure=True by choice.
        # --tls-dir (the +tls scenarios) runs the node with mutual TLS.
        security = ({"tls": raft.TLS.from_dir(args.tls_dir, args.id)} if args.tls_dir
                    else {"insecure": True})
        # --any-node: writes taken on any node (forwarded to the leader).
        forward = {"forward": True} if args.any_node else {}
        # python -m chaos --storage: every node's storage.
        storage = os.environ.get("CANONICAL_RAFT_STORAGE")
        self.node = raft.Node(args.id, args.address, args.data_dir, self.fsm,
                              **procs.node_settings(args), **json.loads(args.tuning),
                              **security, **forward,
                              **({"storage": storage} if storage else {}))
        self.node.on_state_change(self._state_changed)

    # -- callbacks (raft thread) ------------------------------------------------

    def _state_changed(self, node):
        stats = node.stats()
        self.channel.event("state", state=stats["state"].name, term=stats["term"],
                           leader=stats["leader_id"] or None, t=time.monotonic())

    def _restored(self, count):
        self.channel.event("restore", count=count, at_start=not self.started, t=time.monotonic())

    # -- requests -----------------------------------------------------------------

    @staticmethod
    def _error(exc):
        leader = getattr(exc, "leader", None)
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)[:200],
                "leader": leader.id if leader is not None else None}

    def _later(self, fut, value=lambda result: {}):
        """The reply once ``fut`` is done: value(result) with ok, or the error."""
        reply = Future()

        def done(f):
            exc = f.exception()
            if exc is not None:
                msg = self._error(exc)
            else:
                try:
                    msg = dict(value(f.result()), ok=True)
                except Exception as e:     # never let a callback raise on the raft thread
                    msg = self._error(e)
            msg["t"] = time.monotonic()
            reply.set_result(msg)
        fut.add_done_callback(done)
        return reply

    def _command(self, c, pad=0):
        if pad:
            c["p"] = "x" * pad         # ballast: only makes the log entry bigger
        return json.dumps(c, separators=(",", ":")).encode()

    def write(self, id, k, v, pad=0):
        return self._later(self.node.apply(self._command({"id": id, "f": "w", "k": k, "v": v}, pad)))

    def cas(self, id, k, e, n, pad=0):
        fut = self.node.apply(self._command({"id": id, "f": "cas", "k": k, "e": e, "n": n}, pad))
        return self._later(fut, lambda out: {"out": out})

    def noop(self, id=None):
        return self._later(self.node.apply(self._command({"id": id, "f": "noop"})))

    def read(self, k):
        if self.args.unsafe_reads:
            # Harness self-test only: the local value, no barrier (stale on
            # followers and on deposed leaders).
            return {"ok": True, "value": self.fsm.data.get(k), "t": time.monotonic()}
        # Runs on the raft thread the moment the barrier resolves: the value
        # is the state at that point, which is in the read's interval.
        barrier = self.node.read_barrier() if self.args.any_node else self.node.barrier()
        return self._later(barrier, lambda _: {"value": self.fsm.data.get(k)})

    def final(self):
        fsm = self.fsm
        return {"ok": True, "count": fsm.count, "digest": fsm.digest_short(),
                "ids": list(fsm.ids), "data": dict(fsm.data),
                "history": {str(k): v for k, v in fsm.history.items()},
                "status": self.status()}

    def add(self, id, address, role="VOTER"):
        return self._later(self.node.add(id, address, raft.Role[role]))

    def remove(self, id):
        return self._later(self.node.remove(id))

    def transfer(self, id=0):
        return self._later(self.node.transfer(id), lambda s: {"leader": s.id if s else None})

    def handlers(self):
        """Every command; a handler that raises replies with the error, like a failed future."""
        def safe(fn, **args):
            try:
                return fn(**args)
            except Exception as exc:
                return self._error(exc)
        commands = {"write": self.write, "cas": self.cas, "noop": self.noop, "read": self.read,
                    "status": lambda: dict(self.status(), ok=True), "final": self.final,
                    "add": self.add, "remove": self.remove, "transfer": self.transfer}
        return {name: functools.partial(safe, fn) for name, fn in commands.items()}

    def _watch_errors(self):
        """Log each new value of stats()["error"] (a full disk, say)."""
        last = None
        log = logging.getLogger("chaos.node")
        while True:
            time.sleep(0.2)
            try:
                error = self.node.stats()["error"]
            except Exception:
                return
            if error != last:
                if error:
                    log.warning("node error: %s", error)
                    self.channel.event("node_error", error=error, t=time.monotonic())
                last = error

    def status(self):
        stats = self.node.stats()
        return {"state": stats["state"].name, "term": stats["term"],
                "leader": stats["leader_id"] or None, "is_leader": self.node.is_leader,
                "count": self.fsm.count, "digest": self.fsm.digest_short(),
                "commit_index": stats["commit_index"], "last_applied": stats["last_applied"],
                "last_index": stats["last_index"], "snapshot_index": stats["snapshot_index"],
                "error": stats["error"], "pid": os.getpid(),
                "tls": self.node.tls is not None, "refused": stats["refused"],
                "forwarding": stats["forwarding"],
                "configuration": [[s.id, s.address, s.role.name]
                                  for s in self.node.configuration]}

    def serve(self):
        if self.args.bootstrap:
            self.node.bootstrap([raft.Server(*s) for s in procs.parse_servers(self.args.bootstrap)])
        self.node.start()
        self.started = True
        self.channel.ready(id=self.args.id, t=time.monotonic())
        threading.Thread(target=self._watch_errors, daemon=True, name="errors").start()
        try:
            self.channel.serve(self.handlers())
        finally:
            # "close", SIGTERM, or stdin closed (the harness is gone): stop cleanly.
            self.node.close()
            self.channel.event("closed", t=time.monotonic())
            self.channel.flush()


def main(argv=None):
    p = procs.node_arguments(argparse.ArgumentParser(prog="python -m chaos.node"),
                             election_timeout=1.0, heartbeat_timeout=0.1,
                             snapshot_threshold=512, snapshot_trailing=64)
    p.add_argument("--tuning", default="{}", help="other Node() knobs, as a JSON object")
    p.add_argument("--tls-dir", default=None,
                   help="node-<id>.crt/.key and ca.crt (python -m canonical_raft certs)")
    p.add_argument("--unsafe-reads", action="store_true",
                   help="harness self-test: reads skip the barrier (not linearizable)")
    p.add_argument("--any-node", action="store_true",
                   help="forward=True, and reads through read_barrier() (on any node)")
    args = p.parse_args(argv)
    channel = procs.Child(f"node {args.id}")   # the harness owns Ctrl-C; SIGTERM closes cleanly
    server = Server(args, channel)
    try:
        server.serve()
    except raft.RaftError as exc:
        # A start failure (say, the disk is full): say so, exit non-zero.
        channel.failed(exc)
        channel.flush()
        server.node.close()
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
