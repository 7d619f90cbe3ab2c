"""One benchmark run: every implementation, every row, every run; JSON lines and the table."""

import os
import shutil
import signal
import sys
import tempfile

from .cdriver import require_c_driver
from .cluster import Cluster
from .common import (IMPL_BINDING, IMPL_C, PYSYNCOBJ_CAVEAT, PYSYNCOBJ_IMPLS, BenchError, JsonLines,
                     rows_for)
from .procfs import fs_type
from .report import format_plain_ratios, format_table, summarize
from .settings import plan_settings
from .tls import IMPL_TLS, make_certs, target_notes


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


class ImplRun:
    """One implementation's rows in one run, on one cluster, one row at a time
    (so that two implementations can take turns). After a node process died
    that row is recorded as failed, with the node's exit status and the tail
    of its log, and the next row gets a fresh cluster; after MAX_RESTARTS the
    rest of the run's rows are recorded as skipped."""

    def __init__(self, args, impl, knobs, options, workroot, run_index, emit_row):
        self.args, self.impl, self.knobs, self.options = args, impl, knobs, options
        self.base_impl = IMPL_BINDING if impl.startswith(IMPL_BINDING) else impl
        self.workroot, self.run_index, self.emit_row = workroot, run_index, emit_row
        self.rows = []
        self.cluster = None
        self.workdir = None
        self.restarts = 0

    def measure(self, size, window):
        """One row (recorded, failed or skipped)."""
        tag = f"  run {self.run_index + 1} {self.impl}"
        if self.restarts > MAX_RESTARTS:
            return self._record(dict(impl=self.impl, size=size, window=window,
                                     error="skipped: too many failures in this run"))
        try:
            if self.cluster is None:
                self._start()
            try:
                self.cluster.settle()
                row = self.cluster.measure(size, window, self.args.warmup, self.args.duration)
            except BenchError as exc:
                if any(not n.alive for n in self.cluster.nodes):
                    raise
                row = dict(impl=self.impl, size=size, window=window, error=str(exc))
                _progress(self.args, f"{tag} size {size} window {window}: FAILED: {exc}")
            else:
                _progress(self.args, f"  run {self.run_index + 1} {self.impl:>18} size {size:>6} "
                          f"window {window:>5}: {row['ops_per_s']:>9.0f} ops/s  p50 {row['p50_ms']} ms  "
                          f"p99 {row['p99_ms']} ms  errors {row['errors']}")
            return self._record(row)
        except BenchError as exc:
            dead = [n for n in (self.cluster.nodes if self.cluster else []) if not n.alive]
            why = "; ".join(f"node {n.id} (pid {n.pid}) {n.exit_status()}: "
                            f"{n.tail_text(4) or 'no log'}" for n in dead) or str(exc)
            row = dict(impl=self.impl, size=size, window=window,
                       error=f"node died: {why}" if dead else str(exc))
            _progress(self.args, f"{tag} size {size} window {window}: FAILED: {row['error']}")
            self.close()
            self.restarts += 1
            if self.restarts <= MAX_RESTARTS:
                _progress(self.args, f"{tag}: a fresh cluster for the next rows")
            return self._record(row)

    def _record(self, row):
        row["run"] = self.run_index
        self.rows.append(row)
        self.emit_row(row)
        return row

    def _start(self):
        self.workdir = tempfile.mkdtemp(prefix=f"{self.impl.replace('[', '-').replace(']', '')}-",
                                        dir=self.workroot)
        self.cluster = Cluster(self.base_impl, self.args.nodes, self.workdir, self.knobs, self.options)
        self.cluster.impl = self.impl
        self.cluster.leader()

    def close(self):
        """Stop the cluster's node processes and remove its data."""
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def impl_groups(impls):
    """Implementations that take turns row by row: the plaintext binding and
    the TLS row (their ratio is the point, so both see the same minute of a
    noisy machine); every other implementation runs all its rows alone."""
    if IMPL_TLS not in impls:
        return [[impl] for impl in impls]
    return [[IMPL_BINDING, IMPL_TLS]] + [[impl] for impl in impls if impl not in (IMPL_BINDING, IMPL_TLS)]


def run_group(args, group, plan, workroot, run_index, emit_row):
    """One run of a group: every row, each implementation of the group in
    turn (who goes first alternates between runs)."""
    runners = [ImplRun(args, impl, *plan[impl], workroot, run_index, emit_row) for impl in group]
    if run_index % 2:
        runners.reverse()
    try:
        for size, window in rows_for(runners[0].base_impl, args.size, args.window):
            for runner in runners:
                runner.measure(size, window)
    finally:
        for runner in runners:
            runner.close()
    return [row for runner in runners for row in runner.rows]


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
    # the TLS row takes turns with the plaintext binding (impl_groups)
    impls = ([IMPL_BINDING] + ([IMPL_TLS] if args.tls else [])
             + [f"{IMPL_BINDING}[{label}]" for label, _ in args.variant])
    if not args.no_c:
        require_c_driver()
        impls.append(IMPL_C)
    if args.peers and have_pysyncobj(args):
        impls += [impl for impl in PYSYNCOBJ_IMPLS if rows_for(impl, args.size, args.window)]
    plan, notes = plan_settings(args)
    root, fstype = _data_root(args)
    emit = JsonLines(args.json, args.format == "json")
    try:
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
            if args.tls:
                plan[IMPL_TLS][1]["tls_dir"] = make_certs(os.path.join(workroot, "tls"), args.nodes)
            for run_index in range(args.runs):
                for group in impl_groups(impls):
                    _progress(args, f"run {run_index + 1}/{args.runs}: {' and '.join(group)}"
                              + (", taking turns row by row" if len(group) > 1 else ""))
                    all_rows += run_group(args, group, plan, workroot, run_index,
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
            if args.tls:
                print()
                print(format_plain_ratios(summaries))
                for note in target_notes(summaries):
                    print("  " + note)
        failed = [r for r in all_rows if "error" in r]
        return 1 if failed and len(failed) == len(all_rows) else 0
    finally:
        emit.close()

