"""Structure: what every replicated structure shares (its operations, how
it submits them through its group, how a structure alone is a node's FSM)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, Optional, TypeVar, Union

from . import codec, command
from .errors import NotAttachedError

if TYPE_CHECKING:
    from .group import Group, Submitter

__all__ = ["Structure", "Consistency", "operation", "LogPoint"]

#: How fresh a read must be. ``"local"``: this node's state as applied so
#: far (may lag the leader). ``"linearizable"``: first wait for every entry
#: committed before the call to be applied here (``node.barrier()``: on the
#: leader only today; a follower raises NotLeaderError).
Consistency = Literal["local", "linearizable"]

_S = TypeVar("_S", bound="Structure")
_F = TypeVar("_F", bound=Callable[..., Any])


class LogPoint(NamedTuple):
    """A point of the log, as the Group counts it: ``seq`` commands applied
    (None: not known, from a snapshot that did not say), ``chain`` a hash of
    all of them, ``genesis`` the chain after the first (None: not known)."""
    seq: Optional[int]
    chain: bytes
    genesis: Optional[bytes]


class Op(NamedTuple):
    name: str
    version: int
    fn: Callable[..., Any]      # fn(structure, *args) on the raft thread


def operation(name: str, version: int = 1) -> Callable[[_F], _F]:
    """Mark a method as the apply side of operation ``name`` (internal)."""
    def tag(fn: _F) -> _F:
        fn._batteries_op = (name, version)  # type: ignore[attr-defined]
        return fn
    return tag


def check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an int >= 1, got {version!r}")
    return version


class Structure:
    """The base of every replicated structure.

    A structure is either one member of a :class:`Group` (the node's FSM),
    or a node's FSM by itself (it then acts as a group of one, named
    ``""``). Its state changes only on the raft thread, by applying
    committed commands; every other thread only reads it.

    ``version``: the cluster version from which this structure exists (a
    structure added in a later release of an application is given that
    release's version, so that older nodes are never sent commands for it
    before ``Group.activate``). ``timeout``: seconds the blocking forms
    (``d[k] = v``, ``linearizable`` reads) wait.
    """

    #: The structure's type in snapshots (checked on restore).
    kind: ClassVar[str] = "structure"
    _ops: ClassVar[dict[str, Op]] = {}
    _op_fns: ClassVar[dict[str, Callable[..., Any]]] = {}    # _ops' fns, for Group.apply

    # Class-level defaults, so that a user's class whose __init__ does not
    # call super().__init__() still works.
    _group: Optional[Group] = None
    _name: Optional[str] = None
    _version: int = 1
    _timeout: float = 10.0
    _heads: dict[str, str]      # set by _bind

    #: Whether the state outlives the process (``ReplicatedDict(path=...)``):
    #: the group then tells it where the log (re)starts, and skips the
    #: commands its state already holds (see the durable hooks below).
    durable: ClassVar[bool] = False
    _held_through: int = 0      # durable: commands up to this seq are in the state already
    _skipped: int = 0           # durable: commands skipped since it was made

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ops = dict(cls._ops)
        for value in vars(cls).values():
            tag = getattr(value, "_batteries_op", None)
            if tag is not None:
                ops[tag[0]] = Op(tag[0], tag[1], value)
        cls._ops = ops
        cls._op_fns = {name: op.fn for name, op in ops.items()}

    def __init__(self, *, version: int = 1, timeout: float = 10.0) -> None:
        self._version = check_version(version)
        self.timeout = timeout

    @property
    def timeout(self) -> float:
        """Seconds the blocking forms wait for their command (or read point)."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeout: float) -> None:
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self._timeout = float(timeout)

    # -- the group ------------------------------------------------------------

    def _bind(self, group: Group, name: str) -> None:
        if self._group is not None:
            where = "a node's FSM by itself" if self._name == "" else f"{self._name!r} of a group"
            raise ValueError(f"{self!r} already is {where}: a structure belongs to one group")
        self._group, self._name = group, name
        self._heads: dict[str, str] = {}    # op: its commands' head (command.head)

    @property
    def group(self) -> Optional[Group]:
        """The group this structure belongs to, if any."""
        return self._group

    @property
    def name(self) -> Optional[str]:
        """Its name in its group (``""`` when it is a node's FSM by itself)."""
        return self._name

    def _submit(self, op: str, args: list[Any]) -> concurrent.futures.Future[Any]:
        group = self._group
        if group is None:
            raise NotAttachedError(f"{type(self).__name__} is not attached to a node: give it "
                                   f"(or its Group) to a Node as its fsm, then call attach(node)")
        head = self._heads.get(op)
        if head is None:
            head = self._heads[op] = command.head(self._name, op, max(self._ops[op].version,
                                                                      self._version))
        return group._submit_after(head, self._name, op, args)

    def _wait(self, future: concurrent.futures.Future[Any]) -> Any:
        """The blocking form: the future's result within ``timeout``
        (its exception raised; TimeoutError: the outcome is unknown)."""
        return future.result(self.timeout)

    def _read(self, consistency: Consistency) -> None:
        """Before a read: raise if this replica is outdated, and wait for
        the read point ``consistency`` asks for."""
        group = self._group
        if group is None:
            if consistency == "local":
                return
            raise NotAttachedError(f"a {consistency} read needs the node: attach "
                                   f"{type(self).__name__} (or its Group) to it first")
        group.read_point(consistency, self.timeout)

    # -- a structure as a node's FSM by itself ----------------------------------

    def _solo(self) -> Group:
        group = self._group
        if group is None:
            from .group import Group
            group = Group({"": self})
        elif self._name != "":
            raise ValueError(f"{type(self).__name__} is {self._name!r} of a Group: "
                             f"give the Group to the node as its fsm, and attach the Group")
        return group

    def attach(self: _S, node: Submitter) -> _S:
        """Submit this structure's commands to ``node`` (whose fsm it is)."""
        self._solo().attach(node)
        return self

    def apply(self, command: bytes) -> Any:
        group = self._group
        if group is None or self._name != "":
            group = self._solo()
        return group.apply(command)

    def snapshot(self) -> Any:
        return self._solo().snapshot()

    def restore(self, data: bytes) -> None:
        self._solo().restore(data)

    # -- the state: what subclasses provide ------------------------------------

    def _freeze(self) -> Any:
        """On the raft thread, at a snapshot: a cheap copy of the state that
        later applies do not change (e.g. ``dict.copy()``)."""
        raise NotImplementedError

    def _dump(self, frozen: Any) -> Any:
        """Off the raft thread: the frozen copy as a codec value."""
        raise NotImplementedError

    def _dump_text(self, frozen: Any) -> Iterator[Union[str, bytes]]:
        """Off the raft thread: the frozen copy as JSON text (str, or UTF-8
        bytes), in pieces.
        Each piece is one short call holding the GIL, so that the raft
        thread, which needs the GIL to apply commands, gets it in between
        (one json.dumps of a large state would hold it throughout)."""
        yield codec.dumps(self._dump(frozen))

    def _prepare(self, state: Any) -> Any:
        """The new state from a snapshot's codec value (``None``: the empty
        state), validated; raises ValueError/TypeError and changes nothing
        if it is not valid."""
        raise NotImplementedError

    def _install(self, prepared: Any) -> None:
        """Replace the state with what ``_prepare`` returned."""
        raise NotImplementedError

    def _thaw(self, frozen: Any) -> None:
        """The snapshot of ``frozen`` is done with (persisted or not)."""

    def _discard(self, prepared: Any) -> None:
        """A restore failed after ``_prepare``: drop what it made."""

    def _close(self) -> None:
        """Let go of what the state holds outside memory (files)."""

    # -- durable structures only (durable = True) --------------------------------

    def _keeps(self, point: LogPoint) -> bool:
        """The log (re)starts after ``point`` (a snapshot's, or the log's
        start): whether the state held already is that point's or later in
        the same log, so is kept (the group then skips what it holds).
        StoreError if it is the state of another log. Changes nothing."""
        raise NotImplementedError

    def _resume(self, point: LogPoint) -> bool:
        """Keep the state (``_keeps`` said so): set ``_held_through``; True
        if commands after ``point`` are to be skipped (checked by ``_verify``)."""
        raise NotImplementedError

    def _verify(self, seq: int, chain: bytes) -> bool:
        """While commands it holds are replayed: check command ``seq``'s chain
        against what the state recorded; False once past them."""
        raise NotImplementedError

    def _fail(self, message: str) -> None:
        """Its state cannot follow the log any more: refuse every read and
        command from now on, saying ``message`` (logged)."""
        raise NotImplementedError

    def _prepare_stream(self, reader: Optional[codec.Reader], point: LogPoint) -> Any:
        """Like ``_prepare``, reading the state from ``reader`` (at its value;
        None: the empty state) as the state at ``point``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        where = "" if self._name is None else f" {self._name!r}"
        return f"<{type(self).__name__}{where}>"
