"""Ready-made replicated structures on the public Node API.

::

    from canonical_raft import batteries

    users = batteries.ReplicatedDict[str, dict]()
    hits = batteries.ReplicatedCounter()
    group = batteries.Group(users=users, hits=hits)     # the node's FSM
    node = raft.Node(1, address, data_dir, group)
    group.attach(node)

Values travel in a checked JSON codec (:mod:`.codec`), commands in a
versioned format (:mod:`.command`), snapshots in :mod:`.snapshot`;
``ReplicatedDict(path=...)`` keeps its state in LMDB (:mod:`.lmdb_dict`,
which needs py-lmdb: ``pip install canonical_raft[lmdb]``); see
docs/batteries.md.
"""

from .codec import JSON
from .counter import ReplicatedCounter
from .dict import ABSENT, ReplicatedDict
from .errors import (BadCommandError, NotAttachedError, OutdatedReplicaError, StoreError,
                     UnsupportedCommandError)
from .group import Group, Submitter
from .lock import Lease, ReplicatedLock
from .queue import ReplicatedQueue
from .replicated import ReplicatedMethod, ReplicatedObject, replicated
from .structure import Consistency, Structure

__all__ = [
    "Group", "Structure", "Submitter", "Consistency", "JSON",
    "ReplicatedDict", "ABSENT", "ReplicatedCounter", "ReplicatedQueue",
    "ReplicatedLock", "Lease",
    "ReplicatedObject", "replicated", "ReplicatedMethod",
    "BadCommandError", "UnsupportedCommandError", "NotAttachedError", "OutdatedReplicaError",
    "StoreError",
]
