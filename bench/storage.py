"""storage="lmdb" beside storage="uv", same run, same machine (issue 16):

    python -m bench.storage [--runs 1] [--duration 5] [--applies 1000000]

Three-node clusters of the binding's node processes (bench/cluster.py, the
same loads as `python -m bench`), on the real disk (--data-root, /var/tmp
by default), one storage after the other in each run (the order alternates
between runs). Rows, each a median over the runs, with lmdb/uv ratios:

- ops/s at 64 and at 1,024 commands in flight (--size bytes each);
- the blocking loop (apply().result(), one in flight): p50 latency;
- the largest latency at 64 in flight with a snapshot every
  --snapshot-every entries (every node snapshots many times in the period);
- disk used per node (allocated blocks of its data dir) after --applies
  commands, and the time a node's start() takes on that data dir (load,
  checksums, snapshot restore), measured in this process.

Not part of `python -m bench` / bench/run.py. --json FILE keeps every row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from canonical_raft.testing import free_address

from .cluster import Cluster
from .common import IMPL_BINDING, BenchError
from .loads import BenchFSM
from .procfs import fs_type
from .settings import binding_defaults

KINDS = ("uv", "lmdb")


def disk_used(path: str) -> int:
    """Bytes allocated to the files under ``path`` (du, not their lengths:
    uv preallocates its segments)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def cluster(kind: str, workdir: str, **knobs) -> Cluster:
    c = Cluster(IMPL_BINDING, 3, workdir, dict(binding_defaults(), storage=kind, **knobs),
                {"api": "apply"})
    c.leader()
    return c


def throughput_rows(kind, workroot, args):
    rows = {}
    c = cluster(kind, tempfile.mkdtemp(prefix=f"{kind}-", dir=workroot))
    try:
        for window in (64, 1024, 1):
            c.settle()
            row = c.measure(args.size, window, args.warmup, args.duration)
            key = "p50_ms_window_1" if window == 1 else f"ops_per_s_window_{window}"
            rows[key] = row["p50_ms"] if window == 1 else row["ops_per_s"]
            say(args, f"  {kind:>4} window {window:>5}: {row['ops_per_s']:>9.0f} ops/s  "
                      f"p50 {row['p50_ms']} ms  max {row['max_ms']} ms")
    finally:
        c.close()
    return rows


def snapshot_row(kind, workroot, args):
    c = cluster(kind, tempfile.mkdtemp(prefix=f"{kind}-snap-", dir=workroot),
                snapshot_threshold=args.snapshot_every, snapshot_log_bytes=0)
    try:
        before = c.leader().request("status")["commit_index"]
        row = c.measure(args.size, 64, args.warmup, args.duration)
        after = c.leader().request("status")["commit_index"]
    finally:
        c.close()
    snapshots = (after - before) // args.snapshot_every
    say(args, f"  {kind:>4} snapshots every {args.snapshot_every}: max {row['max_ms']} ms, "
              f"p99 {row['p99_ms']} ms, about {snapshots} snapshots per node")
    return {"max_ms_during_snapshots": row["max_ms"], "p99_ms_during_snapshots": row["p99_ms"],
            "snapshots_in_period": snapshots}


def footprint_row(kind, workroot, args):
    workdir = tempfile.mkdtemp(prefix=f"{kind}-disk-", dir=workroot)
    c = cluster(kind, workdir)
    try:
        leader = c.leader()
        deadline = time.monotonic() + args.applies / 1000 + 600
        while leader.request("status")["count"] < args.applies:
            if time.monotonic() > deadline:
                raise BenchError(f"{kind}: {args.applies} applies did not finish")
            c.measure(args.size, 1024, 0.0, 5.0)
        c.settle()
    finally:
        c.close()
    dirs = [os.path.join(workdir, f"{IMPL_BINDING}-node{i}") for i in (1, 2, 3)]
    used = [disk_used(d) for d in dirs]
    restart = start_time(kind, dirs[0])
    say(args, f"  {kind:>4} after {args.applies} applies: "
              f"{', '.join(f'{u / 2**20:.1f}' for u in used)} MiB per node; "
              f"start() in {restart * 1000:.0f} ms")
    return {"disk_mib_per_node": round(max(used) / 2**20, 1), "restart_ms": round(restart * 1000, 1)}


def start_time(kind: str, data_dir: str) -> float:
    """Seconds for Node.start() on a stopped node's data dir (in this process)."""
    import canonical_raft as raft
    node = raft.Node(1, free_address(), data_dir, BenchFSM(), storage=kind)
    try:
        t0 = time.perf_counter()
        node.start()
        return time.perf_counter() - t0
    finally:
        node.close()


def say(args, text):
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def run(args):
    workroot = tempfile.mkdtemp(prefix="bench-storage-", dir=args.data_root)
    if fs_type(workroot) in ("tmpfs", "ramfs"):
        raise BenchError(f"{workroot} is on a tmpfs (fsync is free there): use --data-root")
    results = {kind: [] for kind in KINDS}
    try:
        for r in range(args.runs):
            order = KINDS if r % 2 == 0 else KINDS[::-1]
            for kind in order:
                say(args, f"run {r + 1}: storage={kind}")
                row = throughput_rows(kind, workroot, args)
                row.update(snapshot_row(kind, workroot, args))
                if args.applies:
                    row.update(footprint_row(kind, workroot, args))
                results[kind].append(row)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    return results


ROWS = [("ops_per_s_window_64", "ops/s, 64 in flight", "higher"),
        ("ops_per_s_window_1024", "ops/s, 1,024 in flight", "higher"),
        ("p50_ms_window_1", "blocking loop p50, ms", "lower"),
        ("max_ms_during_snapshots", "max latency during snapshots, ms", "lower"),
        ("p99_ms_during_snapshots", "p99 latency during snapshots, ms", "lower"),
        ("disk_mib_per_node", "disk used per node after the applies, MiB", "lower"),
        ("restart_ms", "start() on that data dir, ms", "lower")]


def table(results, args) -> str:
    lines = [f"storage benchmark: 3 nodes, {args.size}-byte commands, {args.runs} run(s), "
             f"{args.duration} s per row, snapshot row every {args.snapshot_every} entries, "
             f"{args.applies} applies for the disk row",
             "", "| row | uv | lmdb | lmdb / uv | better |", "|---|---|---|---|---|"]
    for key, label, better in ROWS:
        vals = {k: [r[key] for r in results[k] if r.get(key) is not None] for k in KINDS}
        if not all(vals.values()):
            continue
        med = {k: statistics.median(v) for k, v in vals.items()}
        pairs = [b / a for a, b in zip(vals["uv"], vals["lmdb"]) if a]
        ratio = f"{statistics.median(pairs):.2f}x" if pairs else "-"
        lines.append(f"| {label} | {med['uv']:g} | {med['lmdb']:g} | {ratio} | {better} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--applies", type=int, default=1_000_000, help="0: no disk/restart row")
    p.add_argument("--snapshot-every", type=int, default=1024)
    p.add_argument("--data-root", default="/var/tmp")
    p.add_argument("--json", help="write every row to this file")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        results = run(args)
    except BenchError as exc:
        print(f"bench.storage: {exc}", file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    sys.stdout.write(table(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
