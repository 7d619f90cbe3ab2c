"""Clients: writes, reads (barrier on the leader) and compare-and-set on a
handful of keys, each operation recorded with its interval and outcome.
With anywhere=True (the any-node scenarios) a client sends everything to a
node picked at random among the live ones, not to the leader, and moves
to another now and then, and whenever its node fails it.

Outcomes, from the reply of the node the client asked:

    ok        the node said so (a read: through a barrier on the leader)
    fail      NotLeaderError: the node refused it, nothing was applied
    unknown   anything else: LeadershipLostError, ShutdownError, another
              RaftError, the node died, or no reply within the timeout

A reply that arrives after the client gave up on it still counts: the
operation becomes ok (or fail) with that reply's time as its completion.
"""

import itertools
import random
import threading
import time

from .checker import CAS, FAIL, OK, READ, UNKNOWN, WRITE, Op
from .cluster import NodeGone, NodeTimeout


class History:
    """Every operation of a run, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []
        self.ids = itertools.count(1)
        self.last_ok = 0.0

    def invoke(self, process, key, f, arg=None):
        op = Op(key, f, arg, None, time.monotonic(), None, UNKNOWN, process, next(self.ids))
        with self.lock:
            self.ops.append(op)
        return op

    def complete(self, op, status, out=None, t=None, error=None):
        t = time.monotonic() if t is None else t
        with self.lock:
            op.status = status
            op.out = out
            op.error = error
            op.complete = t if status != UNKNOWN else None
            if status == OK and t > self.last_ok:
                self.last_ok = t

    def first_ok_after(self, t):
        """The earliest completion time of an ok operation invoked or
        completed after t; None if there is none yet."""
        best = None
        with self.lock:
            for op in reversed(self.ops):
                if op.invoke < t - 120:
                    break
                if op.status == OK and op.complete is not None and op.complete >= t:
                    if best is None or op.complete < best:
                        best = op.complete
        return best

    def snapshot(self):
        with self.lock:
            return [Op(**vars(op)) for op in self.ops]

    def errors(self):
        """{(node, error): count} over the operations that did not succeed."""
        out = {}
        with self.lock:
            for op in self.ops:
                if op.status != OK and op.error:
                    k = (op.node, op.error)
                    out[k] = out.get(k, 0) + 1
        return out

    def counts(self):
        with self.lock:
            out = {OK: 0, FAIL: 0, UNKNOWN: 0}
            for op in self.ops:
                out[op.status] += 1
            return out


def _outcome(reply):
    """(status, error) of a node's reply."""
    if reply.get("ok"):
        return OK, None
    error = f"{reply.get('error')}: {reply.get('message', '')}"[:120]
    if reply.get("error") == "NotLeaderError":
        return FAIL, error
    return UNKNOWN, error


class Workload:
    """``clients`` threads, ``rate`` operations per second in all."""

    MOVE = 0.1          # anywhere: the chance a client moves to another node per operation

    def __init__(self, cluster, history, *, keys=5, clients=10, rate=150.0, op_timeout=2.0,
                 read_ratio=0.4, cas_ratio=0.2, pad=0, reads_anywhere=False,
                 anywhere=False, seed=0):
        self.cluster = cluster
        self.history = history
        self.keys = [f"k{i}" for i in range(keys)]
        self.clients = clients
        self.rate = rate
        self.op_timeout = op_timeout
        self.read_ratio = read_ratio
        self.cas_ratio = cas_ratio
        self.pad = pad
        self.reads_anywhere = reads_anywhere
        self.anywhere = anywhere
        self.seed = seed
        self.stop_event = threading.Event()
        self.threads = []
        self.errors = []

    def start(self):
        for c in range(self.clients):
            t = threading.Thread(target=self._client, args=(c,), daemon=True, name=f"client{c}")
            self.threads.append(t)
            t.start()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(self.op_timeout + 10)
        return not any(t.is_alive() for t in self.threads)

    # -- one client ----------------------------------------------------------------

    def _client(self, c):
        rng = random.Random(self.seed * 1000 + c)
        period = self.clients / self.rate
        seen = {}                       # key -> last value this client saw
        target = None
        next_at = time.monotonic() + rng.random() * period
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if next_at > now:
                    if self.stop_event.wait(next_at - now):
                        break
                next_at = max(next_at + period, time.monotonic() - 1.0)
                if self.anywhere and rng.random() < self.MOVE:
                    target = None
                if target is None or not self.cluster.alive(target) or \
                        target not in self.cluster.members:
                    target = self._pick(rng)
                    if target is None:
                        continue
                key = rng.choice(self.keys)
                x = rng.random()
                if x < self.read_ratio and self.reads_anywhere:
                    live = self.cluster.live_members()
                    if live:
                        self.read(c, rng.choice(live), key, seen)
                elif x < self.read_ratio:
                    target = self.read(c, target, key, seen)
                elif x < self.read_ratio + self.cas_ratio:
                    expected = seen.get(key) if rng.random() < 0.8 else None
                    target = self.cas(c, target, key, expected, seen)
                else:
                    target = self.write(c, target, key, seen)
        except Exception as e:          # a harness bug: report it, do not hang
            self.errors.append(f"client {c}: {e!r}")
            raise

    def _pick(self, rng):
        if self.anywhere:
            live = self.cluster.live_members()
            return rng.choice(live) if live else None
        guess = self.cluster.guess_leader()
        if guess is not None:
            return guess
        live = self.cluster.live_members()
        return rng.choice(live) if live else None

    def _call(self, target, op, process, f, key, arg, out_of, **kw):
        """Run one read on node ``target``; returns the node to use next."""
        rec = self.history.invoke(process, key, f, arg)
        return self._run(target, rec, op, key, out_of, None, kw)

    def _run(self, target, rec, op, key, out_of, on_ok, kw):
        """Send the operation ``rec`` (already invoked) to node ``target``
        and record how it ended; ``on_ok(out)`` after a success. Returns
        the node to use next."""
        rec.node = target
        node = self.cluster.nodes.get(target)
        if node is None:
            self.history.complete(rec, FAIL)
            return None
        pend = node.submit(op, k=key, **kw)
        try:
            reply = node.wait(pend, self.op_timeout)
        except NodeTimeout:
            # Keep listening: a late reply still tells us what happened.
            self.history.complete(rec, UNKNOWN, error="timeout")
            pend.add_done_callback(lambda p: self._late(rec, p, out_of))
            return None
        except NodeGone:
            self.history.complete(rec, UNKNOWN, error="node died")
            return None
        status, error = _outcome(reply)
        if status == OK:
            out = out_of(reply)
            self.history.complete(rec, OK, out, reply.get("t"))
            if on_ok is not None:
                on_ok(out)
            return target
        self.history.complete(rec, status, error=error)
        return self._next_target(status, reply, target)

    def _late(self, rec, pend, out_of):
        if pend.exception() is not None:    # gone (or a protocol error): still unknown
            return
        reply = pend.result()
        status, error = _outcome(reply)
        if status == OK:
            self.history.complete(rec, OK, out_of(reply), reply.get("t"))
        else:
            self.history.complete(rec, status, error=f"late {error}")

    def read(self, c, target, key, seen):
        box = {}

        def out_of(reply):
            box["v"] = reply.get("value")
            return reply.get("value")
        nxt = self._call(target, "read", c, READ, key, None, out_of)
        if "v" in box:
            seen[key] = box["v"]
        return nxt

    def write(self, c, target, key, seen):
        # The value written is the operation's own id: unique across the run.
        rec = self.history.invoke(c, key, WRITE, None)
        rec.arg = rec.id
        return self._finish(target, rec, "write", key, seen, dict(v=rec.id))

    def cas(self, c, target, key, expected, seen):
        rec = self.history.invoke(c, key, CAS, None)
        rec.arg = [expected, rec.id]
        return self._finish(target, rec, "cas", key, seen, dict(e=expected, n=rec.id))

    def _finish(self, target, rec, op, key, seen, kw):
        """Send a write or CAS; on success remember the key's new value."""
        kw["id"] = rec.id
        if self.pad:
            kw["pad"] = self.pad

        def out_of(reply):
            return [bool(x) if i == 0 else x for i, x in enumerate(reply["out"])] \
                if op == "cas" else None

        def on_ok(out):
            if op == "write":
                seen[key] = rec.id
            elif out[0]:
                seen[key] = rec.arg[1]
            else:
                seen[key] = out[1]

        return self._run(target, rec, op, key, out_of, on_ok, kw)

    def _next_target(self, status, reply, target):
        """Where to go after a refusal: the leader the node named (unless
        anywhere), else any other live member (not the same node again)."""
        if status == FAIL and not self.anywhere:
            hint = reply.get("leader")
            if hint and hint != target:
                return hint
        others = [i for i in self.cluster.live_members() if i != target]
        return random.choice(others) if others else None

    # -- after the faults ------------------------------------------------------------

    def final_reads(self, timeout=30.0):
        """Read every key through the leader once all is healed (recorded in
        the history as process "final"); returns {key: value} of those read."""
        values = {}
        deadline = time.monotonic() + timeout
        for key in self.keys:
            while key not in values and time.monotonic() < deadline:
                lead = self.cluster.guess_leader() or self.cluster.leader()
                if lead is None:
                    time.sleep(0.2)
                    continue
                box = {}

                def out_of(reply, box=box):
                    box["v"] = reply.get("value")
                    return reply.get("value")
                self._call(lead, "read", "final", READ, key, None, out_of)
                if "v" in box:
                    values[key] = box["v"]
                else:
                    time.sleep(0.2)
        return values
