"""What submitting costs the caller (issue 4, target 4): the time spent in
10,000 ``apply()`` calls, and in one ``apply_many()`` of 10,000 commands,
per command, on a one-node cluster (the futures resolve later; their
waiting is not counted). Medians of --rounds rounds, GC paused while timing.

    .venv/bin/python bench/submit_cost.py [--commands N] [--rounds R]
"""

import argparse
import gc
import statistics
import tempfile
import time

from rss import Counter, raft   # bench/rss.py: the same FSM, the package on sys.path
from canonical_raft.testing import free_ports


def timed(fn):
    gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn()
        return time.perf_counter() - t0, result
    finally:
        gc.enable()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = max(1, args.commands)
    command = b"x" * 16
    with tempfile.TemporaryDirectory(prefix="canonical-raft-submit-", dir="/var/tmp") as base:
        address = f"127.0.0.1:{free_ports(1)[0]}"
        node = raft.Node(1, address, base, Counter())
        try:
            node.bootstrap([(1, address)])
            node.start()
            node.wait_for_leader(timeout=20)
            costs = {"apply": [], "apply_many": []}
            for _ in range(max(1, args.rounds)):
                seconds, futures = timed(lambda: [node.apply(command) for _ in range(n)])
                costs["apply"].append(seconds / n)
                for f in futures:
                    f.result(timeout=60)
                commands = [command] * n
                seconds, futures = timed(lambda: node.apply_many(commands))
                costs["apply_many"].append(seconds / n)
                for f in futures:
                    f.result(timeout=60)
        finally:
            node.close()
    for name, values in costs.items():
        print(f"{name:>10}: {statistics.median(values) * 1e6:.2f} us per command "
              f"(median of {len(values)} rounds of {n})")


if __name__ == "__main__":
    main()
