"""The exceptions of canonical_raft.batteries."""

from __future__ import annotations

__all__ = ["BadCommandError", "UnsupportedCommandError", "NotAttachedError",
           "OutdatedReplicaError", "StoreError"]


class BadCommandError(ValueError):
    """The bytes applied are not a batteries command (garbage, a truncated
    entry, the wrong shape). Every node fails such a command the same way
    and changes nothing."""


class UnsupportedCommandError(BadCommandError):
    """A well-formed command this cluster does not run: an unknown structure
    or operation, or one whose version is above the cluster's active version
    (``Group.activate``). Every node fails it the same way and changes
    nothing, whatever code it runs, so the replicas stay identical."""


class NotAttachedError(RuntimeError):
    """A structure was asked to submit a command before its group was
    attached to a node (``attach(node)``)."""


class OutdatedReplicaError(RuntimeError):
    """The cluster activated a version newer than this node's code supports:
    this replica can no longer promise to hold the same state as the others.
    Upgrade the node's code (its state is then rebuilt from the log or a
    snapshot)."""


class StoreError(RuntimeError):
    """The LMDB store of a ``ReplicatedDict(path=...)`` cannot be used: it
    is not one, it is damaged, it holds the state of another log (another
    cluster, or a node whose data dir was wiped and bootstrapped anew), or
    it is full (``map_size``). The message names the path and the remedy."""
