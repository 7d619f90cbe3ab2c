"""Throughput and latency of a local cluster: canonical_raft against libraft in C.

``python -m canonical_raft bench`` starts ``--nodes`` node processes on
127.0.0.1 with their data directories on the real disk, finds the leader and
has it drive the load: for every ``--size`` and ``--window`` (commands in
flight; 1 is a blocking ``apply(cmd).result()`` loop) it submits commands for
``--duration`` seconds after ``--warmup`` and reports ops/s, latency from
submit to completion (p50, p99, max), the CPU seconds each node process used
during the measured period and its peak RSS (VmHWM, reset before each row).

The same cluster and load run on the C reference driver (bench/c/raft_bench.c,
libraft driven directly, one command per raft_apply, built on demand) in the
same invocation, and each row shows the ratio binding / C measured in the
same run. With ``--peers`` the load also runs on PySyncObj (installed into this
environment from PyPI on demand), which never fsyncs.

Settings: by default both sides run with the binding's effective defaults
(``canonical_raft.Node``'s, read at run time), which the C driver copies
knob by knob ("identical settings"); ``--knob NAME=VALUE`` changes one for
both. ``--defaults`` instead runs the binding with its own defaults and the C
driver with libraft's.

Every node process is stopped by its pid at the end, on errors and on
Ctrl-C; the temporary data directories are removed. Results: a table on
stdout, JSON lines with ``--json FILE`` or ``--format json``.
"""

import argparse
import collections
import inspect
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import TimeoutError as FutureTimeout

from canonical_raft.demo import _at_least, _child_env, reap_process
from canonical_raft.testing import free_ports

START_TIMEOUT = 30.0      # process spawned -> "ready"
LEADER_TIMEOUT = 30.0     # cluster up -> a leader known to every node
CALL_TIMEOUT = 15.0       # one status request
DRAIN_TIMEOUT = 30.0      # load deadline -> in-flight commands settled
SETTLE_TIMEOUT = 60.0     # row done -> every follower applied as much
CLOSE_TIMEOUT = 10.0      # "close" -> process exited
RESULT_TIMEOUT = 30.0     # one blocking apply().result() (window 1)
API_CHOICES = ("apply", "apply_many", "callback")   # how the binding's leader submits

IMPL_BINDING = "binding"
IMPL_C = "c"
IMPL_PSO = "pysyncobj"            # PySyncObj, its best configuration (below)
IMPL_PSO_DEFAULT = "pysyncobj-default"
IMPL_PSO_NOBATCH = "pysyncobj-nobatch"

PYSYNCOBJ_CAVEAT = ("PySyncObj keeps its log in memory and never fsyncs "
                    "(not durable); canonical_raft and C fsync every entry")

# PySyncObj's configurations. "batched" is SyncObjConf() as shipped: an
# in-memory log, appends batched and sent on a 100 ms timer; with thousands
# of commands in flight it is PySyncObj's fastest (other periods, batch sizes
# and buffer sizes measured no better here). "nobatch" sends each command at
# once (appendEntriesUseBatch=False): slower in bulk, its best at window 1.
PYSYNCOBJ_CONFS = {
    "batched": {},
    "nobatch": {"appendEntriesUseBatch": False},
}
# impl -> (configuration, the windows it runs)
PYSYNCOBJ_IMPLS = {
    IMPL_PSO: ("batched", "bulk"),              # windows > 1: its best configuration
    IMPL_PSO_DEFAULT: ("batched", "blocking"),  # window 1, as shipped
    IMPL_PSO_NOBATCH: ("nobatch", "blocking"),  # window 1, its best latency
}

# The knobs the C driver understands (bench/c/raft_bench.c parse_knob).
C_KNOBS = {"election_timeout", "heartbeat_timeout", "install_snapshot_timeout",
           "snapshot_threshold", "snapshot_trailing", "pre_vote",
           "max_catch_up_rounds", "max_catch_up_round_duration",
           "max_inflight_entries", "segment_size", "tcp_nodelay",
           "snapshot_compression"}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_SOURCE = os.path.join(ROOT, "bench", "c", "raft_bench.c")
C_BINARY = os.path.join(ROOT, "bench", "c", "raft_bench")


class BenchError(Exception):
    """The benchmark cannot go on (no leader, a node died, ...)."""


# ---------------------------------------------------------------------------
# Shared by both sides


def payload(size):
    """The command submitted ``size`` bytes at a time (the C driver uses the
    same letters, padded to a multiple of 8 bytes as libraft's uv backend
    requires of whole entries)."""
    return bytes(ord("a") + i % 26 for i in range(size))


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list (None if empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), -(-len(sorted_values) * p // 100)))
    return sorted_values[int(rank) - 1]


def parse_value(text):
    """A knob's value from the command line: bool, int, float or string."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def format_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------
# The node process (binding or PySyncObj): python -m canonical_raft.bench --node


class BenchFSM:
    """The state machine every implementation runs: count the command and fold
    it into a CRC-32; the result is the count (C: a pointer to it)."""

    def __init__(self):
        self.count = 0
        self.digest = 0

    def apply(self, command):
        self.count += 1
        self.digest = zlib.crc32(command, self.digest)
        return self.count

    def snapshot(self):
        return self.count.to_bytes(8, "little") + self.digest.to_bytes(8, "little")

    def restore(self, data):
        data = bytes(data)
        self.count = int.from_bytes(data[:8], "little")
        self.digest = int.from_bytes(data[8:16], "little")


class Out:
    """JSON lines to the parent on a private copy of stdout, from any thread."""

    def __init__(self):
        self._stream = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)       # anything else printing to fd 1 lands in the log
        self._lock = threading.Lock()

    def __call__(self, **msg):
        line = json.dumps(msg, separators=(",", ":")) + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


class LoadStats:
    """What one load run measured, shared by the node implementations."""

    def __init__(self, warmup, duration):
        now = time.perf_counter_ns()
        self.start = now + int(warmup * 1e9)
        self.end = self.start + int(duration * 1e9)
        self.lat = []
        self.ops = 0
        self.errors = 0
        self.first_error = ""
        self.submitted = 0
        self.pending = 0
        self.measuring = False

    def begin_if_due(self, t, out):
        """Announce the measured period once the clock reaches its start."""
        if not self.measuring and t >= self.start:
            self.measuring = True
            out(event="measure_start")

    def finish(self, out):
        """Announce the end of the measured period; lat only ever holds
        its completions."""
        out(event="measure_end")
        self.ops = len(self.lat)

    def run_blocking(self, apply_and_wait, out, fatal=()):
        """Window 1: apply_and_wait() submits one command and returns once
        it is done; its duration is the latency. Stops early on a `fatal`
        error (the node no longer leads or closed)."""
        now, start, end, lat = time.perf_counter_ns, self.start, self.end, self.lat
        while True:
            t0 = now()
            if t0 >= end:
                break
            self.begin_if_due(t0, out)
            self.submitted += 1
            try:
                apply_and_wait()
            except Exception as exc:
                self.error(exc)
                if isinstance(exc, fatal):
                    break
                continue
            t1 = now()
            if start <= t1 <= end:
                lat.append(t1 - t0)
        self.finish(out)

    def error(self, exc):
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)

    def reply(self, **extra):
        lat = sorted(self.lat)
        seconds = (self.end - self.start) / 1e9
        us = (lambda v: None if v is None else round(v / 1000, 1))
        return dict(ops=self.ops, seconds=seconds, ops_per_s=self.ops / seconds,
                    p50_us=us(percentile(lat, 50)), p99_us=us(percentile(lat, 99)),
                    max_us=us(lat[-1] if lat else None),
                    mean_us=us(sum(lat) / len(lat) if lat else None),
                    errors=self.errors, first_error=self.first_error,
                    pending=self.pending, submitted=self.submitted, **extra)


def _future_error(future):
    """The exception of a future known to be done, without making the lazy
    Condition of canonical_raft's futures (exception() would)."""
    try:
        return future._exception
    except AttributeError:
        return future.exception(0)


class BindingNode:
    """A canonical_raft.Node under load."""

    impl = IMPL_BINDING

    def __init__(self, node_id, servers, data_dir, knobs, api="apply"):
        import canonical_raft as raft
        self.raft = raft
        self.fsm = BenchFSM()
        address = dict(servers)[node_id]
        self.node = raft.Node(node_id, address, data_dir, self.fsm, **knobs)
        self.node.bootstrap([raft.Server(i, a) for i, a in servers])
        self.node.start()
        self.api = api

    def status(self):
        s = self.node.stats()
        state = s["state"]
        state = state.name if hasattr(state, "name") else str(state).rsplit(".", 1)[-1].upper()
        return dict(state=state, leader=s["leader_id"] or 0, term=s["term"],
                    commit_index=s["commit_index"], last_applied=s["last_applied"],
                    last_index=s.get("last_index"), count=self.fsm.count)

    def load(self, size, window, warmup, duration, out):
        if not self.node.is_leader:
            raise BenchError(f"node {self.node.id} is not the leader")
        command = payload(size)
        st = LoadStats(warmup, duration)
        if self.api == "callback":
            self._load_callback(command, window, st, out)
        elif window == 1:
            self._load_blocking(command, st, out)
        else:
            self._load_window(command, window, st, out)
        return st.reply(api=self.api if window > 1 or self.api == "callback"
                        else "apply().result()")

    def _load_blocking(self, command, st, out):
        apply = self.node.apply
        st.run_blocking(lambda: apply(command).result(RESULT_TIMEOUT), out,
                        fatal=(self.raft.NotLeaderError, self.raft.ShutdownError))

    def _load_window(self, command, window, st, out):
        """Keep ``window`` commands in flight, the way a pipelining client
        does: submit, wait for the oldest future, collect every future that
        is done by then (completion order is log order), refill. No done
        callbacks: they would run on the raft thread and make every future
        build its Condition. Latency is submit -> seen done here."""
        apply, apply_many, now = self.node.apply, self.node.apply_many, time.perf_counter_ns
        start, end, lat = st.start, st.end, st.lat
        pending = collections.deque()
        append, popleft = pending.append, pending.popleft
        bad = (self.raft.NotLeaderError, self.raft.ShutdownError)
        use_many = self.api == "apply_many"
        stop = False
        while not stop:
            t = now()
            if t >= end:
                break
            st.begin_if_due(t, out)
            free = window - len(pending)
            if free:
                if use_many:
                    t0 = now()
                    for future in apply_many([command] * free):
                        append((t0, future))
                else:
                    for _ in range(free):
                        append((now(), apply(command)))
                st.submitted += free
            oldest = pending[0][1]
            if not oldest.done():
                boundary = end if st.measuring else start
                try:
                    oldest.exception(max(0.0005, (boundary - now()) / 1e9))
                except FutureTimeout:
                    continue
            t1 = now()
            while pending and pending[0][1].done():
                t0, future = popleft()
                exc = _future_error(future)
                if exc is not None:
                    st.error(exc)
                    stop = stop or isinstance(exc, bad)
                elif start <= t1 <= end:
                    lat.append(t1 - t0)
        st.finish(out)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while pending and time.monotonic() < deadline:
            t0, future = popleft()
            try:
                exc = future.exception(max(0.001, deadline - time.monotonic()))
            except FutureTimeout:
                pending.appendleft((t0, future))
                break
            if exc is not None:
                st.error(exc)
        st.pending = len(pending)

    def _load_callback(self, command, window, st, out):
        """The C driver's shape: each completion submits the next command
        from its done callback, on the raft thread, so no command crosses
        between threads (at window 1: no hand-over to a blocked caller and
        back). The main thread only marks the measured period and waits."""
        apply, now = self.node.apply, time.perf_counter_ns
        start, end, lat = st.start, st.end, st.lat
        bad = (self.raft.NotLeaderError, self.raft.ShutdownError)
        lock = threading.Lock()
        idle = threading.Event()
        live = window           # chains still running
        stop = False

        def submit():
            t0 = now()
            st.submitted += 1
            apply(command).add_done_callback(lambda f: done(f, t0))

        def done(future, t0):
            nonlocal live, stop
            t1 = now()
            exc = _future_error(future)
            if exc is not None:
                st.error(exc)
                stop = stop or isinstance(exc, bad)
            elif start <= t1 <= end:
                lat.append(t1 - t0)
            if t1 < end and not stop:
                submit()
                return
            with lock:
                live -= 1
                if not live:
                    idle.set()

        def sleep_until(mark):      # or until every chain has stopped
            while not idle.is_set() and now() < mark:
                idle.wait(max(0.0005, (mark - now()) / 1e9))

        for _ in range(window):
            submit()
        sleep_until(start)
        st.begin_if_due(start, out)
        sleep_until(end)
        st.finish(out)
        if not idle.wait(DRAIN_TIMEOUT):
            st.pending = live

    def close(self):
        self.node.close()


class PySyncObjNode:
    """A PySyncObj node with the same FSM, for --peers."""

    impl = IMPL_PSO

    def __init__(self, node_id, servers, data_dir, conf_name):
        from pysyncobj import SyncObj, SyncObjConf, replicated

        class Replicated(SyncObj):
            def __init__(self, self_address, partners, conf):
                super().__init__(self_address, partners, conf)
                self.fsm = BenchFSM()

            @replicated
            def apply_command(self, command):
                return self.fsm.apply(command)

        self.conf_name = conf_name
        address = dict(servers)[node_id]
        partners = [a for i, a in servers if i != node_id]
        self.obj = Replicated(address, partners, SyncObjConf(**PYSYNCOBJ_CONFS[conf_name]))
        self.node_id = node_id
        self.ids = {a: i for i, a in servers}

    def status(self):
        s = self.obj.getStatus()
        names = {0: "FOLLOWER", 1: "CANDIDATE", 2: "LEADER"}
        leader = s["leader"]
        return dict(state=names.get(s["state"], str(s["state"])),
                    leader=self.ids.get(getattr(leader, "address", None), 0), term=s["raft_term"],
                    commit_index=s["commit_idx"], last_applied=s["last_applied"],
                    last_index=s["log_len"], count=self.obj.fsm.count)

    def load(self, size, window, warmup, duration, out):
        from pysyncobj import FAIL_REASON
        if self.obj.getStatus()["state"] != 2:
            raise BenchError(f"node {self.node_id} is not the leader")
        command = payload(size)
        st = LoadStats(warmup, duration)
        apply, now = self.obj.apply_command, time.perf_counter_ns
        start, end, lat = st.start, st.end, st.lat
        if window == 1:
            st.run_blocking(lambda: apply(command, sync=True, timeout=RESULT_TIMEOUT), out)
            return st.reply(api="sync=True")

        done = queue.SimpleQueue()
        put, get, get_nowait = done.put, done.get, done.get_nowait

        def settle(item):
            t0, t1, err = item
            if err != FAIL_REASON.SUCCESS:
                st.error(f"FAIL_REASON {err}")
            elif start <= t1 <= end:
                lat.append(t1 - t0)

        inflight = 0
        while True:
            t = now()
            if t >= end:
                break
            st.begin_if_due(t, out)
            for _ in range(window - inflight):
                t0 = now()
                apply(command, callback=lambda result, err, t0=t0: put((t0, now(), err)))
            st.submitted += window - inflight
            inflight = window
            boundary = end if st.measuring else start
            try:
                item = get(True, max(0.0005, (boundary - now()) / 1e9))
            except queue.Empty:
                continue
            inflight -= 1
            settle(item)
            while True:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                inflight -= 1
                settle(item)
        st.finish(out)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while inflight:
            try:
                settle(get(True, max(0.001, deadline - time.monotonic())))
            except queue.Empty:
                break
            inflight -= 1
        st.pending = inflight
        return st.reply(api="callback", conf=self.conf_name)

    def close(self):
        self.obj.destroy()


def _node_main(argv):
    parser = argparse.ArgumentParser(prog="python -m canonical_raft.bench",
                                     description="One node of the benchmark (started by it).")
    parser.add_argument("--node", type=int, required=True)
    parser.add_argument("--cluster", required=True, help="id=host:port,...")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--impl", choices=[IMPL_BINDING, IMPL_PSO], default=IMPL_BINDING)
    parser.add_argument("--pysyncobj-conf", choices=sorted(PYSYNCOBJ_CONFS), default="batched")
    parser.add_argument("--api", choices=API_CHOICES, default="apply")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent owns Ctrl-C
    out = Out()
    import logging
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"node {args.node} %(asctime)s %(name)s %(levelname)s %(message)s")
    servers = [(int(i), a) for i, a in (item.split("=", 1) for item in args.cluster.split(","))]
    knobs = {}
    for item in args.knob:
        name, _, value = item.partition("=")
        knobs[name] = parse_value(value)
    try:
        if args.impl == IMPL_BINDING:
            node = BindingNode(args.node, servers, args.data_dir, knobs, args.api)
        else:
            node = PySyncObjNode(args.node, servers, args.data_dir, args.pysyncobj_conf)
    except Exception as exc:
        out(event="error", error=f"{type(exc).__name__}: {exc}")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    out(event="ready", pid=os.getpid(), impl=node.impl)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            op = words[0]
            try:
                if op == "status":
                    out(re=op, **node.status())
                elif op == "load":
                    size, window = int(words[1]), int(words[2])
                    warmup, duration = float(words[3]), float(words[4])
                    out(re=op, **node.load(size, window, warmup, duration, out))
                elif op == "close":
                    break
                else:
                    out(re=op, error="unknown request")
            except Exception as exc:
                out(re=op, error=f"{type(exc).__name__}: {exc}")
    finally:
        node.close()
        out(re="close")
    return 0


# ---------------------------------------------------------------------------
# The parent




_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """user + system CPU seconds of a process, all its threads, so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_hwm_mb(pid):
    """Peak resident set (VmHWM) in MiB, since start or the last reset."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def reset_hwm(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def fs_type(path):
    """The file system type holding ``path`` (longest mount point prefix)."""
    path = os.path.realpath(path)
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                mount = parts[1].replace("\\040", " ")
                if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                    best, fstype = mount, parts[2]
    except OSError:
        pass
    return fstype


def build_c_driver(force=False, quiet=False):
    """Compile bench/c/raft_bench.c if missing or stale; return its path."""
    if not os.path.exists(C_SOURCE):
        raise BenchError(f"C driver source not found ({C_SOURCE}): run from a source checkout")
    if (not force and os.path.exists(C_BINARY)
            and os.path.getmtime(C_BINARY) >= os.path.getmtime(C_SOURCE)):
        return C_BINARY
    cc = os.environ.get("CC", "cc")

    def flags(*packages):
        return subprocess.run(["pkg-config", "--cflags", "--libs", *packages], check=True,
                              capture_output=True, text=True).stdout.split()

    try:
        try:
            libs, extra = flags("raft", "libuv", "zlib"), []
        except subprocess.CalledProcessError:
            libs, extra = flags("raft", "libuv"), ["-DBENCH_NO_ZLIB"]
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BenchError(f"cannot build the C driver: pkg-config raft libuv: {exc}") from None
    tmp = f"{C_BINARY}.tmp{os.getpid()}"
    cmd = [cc, "-O2", "-g", "-Wall", "-o", tmp, C_SOURCE, *extra, *libs]
    if not quiet:
        print("building the C driver: " + " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise BenchError(f"cannot build the C driver:\n{proc.stderr}")
    os.replace(tmp, C_BINARY)
    return C_BINARY


class NodeProc:
    """One node process: its stdin/stdout protocol and its resource usage."""

    def __init__(self, impl, node_id, address, cluster, data_dir, log_path, knobs, options):
        self.impl, self.id, self.address = impl, node_id, address
        self.log_path = log_path
        self.replies = queue.Queue()
        self.events = queue.Queue()
        self.marks = {}          # "measure_start"/"measure_end" -> samples, taken by the reader
        self.on_mark = None
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        if impl == IMPL_C:
            cmd = [build_c_driver(quiet=True)]
        else:
            cmd = [sys.executable, "-m", "canonical_raft.bench"]
        cmd += ["--node", str(node_id), "--cluster", cluster, "--data-dir", data_dir]
        if impl == IMPL_C and options.get("libraft_defaults"):
            cmd.append("--libraft-defaults")
        for name, value in knobs.items():
            cmd += ["--knob", f"{name}={format_value(value)}"]
        if impl in PYSYNCOBJ_IMPLS:
            cmd += ["--impl", IMPL_PSO, "--pysyncobj-conf", PYSYNCOBJ_IMPLS[impl][0]]
        if impl == IMPL_BINDING and options.get("api"):
            cmd += ["--api", options["api"]]
        self.cmd = cmd
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, env=_child_env(), cwd=ROOT)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"bench-node-{node_id}")
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            event = msg.get("event")
            if event in ("measure_start", "measure_end"):
                if self.on_mark is not None:
                    self.on_mark(event)
            elif event is not None:
                self.events.put(msg)
            else:
                self.replies.put(msg)
        self.replies.put(None)
        self.events.put(None)

    @property
    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout):
        try:
            msg = self.events.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"{self.impl} node {self.id} did not start within {timeout:.0f} s") from None
        if msg is None or msg.get("event") != "ready":
            raise BenchError(f"{self.impl} node {self.id} failed to start: "
                             f"{(msg or {}).get('error') or self.log_tail()}")
        return msg

    def call(self, line, timeout=CALL_TIMEOUT):
        op = line.split()[0]
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):
            raise BenchError(f"{self.impl} node {self.id} has exited: {self.log_tail()}") from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError(f"{self.impl} node {self.id}: no reply to {op!r} "
                                 f"within {timeout:.0f} s") from None
            if msg is None:
                self.replies.put(None)
                raise BenchError(f"{self.impl} node {self.id} has exited "
                                 f"(status {self.proc.poll()}): {self.log_tail()}")
            if msg.get("re") == op:
                if "error" in msg:
                    raise BenchError(f"{self.impl} node {self.id}: {op}: {msg['error']}")
                return msg

    def stop(self, timeout):
        """Ask politely, then SIGTERM, then SIGKILL, by pid; bounded."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"close\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass
        reap_process(self.proc, timeout, self._reader, self._log)

    def log_tail(self, lines=8):
        try:
            with open(self.log_path, "rb") as f:
                return " | ".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Cluster:
    """``n`` node processes of one implementation, on 127.0.0.1."""

    def __init__(self, impl, n, workdir, knobs, options):
        self.impl = impl
        self.nodes = []
        ports = free_ports(n)
        ids = range(1, n + 1)
        spec = ",".join(f"{i}=127.0.0.1:{p}" for i, p in zip(ids, ports))
        try:
            for i, port in zip(ids, ports):
                self.nodes.append(NodeProc(impl, i, f"127.0.0.1:{port}", spec,
                                           os.path.join(workdir, f"{impl}-node{i}"),
                                           os.path.join(workdir, f"{impl}-node{i}.log"),
                                           knobs, options))
            deadline = time.monotonic() + START_TIMEOUT
            for node in self.nodes:
                node.wait_ready(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.close()
            raise

    def close(self):
        for node in self.nodes:
            if node.alive:
                try:
                    node.proc.stdin.write(b"close\n")
                    node.proc.stdin.flush()
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + CLOSE_TIMEOUT
        for node in self.nodes:
            node.stop(max(0.5, deadline - time.monotonic()))

    def statuses(self, timeout=CALL_TIMEOUT):
        return {node.id: node.call("status", timeout) for node in self.nodes}

    def leader(self, timeout=LEADER_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = {}
        while time.monotonic() < deadline:
            last = self.statuses()
            leaders = [(s["term"], i) for i, s in last.items() if s["state"] == "LEADER"]
            if leaders:
                term, leader_id = max(leaders)
                # every node knows it (connections are up)
                if all(s["leader"] == leader_id for s in last.values()):
                    return next(n for n in self.nodes if n.id == leader_id)
            time.sleep(0.1)
        raise BenchError(f"{self.impl}: no leader within {timeout:.0f} s: {last}")

    def settle(self, timeout=SETTLE_TIMEOUT):
        """Wait until every node applied what the leader has committed."""
        deadline = time.monotonic() + timeout
        leader = self.leader()
        target = leader.call("status")["commit_index"]
        while time.monotonic() < deadline:
            applied = {i: s["last_applied"] for i, s in self.statuses().items()}
            if min(applied.values()) >= target:
                return
            time.sleep(0.05)
        raise BenchError(f"{self.impl}: followers did not catch up within {timeout:.0f} s")

    def measure(self, size, window, warmup, duration):
        """One row: load on the leader, CPU and RSS of every node."""
        leader = self.leader()
        samples = {}

        def on_mark(event):
            samples[event] = (time.monotonic(), {n.id: proc_cpu(n.pid) for n in self.nodes})
            if event == "measure_end":
                samples["hwm"] = {n.id: proc_hwm_mb(n.pid) for n in self.nodes}

        for node in self.nodes:
            reset_hwm(node.pid)
        leader.on_mark = on_mark
        try:
            reply = leader.call(f"load {size} {window} {warmup} {duration}",
                                timeout=warmup + duration + DRAIN_TIMEOUT + 30.0)
        finally:
            leader.on_mark = None
        if "measure_start" not in samples or "measure_end" not in samples:
            raise BenchError(f"{self.impl}: the leader did not report its measured period")
        (t0, cpu0), (t1, cpu1) = samples["measure_start"], samples["measure_end"]
        cpu = {i: (round(cpu1[i] - cpu0[i], 2) if cpu0[i] is not None and cpu1[i] is not None else None)
               for i in cpu0}
        row = dict(impl=self.impl, size=size, window=window, leader=leader.id,
                   ops=reply["ops"], seconds=reply["seconds"], ops_per_s=round(reply["ops_per_s"], 1),
                   p50_ms=_ms(reply["p50_us"]), p99_ms=_ms(reply["p99_us"]),
                   max_ms=_ms(reply["max_us"]), mean_ms=_ms(reply["mean_us"]),
                   cpu_s={str(i): v for i, v in cpu.items()},
                   cpu_wall_s=round(t1 - t0, 3),
                   rss_mb={str(i): (round(v, 1) if v is not None else None)
                           for i, v in samples["hwm"].items()},
                   errors=reply["errors"], first_error=reply["first_error"],
                   pending=reply["pending"], submitted=reply["submitted"])
        total_cpu = sum(v for v in cpu.values() if v is not None)
        row["cpu_us_per_op"] = round(total_cpu / row["ops"] * 1e6, 1) if row["ops"] else None
        if reply.get("api"):
            row["api"] = reply["api"]
        return row


def _ms(us):
    return None if us is None else round(us / 1000, 3)


# -- settings ---------------------------------------------------------------


def binding_defaults():
    """canonical_raft.Node's effective defaults: the named arguments of
    Node.__init__ and the tuning knobs (node.py's _TUNING)."""
    from . import node as node_module
    defaults = {}
    for name, param in inspect.signature(node_module.Node.__init__).parameters.items():
        if param.kind is param.KEYWORD_ONLY and param.default is not param.empty:
            defaults[name] = param.default
    defaults.update(getattr(node_module, "_TUNING", {}))
    return defaults


def plan_settings(args):
    """{impl: (knobs, options)}, plus notes for the header."""
    user = {}
    for item in args.knob:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BenchError(f"--knob wants NAME=VALUE, got {item!r}")
        user[name] = parse_value(value)
    notes = []
    if args.defaults:
        binding = dict(user)
        c_knobs = {k: v for k, v in user.items() if k in C_KNOBS}
        c_options = {"libraft_defaults": not c_knobs}
        notes.append("settings: binding with its own defaults, C driver with libraft's"
                     + (f"; both with {_fmt_knobs(user)}" if user else ""))
        if c_knobs:
            notes.append("note: --knob given, so the C driver is libraft's defaults plus those knobs")
    else:
        defaults = binding_defaults()
        binding = dict(defaults, **user)
        c_knobs = {k: v for k, v in binding.items() if k in C_KNOBS}
        c_options = {}
        notes.append(f"settings (identical on both): {_fmt_knobs(c_knobs)}")
        only = {k: v for k, v in binding.items() if k not in C_KNOBS}
        if only:
            notes.append(f"binding-only knobs (no libraft equivalent): {_fmt_knobs(only)}")
    plan = {IMPL_BINDING: (binding, {"api": args.api}),
            IMPL_C: (c_knobs, c_options),
            **{impl: ({}, {}) for impl in PYSYNCOBJ_IMPLS}}
    for label, extra in args.variant:
        extra = dict(extra)
        api = extra.pop("api", args.api)
        plan[f"{IMPL_BINDING}[{label}]"] = (dict(binding, **extra), {"api": api})
    return plan, notes


def _fmt_knobs(knobs):
    return " ".join(f"{k}={format_value(v)}" for k, v in sorted(knobs.items()))


# -- the run ------------------------------------------------------------------


def _say(args, text):
    print(text, file=sys.stderr if args.format == "json" or args.quiet else sys.stdout, flush=True)


def _progress(args, text):
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def ensure_pysyncobj(args):
    try:
        import pysyncobj  # noqa: F401
        return True
    except ImportError:
        pass
    _progress(args, "installing pysyncobj into this environment (pip install pysyncobj)")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pysyncobj"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode:
        _say(args, f"cannot install pysyncobj, skipping --peers: {proc.stderr.strip()[-500:]}")
        return False
    return True


def rows_for(impl, sizes, windows):
    if impl in PYSYNCOBJ_IMPLS:
        bulk = PYSYNCOBJ_IMPLS[impl][1] == "bulk"
        windows = [w for w in windows if (w > 1) == bulk]
    return [(size, window) for size in sizes for window in windows]


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
            why = "; ".join(f"node {n.id} (pid {n.pid}) {_exit_status(n.proc.returncode)}: "
                            f"{n.log_tail(4) or 'no log'}" for n in dead) or str(exc)
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


def _exit_status(code):
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def summarize(all_rows, impls, args):
    """Medians over runs per (impl, size, window), and per-run ratios to C."""
    by_key, failed = {}, {}
    for row in all_rows:
        key = (row["impl"], row["size"], row["window"])
        if "error" not in row:
            by_key.setdefault(key, []).append(row)
        else:
            failed.setdefault(key, []).append(row["error"])
    summaries = []
    for impl in impls:
        for size, window in rows_for(impl if not impl.startswith(IMPL_BINDING) else IMPL_BINDING,
                                     args.size, args.window):
            rows = by_key.get((impl, size, window), [])
            if not rows:
                errors = failed.get((impl, size, window), [])
                summaries.append(dict(type="summary", impl=impl, size=size, window=window,
                                      runs=0, error="no successful run"
                                      + (f" ({errors[0][:100]})" if errors else "")))
                continue

            def med(key):
                values = [r[key] for r in rows if r.get(key) is not None]
                return round(statistics.median(values), 3) if values else None

            node_ids = sorted(rows[0]["cpu_s"])
            summary = dict(type="summary", impl=impl, size=size, window=window, runs=len(rows),
                           ops_per_s=med("ops_per_s"), p50_ms=med("p50_ms"), p99_ms=med("p99_ms"),
                           max_ms=med("max_ms"), mean_ms=med("mean_ms"),
                           cpu_us_per_op=med("cpu_us_per_op"), errors=sum(r["errors"] for r in rows))
            # CPU and RSS: the leader's first, then the followers', each a median
            summary["cpu_s_leader"], summary["cpu_s_followers"] = _role_medians(rows, "cpu_s")
            summary["rss_mb_leader"], summary["rss_mb_followers"] = _role_medians(rows, "rss_mb")
            summary["node_ids"] = node_ids
            if failed.get((impl, size, window)):
                summary["failed_runs"] = len(failed[(impl, size, window)])
                summary["failure"] = failed[(impl, size, window)][0]
            c_rows = {r["run"]: r for r in by_key.get((IMPL_C, size, window), [])}
            if impl != IMPL_C and c_rows:
                ops_ratios = [r["ops_per_s"] / c_rows[r["run"]]["ops_per_s"] for r in rows
                              if r["run"] in c_rows and (c_rows[r["run"]]["ops_per_s"] or 0) > 0]
                p50_ratios = [r["p50_ms"] / c_rows[r["run"]]["p50_ms"] for r in rows
                              if r["run"] in c_rows and (r["p50_ms"] or 0) > 0
                              and (c_rows[r["run"]]["p50_ms"] or 0) > 0]
                if ops_ratios:
                    summary["ops_ratio_vs_c"] = round(statistics.median(ops_ratios), 3)
                if p50_ratios:
                    summary["p50_ratio_vs_c"] = round(statistics.median(p50_ratios), 3)
            if impl in PYSYNCOBJ_IMPLS:
                summary["durability"] = "never fsyncs (in-memory log)"
            summaries.append(summary)
    return summaries


def _role_medians(rows, key):
    leaders, followers = [], []
    for r in rows:
        values = r[key]
        lead = values.get(str(r["leader"]))
        if lead is not None:
            leaders.append(lead)
        followers.extend(v for i, v in values.items() if i != str(r["leader"]) and v is not None)
    return (round(statistics.median(leaders), 2) if leaders else None,
            round(statistics.median(followers), 2) if followers else None)


def format_table(summaries, args):
    head = (f"{'impl':<20} {'size':>6} {'window':>6} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'CPU s L/F':>11} {'RSS MB L/F':>11} {'us CPU/op':>9} "
            f"{'ops/C':>6} {'p50/C':>6}")
    lines = [head, "-" * len(head)]

    def num(v, fmt):
        return format(v, fmt) if v is not None else "-"

    last_size = None
    order = sorted(summaries, key=lambda s: (s["size"], s["window"], _impl_rank(s["impl"])))
    for s in order:
        if last_size is not None and s["size"] != last_size:
            lines.append("")
        last_size = s["size"]
        if s.get("error"):
            lines.append(f"{s['impl']:<20} {s['size']:>6} {s['window']:>6}  {s['error']}")
            continue
        cpu = f"{num(s['cpu_s_leader'], '.1f')}/{num(s['cpu_s_followers'], '.1f')}"
        rss = f"{num(s['rss_mb_leader'], '.0f')}/{num(s['rss_mb_followers'], '.0f')}"
        lines.append(
            f"{s['impl']:<20} {s['size']:>6} {s['window']:>6} {num(s['ops_per_s'], '.0f'):>9} "
            f"{num(s['p50_ms'], '.3f'):>8} {num(s['p99_ms'], '.3f'):>8} {num(s['max_ms'], '.2f'):>8} "
            f"{cpu:>11} {rss:>11} {num(s['cpu_us_per_op'], '.0f'):>9} "
            f"{num(s.get('ops_ratio_vs_c'), '.2f'):>6} {num(s.get('p50_ratio_vs_c'), '.2f'):>6}"
            + (f"  ({s['errors']} errors)" if s.get("errors") else "")
            + (f"  ({s['failed_runs']} run(s) failed)" if s.get("failed_runs") else ""))
    return "\n".join(lines)


def _impl_rank(impl):
    order = [IMPL_BINDING, IMPL_C, IMPL_PSO, IMPL_PSO_DEFAULT, IMPL_PSO_NOBATCH]
    return (order.index(impl) if impl in order else 0.5, impl)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(args):
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
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
        build_c_driver(force=args.rebuild_c, quiet=args.quiet)
        impls.append(IMPL_C)
    if args.peers and ensure_pysyncobj(args):
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

        from ._raft import libraft_version
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


# -- the command line -----------------------------------------------------------


def _variant(text):
    label, sep, rest = text.partition(":")
    if not sep or not label:
        raise argparse.ArgumentTypeError("--variant wants LABEL:NAME=VALUE[,NAME=VALUE]")
    knobs = {}
    for item in filter(None, rest.split(",")):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--variant knob {item!r} is not NAME=VALUE")
        if name == "api" and value not in API_CHOICES:
            raise argparse.ArgumentTypeError(
                f"--variant api={value!r}: choose from {', '.join(API_CHOICES)}")
        knobs[name] = value if name == "api" else parse_value(value)
    return label, knobs


def add_arguments(parser):
    """The benchmark's options, for ``python -m canonical_raft bench``."""
    parser.add_argument("--nodes", type=_at_least(1), default=3, help="node processes (default 3)")
    parser.add_argument("--size", type=_at_least(0), nargs="+", default=[16, 1024, 65536],
                        help="command sizes in bytes (default 16 1024 65536)")
    parser.add_argument("--window", type=_at_least(1), nargs="+", default=[1, 64, 1024, 8192],
                        help="commands in flight; 1 is a blocking apply().result() loop "
                             "(default 1 64 1024 8192)")
    parser.add_argument("--duration", type=_at_least(0.1, float), default=5.0,
                        help="measured seconds per row (default 5)")
    parser.add_argument("--warmup", type=_at_least(0.0, float), default=1.0,
                        help="seconds of load before measuring, per row (default 1)")
    parser.add_argument("--runs", type=_at_least(1), default=3,
                        help="repeat everything; report medians (default 3)")
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="a node setting for every implementation, e.g. max_inflight_entries=1024 "
                             "(canonical_raft.Node's names; seconds for timeouts)")
    parser.add_argument("--defaults", action="store_true",
                        help="binding with its own defaults, C driver with libraft's "
                             "(default: identical settings, the binding's)")
    parser.add_argument("--variant", type=_variant, action="append", default=[],
                        metavar="LABEL:NAME=VALUE[,...]",
                        help="also run the binding with these extra knobs, as 'binding[LABEL]' "
                             "(api=... picks its --api)")
    parser.add_argument("--api", choices=API_CHOICES, default="apply",
                        help="how the binding's leader submits: one apply() per command "
                             "(default; window 1 blocks on result()), apply_many() per refill "
                             "(window > 1), or 'callback': the next command submitted from each "
                             "done callback, on the raft thread, as the C driver does")
    parser.add_argument("--no-c", action="store_true", help="skip the C reference driver")
    parser.add_argument("--rebuild-c", action="store_true", help="rebuild the C driver first")
    parser.add_argument("--peers", action="store_true",
                        help="also run PySyncObj (pip-installed on demand; it never fsyncs)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="where the temporary data directories go (default /var/tmp)")
    parser.add_argument("--tmpfs", action="store_true", help="allow data on tmpfs")
    parser.add_argument("--format", choices=["table", "json"], default="table",
                        help="stdout: a table (default) or JSON lines")
    parser.add_argument("--json", metavar="FILE", help="also write JSON lines to FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(run=run)
    return parser


if __name__ == "__main__":
    sys.exit(_node_main(sys.argv[1:]))
