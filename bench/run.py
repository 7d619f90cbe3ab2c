"""One benchmark run: every implementation, every row, every run; JSON lines and the table."""

import json
import os
import shutil
import signal
import sys
import tempfile

from .cdriver import require_c_driver
from .cluster import Cluster
from .common import IMPL_BINDING, IMPL_C, PYSYNCOBJ_CAVEAT, PYSYNCOBJ_IMPLS, BenchError, rows_for
from .procfs import fs_type
from .report import format_table, summarize
from .settings import plan_settings


def _say(args, text):
    print(text, file=sys.stderr if args.format == "json" or args.quiet else sys.stdout, flush=True)


def _progress(args, text):
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def have_pysyncobj(args):
    """PySyncObj comes from bench/requirements.txt (``make bench`` installs
    it into the project's .venv); never installed from here."""
    try:
        import pysyncobj  # noqa: F401
        return True
    except ImportError:
        _say(args, "pysyncobj is not installed, skipping --peers "
                   "(make bench, or pip install -r bench/requirements.txt)")
        return False


MAX_RESTARTS = 2    # fresh clusters per implementation and run after a node died


def run_impl(args, impl, knobs, options, workroot, run_index, emit_row):
    """Every row of one implementation in one run, on one cluster (a fresh
    one after a node process died: that row is recorded as failed, with the
    node's exit status and the tail of its log, and the run goes on)."""
    rows = []
    base_impl = IMPL_BINDING if impl.startswith(IMPL_BINDING) else impl
    todo = rows_for(base_impl, args.size, args.window)
    restarts = 0
    while todo:
        workdir = tempfile.mkdtemp(prefix=f"{impl.replace('[', '-').replace(']', '')}-", dir=workroot)
        cluster = None
        try:
            cluster = Cluster(base_impl, args.nodes, workdir, knobs, options)
            cluster.impl = impl
            cluster.leader()
            while todo:
                size, window = todo[0]
                try:
                    cluster.settle()
                    row = cluster.measure(size, window, args.warmup, args.duration)
                except BenchError as exc:
                    dead = [n for n in cluster.nodes if not n.alive]
                    if dead:
                        raise
                    row = dict(impl=impl, size=size, window=window, error=str(exc))
                    _progress(args, f"  run {run_index + 1} {impl} size {size} window {window}: FAILED: {exc}")
                todo.pop(0)
                row["run"] = run_index
                rows.append(row)
                emit_row(row)
                if "error" not in row:
                    _progress(args, f"  run {run_index + 1} {impl:>18} size {size:>6} window {window:>5}: "
                              f"{row['ops_per_s']:>9.0f} ops/s  p50 {row['p50_ms']} ms  "
                              f"p99 {row['p99_ms']} ms  errors {row['errors']}")
        except BenchError as exc:
            dead = [n for n in (cluster.nodes if cluster else []) if not n.alive]
            why = "; ".join(f"node {n.id} (pid {n.pid}) {n.exit_status()}: "
                            f"{n.tail_text(4) or 'no log'}" for n in dead) or str(exc)
            size, window = todo.pop(0)
            row = dict(impl=impl, size=size, window=window, run=run_index,
                       error=f"node died: {why}" if dead else str(exc))
            rows.append(row)
            emit_row(row)
            _progress(args, f"  run {run_index + 1} {impl} size {size} window {window}: FAILED: {row['error']}")
            restarts += 1
            if restarts > MAX_RESTARTS:
                for size, window in todo:
                    row = dict(impl=impl, size=size, window=window, run=run_index,
                               error="skipped: too many failures in this run")
                    rows.append(row)
                    emit_row(row)
                todo = []
            elif todo:
                _progress(args, f"  run {run_index + 1} {impl}: starting a fresh cluster for the remaining rows")
        finally:
            if cluster is not None:
                cluster.close()
            shutil.rmtree(workdir, ignore_errors=True)
    return rows



def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(args):
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.styles is not None:
            from .styles import run as run_styles
            return run_styles(args)
        return _run(args)
    except KeyboardInterrupt:
        print("bench: interrupted; node processes stopped, temporary data removed", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _data_root(args):
    root = args.data_root or "/var/tmp"
    os.makedirs(root, exist_ok=True)
    fstype = fs_type(root)
    if fstype in ("tmpfs", "ramfs") and not args.tmpfs:
        raise BenchError(f"{root} is on {fstype}: fsync costs nothing there, so the numbers "
                         "would flatter everyone; pass --data-root DIR on a real disk, "
                         "or --tmpfs to allow it")
    return root, fstype


def _run(args):
    impls = [IMPL_BINDING] + [f"{IMPL_BINDING}[{label}]" for label, _ in args.variant]
    if not args.no_c:
        require_c_driver()
        impls.append(IMPL_C)
    if args.peers and have_pysyncobj(args):
        impls += [impl for impl in PYSYNCOBJ_IMPLS if rows_for(impl, args.size, args.window)]
    plan, notes = plan_settings(args)
    root, fstype = _data_root(args)
    json_file = open(args.json, "w") if args.json else None
    try:
        def emit(obj):
            line = json.dumps(obj, separators=(",", ":"))
            if json_file:
                json_file.write(line + "\n")
                json_file.flush()
            if args.format == "json":
                print(line, flush=True)

        from canonical_raft._raft import libraft_version
        header = dict(type="header", nodes=args.nodes, sizes=args.size, windows=args.window,
                      duration=args.duration, warmup=args.warmup, runs=args.runs,
                      data_root=root, fstype=fstype, cpus=os.cpu_count(),
                      libraft=libraft_version(), python=sys.version.split()[0],
                      settings_mode="defaults" if args.defaults else "identical",
                      knobs={impl: {k: v for k, v in knobs.items()} for impl, (knobs, _) in plan.items()
                             if impl in impls},
                      options={impl: opts for impl, (_, opts) in plan.items() if impl in impls},
                      impls=impls)
        emit(header)
        _say(args, f"canonical_raft bench: {args.nodes} nodes on 127.0.0.1, data in {root} ({fstype}), "
                   f"{os.cpu_count()} CPUs, libraft {header['libraft']}; {args.duration:g} s per row "
                   f"after {args.warmup:g} s warm-up, {args.runs} run(s), medians")
        for note in notes:
            _say(args, "  " + note)
        if any(impl in PYSYNCOBJ_IMPLS for impl in impls):
            _say(args, "  " + PYSYNCOBJ_CAVEAT)
        workroot = tempfile.mkdtemp(prefix="canonical-raft-bench-", dir=root)
        all_rows = []
        try:
            for run_index in range(args.runs):
                for impl in impls:
                    knobs, options = plan[impl]
                    _progress(args, f"run {run_index + 1}/{args.runs}: {impl}")
                    all_rows += run_impl(args, impl, knobs, options, workroot, run_index,
                                         lambda row: emit(dict(type="row", **row)))
        finally:
            shutil.rmtree(workroot, ignore_errors=True)
        summaries = summarize(all_rows, impls, args)
        for s in summaries:
            emit(s)
        if args.format == "table":
            print()
            print(format_table(summaries, args))
            print("\nCPU s: CPU seconds during the measured period, leader / median follower; "
                  "RSS: peak (VmHWM) during the row;\nops/C, p50/C: binding (or peer) divided by "
                  "the C driver, median of per-run ratios.")
            if any(impl in PYSYNCOBJ_IMPLS for impl in impls):
                print(f"pysyncobj: {PYSYNCOBJ_CAVEAT}.")
        failed = [r for r in all_rows if "error" in r]
        return 1 if failed and len(failed) == len(all_rows) else 0
    finally:
        if json_file:
            json_file.close()

