"""Group: several structures sharing one node (the node's FSM), routing
each command to its structure by name; one snapshot covers them all."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Optional, Protocol

from . import codec, command
from .errors import NotAttachedError, OutdatedReplicaError, UnsupportedCommandError
from .structure import Consistency, Structure, check_version

__all__ = ["Group", "Submitter", "SNAPSHOT_FORMAT"]

log = logging.getLogger("canonical_raft.batteries")

#: The snapshot layout written by this code; restore() refuses higher ones.
SNAPSHOT_FORMAT = 1
_SNAPSHOT_KIND = "canonical_raft.batteries"


class Submitter(Protocol):
    """What a group needs of its node: ``raft.Node`` has it (so will a node
    that forwards commands to its leader)."""

    def apply(self, command: bytes) -> concurrent.futures.Future[Any]: ...

    def barrier(self) -> concurrent.futures.Future[None]: ...


class Group(Mapping[str, Structure]):
    """Structures under names, as one node's FSM::

        group = Group(users=ReplicatedDict(), hits=ReplicatedCounter())
        node = raft.Node(1, address, data_dir, group)
        group.attach(node)             # now its structures can submit

    A Group is a read-only mapping of its structures. Every command names
    its structure; a snapshot holds every structure's state, and the
    cluster's *active version* (see :meth:`activate`).
    """

    def __init__(self, structures: Optional[Mapping[str, Structure]] = None, /,
                 **named: Structure) -> None:
        members: dict[str, Structure] = {}
        for name, structure in [*(structures or {}).items(), *named.items()]:
            if not isinstance(name, str):
                raise TypeError(f"structure names are str, got {name!r}")
            if not isinstance(structure, Structure):
                raise TypeError(f"{name!r} is a {type(structure).__name__}, not a replicated "
                                f"structure (ReplicatedDict, ..., or a ReplicatedObject)")
            if name in members:
                raise ValueError(f"two structures named {name!r}")
            if name == "" and (len(members) or len(named) or len(structures or {}) > 1):
                raise ValueError("the name '' is for a structure that is a node's FSM by itself")
            members[name] = structure
        if not members:
            raise ValueError("a Group needs at least one structure")
        bound: list[Structure] = []
        try:
            for name, structure in members.items():
                structure._bind(self, name)
                bound.append(structure)
        except BaseException:
            for structure in bound:
                structure._group = structure._name = None
            raise
        self._structures = members
        self._node: Optional[Submitter] = None
        self._attach_lock = threading.Lock()
        self._active = 1
        self._outdated: Optional[str] = None
        self._applying: Optional[int] = None   # the thread inside apply(), if any
        #: The highest version this code runs: of its structures and their operations.
        self.supported_version = max(
            max([s._version, *(op.version for op in s._ops.values())]) for s in members.values())

    # -- the mapping of structures ----------------------------------------------

    def __getitem__(self, name: str) -> Structure:
        return self._structures[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._structures)

    def __len__(self) -> int:
        return len(self._structures)

    def __repr__(self) -> str:
        return f"<Group {', '.join(map(repr, self._structures))} active_version={self._active}>"

    # -- the node ---------------------------------------------------------------

    def attach(self, node: Submitter) -> Group:
        """Submit the structures' commands to ``node``, the node whose fsm
        this group is. Once per group: a group is one node's state."""
        if not callable(getattr(node, "apply", None)) or not callable(getattr(node, "barrier", None)):
            raise TypeError(f"attach() takes the node (a raft.Node), got {node!r}")
        with self._attach_lock:
            if self._node is node:
                raise ValueError("this group is already attached to that node")
            if self._node is not None:
                raise ValueError(f"this group is already attached to {self._node!r}: a group is "
                                 f"the state of one node; make a new Group for each Node")
            self._node = node
        return self

    @property
    def node(self) -> Optional[Submitter]:
        """The node attached, if any."""
        return self._node

    def _submit(self, structure: Optional[str], op: str, version: int,
                args: list[Any]) -> concurrent.futures.Future[Any]:
        if self.applying():
            # Inside apply, a submission would happen on the leader only
            # (and waiting for it would deadlock): the same error everywhere,
            # attached or not.
            raise RuntimeError(f"{op!r} of {structure!r} submits a command: it cannot be "
                               f"called while a command is applied (call @replicated methods, "
                               f"which run in place, or submit from outside the FSM)")
        node = self._node
        if node is None:
            raise NotAttachedError("this group is not attached to a node: "
                                   "call group.attach(node) once the Node is made")
        return node.apply(command.encode(structure, op, version, args))

    def read_point(self, consistency: Consistency = "local", timeout: Optional[float] = None) -> None:
        """Wait until a read of this node's state has the given consistency:
        ``"local"`` returns at once, ``"linearizable"`` waits for
        ``node.read_barrier()`` if the node has it, else ``node.barrier()``
        (every entry committed before the call applied here; leader only,
        NotLeaderError on a follower). Raises
        OutdatedReplicaError if this replica no longer follows the cluster."""
        if self._outdated is not None:
            raise OutdatedReplicaError(self._outdated)
        if consistency == "local":
            return
        if consistency != "linearizable":
            raise ValueError(f"consistency must be 'local' or 'linearizable', got {consistency!r}")
        node = self._node
        if node is None:
            raise NotAttachedError("a linearizable read needs the node: call attach(node) first")
        # A node with read_barrier() (ReadIndex: no log write, and on
        # followers too) is used through it; else barrier(), leader only.
        read_barrier = getattr(node, "read_barrier", None)
        future = read_barrier() if callable(read_barrier) else node.barrier()
        future.result(timeout)

    # -- versions -----------------------------------------------------------------

    @property
    def active_version(self) -> int:
        """The cluster's active version, as applied on this node: commands
        of a higher version fail (UnsupportedCommandError) on every node."""
        return self._active

    def activate(self, version: int) -> concurrent.futures.Future[int]:
        """Raise the cluster's active version (never lowers it); the future
        gives the active version afterwards. Call it once every node runs
        code that supports ``version``: from then on the operations and
        structures of that version run. ValueError if this node's own code
        does not support it."""
        check_version(version)
        if version > self.supported_version:
            raise ValueError(f"this node's code supports versions up to {self.supported_version}, "
                             f"not {version}")
        return self._submit(None, "activate", 1, [version])

    def _activate(self, version: Any) -> int:
        if type(version) is not int or version < 1:
            raise TypeError(f"activate takes an int >= 1, got {version!r}")
        if version > self._active:
            self._active = version
            if version > self.supported_version:
                self._outdated = (f"the cluster activated version {version}, this node's code "
                                  f"supports up to {self.supported_version}: upgrade it")
                log.error("%s", self._outdated)
        return self._active

    # -- the FSM ------------------------------------------------------------------

    def applying(self) -> bool:
        """Whether the calling thread is applying a command of this group
        (the raft thread, inside ``apply``)."""
        return self._applying == threading.get_ident()

    def apply(self, data: bytes) -> Any:
        self._applying = threading.get_ident()
        try:
            return self._apply(data)
        finally:
            self._applying = None

    def _apply(self, data: bytes) -> Any:
        cmd = command.decode(data)
        if cmd.version > self._active:
            raise UnsupportedCommandError(
                f"{cmd.op!r} of {cmd.structure!r} is of version {cmd.version}, the cluster's "
                f"active version is {self._active}: group.activate({cmd.version}) once every "
                f"node runs code that supports it")
        if cmd.structure is None:
            if cmd.op == "activate" and len(cmd.args) == 1:
                return self._activate(cmd.args[0])
            raise self._unknown(cmd, "group operation")
        structure = self._structures.get(cmd.structure)
        if structure is None:
            raise self._unknown(cmd, "structure")
        op = structure._ops.get(cmd.op)
        if op is None:
            raise self._unknown(cmd, "operation")
        return op.fn(structure, *cmd.args)

    def _unknown(self, cmd: command.Command, what: str) -> UnsupportedCommandError:
        # Within the active version, yet unknown here: a stray command, or a
        # newer node sending what it did not version. Every node running
        # this code fails it alike; one that knows it would not.
        msg = (f"unknown {what} in command {cmd.op!r} of {cmd.structure!r} (version "
               f"{cmd.version}); if newer code sends it, give it a version above the "
               f"active {self._active}")
        log.warning("%s", msg)
        return UnsupportedCommandError(msg)

    def snapshot(self) -> _GroupSnapshot:
        # On the raft thread: only cheap copies; persist() does the rest.
        frozen = [(name, s, s._freeze()) for name, s in self._structures.items()]
        return _GroupSnapshot(self._active, frozen)

    def restore(self, data: bytes) -> None:
        try:
            doc = codec.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"not a batteries snapshot ({len(data)} bytes): {exc}") from None
        if type(doc) is not dict or doc.get("kind") != _SNAPSHOT_KIND:
            raise ValueError("not a batteries snapshot")
        fmt = doc.get("format")
        if type(fmt) is not int or fmt > SNAPSHOT_FORMAT or fmt < 1:
            raise ValueError(f"snapshot format {fmt!r}: this code reads up to {SNAPSHOT_FORMAT}")
        active, states = doc.get("active"), doc.get("structures")
        if type(active) is not int or active < 1 or type(states) is not dict:
            raise ValueError("malformed batteries snapshot")
        lacking = []
        for name in sorted(set(states) - set(self._structures)):
            # A structure of newer code that was never active holds nothing
            # (every command to it failed): skip it. One that was active:
            # this node cannot hold it, it is outdated (but keeps running,
            # a voter the cluster may need while it is upgraded).
            entry = states[name]
            since = entry.get("version") if type(entry) is dict else None
            if type(since) is not int or since <= active:
                lacking.append(name)
        prepared = []
        for name, structure in self._structures.items():
            entry = states.get(name)
            if entry is None:
                prepared.append((structure, structure._prepare(None)))
                continue
            if type(entry) is not dict or entry.get("type") != structure.kind:
                got = entry.get("type") if type(entry) is dict else entry
                raise ValueError(f"{name!r} is a {structure.kind} here, the snapshot has {got!r}")
            prepared.append((structure, structure._prepare(entry.get("state"))))
        # Everything validated: only now replace the state.
        for structure, state in prepared:
            structure._install(state)
        self._active = 1
        self._outdated = None
        self._activate(active)
        if lacking and self._outdated is None:
            self._outdated = (f"the snapshot holds structures this node's code lacks: "
                              f"{', '.join(map(repr, lacking))}: upgrade it")
            log.error("%s", self._outdated)


class _GroupSnapshot:
    """A group's state frozen at a snapshot; persist() serialises it off the
    raft thread (canonical_raft's persist() protocol)."""

    def __init__(self, active: int, frozen: list[tuple[str, Structure, Any]]) -> None:
        self.active = active
        self.frozen: Optional[list[tuple[str, Structure, Any]]] = frozen

    def persist(self) -> bytes:
        frozen = self.frozen
        if frozen is None:
            raise RuntimeError("this snapshot was released")
        # {"kind":..., "format":..., "active":..., "structures": {name:
        # {"type":..., "version":..., "state": ...}, ...}}, written in pieces.
        parts = [codec.dumps({"kind": _SNAPSHOT_KIND, "format": SNAPSHOT_FORMAT,
                              "active": self.active})[:-1].encode(), b',"structures":{']
        for i, (name, structure, state) in enumerate(frozen):
            head = codec.dumps({"type": structure.kind, "version": structure._version})
            parts.append(f'{"," if i else ""}{codec.dumps(name)}:{head[:-1]},"state":'.encode())
            parts.extend(piece.encode() for piece in structure._dump_text(state))
            parts.append(b"}")
        parts.append(b"}}")
        return b"".join(parts)

    def release(self) -> None:
        self.frozen = None
