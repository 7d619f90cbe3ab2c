"""Group: several structures sharing one node (the node's FSM), routing
each command to its structure by name; one snapshot covers them all.

The group counts the commands it applies (``seq``) and hashes them into a
chain: the point of the log its state is at (structure.LogPoint), which
every snapshot records. Durable structures (``ReplicatedDict(path=...)``)
store that point with their state, so that after a restart the group skips
the commands they hold already, and knows a store of another log."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Optional, Protocol

from .._raft import GroupState, lane_chain
from . import command, snapshot
from .counter import ReplicatedCounter
from .dict import ReplicatedDict
from .errors import NotAttachedError, OutdatedReplicaError, UnsupportedCommandError
from .snapshot import CHAIN_START, SNAPSHOT_FORMAT
from .structure import Consistency, LogPoint, Structure, check_version

__all__ = ["Group", "Submitter", "SNAPSHOT_FORMAT"]

log = logging.getLogger("canonical_raft.batteries")

_get_ident = threading.get_ident
_chain_next = lane_chain     # BLAKE2b-128 of the chain then the command


class Submitter(Protocol):
    """What a group needs of its node: ``raft.Node`` has it (so will a node
    that forwards commands to its leader)."""

    def apply(self, command: bytes) -> concurrent.futures.Future[Any]: ...

    def barrier(self) -> concurrent.futures.Future[None]: ...


def _in_state(name: str, doc: str) -> Any:
    """A Group attribute kept in its GroupState."""
    def get(self: Group) -> Any:
        return getattr(self._state, name)

    def set(self: Group, value: Any) -> None:
        setattr(self._state, name, value)
    return property(get, set, doc=doc)


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
        self._outdated: Optional[str] = None
        self._applying: Optional[int] = None   # the thread inside apply(), if any
        self._durable = [s for s in members.values() if s.durable]
        # What it knows of the log (see the module's docstring), in a
        # GroupState: the node applies the commonest commands of plain
        # ReplicatedDicts and ReplicatedCounters in C (core/lane.pxi),
        # reading and updating it there.
        self._state = state = GroupState()
        state.seq = 0
        state.chain = CHAIN_START
        state.genesis = None
        state.active = 1
        state.begun = False
        state.resuming = []
        state.dicts = {n: s for n, s in members.items() if type(s) is ReplicatedDict}
        state.counters = {n: s for n, s in members.items() if type(s) is ReplicatedCounter}
        #: The highest version this code runs: of its structures and their operations.
        self.supported_version = max(
            max([s._version, *(op.version for op in s._ops.values())]) for s in members.values())

    _seq: Optional[int] = _in_state("seq", "commands applied (None: not known, from an old snapshot)")
    _chain: bytes = _in_state("chain", "their hash chain")
    _genesis: Optional[bytes] = _in_state("genesis", "the chain after the first command (None: not known)")
    _active: int = _in_state("active", "the cluster's active version")
    _begun: bool = _in_state("begun", "a restore or an apply has happened")
    _resuming: list[Structure] = _in_state("resuming", "durable structures skipping what they hold")

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
        return self._submit_after(command.head(structure, op, version), structure, op, args)

    def _submit_after(self, head: str, structure: Optional[str], op: str,
                      args: list[Any]) -> concurrent.futures.Future[Any]:
        """_submit with the command's head already written (Structure keeps its own)."""
        if self._applying is not None and self._applying == _get_ident():
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
        return node.apply(command.encode_after(head, structure, op, args))

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
        return self._applying == _get_ident()

    def apply(self, data: bytes) -> Any:
        # Every node runs this for every command: lookups are kept local
        # and nothing is made that the common command does not need.
        # (core/lane.pxi takes the commonest commands of plain dicts and
        # counters before they get here, with these same steps.)
        self._applying = _get_ident()
        state = self._state
        try:
            if not state.begun:
                self._begin()
            seq = state.seq
            if seq is not None:
                seq += 1
                state.seq = seq
                state.chain = chain = _chain_next(state.chain, data)
                if seq == 1:
                    state.genesis = chain
                if state.resuming:
                    state.resuming = [s for s in state.resuming if s._verify(seq, chain)]
            _, name, op, version, args = command.parse(data)
            if version > state.active:
                raise UnsupportedCommandError(
                    f"{op!r} of {name!r} is of version {version}, the cluster's "
                    f"active version is {self._active}: group.activate({version}) once every "
                    f"node runs code that supports it")
            if name is None:
                if op == "activate" and len(args) == 1:
                    return self._activate(args[0])
                raise self._unknown(name, op, version, "group operation")
            structure = self._structures.get(name)
            if structure is None:
                raise self._unknown(name, op, version, "structure")
            if seq is not None and seq <= structure._held_through:
                structure._skipped += 1     # its store holds this command already
                return None
            fn = structure._op_fns.get(op)
            if fn is None:
                raise self._unknown(name, op, version, "operation")
            return fn(structure, *args)
        finally:
            self._applying = None

    def _lane_of_node(self) -> Optional[GroupState]:
        """Its state, if the node may apply commands for it in C
        (core/lane.pxi): only if apply() is this class's."""
        return self._state if type(self).apply is Group.apply else None

    def _unknown(self, structure: Optional[str], op: str, version: int,
                 what: str) -> UnsupportedCommandError:
        # Within the active version, yet unknown here: a stray command, or a
        # newer node sending what it did not version. Every node running
        # this code fails it alike; one that knows it would not.
        msg = (f"unknown {what} in command {op!r} of {structure!r} (version "
               f"{version}); if newer code sends it, give it a version above the "
               f"active {self._active}")
        log.warning("%s", msg)
        return UnsupportedCommandError(msg)

    def snapshot(self) -> snapshot.GroupSnapshot:
        # On the raft thread: only cheap copies (a read transaction for a
        # durable structure); persist() does the rest. Durable ones last.
        if not self._begun:
            self._begin()
        ahead = [s for s in self._resuming if s._held_through > (self._seq or 0)]
        if ahead:
            # Its store holds a later point than the log has replayed to: the
            # state at this point is nowhere. The node retries a moment later,
            # once the replay has passed what the store holds.
            raise RuntimeError(f"{ahead[0]!r} holds commands up to {ahead[0]._held_through}, the "
                               f"log is replayed to {self._seq}: no snapshot until it passes them")
        frozen: snapshot.Frozen = []
        try:
            for name, structure in sorted(self._structures.items(), key=lambda i: i[1].durable):
                frozen.append((name, structure, structure._freeze()))
        except BaseException:
            for _, structure, state in frozen:
                structure._thaw(state)
            raise
        return snapshot.GroupSnapshot(self._active, LogPoint(self._seq, self._chain, self._genesis),
                                      frozen)

    def restore(self, data: bytes) -> None:
        contents = snapshot.read(self._structures, data)
        # Everything validated: only now replace the state.
        for structure, prepared in contents.prepared:
            structure._install(prepared)
        self._seq, self._chain, self._genesis = contents.point
        self._begun = True
        self._resuming = [s for s in contents.kept if s._resume(contents.point)]
        self._active = 1
        self._outdated = None
        self._activate(contents.active)
        if contents.lacking and self._outdated is None:
            self._outdated = (f"the snapshot holds structures this node's code lacks: "
                              f"{', '.join(map(repr, contents.lacking))}: upgrade it")
            log.error("%s", self._outdated)

    def _begin(self) -> None:
        """The first command since this group was made, and no snapshot
        before it: the log is replayed from its start. Durable structures
        keep what they hold (their stores say how far it goes)."""
        self._begun = True
        point = LogPoint(0, CHAIN_START, None)
        for structure in self._durable:
            try:
                if not structure._keeps(point):
                    structure._install(structure._prepare_stream(None, point))
                elif structure._resume(point):
                    self._resuming.append(structure)
            except Exception as exc:
                # Its store is unusable: it says so on every read and command.
                structure._fail(f"cannot resume from its store: {exc}")

    def close(self) -> None:
        """Close what the structures hold outside memory (the LMDB store of
        a ``ReplicatedDict(path=...)``), once the node is closed."""
        for structure in self._structures.values():
            structure._close()


def _lane_of(fsm: object) -> Optional[GroupState]:
    """For the node (core/lane.pxi): the state of the Group whose plain
    ReplicatedDict and ReplicatedCounter commands it may apply in C, if ``fsm`` is a Group or a structure that is a
    node's FSM by itself, and neither overrides apply(); else None."""
    if isinstance(fsm, Group):
        return fsm._lane_of_node()
    if isinstance(fsm, Structure) and type(fsm).apply is Structure.apply:
        try:
            group = fsm._solo()
        except ValueError:
            return None         # a member of a Group: its apply() raises, let it
        return group._lane_of_node()
    return None
