"""canonical_raft: replicate any Python state machine with libraft."""

from ._raft import libraft_version
from ._version import __version__
from .backups import BackupInfo
from .datadir import DataDirInUseError
from .errors import (CantBootstrapError, CantChangeError, CorruptError, LeadershipLostError,
                     NoConnectionError, NotLeaderError, RaftError,
                     ShutdownError)
from .events import Event, EventKind
from .fsm import FSM
from .futures import Future
from .node import Node, Observer
from .tls import TLS
from .types import Role, Server, State

__all__ = [
    "FSM", "Future", "Node", "Observer", "Event", "EventKind", "TLS", "Role", "Server", "State",
    "RaftError", "NotLeaderError", "LeadershipLostError", "ShutdownError",
    "CantBootstrapError", "CantChangeError", "NoConnectionError", "DataDirInUseError",
    "CorruptError", "BackupInfo",
    "libraft_version", "__version__",
]
