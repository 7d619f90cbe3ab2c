"""Client styles: the same cluster driven the ways users write clients, each
row beside the polling window loop of the same run.

``python -m bench --styles`` (one binding cluster per run, 16-byte commands
unless ``--size``) measures, in the leader's process:

- ``window``: one thread keeping 1,024 futures in flight, polling the oldest
  (the benchmark's window loop; the reference, ratio 1);
- ``blocking``: one thread, ``apply(cmd).result()`` in a loop;
- ``callbacks``: 1,024 chains, each done callback submits the next command;
- ``threads8`` / ``threads64``: that many threads, each
  ``apply(cmd).result()`` in a loop (a threaded server);
- ``window8``: one thread keeping 8 futures in flight: what 8 blocking
  threads could reach at best (same commands in flight, no thread hand-off);
- ``asyncio``: 1,024 tasks, each ``await node.apply_async(cmd)`` in a loop;
- ``many_async``: 16 tasks, each ``await node.apply_many_async([cmd] * 64)``
  in a loop (asyncio code that submits bursts).

Each row's ``vs window`` is the median over runs of (row / window row of
the same run). The node side is :func:`load` (bench/node.py's ``load``
command with ``style=``); the harness side is :func:`run`.
"""

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

from .common import DRAIN_TIMEOUT, IMPL_BINDING, RESULT_TIMEOUT, BenchError, JsonLines, payload

WINDOW = 1024           # futures in flight for window, callbacks, asyncio
BURST = 64              # commands per apply_many_async call
BURST_TASKS = 16        # tasks submitting bursts (16 x 64 = 1,024 in flight)

# style -> (what it is, for the table)
STYLES = {
    "window": f"1 thread, {WINDOW} futures in flight, polling the oldest",
    "blocking": "1 thread, apply().result() in a loop",
    "callbacks": f"{WINDOW} chains, each done callback submits the next",
    "threads8": "8 threads, apply().result() in a loop",
    "window8": "1 thread, 8 futures in flight (8 threads' bound, without threads)",
    "threads64": "64 threads, apply().result() in a loop",
    "asyncio": f"{WINDOW} asyncio tasks, await apply_async() in a loop",
    "many_async": f"{BURST_TASKS} asyncio tasks, await apply_many_async([cmd] * {BURST})",
}
REFERENCE = "window"


# -- the node side: one style's load on the leader -----------------------------

def load(binding, style, size, warmup, duration, out):
    """Drive ``style`` on BindingNode ``binding`` (bench/loads.py); the reply
    is LoadStats.reply() plus the style."""
    from .loads import LoadStats
    node = binding.node
    if not node.is_leader:
        raise BenchError(f"node {node.id} is not the leader")
    command = payload(size)
    st = LoadStats(warmup, duration)
    fatal = (binding.raft.NotLeaderError, binding.raft.ShutdownError)
    if style == "window":
        binding._load_window(command, WINDOW, st, out)
    elif style == "window8":
        binding._load_window(command, 8, st, out)
    elif style == "callbacks":
        binding._load_callback(command, WINDOW, st, out)
    elif style == "blocking":
        _threads(node, command, 1, st, out, fatal)
    elif style.startswith("threads"):
        _threads(node, command, int(style[len("threads"):]), st, out, fatal)
    elif style == "asyncio":
        asyncio.run(_tasks(st, out, WINDOW, _one_apply(node, command, st, fatal)))
    elif style == "many_async":
        asyncio.run(_tasks(st, out, BURST_TASKS, _bursts(node, command, st, fatal)))
    else:
        raise BenchError(f"unknown client style {style!r}")
    return st.reply(api=style)


def _threads(node, command, n, st, out, fatal):
    """``n`` threads in blocking apply().result() loops until the end; this
    thread marks the measured period."""
    apply, now = node.apply, time.perf_counter_ns
    start, end, lat = st.start, st.end, st.lat
    stop = threading.Event()

    def client():
        while not stop.is_set():
            t0 = now()
            if t0 >= end:
                return
            st.submitted += 1
            try:
                apply(command).result(RESULT_TIMEOUT)
            except Exception as exc:
                st.error(exc)
                if isinstance(exc, fatal):
                    stop.set()
                continue
            t1 = now()
            if start <= t1 <= end:
                lat.append(t1 - t0)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    _mark_period(st, out, stop.is_set)
    for t in threads:
        t.join(RESULT_TIMEOUT + DRAIN_TIMEOUT)
    st.pending = sum(t.is_alive() for t in threads)


def _mark_period(st, out, stopped):
    """Announce the measured period's start and end from this thread."""
    for mark in (st.start, st.end):
        while not stopped() and time.perf_counter_ns() < mark:
            time.sleep(min(0.01, max(0.0, (mark - time.perf_counter_ns()) / 1e9)))
        if mark == st.start:
            st.begin_if_due(max(mark, time.perf_counter_ns()), out)
    st.finish(out)


async def _tasks(st, out, n, client):
    """``n`` copies of coroutine function ``client`` until the end, with a
    task marking the measured period."""
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(client(stop)) for _ in range(n)]
    for mark in (st.start, st.end):
        while not stop.is_set() and time.perf_counter_ns() < mark:
            await asyncio.sleep(min(0.01, max(0.0, (mark - time.perf_counter_ns()) / 1e9)))
        if mark == st.start:
            st.begin_if_due(max(mark, time.perf_counter_ns()), out)
    st.finish(out)
    done, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT)
    st.pending = len(pending)
    for task in pending:
        task.cancel()


def _one_apply(node, command, st, fatal):
    apply_async, now = node.apply_async, time.perf_counter_ns
    start, end, lat = st.start, st.end, st.lat

    async def client(stop):
        while not stop.is_set():
            t0 = now()
            if t0 >= end:
                return
            st.submitted += 1
            try:
                await apply_async(command)
            except Exception as exc:
                st.error(exc)
                if isinstance(exc, fatal):
                    stop.set()
                continue
            t1 = now()
            if start <= t1 <= end:
                lat.append(t1 - t0)
    return client


def _bursts(node, command, st, fatal):
    many = getattr(node, "apply_many_async", None)
    if many is None:
        raise BenchError("this canonical_raft has no apply_many_async")
    commands = [command] * BURST
    now = time.perf_counter_ns
    start, end, lat = st.start, st.end, st.lat

    async def client(stop):
        while not stop.is_set():
            t0 = now()
            if t0 >= end:
                return
            st.submitted += BURST
            try:
                results = await many(commands)
            except Exception as exc:
                st.error(exc)
                if isinstance(exc, fatal):
                    stop.set()
                continue
            t1 = now()
            for r in results:
                if isinstance(r, BaseException):
                    st.error(r)
            if start <= t1 <= end:
                lat.extend([t1 - t0] * BURST)
    return client


# -- the harness side ---------------------------------------------------------------

def run(args):
    """Every style on one binding cluster per run; a table (or JSON lines)."""
    from .cluster import Cluster
    from .run import _data_root, _progress, _say
    from .settings import plan_settings

    styles = args.styles or list(STYLES)
    if REFERENCE not in styles:
        styles = [REFERENCE] + styles
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise BenchError(f"unknown client style(s) {unknown}: choose from {', '.join(STYLES)}")
    plan, notes = plan_settings(args)
    knobs, options = plan[IMPL_BINDING]
    size = args.size[0]
    root, fstype = _data_root(args)
    emit = JsonLines(args.json, args.format == "json")

    emit(dict(type="header", bench="styles", nodes=args.nodes, size=size, styles=styles,
              duration=args.duration, warmup=args.warmup, runs=args.runs, data_root=root,
              fstype=fstype, cpus=os.cpu_count(), python=sys.version.split()[0], knobs=knobs))
    _say(args, f"canonical_raft bench --styles: {args.nodes} nodes on 127.0.0.1, data in {root} "
               f"({fstype}), {os.cpu_count()} CPUs, {size}-byte commands; {args.duration:g} s per "
               f"row after {args.warmup:g} s warm-up, {args.runs} run(s), medians")
    for note in notes:
        _say(args, "  " + note)
    workroot = tempfile.mkdtemp(prefix="canonical-raft-styles-", dir=root)
    rows = []
    try:
        for run_index in range(args.runs):
            workdir = tempfile.mkdtemp(prefix="styles-", dir=workroot)
            cluster = Cluster(IMPL_BINDING, args.nodes, workdir, knobs, dict(options, api="apply"))
            try:
                cluster.leader()
                for style in styles:
                    try:
                        cluster.settle()
                        row = cluster.measure(size, WINDOW, args.warmup, args.duration,
                                              style=style)
                    except BenchError as exc:
                        if not all(n.alive for n in cluster.nodes):
                            raise
                        row = dict(error=str(exc))
                        _progress(args, f"  run {run_index + 1} {style:>10}: FAILED: {exc}")
                    row.update(style=style, run=run_index)
                    rows.append(row)
                    emit(dict(type="row", **row))
                    if "error" not in row:
                        _progress(args, f"  run {run_index + 1} {style:>10}: {row['ops_per_s']:>9.0f} "
                                        f"ops/s  p50 {row['p50_ms']} ms  errors {row['errors']}")
            finally:
                cluster.close()
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
        summaries = summarize(rows, styles)
        for s in summaries:
            emit(s)
        emit.close()
    if args.format == "table":
        print()
        print(format_table(summaries))
    return 0


def summarize(rows, styles):
    """Medians per style; ``ratio``: median over runs of row / window row."""
    rows = [r for r in rows if "error" not in r]
    ref = {r["run"]: r["ops_per_s"] for r in rows if r["style"] == REFERENCE}
    out = []
    for style in styles:
        mine = [r for r in rows if r["style"] == style]
        if not mine:
            out.append(dict(type="summary", style=style, what=STYLES[style], runs=0,
                            error="no successful run"))
            continue
        ratios = [r["ops_per_s"] / ref[r["run"]] for r in mine if ref.get(r["run"])]
        med = (lambda key: statistics.median(r[key] for r in mine if r.get(key) is not None)
               if any(r.get(key) is not None for r in mine) else None)
        out.append(dict(type="summary", style=style, what=STYLES[style], runs=len(mine),
                        ops_per_s=med("ops_per_s"), p50_ms=med("p50_ms"), p99_ms=med("p99_ms"),
                        cpu_us_per_op=med("cpu_us_per_op"),
                        errors=sum(r["errors"] for r in mine),
                        ops=[r["ops_per_s"] for r in mine],
                        ratio=round(statistics.median(ratios), 3) if ratios else None))
    return out


def format_table(summaries):
    head = (f"{'style':<11} {'ops/s':>9} {'vs window':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'us CPU/op':>9}  what")
    lines = [head, "-" * (len(head) + 40)]
    num = (lambda v, fmt: format(v, fmt) if v is not None else "-")
    for s in summaries:
        if s.get("error"):
            lines.append(f"{s['style']:<11} {s['error']}")
            continue
        lines.append(f"{s['style']:<11} {num(s['ops_per_s'], '.0f'):>9} {num(s['ratio'], '.3f'):>9} "
                     f"{num(s['p50_ms'], '.3f'):>8} {num(s['p99_ms'], '.3f'):>8} "
                     f"{num(s['cpu_us_per_op'], '.1f'):>9}  {s['what']}"
                     + (f"  ({s['errors']} errors)" if s["errors"] else ""))
    lines.append("\nvs window: ops/s divided by the window row's of the same run, median over runs.")
    return "\n".join(lines)
