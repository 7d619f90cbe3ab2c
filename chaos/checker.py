"""A linearizability checker for histories of a key-value store of registers.

Each key is an independent register (P-compositionality: a history is
linearizable iff its restriction to every key is), with three operations:

    write(v)                      -> nothing
    read()                        -> v            (None: never written)
    cas(expected, new)            -> [True]                 it swapped
                                  -> [False, current]       it did not; current is what it saw
                                  -> [False]                it did not (current not reported)

Every operation has an invocation time and, unless its outcome is unknown,
a completion time. Its status is

    "ok"       it happened, at one instant within [invoke, complete], with that output;
    "fail"     it certainly did not happen (e.g. NotLeaderError): ignored;
    "unknown"  it may or may not have happened; if it did, at one instant
               after invoke (any time later, possibly after everything else),
               and its output is unknown.

The search is Wing & Gong's, with Lowe's memoisation (as in Horn & Kroening's
"Faster linearizability checking via P-compositionality" and porcupine):
depth-first, linearizing any operation whose call precedes the earliest
pending return, caching the (set of linearized operations, register value)
pairs already explored so that no configuration is explored twice. A time
budget bounds the search; a key that exceeds it gets the verdict "timeout"
(neither proven linearizable nor refuted).

Before the search, operations that cannot matter are removed, each removal
exact (the history is linearizable with them iff without them):

- failed operations and reads with an unknown outcome (a read changes nothing);
- unknown writes and CASes whose new value nobody ever observed (no read
  returned it, no failed CAS reported it as current, no CAS expected it),
  provided every failed CAS reports what it saw. Such an operation, if it
  happened, must have been overwritten before anyone looked, so leaving it
  out explains the history just as well. Without this, every operation lost
  in a crash would double the search space for the rest of the history.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
READ, WRITE, CAS = "read", "write", "cas"

_NO_CUR = object()        # a failed CAS that did not say what it saw


@dataclass
class Op:
    """One operation of a history (see the module docstring)."""
    key: Any
    f: str                       # "read" | "write" | "cas"
    arg: Any = None              # write: value; cas: [expected, new]; read: None
    out: Any = None              # read: value; cas: [True] / [False, cur] / [False]
    invoke: float = 0.0
    complete: Optional[float] = None   # None when the outcome is unknown
    status: str = OK             # "ok" | "fail" | "unknown"
    process: Any = None          # who issued it (informational)
    id: Any = None               # an identifier (informational)
    error: Any = None            # why it failed or is unknown (informational)
    node: Any = None             # the node that was asked (informational)

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, d):
        return cls(**d)

    def describe(self):
        if self.f == WRITE:
            what = f"write({self.arg!r})"
        elif self.f == READ:
            what = f"read() -> {self.out!r}" if self.status == OK else "read() -> ?"
        else:
            e, n = self.arg
            what = f"cas({e!r}, {n!r})" + (f" -> {self.out!r}" if self.status == OK else " -> ?")
        end = f"{self.complete:.6f}" if self.complete is not None and self.status == OK else "?"
        return (f"op {self.id} [{self.process}] {self.key!r} {what} {self.status} "
                f"[{self.invoke:.6f}, {end}]")


@dataclass
class KeyResult:
    key: Any
    verdict: str                 # "ok" | "violation" | "timeout"
    ops: int                     # operations searched (after the reductions)
    dropped: int                 # operations removed before the search
    explored: int                # configurations explored
    seconds: float
    detail: str = ""             # for a violation: where it could not go on


@dataclass
class CheckResult:
    verdict: str                 # "ok" | "violation" | "timeout"
    keys: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def valid(self):
        """True (linearizable), False (not), None (budget exhausted)."""
        return {"ok": True, "violation": False}.get(self.verdict)

    def summary(self):
        bad = [k for k in self.keys if k.verdict != "ok"]
        if not bad:
            return f"linearizable ({len(self.keys)} keys, {self.seconds:.2f}s)"
        return "; ".join(f"key {k.key!r}: {k.verdict}" + (f" ({k.detail})" if k.detail else "")
                         for k in bad)


# -- the model: a register ----------------------------------------------------

def _step(state, op):
    """(allowed, new state) of linearizing ``op`` at ``state``."""
    f = op.f
    if f == WRITE:
        return True, op.arg
    if f == READ:
        return state == op.out, state
    expected, new = op.arg
    if op.status == UNKNOWN:
        return True, (new if state == expected else state)
    out = op.out
    if out[0]:
        return state == expected, new
    if state == expected:
        return False, state
    if len(out) > 1 and out[1] != state:
        return False, state
    return True, state


def _validate(op):
    if op.f not in (READ, WRITE, CAS):
        raise ValueError(f"unknown operation {op.f!r} in {op!r}")
    if op.status not in (OK, FAIL, UNKNOWN):
        raise ValueError(f"unknown status {op.status!r} in {op!r}")
    if op.f == CAS:
        if not isinstance(op.arg, (list, tuple)) or len(op.arg) != 2:
            raise ValueError(f"cas needs arg [expected, new]: {op!r}")
        if op.status == OK and (not isinstance(op.out, (list, tuple)) or not op.out
                                or not isinstance(op.out[0], bool) or len(op.out) > 2
                                or (op.out[0] and len(op.out) != 1)):
            raise ValueError(f"cas needs out [True], [False] or [False, current]: {op!r}")
    if op.status == OK:
        if op.complete is None:
            raise ValueError(f"an ok operation needs a completion time: {op!r}")
        if op.complete < op.invoke:
            raise ValueError(f"operation completes before it is invoked: {op!r}")


def _hashable(v):
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def _normalise(op):
    """A copy whose values are hashable (JSON gives lists)."""
    arg, out = op.arg, op.out
    if op.f == CAS:
        arg = (_hashable(arg[0]), _hashable(arg[1]))
        if out is not None:
            out = tuple(_hashable(x) for x in out)
    else:
        arg, out = _hashable(arg), _hashable(out)
    return Op(op.key, op.f, arg, out, op.invoke, op.complete, op.status, op.process, op.id,
              op.error, op.node)


def reduce_ops(ops):
    """The operations of one key that the search must consider; and how many
    were dropped. Exact reductions only (see the module docstring)."""
    kept = [op for op in ops if op.status != FAIL and not (op.status == UNKNOWN and op.f == READ)]
    observing = all(len(op.out) > 1 for op in kept
                    if op.f == CAS and op.status == OK and not op.out[0])
    if observing:
        while True:
            observed = set()
            for op in kept:
                if op.f == READ:
                    observed.add(op.out)
                elif op.f == CAS:
                    observed.add(op.arg[0])
                    if op.status == OK and not op.out[0]:
                        observed.add(op.out[1])
            keep = [op for op in kept if op.status != UNKNOWN or
                    (op.arg if op.f == WRITE else op.arg[1]) in observed]
            if len(keep) == len(kept):
                break
            kept = keep
    return kept, len(ops) - len(kept)


# -- the search -------------------------------------------------------------

class _Entry:
    __slots__ = ("op", "idx", "call", "match", "prev", "next", "time")

    def __init__(self, op, idx, call, t):
        self.op = op
        self.idx = idx
        self.call = call
        self.time = t
        self.match = self.prev = self.next = None


def _lift(e):
    e.prev.next = e.next
    if e.next is not None:
        e.next.prev = e.prev
    m = e.match
    m.prev.next = m.next
    if m.next is not None:
        m.next.prev = m.prev


def _unlift(e):
    m = e.match
    m.prev.next = m
    if m.next is not None:
        m.next.prev = m
    e.prev.next = e
    if e.next is not None:
        e.next.prev = e


def check_key(ops, initial=None, deadline=None, key=None):
    """Check the operations of one key; returns a KeyResult."""
    started = time.monotonic()
    for op in ops:
        _validate(op)
    ops = [_normalise(op) for op in ops]
    kept, dropped = reduce_ops(ops)
    n = len(kept)
    entries = []
    for i, op in enumerate(kept):
        call = _Entry(op, i, True, op.invoke)
        ret = _Entry(op, i, False, op.complete if op.status == OK else math.inf)
        call.match, ret.match = ret, call
        entries += (call, ret)
    # At equal times calls come first: touching intervals count as concurrent.
    entries.sort(key=lambda e: (e.time, 0 if e.call else 1))
    head = _Entry(None, -1, True, -math.inf)
    prev = head
    for e in entries:
        prev.next, e.prev = e, prev
        prev = e

    state = _hashable(initial)
    linearized = 0
    remaining = sum(1 for op in kept if op.status == OK)
    stack = []
    cache = set()
    explored = 0
    best_depth, best = -1, None
    entry = head.next
    while remaining:
        explored += 1
        if deadline is not None and not explored & 1023 and time.monotonic() > deadline:
            return KeyResult(key, "timeout", n, dropped, explored,
                             time.monotonic() - started,
                             f"budget exhausted after {explored} configurations")
        if entry.call:
            op = entry.op
            allowed, new_state = _step(state, op)
            if allowed:
                new_lin = linearized | (1 << entry.idx)
                memo = (new_lin, new_state)
                if memo not in cache:
                    cache.add(memo)
                    stack.append((entry, state))
                    state, linearized = new_state, new_lin
                    if op.status == OK:
                        remaining -= 1
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # An operation that had to be linearized by now could not be.
            if len(stack) > best_depth:
                best_depth = len(stack)
                best = (entry.op, state, [e.op for e, _ in stack[-8:]], _pending(head, entry))
            if not stack:
                break
            e, state = stack.pop()
            linearized &= ~(1 << e.idx)
            if e.op.status == OK:
                remaining += 1
            _unlift(e)
            entry = e.next
    elapsed = time.monotonic() - started
    if not remaining:
        return KeyResult(key, "ok", n, dropped, explored, elapsed)
    stuck, value, before, concurrent = best
    lines = [f"cannot linearize {stuck.describe()} when the value is {value!r}"]
    if before:
        lines.append("after: " + "; ".join(op.describe() for op in before))
    if concurrent:
        lines.append("concurrent with: " + "; ".join(op.describe() for op in concurrent[:8]))
    return KeyResult(key, "violation", n, dropped, explored, elapsed, " | ".join(lines))


def _pending(head, stop):
    """The operations whose calls precede ``stop`` in the list (the candidates)."""
    out = []
    e = head.next
    while e is not None and e is not stop:
        if e.call:
            out.append(e.op)
        e = e.next
    return out


def check(ops, budget=30.0, initial=None):
    """Check a whole history (any iterable of Op), key by key, within
    ``budget`` seconds in all. Returns a CheckResult."""
    started = time.monotonic()
    by_key = {}
    for op in ops:
        by_key.setdefault(_hashable(op.key), []).append(op)
    # Small keys first: a hard key cannot starve the easy ones.
    order = sorted(by_key, key=lambda k: (len(by_key[k]), repr(k)))
    results = []
    for i, key in enumerate(order):
        now = time.monotonic()
        left = budget - (now - started)
        share = max(left, 0.0) / (len(order) - i)
        results.append(check_key(by_key[key], initial, now + share, key))
    verdicts = {r.verdict for r in results}
    verdict = "violation" if "violation" in verdicts else (
        "timeout" if "timeout" in verdicts else "ok")
    return CheckResult(verdict, sorted(results, key=lambda r: repr(r.key)),
                       time.monotonic() - started)


def load_history(path):
    """Ops from a JSON-lines file (one Op per line, as Op.to_json writes)."""
    with open(path) as f:
        return [Op.from_json(json.loads(line)) for line in f if line.strip()]


def save_history(ops, path):
    with open(path, "w") as f:
        for op in ops:
            f.write(json.dumps(op.to_json(), default=str) + "\n")
