"""Helpers for testing code built on canonical_raft: in-process clusters,
and the waits and free ports that go with them.

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
from ..tls import TLS
from ..types import Server

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ..fsm import StateMachine

__all__ = ["LocalCluster", "RecordingFSM", "FAST_TIMINGS", "agreed_leader", "free_address",
           "free_ports", "port_is_free", "wait_until"]

S = TypeVar("S", bound="StateMachine")
T = TypeVar("T")

#: Node settings for tests: elections in about a second on a loaded machine.
#: (libraft waits a random time between ``election_timeout`` and twice it.)
#: With CANONICAL_RAFT_STORAGE set (uv or lmdb), that storage too, so that
#: the same tests run over either.
FAST_TIMINGS: dict[str, Any] = {"election_timeout": 0.5, "heartbeat_timeout": 0.05}
if os.environ.get("CANONICAL_RAFT_STORAGE"):
    FAST_TIMINGS["storage"] = os.environ["CANONICAL_RAFT_STORAGE"]

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


def free_address(host: str = "127.0.0.1") -> str:
    """A ``"host:port"`` address whose port nothing listens on right now
    (see :func:`free_ports`): for a ``Node`` that is not in a cluster."""
    return f"{host}:{free_ports(1, host)[0]}"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if ``host:port`` can be bound and listened on right now (say,
    to check that a closed node released its port)."""
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
               interval: float = 0.01, message: Optional[str] = None) -> T:
    """Poll ``predicate()`` until it returns a true value, and return that.

    Raises ``TimeoutError`` after ``timeout`` seconds, naming ``message``
    (by default the predicate's name).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "a condition")
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def agreed_leader(nodes: Sequence[Node], timeout: float = 10.0) -> Node:
    """The node of ``nodes`` that leads, once every one of them names it
    as leader. ``TimeoutError`` after ``timeout`` seconds."""
    return wait_until(lambda: _agreed_leader(nodes), timeout,
                      message=f"a leader among nodes {[node.id for node in nodes]}")


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
        """Take the commands back from ``snapshot()``'s bytes; ``ValueError``
        if they were cut short."""
        commands, pos = [], 0
        while pos < len(data):
            size = int.from_bytes(data[pos:pos + 8], "little")
            if pos + 8 > len(data) or pos + 8 + size > len(data):
                raise ValueError(f"not a RecordingFSM snapshot: {len(data)} bytes, "
                                 f"cut short at offset {pos}")
            commands.append(bytes(data[pos + 8:pos + 8 + size]))
            pos += 8 + size
        self.commands = commands


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


def _short(value: object, limit: int = 300) -> object:
    """``value``, or the start of its repr if that is long (for error messages)."""
    text = repr(value)
    return value if len(text) <= limit else text[:limit] + "..."


class LocalCluster(Generic[S]):
    """``n`` nodes of one cluster in this process, bootstrapped and started.

    Node ids are ``1..n``; node ``i`` listens on a free port of ``host``
    (127.0.0.1) and keeps its data in ``tmp_path / f"node{i}"``. Each node
    gets its own state machine from ``fsm_factory()``. ``node_kwargs`` go to
    every ``Node`` (on top of :data:`FAST_TIMINGS`).

    With ``start=False`` the nodes are made but neither bootstrapped nor
    started: register callbacks on them (``cluster.node(1).on_state_change``)
    or swap one for another with :meth:`create`, then call :meth:`start`.
    ``timeout`` (seconds) is the default of every wait of the cluster:
    :meth:`leader`, :meth:`followers`, :meth:`apply`, :meth:`wait_converged`.

    With ``tls_dir``, the nodes use mutual TLS: a cluster CA is made in that
    directory if it has none (canonical_raft.certs, which needs the
    ``cryptography`` package), and a certificate for each node id that has
    none; every Node gets ``tls=raft.TLS.from_dir(tls_dir, id)`` unless
    given its own ``tls``.

    Close it (``close()`` or a ``with`` block): every node it ever created
    is closed, the killed ones included.
    """

    def __init__(self, n: int, fsm_factory: Callable[[], S],
                 tmp_path: str | os.PathLike[str], *, host: str = "127.0.0.1",
                 start: bool = True, timeout: float = 10.0,
                 tls_dir: str | os.PathLike[str] | None = None, **node_kwargs: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        if not callable(fsm_factory):
            raise TypeError("fsm_factory must be callable (it makes one state machine per node)")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.base_dir = Path(tmp_path)
        #: Where the cluster's CA and node certificates are (None: plaintext).
        self.tls_dir: Optional[Path] = Path(tls_dir) if tls_dir is not None else None
        self.fsm_factory = fsm_factory
        self.host = host
        #: The default timeout (seconds) of the cluster's waits.
        self.timeout = float(timeout)
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
        self._started = False
        self._starting: Optional[Server] = None
        if start:
            self._start(n)
        else:
            try:
                self._make(n)
            except BaseException:
                self.close()
                raise

    # -- lifecycle ------------------------------------------------------------

    def _make(self, n: int) -> None:
        ports = free_ports(n, self.host)
        self.servers = [Server(i + 1, f"{self.host}:{port}") for i, port in enumerate(ports)]
        self.nodes, self.fsms, self._running = [], [], []
        for server in self.servers:
            self._new_node(server.id, None, {})

    def _start(self, n: int) -> None:
        last_error: Optional[BaseException] = None
        for _ in range(_START_ATTEMPTS):
            try:
                self._make(n)
                self.start()
                return
            except (OSError, RaftError) as exc:
                # Did another process take the port between free_ports() and
                # start()? Then start over on new ports and empty data dirs.
                starting = self._starting
                if starting is None or port_is_free(int(starting.address.rsplit(":", 1)[1]),
                                                    self.host):
                    self.close()
                    raise
                last_error = exc
            except BaseException:
                self.close()
                raise
            self._started = False
            self._close_created()
            for server in self.servers:
                shutil.rmtree(self.data_dir(server.id), ignore_errors=True)
        self.close()
        raise RuntimeError(f"could not start {n} nodes in {_START_ATTEMPTS} attempts: "
                           f"other processes took their ports") from last_error

    def start(self) -> None:
        """Bootstrap every node with :attr:`servers` and start it, for a
        cluster made with ``start=False``; once."""
        if self._closed:
            raise RuntimeError("the cluster is closed")
        if self._started:
            raise RuntimeError("the cluster is started already")
        self._started = True
        for node in self.nodes:
            node.bootstrap(self.servers)
        for node, server in zip(self.nodes, self.servers):
            self._starting = server
            node.start()
        self._starting = None

    def data_dir(self, id: int) -> Path:
        """The data directory of node ``id``: ``tmp_path / f"node{id}"``."""
        return self.base_dir / f"node{id}"

    def _new_node(self, id: int, fsm: Optional[S], node_kwargs: dict[str, Any]) -> Node:
        if fsm is None:
            fsm = self.fsm_factory()
        kwargs = {**self.node_kwargs, **node_kwargs}
        if self.tls_dir is not None and "tls" not in kwargs:
            kwargs["tls"] = self.tls(id)
        node = Node(id, self.servers[id - 1].address, self.data_dir(id), fsm, **kwargs)
        with self._lock:
            self._created.append(node)
        if len(self.nodes) < id:
            self.nodes.append(node)
            self.fsms.append(fsm)
            self._running.append(True)
        else:
            self.nodes[id - 1] = node
            self.fsms[id - 1] = fsm
            self._running[id - 1] = True
        return node

    def tls(self, id: int) -> TLS:
        """Node ``id``'s TLS files in :attr:`tls_dir`, made if missing."""
        if self.tls_dir is None:
            raise RuntimeError("this cluster has no tls_dir")
        from .. import certs
        d = str(self.tls_dir)
        if not os.path.exists(os.path.join(d, "ca.crt")):
            certs.init(d)
        if not os.path.exists(os.path.join(d, f"node-{id}.crt")):
            certs.node(d, id, [self.host])
        return TLS.from_dir(d, id)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the cluster is closed")

    def kill(self, id: int) -> None:
        """Stop node ``id`` (``Node.close()``); its data directory stays."""
        self._check_id(id)
        self._running[id - 1] = False
        self.nodes[id - 1].close()

    def create(self, id: int, fsm: Optional[S] = None, **node_kwargs: Any) -> Node:
        """A new ``Node`` for server ``id``, on its data directory and
        address, neither bootstrapped nor started: to call ``recover()`` or
        ``on_state_change()`` on it, or ``start()`` it yourself.

        It gets ``fsm`` or a new one from the factory, and ``node_kwargs`` on
        top of the cluster's settings. It replaces the current node of ``id``
        (killed first if running) and counts as running from now on."""
        self._check_id(id)
        self._check_open()
        if self._running[id - 1]:
            self.kill(id)
        return self._new_node(id, fsm, node_kwargs)

    def restart(self, id: int, fsm: Optional[S] = None, **node_kwargs: Any) -> Node:
        """Start node ``id`` again: a new ``Node`` on the same data directory
        and address, not bootstrapped, with ``fsm`` or a new one from the
        factory (and ``node_kwargs`` on top of the cluster's settings). It
        restores its latest snapshot and replays its log, then catches up
        with the leader. Kills the node first if it is running."""
        node = self.create(id, fsm, **node_kwargs)
        node.start()
        return node

    def new_node(self, id: int, fsm: Optional[S] = None, **node_kwargs: Any) -> Node:
        """A ``Node`` outside the cluster, to grow it with ``Node.add()``.

        Server ``id`` (not one of ``1..n``) on a free port of ``host``, with
        an empty data directory ``tmp_path / f"node{id}"``, ``fsm`` or a new
        one from the factory, and ``node_kwargs`` on top of the cluster's
        settings; neither bootstrapped nor started. It is not in
        :attr:`nodes`, :attr:`servers` or :attr:`running`; the cluster closes
        it with the others."""
        if 1 <= id <= len(self.servers):
            raise ValueError(f"node {id} is in the cluster already (ids 1..{len(self.servers)})")
        self._check_open()
        kwargs = {**self.node_kwargs, **node_kwargs}
        if self.tls_dir is not None and "tls" not in kwargs:
            kwargs["tls"] = self.tls(id)
        node = Node(id, free_address(self.host), self.data_dir(id),
                    self.fsm_factory() if fsm is None else fsm, **kwargs)
        with self._lock:
            self._created.append(node)
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

    def _timeout(self, timeout: Optional[float]) -> float:
        return self.timeout if timeout is None else timeout

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
        """The nodes that are running (not killed, nor stopped by themselves:
        removed from the cluster, say), in id order; a node made by
        :meth:`create` counts from then on."""
        return [node for node, up in zip(self.nodes, self._running)
                if up and not node._core.closed]

    def leader(self, timeout: Optional[float] = None) -> Node:
        """The running node that leads, once every running node agrees on it.

        ``TimeoutError`` if there is none after ``timeout`` seconds (no
        quorum, for instance).
        """
        return wait_until(lambda: _agreed_leader(self.running), self._timeout(timeout),
                          message="a leader that every running node knows")

    def followers(self, leader: Optional[Node] = None,
                  timeout: Optional[float] = None) -> list[Node]:
        """The running nodes but the leader (``leader``, or the one
        :meth:`leader` finds), in id order."""
        lead = self.leader(timeout) if leader is None else leader
        return [node for node in self.running if node.id != lead.id]

    def apply(self, command: Buffer, timeout: Optional[float] = None) -> Any:
        """``apply(command)`` on the leader and return its result.

        Looks for the leader again if the one it found has stepped down
        before accepting the command (``NotLeaderError``: the command was
        not submitted); any other failure is raised as is.
        """
        deadline = time.monotonic() + self._timeout(timeout)
        while True:
            leader = self.leader(max(0.0, deadline - time.monotonic()))
            future = leader.apply(command)
            try:
                return future.result(max(0.0, deadline - time.monotonic()))
            except NotLeaderError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def wait_converged(self, timeout: Optional[float] = None,
                       key: Optional[Callable[[S], object]] = None, *,
                       expected: object = _UNSET,
                       ids: Optional[Iterable[int]] = None) -> int:
        """Wait until every running node has applied everything committed,
        all up to the same index, and ``key(fsm)`` is equal on all of them
        (and equal to ``expected``, if given).

        ``ids`` limits the check to those nodes (the ones still in the
        configuration after a ``remove()``, say). Returns that index. The
        condition must hold on two polls in a row (so that a node in the
        middle of applying an entry is not taken for converged).
        ``TimeoutError`` lists what each node had otherwise.
        """
        if expected is not _UNSET and key is None:
            raise ValueError("expected needs a key")
        timeout = self._timeout(timeout)
        only = None if ids is None else list(ids)
        for id in only or ():
            self._check_id(id)
        report: dict[int, Any] = {}
        previous: Optional[tuple[Any, ...]] = None
        stable = 0

        def look() -> Optional[tuple[int]]:
            nonlocal previous, stable, report
            ids = [node.id for node in self.running] if only is None else only
            if not ids:
                raise RuntimeError("no running node to converge")
            before = [self.nodes[i - 1].stats() for i in ids]
            values = [key(self.fsms[i - 1]) if key is not None else None for i in ids]
            after = [self.nodes[i - 1].stats() for i in ids]
            applied = {s["last_applied"] for s in before + after}
            committed = max(s["commit_index"] for s in before + after)
            report = {i: (s["last_applied"], v) for i, s, v in zip(ids, after, values)}
            same = (len(applied) == 1 and min(applied) >= committed
                    and all(v == values[0] for v in values)
                    and (expected is _UNSET or values[0] == expected))
            state = (ids, min(applied), values)
            stable = stable + 1 if same and state == previous else int(same)
            previous = state
            return (min(applied),) if stable >= 2 else None

        try:
            return wait_until(look, timeout, message="the nodes to converge")[0]
        except TimeoutError:
            had = {i: (applied, _short(v)) for i, (applied, v) in report.items()}
            wanted = "" if expected is _UNSET else f" (key expected: {_short(expected)!r})"
            raise TimeoutError(f"nodes did not converge within {timeout:g} s{wanted}; "
                               f"(last_applied, key) by node id: {had}") from None

    def __repr__(self) -> str:
        up = [node.id for node in self.running]
        return f"<LocalCluster nodes={len(self.nodes)} running={up} dir={str(self.base_dir)!r}>"
