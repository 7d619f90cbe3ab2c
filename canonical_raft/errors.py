"""The exceptions of canonical_raft and the table from libraft's error codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .types import Server

# libraft's error numbers (raft.h); stable across 0.x releases.
NOMEM, BADID, DUPLICATEID, DUPLICATEADDRESS, BADROLE, MALFORMED, NOTLEADER, \
    LEADERSHIPLOST, SHUTDOWN, CANTBOOTSTRAP, CANTCHANGE, CORRUPT, CANCELED, \
    NAMETOOLONG, TOOBIG, NOCONNECTION, BUSY, IOERR, NOTFOUND, INVALID, \
    UNAUTHORIZED, NOSPACE, TOOMANY = range(1, 24)


class RaftError(Exception):
    """An error reported by libraft; ``code`` is libraft's error number."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class NotLeaderError(RaftError):
    """This node is not the leader; ``leader`` is the known leader or None."""

    def __init__(self, message: str, code: int = NOTLEADER,
                 leader: Server | None = None) -> None:
        super().__init__(message, code)
        self.leader = leader


class LeadershipLostError(RaftError):
    """Leadership was lost before the entry committed: its outcome is unknown."""


class ShutdownError(RaftError):
    """The node is closing or closed."""


class CantBootstrapError(RaftError):
    """Bootstrap on a data dir that already has state."""


class CantChangeError(RaftError):
    """A configuration change is in progress, or the change is not allowed."""


class NoConnectionError(RaftError):
    """A peer could not be reached."""


_BY_CODE: dict[int, type[RaftError]] = {
    NOTLEADER: NotLeaderError,
    LEADERSHIPLOST: LeadershipLostError,
    SHUTDOWN: ShutdownError,
    CANCELED: ShutdownError,
    CANTBOOTSTRAP: CantBootstrapError,
    CANTCHANGE: CantChangeError,
    NOCONNECTION: NoConnectionError,
}


def error_for(code: int, message: str, leader: Server | None = None) -> RaftError:
    """The exception for libraft error ``code``, carrying ``message``."""
    cls = _BY_CODE.get(code, RaftError)
    if cls is NotLeaderError:
        return NotLeaderError(message, code, leader)
    return cls(message, code)
