"""ReplicatedDict sets against PySyncObj's ReplDict, same machine, same run (issue 14).

    python -m bench.batteries --vs-pysyncobj [--runs 3] [--duration 4] [--warmup 1]
        [--window 64 [1024 ...]] [--keys 10000] [--pysyncobj-conf LABEL:NAME=VALUE,...]
        [--no-tmpfs] [--baseline DIR] [--data-root DIR] [--json FILE]

Three node processes on 127.0.0.1 per implementation, a fresh cluster per
implementation and run, the load driven in the leader's process: ``set(key,
n)`` with keys cycling over ``--keys`` names (``k00000``...) and int values,
the same on both sides. Rows:

- ``canonical_raft``: ``canonical_raft.batteries.ReplicatedDict`` as the
  node's FSM, the library's defaults, data on the real disk (fsync per
  entry): ``blocking`` (``d.set(k, v).result()`` in a loop), ``window``
  (``--window`` futures in flight, polling the oldest: bench/loads.py's
  window loop) and ``callbacks`` (``--window`` chains, each done callback
  submits the next: its ``--api callback`` loop); each ``--window`` in turn;
- ``canonical_raft[tmpfs]``: the same on /dev/shm (fsync costs nothing
  there), ``blocking`` and ``window``: the durability PySyncObj has, which
  is none;
- ``pysyncobj[LABEL]``: ``pysyncobj.batteries.ReplDict`` on a SyncObj with
  that configuration (PYSYNCOBJ_CONFS), ``blocking`` (``set(k, v,
  sync=True)``) and ``callbacks`` (``--window`` chains of ``set(k, v,
  callback=...)``, each callback submitting the next on PySyncObj's tick
  thread: how it gets its throughput), at the same windows;
- ``canonical_raft[baseline]`` (``--baseline DIR``): the ``canonical_raft``
  rows again with the package in DIR (another checkout, e.g. of main, built):
  before and after a change, in the same run.

The ratios are canonical_raft / PySyncObj's best configuration for that
client at the same window (blocking: window 1), taken per run (so a noisy minute hits both sides), median over runs.
PySyncObj never fsyncs: its log is in memory (or in an mmap it never
msyncs), so only ``canonical_raft[tmpfs]`` is like for like on durability.
"""

import argparse
import importlib.metadata
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

from canonical_raft.testing import free_ports, procs

from .cluster import ROOT, Cluster, NodeProc
from .common import (DRAIN_TIMEOUT, RESULT_TIMEOUT, START_TIMEOUT, BenchError, parse_value)
from .loads import BindingNode, LoadStats

IMPL_DICT = "canonical_raft"
IMPL_DICT_TMPFS = "canonical_raft[tmpfs]"
IMPL_DICT_BASELINE = "canonical_raft[baseline]"
IMPL_PSO_DICT = "pysyncobj"
TMPFS_ROOT = "/dev/shm"

# PySyncObj's configurations, each measured in every run; the best per client
# (per run) is what the ratios divide by. Common to all, SyncObjConf's
# defaults, already its fastest choices: the log in memory (journalFile=None:
# a journal is an mmap written on every entry and never synced, so slower and
# no more durable), no fullDumpFile (else compaction forks a writer per dump),
# dynamicMembershipChange=False (else every command is parsed as a possible
# membership change), commandsWaitLeader=True (commands queue while no leader
# is known instead of failing; no effect once a leader is known).
#  - "shipped": SyncObjConf() as shipped: appends batched and sent on the
#    100 ms appendEntriesPeriod timer (a blocking set waits for it).
#  - "nobatch": appendEntriesUseBatch=False: each command is sent at once
#    (the tick thread woken through a pipe): its best at window 1.
#  - "batch1ms", "batch05ms": batched, sent every 1 ms / 0.5 ms
#    (appendEntriesPeriod, and autoTickPeriod, the poll timeout of its tick
#    thread, to match), and logCompactionMinEntries=10,000,000, so that the
#    log is compacted every logCompactionMinTime (300 s) instead of every
#    5,000 commands: a compaction pickles and gzips the whole dict on the
#    tick thread, which applies nothing meanwhile (it halved the sets/s).
#    Its best at 64 in flight: as many commands per message as the batched
#    mode gives, without waiting 100 ms for them. A benchmark's choice: the
#    leader heartbeats every 0.5-1 ms even when idle, and the log grows in
#    memory for 5 minutes.
# Measured no better here (bench/README.md): nobatch at 64 in flight (one
# message per command: 4-5x the CPU per set), a 10 ms period, a 5 ms tick,
# 1 MiB socket buffers, a fullDumpFile (compaction in a forked child),
# 0.25 ms and 0.1 ms periods.
_NO_COMPACTION = {"logCompactionMinEntries": 10_000_000}
PYSYNCOBJ_CONFS = {
    "shipped": {},
    "nobatch": {"appendEntriesUseBatch": False},
    "batch1ms": {"appendEntriesPeriod": 0.001, "autoTickPeriod": 0.001, **_NO_COMPACTION},
    "batch05ms": {"appendEntriesPeriod": 0.0005, "autoTickPeriod": 0.0005, **_NO_COMPACTION},
}
CLIENTS = {IMPL_DICT: ("blocking", "window", "callbacks"),
           IMPL_DICT_TMPFS: ("blocking", "window"),
           IMPL_DICT_BASELINE: ("blocking", "window", "callbacks"),
           IMPL_PSO_DICT: ("blocking", "callbacks")}
# canonical_raft client -> the PySyncObj client its ratio divides by
RATIO_PAIRS = (("blocking", "blocking"), ("window", "callbacks"), ("callbacks", "callbacks"))
TARGET = 5.0       # issue 14: ReplicatedDict sets >= 5x PySyncObj's ReplDict (its best)


def key_names(keys):
    return [f"k{i:05d}" for i in range(keys)]


# -- the node process ---------------------------------------------------------------


class _SetsNode:
    """A Node whose ``apply(cmd)`` is ``d.set(next key, n)``: BindingNode's
    loads (bench/loads.py) then drive the dict unchanged."""

    def __init__(self, node, d, keys):
        self._node, self._set, self._keys, self._n = node, d.set, key_names(keys), 0

    def __getattr__(self, name):
        return getattr(self._node, name)

    def apply(self, _command):
        n = self._n
        self._n = n + 1
        return self._set(self._keys[n % len(self._keys)], n)


class DictNode(BindingNode):
    """A canonical_raft node whose FSM is a ReplicatedDict."""

    impl = IMPL_DICT

    def __init__(self, node_id, servers, data_dir, keys):
        import canonical_raft as raft
        from canonical_raft.batteries import ReplicatedDict
        self.raft = raft
        self.d = ReplicatedDict(timeout=RESULT_TIMEOUT)
        node = raft.Node(node_id, dict(servers)[node_id], data_dir, self.d)
        self.d.attach(node)
        node.bootstrap([raft.Server(i, a) for i, a in servers])
        node.start()
        self.node = _SetsNode(node, self.d, keys)
        self.api = "apply"

    def status(self):
        s = self.node.stats()
        return dict(state=s["state"].name, leader=s["leader_id"] or 0, term=s["term"],
                    commit_index=s["commit_index"], last_applied=s["last_applied"],
                    keys=len(self.d), package=os.path.dirname(self.raft.__file__))

    def load(self, size, window, warmup, duration, out, client="window"):
        self.api = "callback" if client == "callbacks" else "apply"
        reply = super().load(size, 1 if client == "blocking" else window, warmup, duration, out)
        reply["api"] = client
        return reply


class PySyncObjDictNode:
    """A PySyncObj node whose state is a ReplDict (pysyncobj.batteries)."""

    impl = IMPL_PSO_DICT

    def __init__(self, node_id, servers, conf, keys):
        from pysyncobj import SyncObj, SyncObjConf
        from pysyncobj.batteries import ReplDict
        self.d = ReplDict()
        address = dict(servers)[node_id]
        self.obj = SyncObj(address, [a for i, a in servers if i != node_id],
                           SyncObjConf(**conf), consumers=[self.d])
        self.ids = {a: i for i, a in servers}
        self.keys = key_names(keys)

    def status(self):
        s = self.obj.getStatus()
        leader = s["leader"]
        return dict(state={0: "FOLLOWER", 1: "CANDIDATE", 2: "LEADER"}.get(s["state"], "?"),
                    leader=self.ids.get(getattr(leader, "address", None), 0), term=s["raft_term"],
                    commit_index=s["commit_idx"], last_applied=s["last_applied"], keys=len(self.d))

    def load(self, size, window, warmup, duration, out, client="callbacks"):
        from pysyncobj import FAIL_REASON
        if self.obj.getStatus()["state"] != 2:
            raise BenchError("not the leader")
        st = LoadStats(warmup, duration)
        keys, nkeys, dset = self.keys, len(self.keys), self.d.set
        counter = iter(range(1 << 62))
        if client == "blocking":
            def one():
                n = next(counter)
                dset(keys[n % nkeys], n, sync=True, timeout=RESULT_TIMEOUT)
            st.run_blocking(one, out)
        elif client == "callbacks":
            self._chains(st, out, window, FAIL_REASON.SUCCESS)
        else:
            raise BenchError(f"pysyncobj: unknown client {client!r}")
        return st.reply(api=client)

    def _chains(self, st, out, window, success):
        """``window`` chains: each callback (on PySyncObj's tick thread)
        records its set and submits the next, so nothing crosses threads
        (bench/loads.py's ``_load_callback``, in PySyncObj's API)."""
        keys, nkeys, dset, now = self.keys, len(self.keys), self.d.set, time.perf_counter_ns
        start, end, lat = st.start, st.end, st.lat
        counter = iter(range(1 << 62))
        lock, idle = threading.Lock(), threading.Event()
        live = window

        def submit():
            n = next(counter)
            t0 = now()
            st.submitted += 1
            dset(keys[n % nkeys], n, callback=lambda result, err: done(err, t0))

        def done(err, t0):
            nonlocal live
            t1 = now()
            if err != success:
                st.error(f"FAIL_REASON {err}")
            elif start <= t1 <= end:
                lat.append(t1 - t0)
            if t1 < end:
                submit()
                return
            with lock:
                live -= 1
                if not live:
                    idle.set()

        for _ in range(window):
            submit()
        for mark in (start, end):
            while not idle.is_set() and now() < mark:
                idle.wait(max(0.0005, (mark - now()) / 1e9))
            if mark == start:
                st.begin_if_due(max(start, now()), out)
        st.finish(out)
        if not idle.wait(DRAIN_TIMEOUT):
            st.pending = live

    def close(self):
        self.obj.destroy()


def _node_main(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.vs_pysyncobj node")
    parser.add_argument("--impl", choices=(IMPL_DICT, IMPL_PSO_DICT), required=True)
    parser.add_argument("--node", type=int, required=True)
    parser.add_argument("--cluster", required=True, help="id=host:port,...")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--conf", default="{}", help="SyncObjConf keywords, JSON (pysyncobj); "
                        "{data_dir} in a string value is this node's data dir")
    args = parser.parse_args(argv)
    channel = procs.Child(f"{args.impl} node {args.node}")
    servers = procs.parse_servers(args.cluster)
    try:
        if args.impl == IMPL_DICT:
            node = DictNode(args.node, servers, args.data_dir, args.keys)
        else:
            conf = {name: value.replace("{data_dir}", args.data_dir) if isinstance(value, str)
                    else value for name, value in json.loads(args.conf).items()}
            node = PySyncObjDictNode(args.node, servers, conf, args.keys)
    except Exception as exc:
        channel.failed(exc)
        channel.flush()
        return 1
    channel.serve_node(node.close, {
        "status": node.status,
        "load": lambda size, window, warmup, duration, client:
            node.load(size, window, warmup, duration, channel, client=client),
    }, impl=node.impl)
    return 0


# -- the parent ---------------------------------------------------------------------


class DictNodeProc(NodeProc):
    """A node process of this benchmark (bench/cluster.py's NodeProc, another argv)."""

    def __init__(self, impl, node_id, address, cluster, data_dir, log_path, keys, conf,
                 package_dir=None):
        self.impl, self.id, self.address = impl, node_id, address
        self.on_mark = None
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        argv = procs.python_argv("bench.vs_pysyncobj", "node", "--impl",
                                 IMPL_PSO_DICT if impl.startswith(IMPL_PSO_DICT) else IMPL_DICT,
                                 "--node", str(node_id), "--cluster", cluster,
                                 "--data-dir", data_dir, "--keys", str(keys),
                                 "--conf", json.dumps(conf))
        env = procs.child_env(ROOT)
        if package_dir:
            # Its canonical_raft first (--baseline); it is also the working
            # dir, which ``python -m`` puts before PYTHONPATH (ROOT has one).
            env["PYTHONPATH"] = os.pathsep.join((package_dir, env["PYTHONPATH"]))
        procs.Process.__init__(self, argv, name=f"{impl} node {node_id}", log_path=log_path,
                               env=env, cwd=package_dir or ROOT, on_event=self._event,
                               new_session=False)


class DictCluster(Cluster):
    """Three (``n``) node processes of one implementation on 127.0.0.1;
    leader(), settle() and measure() are bench/cluster.py's."""

    def __init__(self, impl, n, workdir, keys, conf, package_dir=None):
        self.impl = impl
        self.nodes = []
        ports = free_ports(n)
        spec = procs.format_servers({i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)})
        try:
            for i, port in enumerate(ports, 1):
                self.nodes.append(DictNodeProc(impl, i, f"127.0.0.1:{port}", spec,
                                               os.path.join(workdir, f"node{i}"),
                                               os.path.join(workdir, f"node{i}.log"), keys, conf,
                                               package_dir))
            deadline = time.monotonic() + START_TIMEOUT
            for node in self.nodes:
                node.start_or_fail(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.close()
            raise


def _say(text):
    print(text, file=sys.stderr, flush=True)


def _impls(args):
    """(impl, data root, SyncObjConf keywords, package dir) in the order of run 1."""
    out = [(IMPL_DICT, args.root, {}, None)]
    if args.baseline:
        out.append((IMPL_DICT_BASELINE, args.root, {}, args.baseline_dir))
    if not args.no_tmpfs:
        out.append((IMPL_DICT_TMPFS, TMPFS_ROOT, {}, None))
    confs = dict(PYSYNCOBJ_CONFS) if not args.pysyncobj_conf else {}
    confs.update(args.pysyncobj_conf)
    out += [(f"{IMPL_PSO_DICT}[{label}]", args.root, conf, None) for label, conf in confs.items()]
    return out


def _baseline_dir(checkout, workdir):
    """A directory holding only ``checkout``'s canonical_raft package (a
    link), so the node processes take that package and this bench."""
    package = os.path.join(os.path.abspath(checkout), "canonical_raft")
    if not os.path.isfile(os.path.join(package, "__init__.py")):
        raise BenchError(f"--baseline {checkout}: no canonical_raft package there")
    os.symlink(package, os.path.join(workdir, "canonical_raft"))
    return workdir


def _check_package(cluster, package_dir):
    """BenchError unless every canonical_raft node runs the package meant:
    ``package_dir``'s (--baseline), else this bench's."""
    want = os.path.realpath(os.path.join(package_dir or ROOT, "canonical_raft"))
    for node_id, status in cluster.statuses().items():
        got = status.get("package")
        if got is not None and os.path.realpath(got) != want:
            raise BenchError(f"{cluster.impl} node {node_id} runs {got}, not {want}")


def _loads(impl, windows):
    """(client, window) of each row of ``impl``: blocking once, at window 1."""
    return [(client, 1) if client == "blocking" else (client, window)
            for client in CLIENTS[_base(impl)]
            for window in ([1] if client == "blocking" else windows)]


def _base(impl):
    return impl.split("[", 1)[0] if impl.startswith(IMPL_PSO_DICT) else impl


def run_rows(args, emit):
    """Every implementation and client, ``--runs`` times (the order of the
    implementations reversed on every other run); the rows."""
    rows = []
    impls = _impls(args)
    for run_index in range(args.runs):
        for impl, root, conf, package_dir in (impls if run_index % 2 == 0 else impls[::-1]):
            workdir = tempfile.mkdtemp(prefix="bench-vs-pysyncobj-", dir=root)
            try:
                cluster = DictCluster(impl, 3, workdir, args.keys, conf, package_dir)
                try:
                    cluster.leader()
                    _check_package(cluster, package_dir)
                    for client, window in _loads(impl, args.window):
                        cluster.settle()
                        row = cluster.measure(0, window, args.warmup, args.duration,
                                              client=client)
                        row.update(type="row", impl=impl, client=client, run=run_index,
                                   window=window, conf=conf)
                        rows.append(row)
                        emit(row)
                        _say(f"  run {run_index + 1} {impl:>24} {client:>9} {window:>5}: "
                             f"{row['ops_per_s']:>9.0f} sets/s  p50 {row['p50_ms']} ms"
                             + (f"  {row['errors']} errors ({row['first_error']})"
                                if row["errors"] else ""))
                finally:
                    cluster.close()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    return rows


def summarize(rows):
    """Medians per (impl, client, window), and the ratios: per run and
    window, canonical_raft (and [tmpfs], [baseline]) / the best PySyncObj
    configuration for the paired client, and canonical_raft /
    canonical_raft[baseline]; median over runs."""
    keys = sorted({(r["impl"], r["client"], r["window"]) for r in rows},
                  key=lambda k: (k[0] != IMPL_DICT, k))
    med = (lambda mine, key: statistics.median(r[key] for r in mine)
           if all(r.get(key) is not None for r in mine) else None)
    summaries = []
    for impl, client, window in keys:
        mine = [r for r in rows if (r["impl"], r["client"], r["window"]) == (impl, client, window)]
        summaries.append(dict(type="summary", impl=impl, client=client, window=window,
                              runs=len(mine), ops_per_s=med(mine, "ops_per_s"),
                              p50_ms=med(mine, "p50_ms"), p99_ms=med(mine, "p99_ms"),
                              cpu_us_per_op=med(mine, "cpu_us_per_op"),
                              errors=sum(r["errors"] for r in mine)))
    ratios = []
    runs = sorted({r["run"] for r in rows})
    windows = sorted({r["window"] for r in rows if r["client"] != "blocking"})
    shipped = f"{IMPL_PSO_DICT}[shipped]"
    pairs = [(mine, theirs, window) for mine, theirs in RATIO_PAIRS
             for window in ([1] if mine == "blocking" else windows)]
    comparisons = [(ours, against) for ours in (IMPL_DICT, IMPL_DICT_TMPFS, IMPL_DICT_BASELINE)
                   for against in ("best", shipped)] + [(IMPL_DICT, IMPL_DICT_BASELINE)]
    for ours, against in comparisons:
        for mine, theirs, window in pairs:
            if against == IMPL_DICT_BASELINE:
                theirs = mine
            per_run, chosen = [], []
            for run in runs:
                a = [r for r in rows if (r["impl"], r["client"], r["window"], r["run"])
                     == (ours, mine, window, run)]
                b = [r for r in rows if (r["client"], r["window"], r["run"]) == (theirs, window, run)
                     and r["ops_per_s"] > 0 and (r["impl"] == against if against != "best"
                                                 else _base(r["impl"]) == IMPL_PSO_DICT)]
                if a and b:
                    best = max(b, key=lambda r: r["ops_per_s"])
                    per_run.append(a[0]["ops_per_s"] / best["ops_per_s"])
                    chosen.append(best["impl"])
            if per_run:
                ratios.append(dict(type="ratio", impl=ours, client=mine, vs_client=theirs,
                                   window=window, against=against,
                                   ratio=round(statistics.median(per_run), 2),
                                   per_run=[round(x, 2) for x in per_run], vs=chosen))
    return summaries, ratios


def format_report(summaries, ratios):
    num = (lambda v, fmt: format(v, fmt) if v is not None else "-")
    head = (f"{'impl':<28} {'client':<10} {'window':>6} {'sets/s':>9} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'us CPU/op':>9}")
    lines = [head, "-" * len(head)]
    for s in summaries:
        lines.append(f"{s['impl']:<28} {s['client']:<10} {s['window']:>6} "
                     f"{num(s['ops_per_s'], '.0f'):>9} {num(s['p50_ms'], '.3f'):>8} "
                     f"{num(s['p99_ms'], '.3f'):>8} {num(s['cpu_us_per_op'], '.1f'):>9}"
                     + (f"  ({s['errors']} errors)" if s["errors"] else ""))
    for against, title in (("best", "PySyncObj's best configuration in each run"),
                           (f"{IMPL_PSO_DICT}[shipped]", "PySyncObj as shipped (SyncObjConf())"),
                           (IMPL_DICT_BASELINE, "canonical_raft[baseline] (--baseline)")):
        mine = [r for r in ratios if r["against"] == against]
        if mine:
            lines += ["", f"canonical_raft / {title}, median of per-run ratios "
                          f"(window: in flight on both sides):"]
        for r in mine:
            best = max(set(r["vs"]), key=r["vs"].count)
            met = ("" if against != "best" or r["impl"] != IMPL_DICT or r["client"] == "blocking"
                   else f"  target {TARGET:g}x: {'met' if r['ratio'] >= TARGET else 'MISSED'}")
            lines.append(f"  {r['window']:>5}  {r['impl'] + ' ' + r['client']:<34} vs "
                         f"{r['vs_client']:<9} {r['ratio']:>7.2f}x  "
                         f"(per run {', '.join(f'{x:g}' for x in r['per_run'])}"
                         + (f"; best: {best})" if against == "best" else ")") + met)
    lines.append("\nPySyncObj never fsyncs (its log is in memory); canonical_raft fsyncs every "
                 "entry; canonical_raft[tmpfs] keeps its data on tmpfs, where fsync is free: "
                 "the like-for-like durability row.")
    return "\n".join(lines)


def _conf(text):
    label, sep, rest = text.partition(":")
    if not sep or not label:
        raise argparse.ArgumentTypeError("--pysyncobj-conf wants LABEL:NAME=VALUE[,NAME=VALUE]")
    conf = {}
    for item in filter(None, rest.split(",")):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--pysyncobj-conf {item!r} is not NAME=VALUE")
        conf[name] = parse_value(value)
    return label, conf


def add_arguments(parser):
    parser.add_argument("--runs", type=procs.at_least(1), default=3)
    parser.add_argument("--duration", type=procs.at_least(0.1, float), default=4.0,
                        help="measured seconds per row (default 4)")
    parser.add_argument("--warmup", type=procs.at_least(0.0, float), default=1.0)
    parser.add_argument("--window", type=procs.at_least(2), nargs="+", default=[64],
                        help="sets in flight for the pipelined clients, each in turn "
                             "(default 64)")
    parser.add_argument("--keys", type=procs.at_least(1), default=10_000,
                        help="distinct keys the sets cycle over (default 10,000)")
    parser.add_argument("--pysyncobj-conf", type=_conf, action="append", default=[],
                        metavar="LABEL:NAME=VALUE,...",
                        help="a SyncObjConf to measure instead of the built-in candidates "
                             "(repeatable; 'LABEL:' alone is SyncObjConf())")
    parser.add_argument("--no-tmpfs", action="store_true",
                        help="skip canonical_raft with its data on tmpfs")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also measure the canonical_raft package of the checkout DIR "
                             "(built), as canonical_raft[baseline]: before and after, same run")


def run(args):
    """The comparison; args from add_arguments() plus data_root/tmpfs/json."""
    from .run import _data_root
    try:
        import pysyncobj  # noqa: F401  (bench/requirements.txt; never installed from here)
    except ImportError:
        print("bench.batteries --vs-pysyncobj: pysyncobj is not installed "
              "(pip install -r bench/requirements.txt, or make bench)", file=sys.stderr)
        return 2
    args.pysyncobj_conf = dict(args.pysyncobj_conf)
    try:
        args.root, fstype = _data_root(args)
    except BenchError as exc:
        print(f"bench.batteries: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-vs-pysyncobj-baseline-") as workdir:
        args.baseline_dir = None
        if getattr(args, "baseline", None):
            try:
                args.baseline_dir = _baseline_dir(args.baseline, workdir)
            except BenchError as exc:
                print(f"bench.batteries: {exc}", file=sys.stderr)
                return 2
        return _run(args, fstype)


def _run(args, fstype):
    json_file = open(args.json, "w") if args.json else None

    def emit(obj):
        if json_file:
            json_file.write(json.dumps(obj, separators=(",", ":")) + "\n")
            json_file.flush()

    emit(dict(type="header", bench="vs_pysyncobj", nodes=3, runs=args.runs, window=args.window,
              keys=args.keys, duration=args.duration, warmup=args.warmup, data_root=args.root,
              baseline=args.baseline,
              fstype=fstype, tmpfs_root=None if args.no_tmpfs else TMPFS_ROOT,
              cpus=os.cpu_count(), python=sys.version.split()[0],
              pysyncobj=importlib.metadata.version("pysyncobj")))
    _say(f"ReplicatedDict vs PySyncObj's ReplDict: 3 nodes on 127.0.0.1, data in {args.root} "
         f"({fstype}), {'/'.join(map(str, args.window))} in flight, {args.keys:,} keys, {args.duration:g} s per row, "
         f"{args.runs} run(s)")
    try:
        rows = run_rows(args, emit)
    except BenchError as exc:
        print(f"bench.batteries --vs-pysyncobj: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if json_file:
            json_file.flush()
    summaries, ratios = summarize(rows)
    for obj in summaries + ratios:
        emit(obj)
    if json_file:
        json_file.close()
    print(format_report(summaries, ratios), flush=True)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:
        return _node_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.batteries --vs-pysyncobj",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--data-root", help="where canonical_raft's data goes (default /var/tmp)")
    parser.add_argument("--tmpfs", action="store_true", help="allow a tmpfs data root")
    parser.add_argument("--json", help="also write JSON lines to this file")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
