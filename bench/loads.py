"""The load a binding leader drives, and the state machine every implementation runs.

Window 1 is a blocking ``apply(cmd).result()`` loop; window N a pipelining
client (``--api apply`` or ``apply_many``); ``--api callback`` submits the
next command from each done callback, as the C driver does. Latency is
submit -> completion seen by the client, inside the measured period.
"""

import collections
import threading
import time
import zlib
from concurrent.futures import TimeoutError as FutureTimeout

from .common import DRAIN_TIMEOUT, IMPL_BINDING, RESULT_TIMEOUT, BenchError, payload, percentile


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
            out.event("measure_start")

    def finish(self, out):
        """Announce the end of the measured period; lat only ever holds
        its completions."""
        out.event("measure_end")
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

    def settle(self, future, t0, t1, fatal):
        """Record one done future submitted at t0 and seen done at t1: its
        latency if it is inside the measured period, or its error. True if
        that error stops the load (``fatal``: no longer leader, closed)."""
        exc = _future_error(future)
        if exc is not None:
            self.error(exc)
            return isinstance(exc, fatal)
        if self.start <= t1 <= self.end:
            self.lat.append(t1 - t0)
        return False

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

    def __init__(self, node_id, servers, data_dir, knobs, api="apply", tls_dir=None):
        import canonical_raft as raft
        self.raft = raft
        self.fsm = BenchFSM()
        address = dict(servers)[node_id]
        if tls_dir:     # the TLS row: certificates the harness made (bench/tls.py)
            knobs = dict(knobs, tls=raft.TLS.from_dir(tls_dir, node_id))
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
                        else "apply().result()",
                        transport="tls" if self.node.tls is not None else "tcp")

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
        start, end, settle = st.start, st.end, st.settle
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
                if settle(future, t0, t1, bad):
                    stop = True
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
        start, end, settle = st.start, st.end, st.settle
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
            if settle(future, t0, t1, bad):
                stop = True
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

