"""canonical_raft: replicate any Python state machine with libraft."""

from ._raft import libraft_version
from .errors import (CantBootstrapError, CantChangeError, LeadershipLostError,
                     NoConnectionError, NotLeaderError, RaftError,
                     ShutdownError)
from .fsm import FSM
from .futures import Future
from .node import Node
from .types import Role, Server, State

__version__ = "0.1.0"

__all__ = [
    "FSM", "Future", "Node", "Role", "Server", "State",
    "RaftError", "NotLeaderError", "LeadershipLostError", "ShutdownError",
    "CantBootstrapError", "CantChangeError", "NoConnectionError",
    "libraft_version", "__version__",
]
