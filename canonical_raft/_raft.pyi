"""Type stubs for the compiled core (canonical_raft/_raft.pyx).

Private: users go through canonical_raft.Node. Kept in step with the .pyx by
``python -m mypy.stubtest canonical_raft._raft`` (tests/test_typing.py).
"""

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypedDict

from typing_extensions import Buffer, disjoint_base

from .futures import Future
from .types import Server, State

class _DebugCounters(TypedDict):
    requests: int
    handles: int
    nodes: int
    wakeups: int
    transport: int
    forward: int
    raft_io: int

def held_counts(core: Core) -> dict[str, int]: ...
def debug_counters() -> _DebugCounters:
    """Live requests, uv handles, native node states and future waiters
    (Wakeup) in this process: all zero once every node is closed and
    collected."""

def installs_deferred() -> int:
    """How many InstallSnapshot messages io_guard.pxi has held back in this
    process (cumulative; for the regression test of libraft's crash)."""

def refusal_reasons() -> list[str | None]:
    """Every refusal reason's name, in counter order (index 0 unused)."""

def transport_live() -> int:
    """Transports and connections of the peer transport alive in this process."""

def io_live() -> int:
    """The binding's own raft_io objects alive in this process (0 when idle)."""

def lmdb_create(data_dir: str) -> None:
    """Create an empty lmdb store in data_dir (storage.py, under the lock)."""

def lmdb_stat(data_dir: str) -> dict[str, int]:
    """The lmdb store's counts: term, vote, first/last index, entries,
    snapshot index/term/size, file size and bytes in use."""

def convert_files(data_dir: str, to: str) -> None:
    """Write data_dir's state in the other storage kind beside the old files
    (convert.py: under the lock, then it commits the storage record)."""

def libraft_version() -> str:
    """libraft's version as a string, e.g. "0.22.1"."""

ERROR_CODES: dict[str, int]
"""libraft's error codes by name (raft.h: RAFT_NOMEM is ``"NOMEM"``)."""
ROLES: dict[str, int]
"""libraft's server roles by name: STANDBY, VOTER, SPARE."""
STATES: dict[str, int]
"""libraft's node states by name: UNAVAILABLE, FOLLOWER, CANDIDATE, LEADER."""
CHANGES: dict[str, int]
"""Core.change()'s ``op`` by name: ADD, ASSIGN, REMOVE."""

def snapshot_problem(data: Buffer) -> str | None:
    """None if ``data`` (a snapshot file's bytes) is a sound snapshot in the
    binding's format (core/entry.pxi), else what is wrong with it."""

def read_backup(path: str | bytes) -> tuple[int, int, int, list[tuple[int, str, int]], bytes]:
    """A backup file's (index, term, configuration index, servers as
    (id, address, role), snapshot bytes), every length and checksum
    checked; CorruptError naming the file otherwise (core/backup.pxi)."""

def seed_snapshot(data_dir: str, index: int, term: int, conf_index: int,
                  servers: Iterable[Server], snapshot: bytes) -> None:
    """Write a checked snapshot at (index, term) with configuration
    ``servers`` into the empty ``data_dir`` (core/offline.pxi)."""

BACKUP_MAGIC: int
BACKUP_END: int
BACKUP_VERSION: int

MARK_NAME: str
"""The high-water mark's file in the data dir (core/mark.pxi)."""
VOTE_NAME: str
"""The term and vote record's file in the data dir (core/mark.pxi)."""

def mark_decode(data: Buffer) -> int:
    """The applied index of a mark file's bytes; ValueError saying why they
    are not one."""

def vote_decode(data: Buffer) -> list[tuple[int, int]]:
    """The (term, vote) slots of a vote file's bytes that check."""

def on_raft_thread(key: int | None = None) -> bool:
    """True if the calling thread is the raft thread of the node whose Core
    has this ``key`` (keys start at 1: 0 matches no node), or with None,
    that of any node."""

@disjoint_base
class GroupState:
    """What a batteries Group knows of the log (core/lane.pxi)."""
    seq: int | None
    chain: bytes
    genesis: bytes | None
    active: int
    begun: bool
    resuming: list[Any]
    dicts: dict[str, Any]
    counters: dict[str, Any]
    @property
    def lane_count(self) -> int: ...

def lane_chain(chain: bytes, command: Buffer) -> bytes:
    """The batteries' command chain after ``command``."""

def lane_encode(head: str, args: list[Any]) -> bytes | None:
    """command.encode()'s bytes for plain scalar arguments, else None."""

def lane_try(group: GroupState, command: bytes) -> tuple[bool, Any]:
    """(True, its result) if the lane applied ``command``, else (False, None) (for tests)."""

@disjoint_base
class Wakeup:
    """A one-shot event for one waiting thread."""

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set(), at most `timeout` seconds (None: no limit);
        True if set. Signal handlers run meanwhile, as in Lock.acquire()."""
    def set(self) -> None:
        """Wake the waiter; from the raft thread, once it lets the GIL go."""

@disjoint_base
class FutureCore:
    """The state of one future and every operation on it (futures.Future
    is this plus the concurrent.futures.Future base class)."""

    _state: str
    _result: Any
    _exception: BaseException | None
    @property
    def _cond(self) -> threading.Condition | None: ...
    @property
    def _wakeup(self) -> Wakeup | None: ...
    @property
    def _condition(self) -> threading.Condition: ...
    @property
    def _waiters(self) -> list[Any]: ...
    @property
    def _done_callbacks(self) -> list[Callable[[Any], object]]: ...
    def done(self) -> bool: ...
    def running(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def cancel(self) -> bool:
        """False: a submitted command cannot be taken back."""
    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """Call ``fn(future)`` once it is done (at once if it is): on the raft
        thread for a node's future, so it must not block."""
    def set_result(self, result: Any) -> None: ...
    def set_exception(self, exception: BaseException | None) -> None: ...
    def result(self, timeout: float | None = None) -> Any: ...
    def exception(self, timeout: float | None = None) -> BaseException | None: ...

def _settle_batch(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the event loop: settle a batch of its futures."""

@disjoint_base
class _Burst:
    """Collects the results of a burst's commands; settles its asyncio
    future (with the list, or the first failure) once all are in."""

    def __new__(cls, future: asyncio.Future[Any], n: int, return_exceptions: bool) -> _Burst: ...

@disjoint_base
class _BurstSlot:
    """One command's place in a _Burst: what a request holds as its future."""

@disjoint_base
class Core:
    """The native node: one raft thread, its libuv loop and libraft."""

    _persisting: Any
    @property
    def key(self) -> int:
        """This node's number in the process (from 1): ``on_raft_thread(key)``."""
    def __init__(
        self,
        owner: Callable[[], object] | None,
        id: int,
        address: str,
        data_dir: str,
        fsm: Any,
        config: Any,
    ) -> None:
        """``config``: any object with the settings as attributes
        (election_timeout, heartbeat_timeout, snapshot_threshold, ...;
        seconds as floats), validated already; read when the node starts."""
    # -- commands
    def apply(self, command: Buffer) -> Future[Any]: ...
    def apply_many(self, commands: Iterable[Buffer]) -> list[Future[Any]]: ...
    def barrier(self) -> Future[None]: ...
    def read_barrier(self) -> Future[None]: ...
    # -- asyncio: futures of the running event loop
    async def apply_async(self, command: Buffer) -> Any:
        """apply(command) for asyncio: awaits its result (compiled: one
        coroutine layer fewer than a Python wrapper)."""
    def apply_future(self, command: Buffer) -> asyncio.Future[Any]:
        """An asyncio future of the running loop for apply(command)."""
    def apply_many_async(
        self, commands: Iterable[Buffer], return_exceptions: bool = False
    ) -> asyncio.Future[list[Any]]:
        """One asyncio future for a burst: the list of results, in order
        (with return_exceptions, failures in place; else the first failure)."""
    def barrier_async(self) -> asyncio.Future[None]:
        """An asyncio future of the running loop for barrier()."""
    # -- cluster operations (op: one of CHANGES)
    def change(
        self, op: int, target: int, role: int = 1, address: str | None = None
    ) -> Future[None]: ...
    def transfer(self, target: int) -> Future[Server | None]: ...
    # -- snapshots and backups (core/backup.pxi)
    def snapshot(self) -> Future[int]: ...
    def backup(self, path: str | bytes) -> Future[int]: ...
    # -- lifecycle
    def bootstrap(self, servers: Iterable[Server], recover: bool = False) -> None: ...
    def start(self) -> None: ...
    def close(self) -> None: ...
    def close_from_raft_thread(self) -> None: ...
    @property
    def started(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    # -- waiting and status
    def wait_for_leader(self, timeout: float | None = None) -> Server: ...
    @property
    def state(self) -> State: ...
    @property
    def leader(self) -> Server | None: ...
    @property
    def configuration(self) -> list[Server]: ...
    def stats(self) -> dict[str, Any]: ...
    def load_tls(self, tls: Any) -> None: ...
    def set_bind(self, address: str) -> None: ...
    def add_observer(self, fn: Callable[[Any], object]) -> None: ...
    def remove_observer(self, fn: Callable[[Any], object]) -> bool: ...
    def add_event_observer(self, fn: Callable[[Any], object]) -> None: ...
    def remove_event_observer(self, fn: Callable[[Any], object]) -> bool: ...
