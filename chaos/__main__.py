"""python -m chaos [--short] [--tls | --plain] [--duration S] [--only NAME,...] | check FILE | --list"""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from . import net, report
from .checker import check, load_history
from .cluster import cleanup_stale_processes
from .runner import (ALL, BY_NAME, SCENARIOS, SELFTESTS, SHORT, TLS_SUFFIX, Options,
                     in_plaintext, over_tls, run_scenario)


def _log(msg):
    print(msg, flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        return _check(argv[1:])
    p = argparse.ArgumentParser(prog="python -m chaos",
                                description="Fault-injection scenarios against canonical_raft.")
    p.add_argument("--short", action="store_true",
                   help=f"the CI selection ({', '.join(SHORT)}), 35 s each")
    p.add_argument("--only", default="", help="comma-separated scenario names")
    transport = p.add_mutually_exclusive_group()
    transport.add_argument("--tls", action="store_true",
                           help="run the selected scenarios over mutual TLS only")
    transport.add_argument("--plain", action="store_true",
                           help="run the selected scenarios in plaintext only")
    p.add_argument("--storage", choices=("uv", "lmdb"), default=None,
                   help="every node's storage= (passed as CANONICAL_RAFT_STORAGE)")
    p.add_argument("--duration", type=float, default=None, help="seconds of load per scenario")
    p.add_argument("--rate", type=float, default=150.0, help="operations per second offered")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default=None,
                   help="logs, histories and results (default /tmp/chaos-<time>)")
    p.add_argument("--keep-data", action="store_true", help="keep the nodes' data dirs")
    p.add_argument("--no-netns", action="store_true", help="loopback only")
    p.add_argument("--selftest", action="store_true",
                   help="also run the self-test (stale reads that must be caught)")
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)

    if args.list:
        for sc in SCENARIOS + SELFTESTS:
            print(f"{sc.name:22} {sc.nemesis:20} {sc.nodes} nodes"
                  f"{'  netns' if sc.netns else ''}{'  tmpfs' if sc.disk_mb else ''}"
                  f"{'  (self-test: must find a violation)' if sc.expect != 'ok' else ''}")
        print(f"\nevery scenario NAME but the self-test also runs over mutual TLS as "
              f"NAME{TLS_SUFFIX}")
        return 0
    if args.storage:
        os.environ["CANONICAL_RAFT_STORAGE"] = args.storage    # chaos/node.py reads it
    names = [n for n in args.only.split(",") if n] or (SHORT if args.short else ALL)
    if args.tls or args.plain:
        names = list(dict.fromkeys(map(over_tls if args.tls else in_plaintext, names)))
    if args.selftest:
        names += [s.name for s in SELFTESTS if s.name not in names]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown scenario(s): {unknown}; see --list")
    duration = args.duration or (35.0 if args.short else 60.0)
    workdir = Path(args.workdir or f"/tmp/chaos-{time.strftime('%Y%m%d-%H%M%S')}")
    opts = Options(duration=duration, rate=args.rate, clients=args.clients, seed=args.seed,
                   workdir=workdir, keep_data=args.keep_data,
                   tail=min(8.0, duration / 4), warmup=min(3.0, duration / 10))

    # Ctrl-C / SIGTERM: unwind through every finally (processes, namespaces, mounts).
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)     # even if started with SIGINT ignored

    stale = net.cleanup_stale()
    if stale:
        _log(f"removed namespaces left by a dead harness: {stale}")
    killed = cleanup_stale_processes()
    if killed:
        _log(f"stopped node processes left by a dead harness: pids {killed}")
    reason = "disabled (--no-netns)" if args.no_netns else None
    if reason is None and any(BY_NAME[n].netns for n in names):
        reason = net.netns_available()
        if reason:
            _log(f"network namespaces unavailable ({reason}): partition scenarios "
                 "fall back or are skipped")
    _log(f"chaos: {len(names)} scenario(s), {duration:.0f}s each, {args.rate:.0f} ops/s "
         f"offered, results in {workdir}")
    results = []
    try:
        for name in names:
            _log(f"== {name}")
            r = run_scenario(BY_NAME[name], opts, log=_log, netns_reason=reason)
            results.append(r)
            _log(f"== {name}: {r['verdict']} ({r.get('wall', 0):.0f}s)")
    except KeyboardInterrupt:
        _log("interrupted")
    print()
    print(report.table(results))
    print()
    print(report.details(results))
    bad = report.failures(results)
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "results.json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    if bad:
        print("\nFAILED:\n  " + "\n  ".join(bad))
    print(f"\nlogs, histories and results: {workdir}")
    ok = len(results) == len(names) and all(r["verdict"] in ("PASS", "SKIP") for r in results)
    return 0 if ok else 1


def _check(argv):
    p = argparse.ArgumentParser(prog="python -m chaos check")
    p.add_argument("history", help="a history.jsonl written by a run")
    p.add_argument("--budget", type=float, default=60.0)
    args = p.parse_args(argv)
    res = check(load_history(args.history), budget=args.budget)
    for k in res.keys:
        print(f"{k.key!s:8} {k.verdict:9} ops {k.ops:6} dropped {k.dropped:5} "
              f"explored {k.explored:8} {k.seconds:.2f}s {k.detail}")
    print(res.verdict)
    return {"ok": 0, "violation": 1}.get(res.verdict, 2)


if __name__ == "__main__":
    sys.exit(main())
