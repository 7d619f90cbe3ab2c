"""What ``Node.on_event`` reports (HashiCorp raft's Observer): the node's
state and leader, the committed configuration, snapshots taken and
installed, and, on a leader, peers that fell silent and came back."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .types import Server, State


class EventKind(str, enum.Enum):
    """What happened. A str, so ``kind == "leader"`` works too."""

    STATE = "state"                            #: ``state``: the node's new state
    LEADER = "leader"                          #: ``leader``: the leader it knows now (or None)
    CONFIGURATION = "configuration"            #: ``index``, ``servers``: a configuration committed
    SNAPSHOT_TAKEN = "snapshot_taken"          #: ``index``: this node took a snapshot
    SNAPSHOT_INSTALLED = "snapshot_installed"  #: ``index``: it installed the leader's
    PEER_LOST = "peer_lost"                    #: ``peer``: silent for an election timeout
    PEER_RESUMED = "peer_resumed"              #: ``peer``: heard from again


# The compiled core's kind numbers (core/events.pxi), in order.
KINDS = (EventKind.STATE, EventKind.LEADER, EventKind.CONFIGURATION,
         EventKind.SNAPSHOT_TAKEN, EventKind.SNAPSHOT_INSTALLED,
         EventKind.PEER_LOST, EventKind.PEER_RESUMED)


@dataclass(frozen=True)
class Event:
    """One event of node ``node_id`` in ``term``; the fields its kind names
    are set, the others are None (``servers``: empty)."""

    kind: EventKind
    node_id: int
    term: int
    state: State | None = None
    leader: Server | None = None
    index: int | None = None
    servers: tuple[Server, ...] = ()
    peer: Server | None = None
