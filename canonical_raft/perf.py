"""How fast a canonical_raft cluster writes on this machine (as ``etcdctl check perf`` does).

``python -m canonical_raft bench`` starts ``--nodes`` nodes in this process
(``canonical_raft.testing.LocalCluster`` on 127.0.0.1) with their data under
``--data-dir`` (default: a temporary directory in /var/tmp; put it on the
disk you mean to measure, not on a tmpfs). For ``--seconds`` per row it
writes ``--size``-byte commands on the leader: window 1 is a blocking
``apply(cmd).result()`` loop (one fsync'd quorum round trip per write);
a larger ``--window`` submits that many with ``apply_many`` and waits for
all of them, again and again. It prints writes per second and latency.

The comparative benchmark (the binding against libraft driven from C, and
PySyncObj) runs from a source checkout: ``make bench`` or ``python -m bench``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

from .testing import LocalCluster, procs

RESULT_TIMEOUT = 30.0  # one write (or one batch) settled


class _Count:
    """The state machine: counts the commands; snapshots are 8 bytes."""

    def __init__(self) -> None:
        self.count = 0

    def apply(self, command: bytes) -> int:
        self.count += 1
        return self.count

    def snapshot(self) -> bytes:
        return self.count.to_bytes(8, "little")

    def restore(self, data: bytes) -> None:
        self.count = int.from_bytes(bytes(data)[:8], "little")


def _percentile_ms(sorted_ns: list[int], p: float) -> float:
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * p / 100))] / 1e6


def measure(cluster: LocalCluster[_Count], size: int, window: int,
            seconds: float) -> tuple[float, list[int]]:
    """(writes per second, sorted latencies in ns: per write, or per batch of ``window``)."""
    node = cluster.leader()
    command = b"x" * size
    latencies: list[int] = []
    writes = 0
    started = time.perf_counter_ns()
    end = started + int(seconds * 1e9)
    while time.perf_counter_ns() < end:
        t0 = time.perf_counter_ns()
        if window == 1:
            node.apply(command).result(RESULT_TIMEOUT)
        else:
            for future in node.apply_many([command] * window):
                future.result(RESULT_TIMEOUT)
        latencies.append(time.perf_counter_ns() - t0)
        writes += window
    elapsed = (time.perf_counter_ns() - started) / 1e9
    return writes / elapsed, sorted(latencies)


def run(args: argparse.Namespace) -> int:
    workdir = tempfile.mkdtemp(prefix="canonical-raft-perf-", dir=args.data_dir)
    print(f"canonical_raft bench: {args.nodes} nodes in this process on 127.0.0.1, "
          f"data in {workdir}, {args.size}-byte writes, {args.seconds:g} s per row")
    try:
        with LocalCluster(args.nodes, _Count, workdir) as cluster:
            cluster.leader()
            for window in args.window:
                rate, lat = measure(cluster, args.size, window, args.seconds)
                unit = "write" if window == 1 else f"batch of {window}"
                print(f"  window {window:>5}: {rate:>9.0f} writes/s   latency per {unit}: "
                      f"p50 {_percentile_ms(lat, 50):.2f} ms, p99 {_percentile_ms(lat, 99):.2f} ms")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python -m canonical_raft bench``."""
    parser.add_argument("--nodes", type=procs.at_least(1), default=3, help="nodes (default 3)")
    parser.add_argument("--size", type=procs.at_least(0), default=16, help="bytes per write (default 16)")
    parser.add_argument("--window", type=procs.at_least(1), nargs="+", default=[1, 64],
                        help="writes in flight per row (default 1 64)")
    parser.add_argument("--seconds", type=procs.at_least(0.1, float), default=3.0,
                        help="seconds per row (default 3)")
    parser.add_argument("--data-dir", default="/var/tmp",
                        help="where the temporary data directories go (default /var/tmp)")
    parser.set_defaults(run=run)
    return parser
