"""Type stubs for the compiled core (canonical_raft/_raft.pyx).

Private: users go through canonical_raft.Node. Kept in step with the .pyx by
``python -m mypy.stubtest canonical_raft._raft`` (tests/test_typing.py).
"""

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
    raft_io: int

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

def on_raft_thread(key: int | None = None) -> bool:
    """True if the calling thread is the raft thread of the node whose Core
    has this ``key`` (keys start at 1: 0 matches no node), or with None,
    that of any node."""

@disjoint_base
class Wakeup:
    """A one-shot event for one waiting thread."""

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set(), at most `timeout` seconds (None: no limit);
        True if set. Signal handlers run meanwhile, as in Lock.acquire()."""
    def set(self) -> None:
        """Wake the waiter; from the raft thread, once it lets the GIL go."""

@disjoint_base
class Core:
    """The native node: one raft thread, its libuv loop and libraft."""

    _future_type: type[Future[Any]]
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
    # -- cluster operations (op: one of CHANGES)
    def change(
        self, op: int, target: int, role: int = 1, address: str | None = None
    ) -> Future[None]: ...
    def transfer(self, target: int) -> Future[Server | None]: ...
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
    def add_observer(self, fn: Callable[[Any], object]) -> None: ...
    def remove_observer(self, fn: Callable[[Any], object]) -> bool: ...
