"""One chaos node process: a raft node replicating a key-value store.

    python -m chaos.node --id 1 --address HOST:PORT --data-dir DIR \
        [--bootstrap 1=HOST:PORT,2=...] [--election-timeout S] ...

The harness drives it over its stdin and stdout, one JSON object per line
(pipes work across network namespaces, unlike a TCP control port). Every
request carries a "seq" that its reply repeats; replies come in completion
order, not request order. Events (no "seq") are sent as they happen:

    {"event": "started", "pid": P, "t": T}
    {"event": "state", "state": "LEADER", "term": 3, "leader": 1, "t": T}
    {"event": "restore", "count": N, "at_start": false, "t": T}

Requests ("op"):

    write   k v id [pad]    -> {"ok": true} | {"ok": false, "error": NAME, "leader": ID}
                               (pad: that many bytes of ballast in the log entry)
    cas     k e n id [pad]  -> {"ok": true, "out": [true] | [false, current]} | error
    read    k               -> barrier, then this node's value: {"ok": true, "value": V}
    status                  -> state, term, leader, count, digest, indexes, configuration
    final                   -> count, digest, applied op ids, data, digest history
    add id address [voter]  /  remove id  /  transfer [id]   -> cluster operations
    close                   -> closes the node, replies, exits 0

Times are time.monotonic() (one clock for every process of the machine).
"""

import argparse
import hashlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time

import canonical_raft as raft

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
    def __init__(self, args):
        self.args = args
        self.out = queue.Queue()
        # The protocol gets a private copy of stdout; fd 1 goes to the log,
        # so that nothing else printed (C code included) corrupts it.
        self.stream = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        self.writer = threading.Thread(target=self._write, name="writer", daemon=True)
        self.writer.start()
        self.started = False
        self.fsm = KV(on_restore=self._restored)
        self.node = raft.Node(args.id, args.address, args.data_dir, self.fsm,
                              election_timeout=args.election_timeout,
                              heartbeat_timeout=args.heartbeat_timeout,
                              snapshot_threshold=args.snapshot_threshold,
                              snapshot_trailing=args.snapshot_trailing,
                              **json.loads(args.tuning))
        self.node.on_state_change(self._state_changed)

    # -- output ---------------------------------------------------------------

    def send(self, msg):
        self.out.put(msg)

    def _write(self):
        while True:
            msg = self.out.get()
            if msg is None:
                break
            try:
                self.stream.write(json.dumps(msg, separators=(",", ":")) + "\n")
                if self.out.empty():
                    self.stream.flush()
            except (OSError, ValueError):
                return          # the harness went away

    def flush(self):
        self.out.put(None)
        self.writer.join(10)
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass

    # -- callbacks (raft thread) ------------------------------------------------

    def _state_changed(self, node):
        stats = node.stats()
        self.send({"event": "state", "state": stats["state"].name, "term": stats["term"],
                   "leader": stats["leader_id"] or None, "t": time.monotonic()})

    def _restored(self, count):
        self.send({"event": "restore", "count": count, "at_start": not self.started,
                   "t": time.monotonic()})

    # -- requests -----------------------------------------------------------------

    @staticmethod
    def _error(exc):
        leader = getattr(exc, "leader", None)
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)[:200],
                "leader": leader.id if leader is not None else None}

    def _reply_when_done(self, seq, fut, value=lambda result: {}):
        def done(f):
            exc = f.exception()
            if exc is not None:
                msg = self._error(exc)
            else:
                try:
                    msg = dict(value(f.result()), ok=True)
                except Exception as e:     # never let a callback raise on the raft thread
                    msg = self._error(e)
            msg["seq"] = seq
            msg["t"] = time.monotonic()
            self.send(msg)
        fut.add_done_callback(done)

    def _command(self, c, pad=0):
        if pad:
            c["p"] = "x" * pad         # ballast: only makes the log entry bigger
        return json.dumps(c, separators=(",", ":")).encode()

    def handle(self, req):
        seq, op = req.get("seq"), req.get("op")
        if op == "write":
            fut = self.node.apply(self._command({"id": req["id"], "f": "w", "k": req["k"],
                                                 "v": req["v"]}, req.get("pad", 0)))
            self._reply_when_done(seq, fut)
        elif op == "cas":
            fut = self.node.apply(self._command({"id": req["id"], "f": "cas", "k": req["k"],
                                                 "e": req["e"], "n": req["n"]},
                                                req.get("pad", 0)))
            self._reply_when_done(seq, fut, lambda out: {"out": out})
        elif op == "noop":
            fut = self.node.apply(self._command({"id": req.get("id"), "f": "noop"}))
            self._reply_when_done(seq, fut)
        elif op == "read" and self.args.unsafe_reads:
            # Harness self-test only: the local value, no barrier (stale on
            # followers and on deposed leaders).
            self.send({"seq": seq, "ok": True, "value": self.fsm.data.get(req["k"]),
                       "t": time.monotonic()})
        elif op == "read":
            key = req["k"]
            # Runs on the raft thread the moment the barrier is applied:
            # the value is the state at that point, which is in the read's
            # interval.
            self._reply_when_done(seq, self.node.barrier(),
                                  lambda _: {"value": self.fsm.data.get(key)})
        elif op == "status":
            self.send(dict(self.status(), seq=seq, ok=True))
        elif op == "final":
            fsm = self.fsm
            self.send({"seq": seq, "ok": True, "count": fsm.count, "digest": fsm.digest_short(),
                       "ids": list(fsm.ids), "data": dict(fsm.data),
                       "history": {str(k): v for k, v in fsm.history.items()},
                       "status": self.status()})
        elif op == "add":
            role = raft.Role[req.get("role", "VOTER")]
            self._reply_when_done(seq, self.node.add(req["id"], req["address"], role))
        elif op == "remove":
            self._reply_when_done(seq, self.node.remove(req["id"]))
        elif op == "transfer":
            self._reply_when_done(seq, self.node.transfer(req.get("id", 0)),
                                  lambda s: {"leader": s.id if s else None})
        elif op == "close":
            return False
        else:
            self.send({"seq": seq, "ok": False, "error": "BadRequest", "message": repr(op)})
        return True

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
                    self.send({"event": "node_error", "error": error, "t": time.monotonic()})
                last = error

    def status(self):
        stats = self.node.stats()
        return {"state": stats["state"].name, "term": stats["term"],
                "leader": stats["leader_id"] or None, "is_leader": self.node.is_leader,
                "count": self.fsm.count, "digest": self.fsm.digest_short(),
                "commit_index": stats["commit_index"], "last_applied": stats["last_applied"],
                "last_index": stats["last_index"], "snapshot_index": stats["snapshot_index"],
                "error": stats["error"], "pid": os.getpid(),
                "configuration": [[s.id, s.address, s.role.name]
                                  for s in self.node.configuration]}

    def serve(self):
        if self.args.bootstrap:
            servers = []
            for item in self.args.bootstrap.split(","):
                i, address = item.split("=", 1)
                servers.append(raft.Server(int(i), address))
            self.node.bootstrap(servers)
        self.node.start()
        self.started = True
        self.send({"event": "started", "pid": os.getpid(), "id": self.args.id,
                   "t": time.monotonic()})
        threading.Thread(target=self._watch_errors, daemon=True, name="errors").start()
        try:
            for line in sys.stdin:
                if not line.strip():
                    continue
                try:
                    req = json.loads(line)
                except ValueError:
                    continue
                try:
                    if not self.handle(req):
                        break
                except Exception as exc:
                    self.send(dict(self._error(exc), seq=req.get("seq")))
        finally:
            # "close", SIGTERM, or stdin closed (the harness is gone): stop cleanly.
            self.node.close()
            self.send({"event": "closed", "t": time.monotonic()})
            self.flush()


def _terminate(signum, frame):
    raise SystemExit(0)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m chaos.node")
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--bootstrap", default="")
    p.add_argument("--election-timeout", type=float, default=1.0)
    p.add_argument("--heartbeat-timeout", type=float, default=0.1)
    p.add_argument("--snapshot-threshold", type=int, default=512)
    p.add_argument("--snapshot-trailing", type=int, default=64)
    p.add_argument("--tuning", default="{}", help="other Node() knobs, as a JSON object")
    p.add_argument("--unsafe-reads", action="store_true",
                   help="harness self-test: reads skip the barrier (not linearizable)")
    args = p.parse_args(argv)

    # The harness owns Ctrl-C; SIGTERM means close cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)

    import faulthandler
    faulthandler.enable()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"node {args.id} %(asctime)s %(name)s %(levelname)s %(message)s")
    server = Server(args)
    try:
        server.serve()
    except raft.RaftError as exc:
        # A start failure (say, the disk is full): say so, exit non-zero.
        server.send({"event": "error", "error": type(exc).__name__, "message": str(exc)})
        server.flush()
        server.node.close()
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
