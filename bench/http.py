"""Ops/s of the key-value server through HTTP: ``python -m bench.http``.

Starts ``--nodes`` ``python -m canonical_raft serve`` processes on 127.0.0.1
(data under ``--data-root``, /var/tmp by default: a real disk; the
servers' default timings) and, for each ``--clients`` count, runs that many
concurrent HTTP clients (aiohttp, keep-alive, one connection each) in this
process for ``--duration`` seconds after ``--warmup``. Each client loops on
one request: ``PUT /kv/k<n>`` of a ``--size``-byte JSON string (``--op put``),
``GET /kv/k<n>`` local (``get``) or linearizable (``lget``), sent to the
leader's server or a follower's (``--target``, which then forwards writes).
Reports ops/s and the latency per request (p50, p99, max). Not part of
bench/run.py; every server is stopped by its pid at the end.

The load generator shares the machine's cores with the servers: on a small
machine it takes a good part of one, which the numbers include.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from canonical_raft.testing.servers import ServerCluster


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _load(url: str, op: str, clients: int, size: int, warmup: float,
                duration: float) -> dict[str, float]:
    import aiohttp
    value = json.dumps("x" * max(0, size - 2)).encode()
    latencies: list[float] = []
    errors = 0
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + duration
    path = {"put": "", "get": "", "lget": "?consistency=linearizable"}[op]

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        n = 0
        while True:
            now = time.monotonic()
            if now >= stop_at:
                return
            key = f"{url}/kv/k{i}-{n % 1000}{path}"
            n += 1
            if op == "put":
                request = session.put(key, data=value,
                                      headers={"Content-Type": "application/json"})
            else:
                request = session.get(key)
            async with request as resp:
                await resp.read()
                ok = resp.status in (200, 204) or (op != "put" and resp.status == 404)
            done = time.monotonic()
            if now >= measure_from:
                if ok:
                    latencies.append(done - now)
                else:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        if op != "put":                   # something to read
            for i in range(clients):
                async with session.put(f"{url}/kv/k{i}-0", data=value) as resp:
                    await resp.read()
        await asyncio.gather(*(client(i, session) for i in range(clients)))
    latencies.sort()
    return {"ops_per_s": len(latencies) / duration, "errors": errors,
            "p50_ms": _percentile(latencies, 0.50) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000,
            "max_ms": (latencies[-1] * 1000) if latencies else float("nan"),
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--clients", default="1,64", help="comma-separated client counts")
    parser.add_argument("--op", default="put", choices=["put", "get", "lget"])
    parser.add_argument("--target", default="leader", choices=["leader", "follower"])
    parser.add_argument("--size", type=int, default=100, help="bytes of each value's JSON")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--data-root", default="/var/tmp")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",") if c]

    work = Path(tempfile.mkdtemp(prefix="canonical-raft-bench-http-", dir=args.data_root))
    cluster = None
    try:
        cluster = ServerCluster(args.nodes, work, timings=())
        leader = cluster.wait_leader()
        target = leader if args.target == "leader" else next(i for i in cluster.procs
                                                              if i != leader)
        if not args.json:
            print(f"bench.http: {args.nodes} servers on 127.0.0.1, data in {args.data_root}, "
                  f"{os.cpu_count()} CPUs; {args.op} of {args.size} B to the {args.target} "
                  f"(server {target}); {args.duration:g} s after {args.warmup:g} s warm-up")
            print(f"{'clients':>8} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
                  f"{'errors':>7}")
        for clients in counts:
            row = asyncio.run(_load(cluster.url(target), args.op, clients, args.size,
                                    args.warmup, args.duration))
            if args.json:
                print(json.dumps({"clients": clients, "op": args.op, "target": args.target,
                                  "size": args.size, **row}))
            else:
                print(f"{clients:>8} {row['ops_per_s']:>9.0f} {row['p50_ms']:>8.2f} "
                      f"{row['p99_ms']:>8.2f} {row['max_ms']:>8.2f} {row['errors']:>7.0f}",
                      flush=True)
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
