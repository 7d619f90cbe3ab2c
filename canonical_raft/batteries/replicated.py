"""@replicated: replicate a class of your own (PySyncObj's @replicated).

::

    class Inventory(ReplicatedObject):
        def __init__(self):
            super().__init__()
            self.stock = {}

        @replicated
        def add(self, item: str, n: int) -> int:
            self.stock[item] = self.stock.get(item, 0) + n
            return self.stock[item]

Calling ``inventory.add("apple", 3)`` on an attached instance checks the
arguments with the codec, submits the command and returns a Future of the
method's return value; applying the command runs the original method on
every node, in log order.
"""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from . import codec
from .structure import Structure, check_version

if sys.version_info >= (3, 10):
    from typing import Concatenate, ParamSpec
else:  # pragma: no cover
    from typing_extensions import Concatenate, ParamSpec

__all__ = ["replicated", "ReplicatedObject", "ReplicatedMethod"]

P = ParamSpec("P")
R = TypeVar("R")
O = TypeVar("O", bound="ReplicatedObject")


class ReplicatedMethod(Generic[O, P, R]):
    """A method marked ``@replicated``: on an instance, calling it submits
    a command (a Future of the method's result); applying the command runs
    the original method."""

    def __init__(self, fn: Callable[Concatenate[O, P], R], version: int = 1) -> None:
        self.fn = fn
        self.version = check_version(version)
        self.name = fn.__name__
        self._batteries_op = (self.name, self.version)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __set_name__(self, owner: type, name: str) -> None:
        # The command names the attribute the method is reached by.
        self.name = name
        self._batteries_op = (name, self.version)

    @overload
    def __get__(self, obj: None, owner: type) -> ReplicatedMethod[O, P, R]: ...
    @overload
    def __get__(self, obj: O, owner: type) -> Callable[P, concurrent.futures.Future[R]]: ...

    def __get__(self, obj: O | None, owner: type) -> Any:
        if obj is None:
            return self

        def submit(*args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[R]:
            group = obj._group
            if group is not None and group.applying():
                # Called by another replicated method while it is applied:
                # part of that command, run here on every node.
                done: concurrent.futures.Future[R] = concurrent.futures.Future()
                done.set_result(self.fn(obj, *args, **kwargs))
                return done
            pos, kw = list(args), dict(kwargs)
            codec.check(pos, f"the arguments of {self.name}()")
            codec.check(kw, f"the keyword arguments of {self.name}()")
            return obj._submit(self.name, [pos, kw])

        submit.__name__ = self.name
        submit.__doc__ = self.fn.__doc__
        return submit

    def __call__(self, obj: O, pos: Any, kw: Any) -> R:
        """The apply side: run the original method with the command's arguments."""
        if type(pos) is not list or type(kw) is not dict:
            raise TypeError(f"a command for {self.name}() carries [args, kwargs], "
                            f"got {pos!r}, {kw!r}")
        return self.fn(obj, *pos, **kw)


@overload
def replicated(fn: Callable[Concatenate[O, P], R], /) -> ReplicatedMethod[O, P, R]: ...
@overload
def replicated(*, version: int = 1) -> Callable[[Callable[Concatenate[O, P], R]],
                                                ReplicatedMethod[O, P, R]]: ...


def replicated(fn: Any = None, /, *, version: int = 1) -> Any:
    """Mark a method of a :class:`ReplicatedObject` subclass as a replicated
    command; ``@replicated(version=2)`` for one added in a later release
    (it runs once ``Group.activate(2)`` is applied). Its arguments must be
    codec values; its return value is delivered, on the submitting node
    only, through the Future (any object)."""
    check_version(version)
    if fn is None:
        return lambda f: ReplicatedMethod(f, version)
    if not callable(fn):
        raise TypeError("use @replicated or @replicated(version=N)")
    return ReplicatedMethod(fn, version)


class ReplicatedObject(Structure):
    """The base of a class of yours whose ``@replicated`` methods are its
    commands. Its state is its public attributes (names not starting with
    ``_``), which must be codec values; override ``snapshot_state`` and
    ``restore_state`` to choose otherwise.

    Every method must be deterministic (no clock, no randomness, no I/O:
    pass such values as arguments). Reserved names (of Structure):
    ``apply``, ``snapshot``, ``restore``, ``attach``, ``group``, ``name``,
    ``timeout``.
    """

    kind = "object"

    def snapshot_state(self) -> Any:
        """On the raft thread, at a snapshot: the state as a codec value that
        later commands will not change; it is serialised off the raft thread.
        The default is a deep copy of the public attributes (O(state) here:
        for a large state return something cheaper, such as a copy of a
        dict whose values you never change in place)."""
        state = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        codec.check(state, f"the state of {type(self).__name__}")
        return codec.copy(state)

    def restore_state(self, state: Any) -> None:
        """Replace the state with ``state`` (from ``snapshot_state``, or
        ``None``: the state of a new instance). Validate first: raise
        before changing anything if it is not valid. The default sets the
        public attributes from a dict (None: keeps the current ones)."""
        if state is None:
            return
        if type(state) is not dict:
            raise ValueError(f"the state of {type(self).__name__} is an object, "
                             f"not {type(state).__name__}")
        for key, value in state.items():
            setattr(self, key, value)

    def _freeze(self) -> Any:
        return self.snapshot_state()

    def _dump(self, frozen: Any) -> Any:
        return frozen

    def _prepare(self, state: Any) -> Any:
        return state

    def _install(self, prepared: Any) -> None:
        self.restore_state(prepared)
