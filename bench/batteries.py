"""Benchmarks of canonical_raft.batteries (issue 14: items 5 and 6, and the
comparison with PySyncObj); not part of ``python -m bench`` (bench/run.py).

    python -m bench.batteries [--only leader|restart] [--backend memory lmdb]
                              [--keys 2000000] [--seconds 20] [--restart-keys 1000000]
                              [--data-root DIR] [--tmpfs] [--json FILE]
    python -m bench.batteries --vs-pysyncobj [--runs 3] [--duration 4] ...

1. **Leadership through snapshots.** Three node processes on 127.0.0.1, each
   a ``Group(d=ReplicatedDict(...))`` (in memory, or ``path=`` in LMDB), the
   library's default timings (1 s election timeout) and a snapshot every 256
   entries. The leader fills the dict with ``--keys`` keys (``set_many`` of
   10,000), then sets keys with 64 in flight for ``--seconds``. Reported: the
   leader changes (terms) during the load, the snapshots each node took, the
   longest ``snapshot()`` call on a raft thread (what holds it; ``persist()``
   runs off it) and the longest ``persist()``, sets/s, the slowest set, each
   node's peak RSS.
2. **Restart.** One node process fills ``--restart-keys`` keys (128 entries,
   so that a snapshot is taken at the end, then a few more), is closed, and a
   new process starts on the same data dir (and store): the time from
   ``Node()`` to every entry applied (``barrier()``), and its RSS then. The
   in-memory dict decodes the snapshot and replays the log; the LMDB dict
   keeps its store and skips the commands it holds.
3. **Against PySyncObj** (``--vs-pysyncobj``, its own options: ``python -m
   bench.batteries --vs-pysyncobj --help``): ReplicatedDict sets against
   PySyncObj's ReplDict in its best configuration, same run; bench/vs_pysyncobj.py.

Every node process is stopped by its pid; the data (under ``--data-root``,
/var/tmp by default: a real disk) is removed at the end.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

from canonical_raft.testing import free_ports, procs

from .common import BenchError
from .procfs import proc_hwm_mb
from .run import _data_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("memory", "lmdb")
MAP_SIZE = 16 << 30              # bytes: room for 2,000,000 keys and the pages a snapshot pins
FILL_PER_COMMAND = 10_000
WINDOW = 64
LEADER_SETTINGS = dict(election_timeout=1.0, heartbeat_timeout=0.1, snapshot_threshold=256,
                       snapshot_trailing=64)
RESTART_SETTINGS = dict(snapshot_threshold=128, snapshot_trailing=16)
RESTART_ENTRIES = 128            # the fill's entries: a snapshot at the last of them
RESTART_TAIL = 8                 # entries after it, replayed (or skipped) at the restart


# -- the node process ---------------------------------------------------------------------


def _node_main(argv):
    import canonical_raft as raft
    from canonical_raft.batteries import Group, ReplicatedDict

    parser = procs.node_arguments(argparse.ArgumentParser(prog="python -m bench.batteries node"),
                                  election_timeout=1.0, heartbeat_timeout=0.1,
                                  snapshot_threshold=256, snapshot_trailing=64)
    parser.add_argument("--store", default="")
    args = parser.parse_args(argv)
    channel = procs.Child(f"node {args.id}")
    holds, persists = [], []

    class Timed(Group):
        """The group, its snapshot() and persist() timed."""

        def snapshot(self):
            t0 = time.perf_counter()
            snap = super().snapshot()
            holds.append(time.perf_counter() - t0)
            persist = snap.persist

            def timed_persist():
                t1 = time.perf_counter()
                try:
                    return persist()
                finally:
                    persists.append(time.perf_counter() - t1)

            snap.persist = timed_persist
            return snap

    d = ReplicatedDict(path=args.store, map_size=MAP_SIZE, timeout=120) if args.store \
        else ReplicatedDict(timeout=120)
    group = Timed(d=d)
    t0 = time.perf_counter()
    node = raft.Node(args.id, args.address, args.data_dir, group, **procs.node_settings(args))
    try:
        group.attach(node)
        procs.start_node(node, args)
        started = time.perf_counter() - t0
    except BaseException as exc:
        channel.failed(exc)
        node.close()
        group.close()
        channel.flush()
        return 1

    def status():
        s, leader = node.stats(), node.leader
        return {"is_leader": node.is_leader, "leader": leader.id if leader else None,
                "term": s["term"], "keys": len(d),
                "snapshot_index": s["snapshot_index"], "last_applied": s["last_applied"],
                "last_index": s["last_index"], "rss_mb": proc_hwm_mb(os.getpid())}

    def caught_up():
        # Once leader: the time from Node() until every entry is applied here.
        node.wait_for_leader(60)
        node.barrier().result(600)
        return {"seconds": time.perf_counter() - t0, "start_seconds": started,
                "rss_mb": proc_hwm_mb(os.getpid()), "keys": len(d),
                "info": d.store_info() if args.store else None}

    def fill(keys, per, tail=0, window=4):
        t = time.perf_counter()
        inflight = []
        for start in range(0, keys, per):
            inflight.append(d.set_many({f"key{i:08d}": i for i in range(start, min(keys, start + per))}))
            if len(inflight) >= window:      # (1: one entry per command)
                inflight.pop(0).result(600)
        for f in inflight:
            f.result(600)
        for i in range(tail):
            d.set(f"tail{i}", i).result(60)
        return {"seconds": time.perf_counter() - t}

    def load(seconds, window):
        sets, worst, lat, errors = 0, 0.0, [], 0
        pending = []
        end = time.monotonic() + seconds
        while time.monotonic() < end or pending:
            while time.monotonic() < end and len(pending) < window:
                pending.append((time.perf_counter(), d.set(f"load{sets + len(pending)}", sets)))
            t, f = pending.pop(0)
            try:
                f.result(60)
            except Exception:
                errors += 1
            took = time.perf_counter() - t
            lat.append(took)
            worst = max(worst, took)
            sets += 1
        lat.sort()
        return {"sets": sets, "seconds": seconds, "errors": errors, "worst_ms": worst * 1e3,
                "p99_ms": lat[int(len(lat) * 0.99)] * 1e3 if lat else None}

    def timings():
        return {"snapshot_holds_ms": [h * 1e3 for h in holds],
                "persists_ms": [p * 1e3 for p in persists]}

    def close():
        node.close()
        group.close()

    channel.serve_node(close, {
        "status": status, "caught_up": lambda: _in_thread(caught_up), "timings": timings,
        "fill": lambda keys, per, tail=0, window=4: _in_thread(lambda: fill(keys, per, tail, window)),
        "load": lambda seconds, window: _in_thread(lambda: load(seconds, window)),
    }, id=args.id)
    return 0


def _in_thread(fn):
    """Run a long handler on its own thread (the serve loop keeps answering)."""
    from concurrent.futures import Future
    future = Future()

    def run():
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


# -- the parent ---------------------------------------------------------------------------


class NodeProc(procs.Process):
    def __init__(self, node_id, address, cluster, workdir, backend, settings, bootstrap):
        self.id = node_id
        args = ["node", "--id", str(node_id), "--address", address,
                "--data-dir", os.path.join(workdir, f"data{node_id}")]
        for name, value in settings.items():
            args += ["--" + name.replace("_", "-"), str(value)]
        if backend == "lmdb":
            args += ["--store", os.path.join(workdir, f"store{node_id}")]
        if bootstrap:
            args += ["--bootstrap", cluster]
        super().__init__(procs.python_argv("bench.batteries", *args), name=f"{backend} node {node_id}",
                         log_path=os.path.join(workdir, f"node{node_id}.log"),
                         env=procs.child_env(ROOT), cwd=ROOT, new_session=False)

    def request(self, cmd, timeout=30, **args):
        try:
            return self.call(cmd, timeout, **args)
        except procs.ProcessError as exc:
            raise BenchError(f"{exc}: {' | '.join(self.log_tail(8))}") from None


def _say(text):
    print(text, file=sys.stderr, flush=True)


def _leader(nodes, timeout=60):
    """The node every node names as leader (and that is leader), settled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [node.request("status") for node in nodes]
        named = {s["leader"] for s in statuses}
        if len(named) == 1 and None not in named:
            leader_id = named.pop()
            leader = next(n for n in nodes if n.id == leader_id)
            if leader.request("status")["is_leader"]:
                return leader
        time.sleep(0.2)
    raise BenchError("no leader agreed on")


def leadership(args, backend, workdir):
    """Item 6: a big dict under load keeps its leader through snapshots."""
    ports = free_ports(3)
    addresses = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)}
    cluster = procs.format_servers(addresses)
    nodes = []
    try:
        for i, address in addresses.items():
            nodes.append(NodeProc(i, address, cluster, workdir, backend, LEADER_SETTINGS, True))
        for node in nodes:
            node.wait_ready(60)
        leader = _leader(nodes)
        _say(f"  {backend}: filling {args.keys:,} keys")
        fill = leader.call("fill", 3600, keys=args.keys, per=FILL_PER_COMMAND)
        before = [n.request("status") for n in nodes]
        samples, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    samples.append([n.call("status", 10) for n in nodes])
                except procs.ProcessError:
                    pass
                stop.wait(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _say(f"  {backend}: {args.seconds} s of sets, {WINDOW} in flight")
        load = leader.call("load", args.seconds + 300, seconds=args.seconds, window=WINDOW)
        stop.set()
        watcher.join(15)
        after = [n.request("status") for n in nodes]
        timings = [n.request("timings") for n in nodes]
        terms = {s["term"] for row in samples for s in row} | {s["term"] for s in before + after}
        leaders_seen = {i + 1 for row in samples for i, s in enumerate(row) if s["is_leader"]}
        return {
            "type": "leadership", "backend": backend, "keys": args.keys,
            "fill_seconds": round(fill["seconds"], 1), "load_seconds": args.seconds,
            "sets_per_s": round(load["sets"] / args.seconds), "set_errors": load["errors"],
            "slowest_set_ms": round(load["worst_ms"]), "p99_set_ms": round(load["p99_ms"], 1),
            "terms_during_load": len(terms), "leaders_seen": sorted(leaders_seen),
            "leader_kept": len(terms) == 1 and after[leader.id - 1]["is_leader"],
            "snapshots_during_load": [sum(1 for h in t["snapshot_holds_ms"]) for t in timings],
            "snapshot_index": [[b["snapshot_index"], a["snapshot_index"]]
                               for b, a in zip(before, after)],
            "longest_snapshot_hold_ms": round(max((h for t in timings for h in t["snapshot_holds_ms"]),
                                                  default=0), 1),
            "longest_persist_ms": round(max((p for t in timings for p in t["persists_ms"]),
                                            default=0)),
            "peak_rss_mb": [round(a["rss_mb"]) for a in after],
        }
    finally:
        procs.stop_all(nodes, 60)


def restart(args, backend, workdir):
    """Item 5: restart time with a big dict, LMDB against memory."""
    address = f"127.0.0.1:{free_ports(1)[0]}"
    cluster = procs.format_servers({1: address})
    first = NodeProc(1, address, cluster, workdir, backend, RESTART_SETTINGS, True)
    try:
        first.wait_ready(60)
        _leader([first])
        per = -(-args.restart_keys // RESTART_ENTRIES)
        first.call("fill", 3600, keys=args.restart_keys, per=per, tail=RESTART_TAIL, window=1)
        deadline = time.monotonic() + 120          # the snapshot's persist() may still run
        while (written := first.request("status"))["snapshot_index"] == 0:
            if time.monotonic() > deadline:
                raise BenchError(f"{backend}: no snapshot was taken")
            time.sleep(0.2)
    finally:
        procs.stop_all([first], 120)
    again = NodeProc(1, address, cluster, workdir, backend, RESTART_SETTINGS, False)
    try:
        again.wait_ready(600)
        up = again.call("caught_up", 900)
    finally:
        procs.stop_all([again], 120)
    if up["keys"] != written["keys"]:
        raise BenchError(f"{backend}: {up['keys']} keys after the restart, {written['keys']} before")
    return {"type": "restart", "backend": backend, "keys": up["keys"],
            "snapshot_index": written["snapshot_index"], "last_index": written["last_index"],
            "restart_seconds": round(up["seconds"], 3), "start_seconds": round(up["start_seconds"], 3),
            "rss_mb": round(up["rss_mb"]), "skipped": (up["info"] or {}).get("skipped"),
            "disk_mb": round(_du(workdir) / 1e6)}


def _du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:
        return _node_main(argv[1:])
    if "--vs-pysyncobj" in argv:
        from . import vs_pysyncobj
        return vs_pysyncobj.main([a for a in argv if a != "--vs-pysyncobj"])
    parser = argparse.ArgumentParser(prog="python -m bench.batteries", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vs-pysyncobj", action="store_true",
                        help="ReplicatedDict against PySyncObj's ReplDict instead (item 3)")
    parser.add_argument("--only", choices=("leader", "restart"))
    parser.add_argument("--backend", choices=BACKENDS, nargs="+", default=list(BACKENDS))
    parser.add_argument("--keys", type=procs.at_least(1), default=2_000_000)
    parser.add_argument("--seconds", type=procs.at_least(1), default=20)
    parser.add_argument("--restart-keys", type=procs.at_least(RESTART_ENTRIES), default=1_000_000)
    parser.add_argument("--data-root", help="where the data goes (default /var/tmp)")
    parser.add_argument("--tmpfs", action="store_true", help="allow a tmpfs data root")
    parser.add_argument("--json", help="also write the rows as JSON lines to this file")
    args = parser.parse_args(argv)
    try:
        root, fstype = _data_root(args)
    except BenchError as exc:
        print(f"bench.batteries: {exc}", file=sys.stderr)
        return 2
    rows = []
    try:
        for kind, run in (("leader", leadership), ("restart", restart)):
            if args.only not in (None, kind):
                continue
            for backend in args.backend:
                workdir = tempfile.mkdtemp(prefix=f"bench-batteries-{kind}-{backend}-", dir=root)
                try:
                    _say(f"{kind} ({backend}), data on {fstype} under {root}")
                    rows.append(run(args, backend, workdir))
                    print(json.dumps(rows[-1]), flush=True)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
    except BenchError as exc:
        print(f"bench.batteries: FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    restarts = {r["backend"]: r for r in rows if r["type"] == "restart"}
    if len(restarts) == 2:
        ratio = restarts["memory"]["restart_seconds"] / restarts["lmdb"]["restart_seconds"]
        print(f"restart with {restarts['lmdb']['keys']:,} keys: memory "
              f"{restarts['memory']['restart_seconds']:.2f} s, lmdb "
              f"{restarts['lmdb']['restart_seconds']:.2f} s: lmdb {ratio:.1f}x faster", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
