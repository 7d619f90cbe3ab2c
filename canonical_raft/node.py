"""canonical_raft.Node: the public node, a thin checked layer over Core."""

from __future__ import annotations

import asyncio
import atexit
import os
import socket
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from . import _raft
from .errors import IOERR, SHUTDOWN, RaftError, ShutdownError
from .fsm import StateMachine, check_fsm
from .futures import Future
from .types import Role, Server, State, as_server, parse_address

if TYPE_CHECKING:
    from typing_extensions import Buffer

_N = TypeVar("_N", bound="Node")
_F = TypeVar("_F", bound="Callable[[Node], object]")

# Knobs beyond the named arguments, with their defaults (libraft's own,
# except where noted) and checks.
_TUNING: dict[str, object] = {
    # seconds for libraft to wait for an InstallSnapshot reply
    "install_snapshot_timeout": 30.0,
    # catch-up rounds before a promotion fails, and each round's length (s)
    "max_catch_up_rounds": 10,
    "max_catch_up_round_duration": 5.0,
    # append messages in flight per follower
    "max_inflight_entries": 32,
    # bytes of each open log segment. libraft's 8 MiB doubled: every closed
    # segment pauses the loop (io_destroy of its AIO context), so fewer
    # segments win (bench/README.md); three are preallocated, 48 MiB.
    "segment_size": 16 * 1024 * 1024,
    # zlib-compress snapshots (libraft 0.22's own switch is a no-op)
    "snapshot_compression": False,
    # TCP_NODELAY on raft's connections (libraft leaves Nagle on)
    "tcp_nodelay": True,
    # bytes of commands packed into one log entry (0: one entry each)
    "max_batch_bytes": 64 * 1024,
    # take a snapshot sooner once the entries since the last one hold this
    # many bytes (0: count entries only). libraft keeps all of them in
    # memory, so this bounds the log's memory whatever the entries' size.
    "snapshot_log_bytes": 64 * 1024 * 1024,
}

_live_nodes: weakref.WeakSet[Node] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    # A raft thread must not outlive the interpreter it calls into.
    for node in list(_live_nodes):
        node.close()


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not value > 0 or value > 3600 * 24:
        raise ValueError(f"{name} must be > 0 seconds (and at most a day), got {value!r}")
    if value * 1000 < 1:
        raise ValueError(f"{name} must be at least 1 ms, got {value!r}")
    return float(value)


def _count(name: str, value: object, minimum: int = 0, maximum: int = 2**32 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be in {minimum}..{maximum}, got {value}")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def _check_settings(election_timeout: object, heartbeat_timeout: object,
                    snapshot_threshold: object, snapshot_trailing: object,
                    pre_vote: object, tuning: Mapping[str, object]) -> dict[str, Any]:
    unknown = set(tuning) - set(_TUNING)
    if unknown:
        raise TypeError(f"unknown tuning knob(s): {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(sorted(_TUNING))}")
    settings: dict[str, Any] = dict(_TUNING, **tuning)
    settings["election_timeout"] = _positive_seconds("election_timeout", election_timeout)
    settings["heartbeat_timeout"] = _positive_seconds("heartbeat_timeout", heartbeat_timeout)
    if settings["heartbeat_timeout"] >= settings["election_timeout"]:
        raise ValueError("heartbeat_timeout must be shorter than election_timeout")
    settings["snapshot_threshold"] = _count("snapshot_threshold", snapshot_threshold, 1)
    settings["snapshot_trailing"] = _count("snapshot_trailing", snapshot_trailing, 0)
    settings["pre_vote"] = _flag("pre_vote", pre_vote)
    for name in ("install_snapshot_timeout", "max_catch_up_round_duration"):
        settings[name] = _positive_seconds(name, settings[name])
    settings["max_catch_up_rounds"] = _count("max_catch_up_rounds",
                                             settings["max_catch_up_rounds"], 1)
    settings["max_inflight_entries"] = _count("max_inflight_entries",
                                              settings["max_inflight_entries"], 1)
    # libraft reports free log space in KiB in 16 bits: about three
    # segments must stay under 64 MiB.
    settings["segment_size"] = _count("segment_size", settings["segment_size"],
                                      64 * 1024, 16 * 1024 * 1024)
    settings["max_batch_bytes"] = _count("max_batch_bytes", settings["max_batch_bytes"],
                                         0, 64 * 1024 * 1024)
    settings["snapshot_log_bytes"] = _count("snapshot_log_bytes", settings["snapshot_log_bytes"],
                                            0, 2**63 - 1)
    for name in ("snapshot_compression", "tcp_nodelay"):
        settings[name] = _flag(name, settings[name])
    return settings


def _prepare_data_dir(data_dir: str | os.PathLike[str]) -> str:
    data_dir = os.fspath(data_dir)
    if isinstance(data_dir, bytes):
        data_dir = os.fsdecode(data_dir)
    if not data_dir:
        raise ValueError("data_dir must not be empty")
    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(f"data_dir {data_dir!r} is not a directory")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"data_dir {data_dir!r} is not writable")
    return data_dir


class Node:
    """One member of a raft cluster, replicating ``fsm``.

    Constructing starts nothing: call ``bootstrap()`` (first start of a new
    cluster only) and ``start()``; ``close()`` or a ``with`` block stops it.
    Every method is thread-safe; see API.md for the whole contract.
    """

    # The hot paths, bound to the compiled core's methods in __init__.
    apply: Callable[[Buffer], Future[Any]]
    apply_many: Callable[[Iterable[Buffer]], list[Future[Any]]]
    barrier: Callable[[], Future[None]]
    _core: _raft.Core

    def __init__(self, id: int, address: str, data_dir: str | os.PathLike[str],
                 fsm: StateMachine, *, election_timeout: float = 1.0,
                 heartbeat_timeout: float = 0.1, snapshot_threshold: int = 8192,
                 snapshot_trailing: int = 128, pre_vote: bool = True,
                 **tuning: float | int | bool) -> None:
        self._core = None  # type: ignore[assignment]  # __del__ may see a half-built node
        server = as_server((id, address))
        check_fsm(fsm)
        settings = _check_settings(election_timeout, heartbeat_timeout,
                                   snapshot_threshold, snapshot_trailing,
                                   pre_vote, tuning)
        self._data_dir = _prepare_data_dir(data_dir)
        self._id = server.id
        self._address = server.address
        self._core = _raft.Core(weakref.ref(self), server.id, server.address,
                                self._data_dir, fsm, SimpleNamespace(**settings))
        # The hot paths go straight to the compiled core.
        self.apply = self._core.apply
        self.apply_many = self._core.apply_many
        self.barrier = self._core.barrier
        _live_nodes.add(self)

    # -- lifecycle ------------------------------------------------------------

    def bootstrap(self, servers: Iterable[Server | tuple[Any, ...]]) -> None:
        """Write the cluster's first configuration; new data dir only."""
        checked = self._servers(servers)
        if not any(s.id == self._id for s in checked):
            raise ValueError(f"servers must include this node (id {self._id})")
        self._core.bootstrap(checked)

    def recover(self, servers: Iterable[Server | tuple[Any, ...]]) -> None:
        """Force a new configuration after losing quorum (before start())."""
        self._core.bootstrap(self._servers(servers), recover=True)

    @staticmethod
    def _servers(servers: Iterable[Server | tuple[Any, ...]]) -> list[Server]:
        checked = [as_server(s) for s in servers]
        if not checked:
            raise ValueError("servers must not be empty")
        ids = [s.id for s in checked]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate server ids in {ids}")
        return checked

    def start(self) -> None:
        """Start the raft thread; raises if the data dir or address is unusable."""
        try:
            self._core.start()
        except RaftError as exc:
            # libraft reports a failed listen() as a bare "I/O error".
            problem = _listen_problem(self._address) if exc.code == IOERR else None
            if problem is not None:
                raise problem from exc
            raise

    def close(self) -> None:
        """Stop the node; pending futures fail with ShutdownError. Idempotent."""
        if self._core is not None:
            self._core.close()
            _live_nodes.discard(self)

    def __enter__(self: _N) -> _N:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is None or core.closed or not core.started:
            return          # nothing runs: nothing to warn about
        warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
        if core.thread_ident == _current_thread_ident():
            core.close_from_raft_thread()
        else:
            core.close()

    # -- commands ---------------------------------------------------------------
    # apply, apply_many and barrier are the Core's methods, bound in __init__:
    #   apply(command) -> Future, apply_many(commands) -> list[Future],
    #   barrier() -> Future[None]

    async def apply_async(self, command: Buffer) -> Any:
        """Await the result of ``apply(command)`` from asyncio."""
        return await asyncio.wrap_future(self.apply(command))

    def wait_for_leader(self, timeout: float | None = None) -> Server:
        """Block until a leader is known and return it; TimeoutError otherwise."""
        return self._core.wait_for_leader(timeout)

    # -- cluster operations -------------------------------------------------------

    def add(self, id: int, address: str, role: Role = Role.VOTER) -> Future[None]:
        """Add a server; unless ``role`` is SPARE, promote it once it has
        caught up. The future resolves (None) when all of that is committed."""
        server = as_server((id, address, _role(role)))
        return self._core.change(_CHANGE_ADD, server.id, int(server.role), server.address)

    def assign(self, id: int, role: Role) -> Future[None]:
        """Give server ``id`` a new role (a voter is caught up first)."""
        return self._core.change(_CHANGE_ASSIGN, _server_id(id), int(_role(role)))

    def remove(self, id: int) -> Future[None]:
        """Remove server ``id``; removing the leader itself makes it step down."""
        return self._core.change(_CHANGE_REMOVE, _server_id(id))

    def transfer(self, id: int = 0) -> Future[Server | None]:
        """Hand leadership to voter ``id`` (0: libraft picks one). Resolves
        with the new leader, or None if it did not happen in time."""
        if id != 0:
            id = _server_id(id)
        return self._core.transfer(id)

    # -- asyncio forms: safe under any running loop; cancelling the awaiting
    # side leaves the node and the submitted request alone. -------------------

    async def barrier_async(self) -> None:
        await asyncio.wrap_future(self.barrier())

    async def add_async(self, id: int, address: str, role: Role = Role.VOTER) -> None:
        await asyncio.wrap_future(self.add(id, address, role))

    async def assign_async(self, id: int, role: Role) -> None:
        await asyncio.wrap_future(self.assign(id, role))

    async def remove_async(self, id: int) -> None:
        await asyncio.wrap_future(self.remove(id))

    async def transfer_async(self, id: int = 0) -> Server | None:
        return await asyncio.wrap_future(self.transfer(id))

    async def wait_for_leader_async(self, timeout: float | None = None) -> Server:
        """Like wait_for_leader(), without blocking the event loop."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(timeout, 0.0)
        while True:
            leader = self._core.leader
            if leader is not None:
                return leader
            if self._core.closed or not self._core.started:
                raise ShutdownError("node is not running", SHUTDOWN)
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"no leader known after {timeout} s")
            # The status mirror is cheap to read; 10 ms is well under an
            # election timeout.
            await asyncio.sleep(0.01)

    def on_state_change(self, fn: _F) -> _F:
        """Call ``fn(node)`` on the raft thread when the state or leader changes."""
        if not callable(fn):
            raise TypeError("on_state_change needs a callable")
        self._core.add_observer(fn)
        return fn

    # -- status -------------------------------------------------------------------

    @property
    def id(self) -> int:
        return self._id

    @property
    def address(self) -> str:
        return self._address

    @property
    def data_dir(self) -> str:
        return self._data_dir

    @property
    def state(self) -> State:
        return self._core.state

    @property
    def leader(self) -> Server | None:
        return self._core.leader

    @property
    def is_leader(self) -> bool:
        leader = self._core.leader
        return leader is not None and leader.id == self._id and \
            self._core.state == State.LEADER

    @property
    def configuration(self) -> list[Server]:
        return self._core.configuration

    def stats(self) -> dict[str, Any]:
        """A snapshot of the node's status (see API.md for the keys)."""
        return self._core.stats()

    def __repr__(self) -> str:
        core = self._core
        state = core.state.name if core is not None else "?"
        return f"<canonical_raft.Node id={self._id} address={self._address!r} state={state}>"


# Core.change() operations (core/requests.pxi ChangeOp).
_CHANGE_ADD, _CHANGE_ASSIGN, _CHANGE_REMOVE = 1, 2, 3


def _role(role: int) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValueError(f"role must be a raft.Role, got {role!r}") from None


def _server_id(id: object) -> int:
    if isinstance(id, bool) or not isinstance(id, int):
        raise TypeError(f"server id must be an int, got {id!r}")
    if not 1 <= id < 2**64:
        raise ValueError(f"server id must be >= 1, got {id}")
    return id


def _listen_problem(address: str) -> OSError | None:
    """Why this node cannot listen on ``address``, if binding it fails."""
    host, _, port = address.rpartition(":")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except OSError as exc:
        return OSError(exc.errno, f"cannot resolve {address}: {exc.strerror}")
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            return OSError(exc.errno, f"cannot listen on {address}: {exc.strerror}")
    return None


def _current_thread_ident() -> int:
    import threading
    return threading.get_ident()
