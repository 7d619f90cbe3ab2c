"""The state machine base class users subclass (duck typing works too)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Union, cast

if TYPE_CHECKING:
    from typing_extensions import Buffer, TypeAlias


class PersistableSnapshot(Protocol):
    """What FSM.snapshot() may return instead of bytes: persist() then runs
    off the raft thread (and release(), if present, afterwards)."""

    def persist(self) -> Buffer: ...


SnapshotData: TypeAlias = "Union[Buffer, PersistableSnapshot]"


class StateMachine(Protocol):
    """The three methods a Node needs of its fsm (raft.FSM has them)."""

    def apply(self, command: bytes) -> Any: ...

    def snapshot(self) -> SnapshotData: ...

    def restore(self, data: bytes) -> object: ...


class FSM:
    """A replicated state machine.

    ``apply``, ``snapshot`` and ``restore`` run on the node's raft thread, one
    at a time. ``apply`` must be deterministic: every node applies the same
    commands in the same order and must reach the same state.
    """

    def apply(self, command: bytes) -> Any:
        """Apply one committed command; the return value resolves the future."""
        raise NotImplementedError

    def snapshot(self) -> SnapshotData:
        """Return the whole state as bytes-like (or an object with persist())."""
        raise NotImplementedError

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's bytes."""
        raise NotImplementedError


def check_fsm(fsm: object) -> StateMachine:
    """TypeError unless ``fsm`` has callable apply, snapshot and restore."""
    if isinstance(fsm, type):
        raise TypeError(f"fsm must be an instance: pass {fsm.__name__}(), not the class")
    missing = [name for name in ("apply", "snapshot", "restore")
               if not callable(getattr(fsm, name, None))]
    if missing:
        raise TypeError(f"fsm {fsm!r} lacks callable method(s): {', '.join(missing)}")
    return cast("StateMachine", fsm)
