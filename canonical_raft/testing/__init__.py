"""Helpers for testing code built on canonical_raft: in-process clusters.

``LocalCluster`` runs ``n`` nodes in the calling process, on free ports of
127.0.0.1, each with its own data directory under ``tmp_path``::

    from canonical_raft.testing import LocalCluster

    with LocalCluster(3, Counter, tmp_path) as cluster:
        cluster.apply(b"5")                  # on the leader, result() of it
        cluster.kill(cluster.leader().id)    # a new leader gets elected
        cluster.wait_converged(key=lambda fsm: fsm.value)

The pytest plugin (``canonical_raft.pytest_plugin``, loaded automatically
once canonical_raft is installed) wraps it in the ``raft_cluster`` fixture.
Every wait here is bounded and fails with ``TimeoutError``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar

from ..errors import NotLeaderError, RaftError
from ..node import Node
from ..types import Server

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ..fsm import StateMachine

__all__ = ["LocalCluster", "RecordingFSM", "free_ports", "wait_until", "FAST_TIMINGS"]

S = TypeVar("S", bound="StateMachine")
T = TypeVar("T")

#: Node settings for tests: elections in about a second on a loaded machine.
#: (libraft waits a random time between ``election_timeout`` and twice it.)
FAST_TIMINGS: dict[str, Any] = {"election_timeout": 0.5, "heartbeat_timeout": 0.05}

_START_ATTEMPTS = 3  # fresh ports each time, should another process take one


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports that nothing listens on right now.

    The kernel picks them (bind to port 0); they are released at once, so
    another process may still take one before it is used.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_is_free(host: str, port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _agreed_leader(nodes: Sequence[Node]) -> Optional[Node]:
    """The one node of ``nodes`` that leads, if every one of them names it
    as leader; else None."""
    leaders = [node for node in nodes if node.is_leader]
    if len(leaders) != 1:
        return None
    lead = leaders[0]
    if all(node.leader is not None and node.leader.id == lead.id for node in nodes):
        return lead
    return None


def _close_each(closers: Iterable[Callable[[], object]],
                catch: type[BaseException] = Exception) -> None:
    """Call every closer, even after one raised (``catch``); then raise the
    first error, if any."""
    errors: list[BaseException] = []
    for close in closers:
        try:
            close()
        except catch as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def wait_until(predicate: Callable[[], Optional[T]], timeout: float = 10.0,
               interval: float = 0.01, message: str = "a condition") -> T:
    """Poll ``predicate()`` until it returns a true value, and return that.

    Raises ``TimeoutError`` (naming ``message``) after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


class RecordingFSM:
    """A state machine that records every command it applies.

    ``apply`` returns the number of commands applied so far; ``commands`` is
    the list of them, in log order. Handy when the test is about the cluster,
    not about a particular state machine.
    """

    def __init__(self) -> None:
        self.commands: list[bytes] = []

    def apply(self, command: bytes) -> int:
        self.commands.append(bytes(command))
        return len(self.commands)

    def snapshot(self) -> bytes:
        out = bytearray()
        for command in self.commands:
            out += len(command).to_bytes(8, "little")
            out += command
        return bytes(out)

    def restore(self, data: bytes) -> None:
        commands, pos = [], 0
        while pos < len(data):
            size = int.from_bytes(data[pos:pos + 8], "little")
            commands.append(bytes(data[pos + 8:pos + 8 + size]))
            pos += 8 + size
        self.commands = commands


class LocalCluster(Generic[S]):
    """``n`` nodes of one cluster in this process, bootstrapped and started.

    Node ids are ``1..n``; node ``i`` listens on a free port of ``host``
    (127.0.0.1) and keeps its data in ``tmp_path / f"node{i}"``. Each node
    gets its own state machine from ``fsm_factory()``. ``node_kwargs`` go to
    every ``Node`` (on top of :data:`FAST_TIMINGS`).

    Close it (``close()`` or a ``with`` block): every node it ever created
    is closed, the killed ones included.
    """

    def __init__(self, n: int, fsm_factory: Callable[[], S],
                 tmp_path: str | os.PathLike[str], *, host: str = "127.0.0.1",
                 **node_kwargs: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        if not callable(fsm_factory):
            raise TypeError("fsm_factory must be callable (it makes one state machine per node)")
        self.base_dir = Path(tmp_path)
        self.fsm_factory = fsm_factory
        self.host = host
        self.node_kwargs: dict[str, Any] = {**FAST_TIMINGS, **node_kwargs}
        self.servers: list[Server] = []
        #: The current Node of each id (index ``id - 1``); a killed one is closed.
        self.nodes: list[Node] = []
        #: The state machine of each id's current Node (index ``id - 1``).
        self.fsms: list[S] = []
        self._running: list[bool] = []
        self._created: list[Node] = []
        self._lock = threading.Lock()
        self._closed = False
        self._start(n)

    # -- lifecycle ------------------------------------------------------------

    def _start(self, n: int) -> None:
        last_error: Optional[BaseException] = None
        for _ in range(_START_ATTEMPTS):
            ports = free_ports(n, self.host)
            self.servers = [Server(i + 1, f"{self.host}:{port}") for i, port in enumerate(ports)]
            self.nodes, self.fsms, self._running = [], [], []
            starting: Optional[Server] = None
            try:
                for server in self.servers:
                    node = self._new_node(server.id, None)
                    node.bootstrap(self.servers)
                for node, server in zip(self.nodes, self.servers):
                    starting = server
                    node.start()
                    self._running[node.id - 1] = True
                return
            except (OSError, RaftError) as exc:
                # Did another process take the port between free_ports() and
                # start()? Then start over on new ports and empty data dirs.
                if starting is None or _port_is_free(self.host, int(starting.address.rsplit(":", 1)[1])):
                    self.close()
                    raise
                last_error = exc
            except BaseException:
                self.close()
                raise
            self._close_created()
            for server in self.servers:
                shutil.rmtree(self._data_dir(server.id), ignore_errors=True)
        self.close()
        raise RuntimeError(f"could not start {n} nodes in {_START_ATTEMPTS} attempts: "
                           f"other processes took their ports") from last_error

    def _data_dir(self, id: int) -> Path:
        return self.base_dir / f"node{id}"

    def _new_node(self, id: int, fsm: Optional[S]) -> Node:
        if fsm is None:
            fsm = self.fsm_factory()
        node = Node(id, self.servers[id - 1].address, self._data_dir(id), fsm, **self.node_kwargs)
        with self._lock:
            self._created.append(node)
        if len(self.nodes) < id:
            self.nodes.append(node)
            self.fsms.append(fsm)
            self._running.append(False)
        else:
            self.nodes[id - 1] = node
            self.fsms[id - 1] = fsm
        return node

    def kill(self, id: int) -> None:
        """Stop node ``id`` (``Node.close()``); its data directory stays."""
        self._check_id(id)
        self._running[id - 1] = False
        self.nodes[id - 1].close()

    def restart(self, id: int, fsm: Optional[S] = None) -> Node:
        """Start node ``id`` again: a new ``Node`` on the same data directory
        and address, not bootstrapped, with ``fsm`` or a new one from the
        factory. It restores its latest snapshot and replays its log, then
        catches up with the leader. Kills the node first if it is running."""
        self._check_id(id)
        if self._closed:
            raise RuntimeError("the cluster is closed")
        if self._running[id - 1]:
            self.kill(id)
        node = self._new_node(id, fsm)
        node.start()
        self._running[id - 1] = True
        return node

    def close(self) -> None:
        """Close every node this cluster created. Idempotent."""
        self._closed = True
        self._running = [False] * len(self._running)
        self._close_created()

    def _close_created(self) -> None:
        with self._lock:
            created, self._created = self._created, []
        _close_each(node.close for node in created)

    def __enter__(self) -> LocalCluster[S]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- queries --------------------------------------------------------------

    def _check_id(self, id: int) -> None:
        if not 1 <= id <= len(self.nodes):
            raise ValueError(f"no node {id} in this cluster (ids 1..{len(self.nodes)})")

    def node(self, id: int) -> Node:
        """The current ``Node`` of server ``id``."""
        self._check_id(id)
        return self.nodes[id - 1]

    def fsm(self, id: int) -> S:
        """The state machine of server ``id``'s current node."""
        self._check_id(id)
        return self.fsms[id - 1]

    @property
    def running(self) -> list[Node]:
        """The nodes that are running (not killed), in id order."""
        return [node for node, up in zip(self.nodes, self._running) if up]

    def leader(self, timeout: float = 10.0) -> Node:
        """The running node that leads, once every running node agrees on it.

        ``TimeoutError`` if there is none after ``timeout`` seconds (no
        quorum, for instance).
        """
        return wait_until(lambda: _agreed_leader(self.running), timeout,
                          message="a leader that every running node knows")

    def apply(self, command: Buffer, timeout: float = 10.0) -> Any:
        """``apply(command)`` on the leader and return its result.

        Looks for the leader again if the one it found has stepped down
        before accepting the command (``NotLeaderError``: the command was
        not submitted); any other failure is raised as is.
        """
        deadline = time.monotonic() + timeout
        while True:
            leader = self.leader(max(0.0, deadline - time.monotonic()))
            future = leader.apply(command)
            try:
                return future.result(max(0.0, deadline - time.monotonic()))
            except NotLeaderError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def wait_converged(self, timeout: float = 10.0,
                       key: Optional[Callable[[S], object]] = None) -> int:
        """Wait until every running node has applied everything committed,
        all up to the same index, and ``key(fsm)`` is equal on all of them.

        Returns that index. The condition must hold on two polls in a row
        (so that a node in the middle of applying an entry is not taken for
        converged). ``TimeoutError`` lists what each node had otherwise.
        """
        report: dict[int, Any] = {}
        previous: Optional[tuple[Any, ...]] = None
        stable = 0

        def look() -> Optional[tuple[int]]:
            nonlocal previous, stable, report
            ids = [node.id for node in self.running]
            if not ids:
                raise RuntimeError("no running node to converge")
            before = [self.nodes[i - 1].stats() for i in ids]
            values = [key(self.fsms[i - 1]) if key is not None else None for i in ids]
            after = [self.nodes[i - 1].stats() for i in ids]
            applied = {s["last_applied"] for s in before + after}
            committed = max(s["commit_index"] for s in before + after)
            report = {i: (s["last_applied"], v) for i, s, v in zip(ids, after, values)}
            same = (len(applied) == 1 and min(applied) >= committed
                    and all(v == values[0] for v in values))
            state = (ids, min(applied), values)
            stable = stable + 1 if same and state == previous else int(same)
            previous = state
            return (min(applied),) if stable >= 2 else None

        try:
            return wait_until(look, timeout, message="the nodes to converge")[0]
        except TimeoutError:
            raise TimeoutError(f"nodes did not converge within {timeout:g} s; "
                               f"(last_applied, key) by node id: {report}") from None

    def __repr__(self) -> str:
        up = [node.id for node in self.running]
        return f"<LocalCluster nodes={len(self.nodes)} running={up} dir={str(self.base_dir)!r}>"

