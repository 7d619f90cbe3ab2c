"""The exceptions of canonical_raft and the table from libraft's error codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._raft import ERROR_CODES

if TYPE_CHECKING:
    from .types import Server

# libraft's error numbers, as the compiled module read them from raft.h.
NOMEM = ERROR_CODES["NOMEM"]
BADID = ERROR_CODES["BADID"]
DUPLICATEID = ERROR_CODES["DUPLICATEID"]
DUPLICATEADDRESS = ERROR_CODES["DUPLICATEADDRESS"]
BADROLE = ERROR_CODES["BADROLE"]
MALFORMED = ERROR_CODES["MALFORMED"]
NOTLEADER = ERROR_CODES["NOTLEADER"]
LEADERSHIPLOST = ERROR_CODES["LEADERSHIPLOST"]
SHUTDOWN = ERROR_CODES["SHUTDOWN"]
CANTBOOTSTRAP = ERROR_CODES["CANTBOOTSTRAP"]
CANTCHANGE = ERROR_CODES["CANTCHANGE"]
CORRUPT = ERROR_CODES["CORRUPT"]
CANCELED = ERROR_CODES["CANCELED"]
NAMETOOLONG = ERROR_CODES["NAMETOOLONG"]
TOOBIG = ERROR_CODES["TOOBIG"]
NOCONNECTION = ERROR_CODES["NOCONNECTION"]
BUSY = ERROR_CODES["BUSY"]
IOERR = ERROR_CODES["IOERR"]
NOTFOUND = ERROR_CODES["NOTFOUND"]
INVALID = ERROR_CODES["INVALID"]
UNAUTHORIZED = ERROR_CODES["UNAUTHORIZED"]
NOSPACE = ERROR_CODES["NOSPACE"]
TOOMANY = ERROR_CODES["TOOMANY"]


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


class CorruptError(RaftError):
    """The data dir holds damaged state (a log segment, the metadata, a
    snapshot): the node refuses it rather than lose acknowledged entries.
    The message names the file and the remedy (docs/howto/recovery.md)."""


_BY_CODE: dict[int, type[RaftError]] = {
    NOTLEADER: NotLeaderError,
    LEADERSHIPLOST: LeadershipLostError,
    SHUTDOWN: ShutdownError,
    CANCELED: ShutdownError,
    CANTBOOTSTRAP: CantBootstrapError,
    CANTCHANGE: CantChangeError,
    NOCONNECTION: NoConnectionError,
    CORRUPT: CorruptError,
}


def error_for(code: int, message: str, leader: Server | None = None) -> RaftError:
    """The exception for libraft error ``code``, carrying ``message``."""
    cls = _BY_CODE.get(code, RaftError)
    if cls is NotLeaderError:
        return NotLeaderError(message, code, leader)
    return cls(message, code)
