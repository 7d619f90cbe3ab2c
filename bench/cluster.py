"""The node processes of one implementation on 127.0.0.1, and one measured row."""

import os
import time

from canonical_raft.testing import free_ports, procs

from .cdriver import c_argv
from .common import (CALL_TIMEOUT, CLOSE_TIMEOUT, DRAIN_TIMEOUT, IMPL_BINDING, IMPL_C, IMPL_PSO,
                     LEADER_TIMEOUT, PYSYNCOBJ_IMPLS, SETTLE_TIMEOUT, START_TIMEOUT, BenchError,
                     format_value)
from .procfs import proc_cpu, proc_hwm_mb, reset_hwm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class NodeProc(procs.Process):
    """One node process (binding, C or PySyncObj) and its resource usage."""

    def __init__(self, impl, node_id, address, cluster, data_dir, log_path, knobs, options):
        self.impl, self.id, self.address = impl, node_id, address
        self.on_mark = None      # called on the reader thread at measure_start / measure_end
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        if impl == IMPL_C:
            argv = c_argv(node_id, cluster, data_dir, knobs, options.get("libraft_defaults", False))
        else:
            args = ["--node", str(node_id), "--cluster", cluster, "--data-dir", data_dir]
            for name, value in knobs.items():
                args += ["--knob", f"{name}={format_value(value)}"]
            if impl in PYSYNCOBJ_IMPLS:
                args += ["--impl", IMPL_PSO, "--pysyncobj-conf", PYSYNCOBJ_IMPLS[impl][0]]
            if impl == IMPL_BINDING and options.get("api"):
                args += ["--api", options["api"]]
            if impl == IMPL_BINDING and options.get("tls_dir"):
                args += ["--tls-dir", options["tls_dir"]]
            argv = procs.python_argv("bench.node", *args)
        super().__init__(argv, name=f"{impl} node {node_id}", log_path=log_path,
                         env=procs.child_env(ROOT), cwd=ROOT, on_event=self._event,
                         new_session=False)

    def _event(self, proc, name, msg):
        if name in ("measure_start", "measure_end") and self.on_mark is not None:
            self.on_mark(name)

    def request(self, cmd, timeout=CALL_TIMEOUT, **args):
        """call(), its failures as BenchError (with the log's last lines if it died)."""
        try:
            return self.call(cmd, timeout, **args)
        except procs.ProcessGone:
            raise BenchError(f"{self.name} has exited ({self.exit_status()}): "
                             f"{self.tail_text()}") from None
        except procs.ProcessError as exc:
            raise BenchError(str(exc)) from None

    def start_or_fail(self, timeout):
        try:
            return self.wait_ready(timeout)
        except procs.ProcessError as exc:
            raise BenchError(f"{exc}: {self.tail_text()}") from None

    def tail_text(self, lines=8):
        return " | ".join(self.log_tail(lines))


class Cluster:
    """``n`` node processes of one implementation, on 127.0.0.1."""

    def __init__(self, impl, n, workdir, knobs, options):
        self.impl = impl
        self.nodes = []
        ports = free_ports(n)
        ids = range(1, n + 1)
        spec = procs.format_servers({i: f"127.0.0.1:{p}" for i, p in zip(ids, ports)})
        try:
            for i, port in zip(ids, ports):
                self.nodes.append(NodeProc(impl, i, f"127.0.0.1:{port}", spec,
                                           os.path.join(workdir, f"{impl}-node{i}"),
                                           os.path.join(workdir, f"{impl}-node{i}.log"),
                                           knobs, options))
            deadline = time.monotonic() + START_TIMEOUT
            for node in self.nodes:
                node.start_or_fail(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.close()
            raise

    def close(self):
        """Stop every node process by pid (close, SIGTERM, SIGKILL; bounded)."""
        procs.stop_all(self.nodes, CLOSE_TIMEOUT)

    def statuses(self, timeout=CALL_TIMEOUT):
        return {node.id: node.request("status", timeout) for node in self.nodes}

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
        target = leader.request("status")["commit_index"]
        while time.monotonic() < deadline:
            applied = {i: s["last_applied"] for i, s in self.statuses().items()}
            if min(applied.values()) >= target:
                return
            time.sleep(0.05)
        raise BenchError(f"{self.impl}: followers did not catch up within {timeout:.0f} s")

    def measure(self, size, window, warmup, duration, **extra):
        """One row: load on the leader, CPU and RSS of every node (``extra``:
        more arguments of the load, e.g. bench/styles.py's style)."""
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
            reply = leader.request("load", timeout=warmup + duration + DRAIN_TIMEOUT + 30.0,
                                   size=size, window=window, warmup=warmup, duration=duration,
                                   **extra)
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
        for key in ("api", "transport"):
            if reply.get(key):
                row[key] = reply[key]
        return row


def _ms(us):
    return None if us is None else round(us / 1000, 3)
