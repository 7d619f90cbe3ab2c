"""Forwarded applies and read barriers, against their plain counterparts, same run.

``python -m bench.forward`` starts three node processes (forward=True) on
127.0.0.1 with data directories on the real disk (under /var/tmp; --data-root
to choose) and measures, one row after another on the same cluster:

- ``apply leader``: applies on the leader, ``--window`` (64) in flight;
- ``apply forwarded``: the same load on a follower (each command goes to the
  leader over the forwarding channel and resolves when the follower applied
  it); the ratio forwarded / leader is the cost of taking writes anywhere
  (issue 14: >= 0.5);
- ``barrier per read``: ``--readers`` (64) concurrent readers on the leader,
  each ``barrier()`` (one log entry per read);
- ``read_barrier leader`` / ``read_barrier follower``: the same readers with
  ``read_barrier()`` (ReadIndex rounds shared by concurrent calls, no log
  write); the ratio to a barrier per read (issue 14: >= 10).

The load is a closed loop driven by done callbacks in the node process (the
shape of ``python -m bench --api callback``): every completion submits the
next, so ``--window`` stay in flight. ``--runs`` (3) repeats the rows; the
table shows medians and the per-run ratios' medians. Every node process is
stopped by its pid at the end; the data directories are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import Future

from canonical_raft.testing import free_ports, procs, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- the node process --------------------------------------------------------------


class Count:
    """The FSM: counts commands."""

    def __init__(self):
        self.n = 0

    def apply(self, command):
        self.n += 1
        return self.n

    def snapshot(self):
        return str(self.n).encode()

    def restore(self, data):
        self.n = int(data)


def closed_loop(submit, window, warmup, duration):
    """Keep `window` operations in flight (each done callback submits the
    next) for warmup + duration seconds; a Future of the measured rate."""
    out = Future()
    state = {"done": 0, "errors": 0, "t0": None, "n0": 0, "stopping": False, "inflight": 0}
    lock = threading.Lock()
    begin = time.monotonic()

    def finished(f):
        now = time.monotonic()
        with lock:
            state["inflight"] -= 1
            if f.exception() is not None:
                state["errors"] += 1
            else:
                state["done"] += 1
            if state["t0"] is None and now - begin >= warmup:
                state["t0"], state["n0"] = now, state["done"]
            if state["t0"] is not None and now - state["t0"] >= duration:
                if not state["stopping"]:
                    state["stopping"] = True
                    rate = (state["done"] - state["n0"]) / (now - state["t0"])
                    out.set_result({"ops": rate, "errors": state["errors"],
                                    "done": state["done"]})
                return
            state["inflight"] += 1
        submit().add_done_callback(finished)

    for _ in range(window):
        with lock:
            state["inflight"] += 1
        submit().add_done_callback(finished)
    return out


def child(args):
    import canonical_raft as raft
    channel = procs.Child(f"node {args.id}")
    node = raft.Node(args.id, args.address, args.data_dir, Count(), forward=True)
    if args.bootstrap:
        node.bootstrap([raft.Server(*s) for s in procs.parse_servers(args.bootstrap)])
    node.start()
    command = b"x" * 64
    loads = {
        "apply": lambda: node.apply(command),
        "barrier": node.barrier,
        "read_barrier": node.read_barrier,
    }

    def status():
        return {"is_leader": node.is_leader, "stats": {k: v for k, v in node.stats().items()
                                                       if k in ("commit_index", "last_applied")}}

    def load(kind, window, warmup, duration):
        return closed_loop(loads[kind], window, warmup, duration)

    channel.serve_node(node.close, {"status": status, "load": load,
                                    "rounds": lambda: node.stats()["forwarding"]}, id=args.id)


# -- the harness --------------------------------------------------------------------


ROWS = [  # label, kind, on
    ("apply leader", "apply", "leader"),
    ("apply forwarded", "apply", "follower"),
    ("barrier per read", "barrier", "leader"),
    ("read_barrier leader", "read_barrier", "leader"),
    ("read_barrier follower", "read_barrier", "follower"),
]


def run_once(opts, root):
    ports = free_ports(3)
    addrs = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(3)}
    nodes = {}
    try:
        for i, address in addrs.items():
            argv = procs.python_argv("bench.forward", "--child", "--id", str(i), "--address",
                                     address, "--data-dir", os.path.join(root, f"n{i}"),
                                     "--bootstrap", procs.format_servers(addrs))
            nodes[i] = procs.Process(argv, name=f"node {i}", log_path=os.path.join(root, f"n{i}.log"),
                                     env=procs.child_env(ROOT), cwd=ROOT)
        for p in nodes.values():
            p.wait_ready(30)
        lead = wait_until(lambda: next((i for i, p in nodes.items()
                                        if p.call("status")["is_leader"]), None), 30)
        follower = next(i for i in nodes if i != lead)
        out = {}
        for label, kind, on in ROWS:
            target = nodes[lead if on == "leader" else follower]
            window = opts.readers if "barrier" in kind else opts.window
            before = nodes[lead].call("rounds")["read_rounds"]
            r = target.call("load", timeout=opts.warmup + opts.duration + 60, kind=kind,
                            window=window, warmup=opts.warmup, duration=opts.duration)
            rounds = nodes[lead].call("rounds")["read_rounds"] - before
            out[label] = {"ops": r["ops"], "errors": r["errors"], "rounds": rounds,
                          "done": r["done"]}
        return out
    finally:
        procs.stop_all(nodes.values(), 15)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.forward", description=__doc__.split("\n")[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--id", type=int)
    p.add_argument("--address")
    p.add_argument("--data-dir")
    p.add_argument("--bootstrap", default="")
    p.add_argument("--window", type=int, default=64, help="applies in flight")
    p.add_argument("--readers", type=int, default=64, help="concurrent readers")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--data-root", default="/var/tmp")
    p.add_argument("--json", help="write the runs here too")
    opts = p.parse_args(argv)
    if opts.child:
        return child(opts)
    runs = []
    for i in range(opts.runs):
        root = tempfile.mkdtemp(prefix="bench-forward-", dir=opts.data_root)
        try:
            runs.append(run_once(opts, root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    med = {label: statistics.median(r[label]["ops"] for r in runs) for label, _, _ in ROWS}

    def ratio(a, b):
        return statistics.median(r[a]["ops"] / r[b]["ops"] for r in runs)

    print(f"{'row':24} {'ops/s':>10} {'rounds/op':>10} {'errors':>7}")
    for label, kind, _ in ROWS:
        ops = [r[label]["ops"] for r in runs]
        # the leader's rounds over the whole load (warm-up too), per read done
        per = statistics.median(r[label]["rounds"] / max(1, r[label]["done"]) for r in runs)
        errors = sum(r[label]["errors"] for r in runs)
        print(f"{label:24} {med[label]:10.0f} {per if 'read_barrier' in kind else 0:10.3f} "
              f"{errors:7d}")
    print(f"forwarded / leader applies (window {opts.window}): "
          f"{ratio('apply forwarded', 'apply leader'):.2f}x  (issue 14: >= 0.5)")
    print(f"read_barrier / barrier per read ({opts.readers} readers): leader "
          f"{ratio('read_barrier leader', 'barrier per read'):.1f}x, follower "
          f"{ratio('read_barrier follower', 'barrier per read'):.1f}x  (issue 14: >= 10)")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(runs, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
