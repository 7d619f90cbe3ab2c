"""canonical_raft.Node: the public node, a thin checked layer over Core."""

from __future__ import annotations

import asyncio
import atexit
import os
import socket
import warnings
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _raft, backups, config, datadir, integrity, peer_security, storage
from .backups import BackupInfo
from .events import Event, EventKind
from .errors import IOERR, SHUTDOWN, RaftError, ShutdownError
from .fsm import StateMachine, check_fsm
from .futures import Future
from .tls import TLS
from .types import Role, Server, State, as_server, parse_address

if TYPE_CHECKING:
    from typing_extensions import Buffer, Unpack

_N = TypeVar("_N", bound="Node")
_F = TypeVar("_F", bound="Callable[[Node], object]")
_E = TypeVar("_E", bound="Callable[[Event], object]")
_C = TypeVar("_C", bound="Callable[..., object]")

_live_nodes: weakref.WeakSet[Node] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    # A raft thread must not outlive the interpreter it calls into.
    for node in list(_live_nodes):
        node.close()


class Node:
    """One member of a raft cluster, replicating ``fsm``.

    Constructing starts nothing: call ``bootstrap()`` (first start of a new
    cluster only) and ``start()``; ``close()`` or a ``with`` block stops it.
    Every method is thread-safe; see API.md for the whole contract.

    Settings (keyword arguments, each checked at construction; the tuning
    guide's table says more):
    """

    _core: _raft.Core

    def __init__(self, id: int, address: str, data_dir: str | os.PathLike[str],
                 fsm: StateMachine, *, tls: TLS | None = None, insecure: bool = False,
                 bind: str | None = None, **settings: Unpack[config.Settings]) -> None:
        self._core = None  # type: ignore[assignment]  # __del__ may see a half-built node
        server = as_server((id, address))
        check_fsm(fsm)
        checked = config.validate(settings)
        if tls is not None and not isinstance(tls, TLS):
            raise TypeError(f"tls must be a raft.TLS, not {type(tls).__name__}")
        if not isinstance(insecure, bool):
            raise TypeError(f"insecure must be a bool, not {type(insecure).__name__}")
        self._tls = tls
        self._insecure = insecure
        self._bind = None if bind is None else parse_address(bind, listen=True)
        self._data_dir = datadir.prepare(data_dir)
        self._lock = datadir.DataDirLock(self._data_dir)
        self._id = server.id
        self._address = server.address
        self._auto_recovery = checked.auto_recovery
        self._storage = str(checked.storage)
        self._core = _raft.Core(weakref.ref(self), server.id, server.address,
                                self._data_dir, fsm, checked)
        if tls is not None:
            self._core.load_tls(tls)    # OSError/ValueError naming the file
        if self._bind is not None:
            self._core.set_bind(self._bind)
        # The hot paths: the instance attributes shadow the methods below
        # (same behaviour, documented there) and skip one Python call each.
        self.apply = self._core.apply  # type: ignore[method-assign]
        self.apply_many = self._core.apply_many  # type: ignore[method-assign]
        self.barrier = self._core.barrier  # type: ignore[method-assign]
        self.apply_async = self._core.apply_async  # type: ignore[method-assign]
        _live_nodes.add(self)

    # -- lifecycle ------------------------------------------------------------

    def bootstrap(self, servers: Iterable[Server | tuple[Any, ...]]) -> None:
        """Write the cluster's first configuration; new data dir only."""
        checked = self._servers(servers)
        mine = [s for s in checked if s.id == self._id]
        if not mine:
            raise ValueError(f"servers must include this node (id {self._id})")
        if mine[0].address != self._address:
            raise ValueError(f"servers give this node (id {self._id}) the address "
                             f"{mine[0].address!r}, but it is {self._address!r}")
        self._write_configuration(checked, recover=False)

    def recover(self, servers: Iterable[Server | tuple[Any, ...]]) -> None:
        """Force a new configuration after losing quorum (before start())."""
        self._write_configuration(self._servers(servers), recover=True)

    def _write_configuration(self, servers: list[Server], recover: bool) -> None:
        self._open_data_dir()
        try:
            self._core.bootstrap(servers, recover=recover)
        except RaftError as exc:
            damaged = self._start_failure(exc)
            if damaged is not exc:
                raise damaged from exc
            raise

    def _start_failure(self, exc: RaftError) -> RaftError:
        """A damaged data dir's error worded for its storage kind."""
        if self._storage == "lmdb":
            return storage.start_failure(exc, self._data_dir)
        return integrity.start_failure(exc, self._data_dir)

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
        peer_security.check(self._id, self._address, self._tls, self._insecure, self._bind)
        self._open_data_dir()
        try:
            self._core.start()
        except RaftError as exc:
            self._release_unless_running()
            damaged = self._start_failure(exc)
            if damaged is not exc:
                raise damaged from exc
            # libraft reports a failed listen() as a bare "I/O error".
            problem = _listen_problem(self._address) if exc.code == IOERR else None
            if problem is not None:
                raise problem from exc
            raise
        except BaseException:
            self._release_unless_running()
            raise

    def _open_data_dir(self) -> None:
        """Take the data dir's lock, then (unless auto_recovery) refuse a
        damaged dir before libraft's repairs touch it (integrity.py)."""
        self._lock.acquire()
        if self._core.started:
            return
        try:
            removed = os.path.join(self._data_dir, datadir.REMOVED_NAME)
            if os.path.exists(removed):
                with open(removed) as f:
                    why = f.read().strip()
                raise ShutdownError(f"{removed}: {why}", SHUTDOWN)
            storage.check(self._data_dir, self._storage)    # the kind, or a new store
            if self._storage == "uv" and not self._auto_recovery:
                integrity.check(self._data_dir)
        except BaseException:
            self._lock.release()
            raise

    def _release_unless_running(self) -> None:
        if not self._core.started or self._core.closed:
            self._lock.release()

    @property
    def tls(self) -> TLS | None:
        """The TLS files in use (None: plaintext peer port)."""
        return self._tls

    def reload_tls(self, tls: TLS | None = None) -> None:
        """Load renewed certificates without a restart: ``tls``, or the same
        files again. New peer connections use them; open ones keep theirs.
        OSError/ValueError naming the file if they do not load (the old ones
        stay in use)."""
        if tls is None:
            if self._tls is None:
                raise RuntimeError("this node has no tls to reload")
            tls = TLS(*self._tls._files())
        elif not isinstance(tls, TLS):
            raise TypeError(f"tls must be a raft.TLS, not {type(tls).__name__}")
        self._core.load_tls(tls)
        self._tls = tls

    def close(self) -> None:
        """Stop the node; pending futures fail with ShutdownError. Idempotent."""
        if self._core is not None:
            self._core.close()
            self._lock.release()
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
        if _raft.on_raft_thread(core.key):
            core.close_from_raft_thread()
        else:
            core.close()

    # -- commands ---------------------------------------------------------------

    def apply(self, command: Buffer) -> Future[Any]:
        """Replicate ``command`` (bytes-like, else TypeError at once). The
        future's result is ``FSM.apply``'s return value on this node once the
        entry is committed and applied; runtime conditions fail the future
        (NotLeaderError on a follower, LeadershipLostError, ShutdownError),
        never this call."""
        return self._core.apply(command)

    def apply_many(self, commands: Iterable[Buffer]) -> list[Future[Any]]:
        """``apply()`` for many commands in one submission: one future per
        command, in order, the same semantics each."""
        return self._core.apply_many(commands)

    def barrier(self) -> Future[None]:
        """A future that resolves once every earlier entry is applied here
        (a linearizable read point on the leader)."""
        return self._core.barrier()

    def read_barrier(self) -> Future[None]:
        """A future that resolves once a linearizable read may be served
        from this node's FSM, on the leader or a follower: every write
        acknowledged anywhere before the call is applied here. No log write:
        the leader confirms it still leads with a majority (ReadIndex), and
        concurrent calls share one round. Fails with NotLeaderError if no
        leader confirms within forward_timeout, ShutdownError on close."""
        return self._core.read_barrier()

    async def read_barrier_async(self) -> None:
        """Await ``read_barrier()`` from asyncio."""
        await asyncio.wrap_future(self.read_barrier())

    def stale_ok(self, max_age: float) -> bool:
        """True if a read of this node's FSM now is at most about
        ``max_age`` seconds behind the leader's: the leader itself, or a
        follower that heard from a leader within ``max_age`` (stats()'s
        last_contact). No round trip. Add up to one election_timeout if
        that leader was cut off from its majority without knowing it yet
        (libraft steps it down then). For reads that must not be stale,
        use read_barrier()."""
        if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
            raise TypeError(f"max_age must be a number of seconds, not {type(max_age).__name__}")
        if not max_age >= 0:
            raise ValueError(f"max_age must be >= 0 seconds, got {max_age!r}")
        stats = self._core.stats()
        if stats["state"] == State.LEADER:
            return True
        contact = stats["last_contact"]
        return stats["state"] == State.FOLLOWER and contact is not None and contact <= max_age

    async def apply_async(self, command: Buffer) -> Any:
        """Await the result of ``apply(command)`` from asyncio. Results reach
        the event loop in batches: one wake-up of the loop for all that
        completed in one iteration of the raft thread."""
        return await self._core.apply_future(command)

    async def apply_many_async(self, commands: Iterable[Buffer], *,
                               return_exceptions: bool = False) -> list[Any]:
        """``apply_many(commands)`` for asyncio: the results in order, once
        every command is done. A failed command raises its exception (the
        first failed, in order; the others still ran), or with
        ``return_exceptions=True`` takes its place in the list."""
        return await self._core.apply_many_async(commands, return_exceptions)

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

    # -- snapshots and backups (docs/backups.md) -----------------------------------

    def snapshot(self) -> Future[int]:
        """Take a snapshot now, on this node (leader or follower). The
        future resolves with the snapshot's index once it is written: one
        that covers every entry applied here before the call (the last one,
        if nothing was applied since; 0 if nothing ever was). It fails with
        RaftError if FSM.snapshot() or persist() raises, ShutdownError if
        the node is not running or closes first."""
        return self._core.snapshot()

    def backup(self, path: str | os.PathLike[str]) -> Future[int]:
        """Write a consistent, checksummed backup of this node's state to
        ``path`` (any node: leader or follower). FSM.snapshot() runs on the
        raft thread between two applies; persist() and the file's writing
        (a temporary file, fsync, rename) on a thread pool while commands
        keep being applied. The future resolves with the backup's index
        (the last entry its state includes); it fails with the exception
        FSM.snapshot(), persist() or the write raised, ShutdownError if
        the node is not running. ``Node.restore_backup()`` seeds a new
        cluster from the file."""
        return self._core.backup(os.fspath(path))

    async def snapshot_async(self) -> int:
        """Await ``snapshot()`` from asyncio."""
        return await asyncio.wrap_future(self.snapshot())

    async def backup_async(self, path: str | os.PathLike[str]) -> int:
        """Await ``backup(path)`` from asyncio."""
        return await asyncio.wrap_future(self.backup(path))

    @staticmethod
    def restore_backup(path: str | os.PathLike[str], data_dir: str | os.PathLike[str],
                       servers: Iterable[Server | tuple[Any, ...]] | None = None,
                       storage: str = "uv") -> BackupInfo:
        """Seed the empty ``data_dir`` of a new node from the backup at
        ``path``, with the configuration ``servers`` (default: the
        backup's). Start the node on it without ``bootstrap()``: its FSM is
        restored from the backup. Do it for every voter of the new cluster,
        with the same backup and servers. CorruptError naming the file (and
        nothing written) if the backup is truncated or damaged,
        CantBootstrapError if ``data_dir`` has state. ``storage``: that of
        the node that will start on it."""
        return backups.restore_backup(path, data_dir, servers, storage)

    @staticmethod
    def read_backup(path: str | os.PathLike[str]) -> BackupInfo:
        """Check the backup at ``path`` whole and say what it holds (index,
        term, servers); CorruptError naming the file if it does not check."""
        return backups.read_backup(path)

    # -- asyncio forms: safe under any running loop; cancelling the awaiting
    # side leaves the node and the submitted request alone. -------------------

    async def barrier_async(self) -> None:
        """Await ``barrier()`` from asyncio."""
        await self._core.barrier_async()

    async def add_async(self, id: int, address: str, role: Role = Role.VOTER) -> None:
        """Await ``add(id, address, role)`` from asyncio."""
        await asyncio.wrap_future(self.add(id, address, role))

    async def assign_async(self, id: int, role: Role) -> None:
        """Await ``assign(id, role)`` from asyncio."""
        await asyncio.wrap_future(self.assign(id, role))

    async def remove_async(self, id: int) -> None:
        """Await ``remove(id)`` from asyncio."""
        await asyncio.wrap_future(self.remove(id))

    async def transfer_async(self, id: int = 0) -> Server | None:
        """Await ``transfer(id)`` from asyncio: the new leader, or None."""
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

    def on_state_change(self, fn: _F) -> Observer[_F]:
        """Call ``fn(node)`` on the raft thread when the state or leader
        changes (HashiCorp's observer); an exception it raises is logged and
        the other observers still run. Returns an ``Observer``: calling it
        calls ``fn`` (so this works as a decorator) and ``cancel()``
        unregisters ``fn``."""
        if not callable(fn):
            raise TypeError("on_state_change needs a callable")
        self._core.add_observer(fn)
        return Observer(fn, self._core.remove_observer, fn)

    def on_event(self, fn: _E, kinds: Iterable[EventKind | str] | None = None) -> Observer[_E]:
        """Call ``fn(event)`` on the raft thread for each ``raft.Event``
        (HashiCorp's observer): the state or leader changed, a configuration
        was committed, a snapshot was taken or installed, and, on the
        leader, a voter or standby fell silent for an election timeout or
        was heard from again. ``kinds`` (``raft.EventKind`` values or their
        names) picks some; None: all. ``fn`` must not block; an exception
        it raises is logged and the other observers still run. Returns an
        ``Observer`` whose ``cancel()`` unregisters ``fn``."""
        if not callable(fn):
            raise TypeError("on_event needs a callable")
        call: Callable[[Event], object] = fn
        if kinds is not None:
            wanted = frozenset(EventKind(k) for k in kinds)

            def call(event: Event) -> object:
                return fn(event) if event.kind in wanted else None
        self._core.add_event_observer(call)
        return Observer(fn, self._core.remove_event_observer, call)

    # -- status -------------------------------------------------------------------

    @property
    def id(self) -> int:
        """This node's raft id."""
        return self._id

    @property
    def address(self) -> str:
        """The ``host:port`` its peers reach it at."""
        return self._address

    @property
    def bind(self) -> str | None:
        """Where the peer port listens when not at ``address`` (None: at
        ``address``)."""
        return self._bind

    @property
    def data_dir(self) -> str:
        """Its data dir, as an absolute path."""
        return self._data_dir

    @property
    def state(self) -> State:
        """Its raft state now (``State.UNAVAILABLE`` before start and after
        close or a fatal error)."""
        return self._core.state

    @property
    def leader(self) -> Server | None:
        """The leader this node knows of, or None."""
        return self._core.leader

    @property
    def is_leader(self) -> bool:
        """True while this node is the leader."""
        leader = self._core.leader
        return leader is not None and leader.id == self._id and \
            self._core.state == State.LEADER

    @property
    def configuration(self) -> list[Server]:
        """The servers of the newest configuration this node knows."""
        return self._core.configuration

    def stats(self) -> dict[str, Any]:
        """A snapshot of the node's status (see API.md for the keys)."""
        return self._core.stats()

    def __repr__(self) -> str:
        core = self._core
        state = core.state.name if core is not None else "?"
        return f"<canonical_raft.Node id={self._id} address={self._address!r} state={state}>"


# The settings, each once in canonical_raft.config.
Node.__doc__ = "\n".join([Node.__doc__ or "", *config.docstring_lines()])


class Observer(Generic[_C]):
    """What ``Node.on_state_change(fn)`` and ``Node.on_event(fn)`` return:
    calling it calls ``fn``; ``cancel()`` unregisters ``fn`` from that node
    (idempotent)."""

    __slots__ = ("fn", "_unregister", "_registered")

    def __init__(self, fn: _C, unregister: Callable[[Any], bool], registered: Any) -> None:
        self.fn = fn
        self._unregister: Callable[[Any], bool] | None = unregister
        self._registered = registered      # what the core calls (fn, or fn filtered)

    def __call__(self, arg: Any) -> object:
        return self.fn(arg)

    @property
    def active(self) -> bool:
        """True until ``cancel()``."""
        return self._unregister is not None

    def cancel(self) -> bool:
        """Stop calling ``fn``; True if this call unregistered it. Safe from
        any thread, ``fn`` itself included (a call already under way ends)."""
        unregister, self._unregister = self._unregister, None
        return unregister is not None and unregister(self._registered)

    def __repr__(self) -> str:
        return f"<canonical_raft.Observer {self.fn!r}{'' if self.active else ' cancelled'}>"


# Core.change() operations, libraft-side numbers from the compiled core.
_CHANGE_ADD, _CHANGE_ASSIGN, _CHANGE_REMOVE = (
    _raft.CHANGES["ADD"], _raft.CHANGES["ASSIGN"], _raft.CHANGES["REMOVE"])


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

