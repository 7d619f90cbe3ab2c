"""1,000,000 applies in a row on a 3-node in-process cluster: RSS growth
after warm-up, and the debug counters after close (issue 4, target 5).

Warm-up lasts until the leader has taken two snapshots: before that, the
log kept in memory is still growing towards snapshot_threshold entries,
which is libraft's steady state, not a leak.

    .venv/bin/python bench/rss.py [--applies N] [--window W]
"""

import argparse
import gc
import os
import resource
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import canonical_raft as raft  # noqa: E402


class Counter(raft.FSM):
    def __init__(self):
        self.value = 0

    def apply(self, command):
        self.value += 1
        return self.value

    def snapshot(self):
        return str(self.value).encode()

    def restore(self, data):
        self.value = int(data)


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applies", type=int, default=1_000_000)
    parser.add_argument("--window", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as base:
        servers = [raft.Server(i, f"127.0.0.1:{free_port()}") for i in (1, 2, 3)]
        nodes = [raft.Node(s.id, s.address, f"{base}/{s.id}", Counter()) for s in servers]
        for node in nodes:
            node.bootstrap(servers)
            node.start()
        leader = {n.id: n for n in nodes}[nodes[0].wait_for_leader(20).id]
        while not leader.is_leader:
            time.sleep(0.01)
        command = b"x" * 16
        snapshots = set()
        warm = 0
        while len(snapshots) < 3:        # warm-up: two snapshots taken
            for f in [leader.apply(command) for _ in range(args.window)]:
                f.result(60)
            warm += args.window
            snapshots.add(leader.stats()["snapshot_index"])
        gc.collect()
        rss_warm = rss_mb()
        start = time.monotonic()
        done = 0
        while done < args.applies:
            futures = [leader.apply(command) for _ in range(args.window)]
            for f in futures:
                f.result(60)
            done += len(futures)
        elapsed = time.monotonic() - start
        gc.collect()
        rss_end = rss_mb()
        for node in nodes:
            node.close()
    del nodes, node, leader, futures
    gc.collect()
    counters = raft._raft.debug_counters()
    print(f"{done} applies in {elapsed:.1f} s ({done / elapsed:.0f} ops/s), window {args.window}")
    print(f"RSS after warm-up ({warm} applies): {rss_warm:.1f} MB; at the end: {rss_end:.1f} MB; "
          f"growth {rss_end - rss_warm:+.1f} MB; peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")
    print(f"debug counters after close: {counters}")
    leaked = {k: v for k, v in counters.items() if k in ("requests", "handles", "nodes") and v}
    return 1 if leaked or rss_end - rss_warm >= 20 else 0


if __name__ == "__main__":
    sys.exit(main())
