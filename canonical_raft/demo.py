"""A replicated dict on a few local node processes, a leader crash, every write verified.

``python -m canonical_raft demo`` starts ``--nodes`` node processes on
127.0.0.1, each with its own temporary data directory, and keeps ``--window``
writes in flight on the leader. After 40% of ``--duration`` it SIGKILLs the
leader, waits for a new one among the survivors and keeps writing there. At
the end every acknowledged write must be present, with the right value, on
every survivor, and the survivors must be identical.

The parent never links to a raft node itself: it drives the node processes
(``python -m canonical_raft.demo --node ...``) with one JSON object per line
over their stdin and stdout (``canonical_raft.testing.procs``).
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, Optional

from .testing import free_ports, procs

if TYPE_CHECKING:
    from . import Node

# A reply or event from a node process: one decoded JSON object.
Message = dict[str, Any]

# Every wait below is bounded; these are generous because CI machines are
# small and noisy (2 cores shared by 3 raft nodes and the parent).
START_TIMEOUT = 30.0  # node process spawned -> node started
ELECTION_TIMEOUT = 20.0  # no leader -> leader known
CALL_TIMEOUT = 15.0  # one request to a node process
DRAIN_TIMEOUT = 10.0  # load stopped -> in-flight writes settled
CATCH_UP_TIMEOUT = 20.0  # leader barrier -> every survivor applied it
CLOSE_TIMEOUT = 10.0  # "close" -> process exited
TICK = 0.5  # progress line period
ACK_PERIOD = 0.1  # how often a node reports acknowledged writes
KILL_AT = 0.4  # fraction of the duration at which the leader dies
MIN_AFTER_FAILOVER = 1.0  # seconds of load on the new leader, at least


class DemoError(Exception):
    """The demo cannot go on (no leader, a node not answering, ...)."""


# -- shared by both sides ---------------------------------------------------


def expected_value(key: str, size: int) -> str:
    """The value written under ``key``: derived from the key, so anyone can check it."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return (digest * (size // len(digest) + 1))[:size]


def _state_name(state: Any) -> str:
    """A node state as a name, whatever form stats() gives it in."""
    if isinstance(state, str):
        return state.rsplit(".", 1)[-1].upper()
    try:
        from .types import State
        return State(int(state)).name
    except (ValueError, TypeError):
        return str(state)


# -- the node process -------------------------------------------------------


class DictFSM:
    """The replicated state: a dict written by b"set <key> <value>" commands."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def apply(self, command: bytes) -> int:
        op, key, value = bytes(command).decode().split(" ", 2)
        if op != "set":
            raise ValueError(f"unknown command {op!r}")
        self.data[key] = value
        return len(self.data)

    def snapshot(self) -> _DictSnapshot:
        # Copy now (on the raft thread, consistent), serialize later, off it.
        return _DictSnapshot(dict(self.data))

    def restore(self, data: bytes) -> None:
        self.data = json.loads(bytes(data))


class _DictSnapshot:
    def __init__(self, data: dict[str, str]) -> None:
        self.data = data

    def persist(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":")).encode()


class Load:
    """Keeps ``window`` writes in flight; reports the acknowledged ones every ACK_PERIOD.

    Acknowledgements go to the parent in small batches as they happen, so that
    when this process is SIGKILLed, the parent still knows (almost) every
    write that was acknowledged and can check it on the survivors.
    """

    def __init__(self, node: Node, channel: procs.Child, session: int, size: int, window: int) -> None:
        self.node = node
        self.channel = channel
        self.session = session
        self.size = size
        self.window = window
        self.submitted = 0
        self.acked = 0
        self._done: collections.deque[tuple[int, float]] = collections.deque()  # (seq, seconds): appended on the raft thread
        self._failed: collections.deque[str] = collections.deque()  # exception names: appended on the raft thread
        self._slots = threading.Semaphore(window)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{session}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _on_done(self, seq: int, started: float, future: Future[Any]) -> None:
        # Runs on the raft thread: record and return, never block.
        if future.cancelled():
            self._failed.append("CancelledError")
        elif future.exception() is not None:
            self._failed.append(type(future.exception()).__name__)
        else:
            self._done.append((seq, time.perf_counter() - started))
        self._slots.release()

    def _run(self) -> None:
        reason = "stopped"
        next_report = time.monotonic() + ACK_PERIOD
        try:
            while not self._stop.is_set():
                if self._failed:
                    # Not leader any more (or shutting down): the parent moves on.
                    reason = f"a write failed with {self._failed[0]}"
                    break
                if self._slots.acquire(timeout=0.05):
                    self._submit()
                if time.monotonic() >= next_report:
                    self._report()
                    next_report = time.monotonic() + ACK_PERIOD
            pending = self._drain(DRAIN_TIMEOUT)
        except Exception as exc:  # keep the process (and its acks) alive
            reason, pending = f"load crashed: {exc!r}", -1
        self._report()
        failed = collections.Counter(self._failed)
        self.channel.event("load_stopped", session=self.session, reason=reason,
                          submitted=self.submitted, acked=self.acked,
                          pending=pending, failed=dict(failed))

    def _submit(self) -> None:
        self.submitted += 1
        seq = self.submitted
        key = f"{self.session}.{seq}"
        command = f"set {key} {expected_value(key, self.size)}".encode()
        started = time.perf_counter()
        future = self.node.apply(command)
        future.add_done_callback(functools.partial(self._on_done, seq, started))

    def _drain(self, timeout: float) -> int:
        """Wait (bounded) for the in-flight writes; return how many never settled."""
        deadline = time.monotonic() + timeout
        taken = 0
        while taken < self.window and self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            taken += 1
        for _ in range(taken):
            self._slots.release()
        return self.window - taken

    def _report(self) -> None:
        batch = [self._done.popleft() for _ in range(len(self._done))]
        if batch:
            self.acked += len(batch)
            self.channel.event("acks", session=self.session,
                              seqs=[seq for seq, _ in batch],
                              lat_us=[round(lat * 1e6) for _, lat in batch])


class NodeServer:
    """The node process's handlers: one raft node and the parent's requests."""

    def __init__(self, node: Node, fsm: DictFSM, channel: procs.Child) -> None:
        self.node = node
        self.fsm = fsm
        self.channel = channel
        self.load: Optional[Load] = None

    def handlers(self) -> dict[str, procs.Handler]:
        return {"status": self.do_status, "load": self.do_load, "stop": self.do_stop,
                "barrier": self.do_barrier, "dump": self.do_dump, "close": self.do_close}

    def do_status(self) -> Message:
        stats = self.node.stats()
        return {"state": _state_name(stats["state"]), "term": stats["term"],
                "leader": stats["leader_id"], "last_applied": stats["last_applied"],
                "commit_index": stats["commit_index"], "keys": len(self.fsm.data)}

    def do_load(self, session: int, size: int, window: int) -> None:
        if self.load is not None:
            self.do_stop()
        if not self.node.is_leader:
            raise DemoError(f"node {self.node.id} is not the leader")
        self.load = Load(self.node, self.channel, session, size, window)
        self.load.start()

    def do_stop(self) -> Message:
        load, self.load = self.load, None
        if load is None:
            return {"acked": 0}
        settled = load.stop(DRAIN_TIMEOUT + 5.0)
        return {"acked": load.acked, "submitted": load.submitted, "settled": settled}

    def do_barrier(self, timeout: float = CALL_TIMEOUT) -> Message:
        self.node.barrier().result(timeout)
        return self.do_status()

    def do_dump(self, size: int) -> Message:
        data = dict(self.fsm.data)  # one C-level copy: consistent under the GIL
        bad = [key for key, value in data.items() if value != expected_value(key, size)]
        digest = hashlib.sha256(json.dumps(sorted(data.items())).encode()).hexdigest()
        return {"keys": list(data), "bad": bad[:10], "n_bad": len(bad), "digest": digest}

    def do_close(self) -> None:
        self.do_stop()
        self.node.close()


def _node_main(argv: list[str]) -> int:
    """Entry point of a node process: python -m canonical_raft.demo --node ID ..."""
    parser = argparse.ArgumentParser(prog="python -m canonical_raft.demo",
                                     description="One node of the demo (started by the demo itself).")
    parser.add_argument("--node", type=int, required=True, help="this node's id")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--cluster", required=True, help="id=host:port,id=host:port,...")
    parser.add_argument("--tls-dir", default=None, help="certificates (certs init/node)")
    args = parser.parse_args(argv)
    channel = procs.Child(f"node {args.node}")

    import canonical_raft as raft

    servers = [raft.Server(*server) for server in procs.parse_servers(args.cluster)]
    address = next(s.address for s in servers if s.id == args.node)
    fsm = DictFSM()
    tls = raft.TLS.from_dir(args.tls_dir, args.node) if args.tls_dir else None
    node = raft.Node(args.node, address, args.data_dir, fsm, tls=tls)
    try:
        node.bootstrap(servers)
        node.start()
    except Exception as exc:
        channel.failed(exc)
        node.close()
        channel.flush()
        return 1
    # Ends on "close" or when the parent goes away (EOF on stdin).
    channel.serve_node(node.close, NodeServer(node, fsm, channel).handlers())
    return 0


# -- the parent -------------------------------------------------------------


class Console:
    """Event lines, plus a progress line rewritten in place when stdout is a TTY."""

    def __init__(self, stream: Optional[IO[str]] = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._width = 0

    def progress(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def say(self, text: str = "") -> None:
        if self._width:  # keep the last progress line on screen
            self.stream.write("\n")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()


class NodeProcess(procs.Process):
    """A demo node process: its id and address."""

    def __init__(self, node_id: int, address: str, data_dir: str, cluster: str, log_path: str,
                 on_event: procs.EventHandler, tls_dir: Optional[str] = None) -> None:
        self.id = node_id
        self.address = address
        tls = ("--tls-dir", tls_dir) if tls_dir else ()
        super().__init__(procs.python_argv("canonical_raft.demo", "--node", str(node_id),
                                           "--data-dir", data_dir, "--cluster", cluster, *tls),
                         name=f"node {node_id}", log_path=log_path, on_event=on_event,
                         new_session=False)


def _percentile(sorted_values: list[int], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


class Cluster:
    """The node processes, the load on the leader and what it acknowledged."""

    def __init__(self, args: argparse.Namespace, workdir: str, console: Console) -> None:
        self.args = args
        self.workdir = workdir
        self.console = console
        self.nodes: list[NodeProcess] = []
        self.acked: collections.defaultdict[int, list[int]] = collections.defaultdict(list)  # session -> acknowledged seqs
        self.latencies_us: list[int] = []
        self.n_acked = 0
        self.first_ack: dict[int, float] = {}  # session -> monotonic time its first ack arrived
        self.stopped: dict[int, Message] = {}  # session -> the "load_stopped" event
        self.load_node: Optional[NodeProcess] = None
        self.session = 0
        self.leader_term: Optional[int] = None
        self._lock = threading.Lock()
        self._wakeup = threading.Event()

    # -- lifecycle

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        ports = free_ports(self.args.nodes)
        ids = range(1, self.args.nodes + 1)
        cluster = procs.format_servers({i: f"127.0.0.1:{port}" for i, port in zip(ids, ports)})
        tls_dir = None
        if getattr(self.args, "tls", False):
            from . import certs
            tls_dir = os.path.join(self.workdir, "certs")
            certs.init(tls_dir)
            for i in ids:
                certs.node(tls_dir, i, ["127.0.0.1"])
            self.console.say(f"  mutual TLS between the nodes, certificates in {tls_dir}")
        for i, port in zip(ids, ports):
            data_dir = os.path.join(self.workdir, f"node{i}")
            log_path = os.path.join(self.workdir, f"node{i}.log")
            self.nodes.append(NodeProcess(i, f"127.0.0.1:{port}", data_dir, cluster,
                                          log_path, self._on_event, tls_dir))
        deadline = time.monotonic() + START_TIMEOUT
        for node in self.nodes:
            node.wait_ready(max(0.0, deadline - time.monotonic()))
            self.console.say(f"  node {node.id}  pid {node.pid:<7}  {node.address}  {node.log_path}")

    def close(self) -> None:
        """Stop every node process (by pid), politely first; bounded."""
        procs.stop_all(self.nodes, CLOSE_TIMEOUT)

    def show_logs(self) -> None:
        for node in self.nodes:
            tail = node.log_tail()
            if tail:
                self.console.say(f"--- node {node.id} log (last lines) ---")
                for line in tail:
                    self.console.say("    " + line)

    @property
    def survivors(self) -> list[NodeProcess]:
        return [node for node in self.nodes if node.alive]

    # -- events from the node processes (reader threads)

    def _on_event(self, node: procs.Process, event: str, msg: Message) -> None:
        if event == "acks":
            with self._lock:
                self.acked[msg["session"]].extend(msg["seqs"])
                self.latencies_us.extend(msg["lat_us"])
                self.n_acked += len(msg["seqs"])
                self.first_ack.setdefault(msg["session"], time.monotonic())
        elif event == "load_stopped":
            self.stopped[msg["session"]] = msg
            self._wakeup.set()

    # -- leaders

    def status(self, node: NodeProcess, timeout: float = 5.0) -> Optional[Message]:
        try:
            return node.call("status", timeout=timeout)
        except procs.ProcessError:
            return None

    def find_leader(self, timeout: float = ELECTION_TIMEOUT) -> tuple[NodeProcess, Message]:
        """Poll the live nodes until one of them is leader; (node, status)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders: list[tuple[int, int, NodeProcess, Message]] = []
            for node in self.survivors:
                status = self.status(node, timeout=2.0)
                if status and status["state"] == "LEADER":
                    leaders.append((status["term"], node.id, node, status))
            if leaders:
                _, _, node, status = max(leaders, key=lambda item: item[:2])
                return node, status
            time.sleep(0.1)
        raise DemoError(f"no leader among nodes {[n.id for n in self.survivors]} "
                        f"within {timeout:.0f} s")

    # -- load

    def load_running(self) -> bool:
        node = self.load_node
        return node is not None and node.alive and self.session not in self.stopped

    def start_load(self, timeout: float = ELECTION_TIMEOUT) -> NodeProcess:
        """Start writing on the current leader; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            node, status = self.find_leader(max(0.1, deadline - time.monotonic()))
            self.session += 1
            try:
                node.call("load", session=self.session, size=self.args.size, window=self.args.window)
            except procs.ProcessError:
                # Lost leadership between status and load: look again, bounded.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
                continue
            self.load_node, self.leader_term = node, status["term"]
            return node

    def stop_load(self) -> Optional[Message]:
        node, self.load_node = self.load_node, None
        if node is not None and node.alive:
            return node.call("stop", timeout=DRAIN_TIMEOUT + 10.0)
        return None

    def drive(self, started: float, until: float) -> None:
        """Keep the load going (moving to a new leader if needed) until ``until``."""
        last_time, last_acked = time.monotonic(), self.n_acked
        while time.monotonic() < until:
            if not self.load_running():
                previous = self.load_node
                node = self.start_load()
                if previous is not None and node is not previous:
                    self.console.say(f"leadership moved: node {node.id} leads (term {self.leader_term})")
            self._wakeup.wait(max(0.0, min(TICK, until - time.monotonic())))
            self._wakeup.clear()
            now, acked = time.monotonic(), self.n_acked
            if now - last_time >= TICK * 0.9:
                self.show_progress(now - started, (acked - last_acked) / (now - last_time))
                last_time, last_acked = now, acked

    def show_progress(self, elapsed: float, rate: float) -> None:
        status = self.status(self.load_node, timeout=2.0) if self.load_node else None
        if status:
            self.leader_term = status["term"]
        leader = self.load_node.id if self.load_node else "?"
        self.console.progress(f"[{elapsed:5.1f} s] leader node {leader}  term {self.leader_term}  "
                              f"acked {self.n_acked:>8}  {rate:>8.0f} ops/s")

    # -- the end

    def catch_up(self) -> int:
        """Barrier on the leader, then wait until every survivor applied as much."""
        leader, _ = self.find_leader()
        target: int = leader.call("barrier", timeout=CALL_TIMEOUT + 5.0)["last_applied"]
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        applied: dict[int, int] = {}
        while time.monotonic() < deadline:
            applied = {n.id: (self.status(n) or {}).get("last_applied", -1) for n in self.survivors}
            if min(applied.values()) >= target:
                return target
            time.sleep(0.1)
        raise DemoError(f"survivors did not apply index {target} within "
                        f"{CATCH_UP_TIMEOUT:.0f} s: {applied}")

    def verify(self) -> tuple[set[str], dict[int, tuple[str, int]], list[str]]:
        """Every acknowledged write on every survivor, with its value; survivors identical."""
        with self._lock:
            acked = {f"{session}.{seq}" for session, seqs in self.acked.items() for seq in seqs}
        problems: list[str] = []
        digests: dict[int, tuple[str, int]] = {}
        for node in self.survivors:
            dump = node.call("dump", timeout=60.0, size=self.args.size)
            missing = acked.difference(dump["keys"])
            if missing:
                problems.append(f"node {node.id} lacks {len(missing)} acknowledged writes, "
                                f"e.g. {sorted(missing)[:5]}")
            if dump["n_bad"]:
                problems.append(f"node {node.id} has {dump['n_bad']} wrong values, e.g. {dump['bad']}")
            digests[node.id] = (dump["digest"], len(dump["keys"]))
        if len(set(digests.values())) > 1:
            problems.append(f"survivors differ: {digests}")
        return acked, digests, problems


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    """The demo, start to end; the process exit status."""
    # SIGTERM cleans up like Ctrl-C does (the node processes, the data dirs).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run_cleanly(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_cleanly(args: argparse.Namespace) -> int:
    console = Console()
    console.say(f"canonical_raft demo: {args.nodes} nodes on 127.0.0.1, {args.duration:g} s of writes, "
                f"{args.size}-byte values, {args.window} in flight")
    cluster: Optional[Cluster] = None
    try:
        with tempfile.TemporaryDirectory(prefix="canonical-raft-demo-") as workdir:
            with Cluster(args, workdir, console) as cluster:
                try:
                    ok = _run(cluster, args, console)
                except (DemoError, procs.ProcessError) as exc:
                    console.say(f"FAILED: {exc}")
                    cluster.show_logs()
                    ok = False
                console.say("stopping the nodes")
        assert cluster is not None
        console.say(f"cleaned up: {len(cluster.nodes)} node processes stopped, "
                    f"temporary data directory removed")
    except KeyboardInterrupt:
        console.say("interrupted; node processes stopped and temporary data removed")
        return 130
    return 0 if ok else 1


def _run(cluster: Cluster, args: argparse.Namespace, console: Console) -> bool:
    cluster.start()
    leader, status = cluster.find_leader()
    console.say(f"leader: node {leader.id} (term {status['term']})")

    # Phase 1: load on the first leader, then kill it mid-load.
    started = time.monotonic()
    end = started + args.duration
    cluster.start_load()
    cluster.drive(started, started + KILL_AT * args.duration)
    victim, status = cluster.find_leader()
    acked_before = cluster.n_acked
    killed_at = time.monotonic()
    victim.kill()
    console.say(f"SIGKILL leader node {victim.id} (pid {victim.pid}, term {status['term']}) "
                f"at {killed_at - started:.1f} s, after {acked_before} acknowledged writes")

    # Phase 2: a survivor takes over; the load moves there.
    new_leader, status = cluster.find_leader()
    elected_in = time.monotonic() - killed_at
    console.say(f"new leader: node {new_leader.id} (term {status['term']}), "
                f"elected {elected_in:.2f} s after the kill")
    cluster.start_load()
    cluster.drive(started, max(end, time.monotonic() + MIN_AFTER_FAILOVER))
    cluster.stop_load()
    elapsed = time.monotonic() - started
    console.say(f"load stopped after {elapsed:.1f} s; waiting for the survivors to catch up")
    resumed = [t for session, t in cluster.first_ack.items() if t > killed_at]
    resumed_in = min(resumed) - killed_at if resumed else float("nan")

    index = cluster.catch_up()
    acked, digests, problems = cluster.verify()
    survivors = ", ".join(str(n.id) for n in cluster.survivors)
    if problems:
        for problem in problems:
            console.say(f"VERIFICATION FAILED: {problem}")
    else:
        digest, n_keys = next(iter(digests.values()))
        console.say(f"verified: all {len(acked)} acknowledged writes present with the right value "
                    f"on survivors {survivors}; survivors identical "
                    f"({n_keys} keys, applied index {index}, sha256 {digest[:12]})")

    lat = sorted(cluster.latencies_us)
    console.say("summary:")
    console.say(f"  acknowledged writes  {len(acked)}")
    console.say(f"  throughput           {len(acked) / elapsed:.0f} ops/s "
                f"({elapsed:.1f} s, failover included)")
    console.say(f"  latency              p50 {_percentile(lat, 50) / 1000:.2f} ms, "
                f"p99 {_percentile(lat, 99) / 1000:.2f} ms")
    console.say(f"  failover             node {victim.id} killed -> node {new_leader.id} elected in "
                f"{elected_in:.2f} s, writes resumed in {resumed_in:.2f} s")
    console.say(f"  verification         {'OK' if not problems else 'FAILED'}")
    return not problems


# -- the command line -------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The demo's options, for ``python -m canonical_raft demo``."""
    parser.add_argument("--nodes", type=procs.at_least(3), default=3,
                        help="node processes (>= 3, so that one can die; default 3)")
    parser.add_argument("--duration", type=procs.at_least(1.0, float), default=10.0,
                        help="seconds of writes (default 10); the leader dies at 40%%")
    parser.add_argument("--size", type=procs.at_least(0), default=16,
                        help="bytes of value per write (default 16)")
    parser.add_argument("--window", type=procs.at_least(1), default=64,
                        help="writes in flight on the leader (default 64)")
    parser.add_argument("--tls", action="store_true",
                        help="mutual TLS between the nodes (makes a CA and certificates; "
                             "needs the cryptography package)")
    parser.set_defaults(run=run)
    return parser


if __name__ == "__main__":
    sys.exit(_node_main(sys.argv[1:]))
