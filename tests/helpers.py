"""Shared helpers for the test suite: ports, polling, FSMs and in-process clusters.

Imported by conftest.py (fixtures) and by the test modules (``from helpers import ...``).
"""

import os
import struct
import threading
import time
from pathlib import Path

import canonical_raft as raft
from canonical_raft import testing

TESTS_DIR = Path(__file__).resolve().parent

# Small timeouts so that elections are quick on loopback, yet generous enough
# for a noisy 2-core machine (libraft randomizes the election timeout in
# [election_timeout, 2 * election_timeout]).
FAST = dict(election_timeout=0.5, heartbeat_timeout=0.05)


def package_parent():
    """The directory that holds the imported canonical_raft package (for PYTHONPATH)."""
    return str(Path(raft.__file__).resolve().parent.parent)


def subprocess_env():
    """An environment in which a child ``sys.executable`` imports the same canonical_raft."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent(), str(TESTS_DIR), env.get("PYTHONPATH")) if p)
    env["PYTHONFAULTHANDLER"] = "1"
    env.pop("PYTHONWARNINGS", None)
    return env


def free_ports(n=1):
    """n distinct free TCP ports on 127.0.0.1."""
    return testing.free_ports(n)


def free_port():
    return free_ports(1)[0]


def free_address():
    return f"127.0.0.1:{free_port()}"


def port_is_free(port):
    """True if 127.0.0.1:port can be bound and listened on right now."""
    return testing._port_is_free("127.0.0.1", port)


def wait_for(predicate, timeout=10.0, interval=0.01, message=None):
    """Poll predicate() until it returns a true value (returned); AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# State machines


class Counter(raft.FSM):
    """The Counter of API.md, plus call counts for the tests."""

    def __init__(self):
        self.value = 0
        self.applies = 0
        self.snapshots = 0
        self.restores = 0
        self.threads = set()

    def apply(self, command):
        self.applies += 1
        self.threads.add(threading.get_ident())
        self.value += int(command)
        return self.value

    def snapshot(self):
        self.snapshots += 1
        return str(self.value).encode()

    def restore(self, data):
        self.restores += 1
        self.value = int(data)


def pack_commands(commands):
    out = [struct.pack("<Q", len(commands))]
    for c in commands:
        out.append(struct.pack("<Q", len(c)))
        out.append(c)
    return b"".join(out)


def unpack_commands(data):
    data = bytes(data)
    (count,) = struct.unpack_from("<Q", data, 0)
    pos = 8
    commands = []
    for _ in range(count):
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        commands.append(data[pos:pos + n])
        pos += n
    assert pos == len(data), "trailing bytes in snapshot"
    return commands


class Recorder(raft.FSM):
    """Records every command it applies (a copy of the bytes, and the type it got)."""

    def __init__(self, fail_on=None):
        self.commands = []
        self.types = []
        self.fail_on = fail_on
        self.snapshots = 0
        self.restores = 0

    def apply(self, command):
        self.types.append(type(command))
        self.commands.append(bytes(command))
        if self.fail_on is not None and command == self.fail_on:
            raise ValueError(f"refused {bytes(command)!r} at #{len(self.commands)}")
        return len(self.commands)

    def snapshot(self):
        self.snapshots += 1
        return pack_commands(self.commands)

    def restore(self, data):
        self.restores += 1
        self.commands = unpack_commands(data)


# ---------------------------------------------------------------------------
# In-process clusters


class Cluster:
    """n nodes on 127.0.0.1 in this process; ids are 1..n, ``nodes[id - 1]``."""

    def __init__(self, base_dir, n, fsm_factory=Counter, **node_kwargs):
        self.base_dir = Path(base_dir)
        self.n = n
        self.fsm_factory = fsm_factory
        self.kwargs = dict(FAST)
        self.kwargs.update(node_kwargs)
        ports = free_ports(n)
        self.servers = [raft.Server(i + 1, f"127.0.0.1:{ports[i]}") for i in range(n)]
        self.dirs = [self.base_dir / f"node{i + 1}" for i in range(n)]
        self.nodes = [None] * n
        self.fsms = [None] * n
        self.closed = [True] * n
        self.all_nodes = []  # every Node ever created, for teardown

    # -- lifecycle ---------------------------------------------------------

    def create(self, id, fsm=None):
        """A new Node object for server ``id`` on its data dir (not started)."""
        i = id - 1
        assert self.closed[i], f"node {id} is still open"
        fsm = self.fsm_factory() if fsm is None else fsm
        node = raft.Node(id, self.servers[i].address, str(self.dirs[i]), fsm, **self.kwargs)
        self.nodes[i] = node
        self.fsms[i] = fsm
        self.closed[i] = False
        self.all_nodes.append(node)
        return node

    def bootstrap_start(self, ids=None, servers=None):
        ids = list(range(1, self.n + 1)) if ids is None else list(ids)
        servers = self.servers if servers is None else servers
        for id in ids:
            if self.nodes[id - 1] is None or self.closed[id - 1]:
                self.create(id)
            self.nodes[id - 1].bootstrap(servers)
        for id in ids:
            self.nodes[id - 1].start()
        return self

    def restart(self, id, fsm=None):
        """Close server ``id`` (if open) and start a new Node on the same data dir."""
        if not self.closed[id - 1]:
            self.close(id)
        node = self.create(id, fsm)
        node.start()
        return node

    def close(self, id):
        i = id - 1
        if not self.closed[i]:
            self.closed[i] = True
            self.nodes[i].close()

    def close_all(self):
        closers = [lambda id=id: self.close(id) for id in range(1, self.n + 1)]
        closers += [node.close for node in self.all_nodes]
        testing._close_each(closers, BaseException)

    # -- queries -----------------------------------------------------------

    def node(self, id):
        return self.nodes[id - 1]

    def fsm(self, id):
        return self.fsms[id - 1]

    def running_ids(self):
        return [i + 1 for i in range(self.n) if not self.closed[i]]

    def running(self):
        return [self.nodes[id - 1] for id in self.running_ids()]

    def leader(self, timeout=20.0):
        """The running node that is leader and that every running node agrees on."""

        return wait_for(lambda: testing._agreed_leader(self.running()), timeout,
                        message="a leader known to every running node")

    def followers(self, leader=None):
        leader = leader or self.leader()
        return [n for n in self.running() if n.id != leader.id]

    def wait_converged(self, key, timeout=20.0, ids=None, expected=None):
        """Wait until key(fsm) is equal on the running nodes (and == expected if given)."""
        ids = self.running_ids() if ids is None else ids

        def same():
            values = [key(self.fsms[id - 1]) for id in ids]
            if any(v != values[0] for v in values):
                return False
            if expected is not None and values[0] != expected:
                return False
            return True

        try:
            wait_for(same, timeout, message="the FSMs to converge")
        except AssertionError:
            values = {id: key(self.fsms[id - 1]) for id in ids}
            short = {k: (v if len(repr(v)) < 300 else repr(v)[:300] + "...") for k, v in values.items()}
            raise AssertionError(f"FSMs did not converge within {timeout}s"
                                 f" (expected {expected!r}): {short}") from None
        return key(self.fsms[ids[0] - 1])
