"""The futures returned by Node methods."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, Optional, TypeVar

from ._raft import on_raft_thread

# What this module relies on in concurrent.futures' private side, all of it
# (tests/test_futures_internals.py fails if the running CPython changes it):
# - the state names, compared with the base class's own objects;
# - the instance attributes that the base class's methods and the module's
#   wait()/as_completed() read: this Future provides each one itself
#   (_condition, _waiters and _done_callbacks made on first use).
from concurrent.futures._base import (CANCELLED, CANCELLED_AND_NOTIFIED,
                                      FINISHED, RUNNING)

BASE_ATTRIBUTES = frozenset({"_condition", "_state", "_result", "_exception",
                             "_waiters", "_done_callbacks"})

# Guards the creation of a future's Condition and the resolution of a
# future that has none yet (see Future._finish_fast).
_lazy = threading.Lock()
_DONE = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)


_T = TypeVar("_T")


class Future(concurrent.futures.Future[_T]):
    """A concurrent.futures.Future for a command submitted to a node.

    Two differences from the base class, neither visible through its API:

    - It starts RUNNING: submitted work cannot be taken back, so cancel()
      returns False.
    - Its Condition, which costs more than the rest of apply(), and its
      lists of waiters and callbacks are made on first use: most futures of
      a busy node are resolved before anybody waits on them, and then need
      none (nor does reading the result of a done future). Fewer objects
      per future also means less work for the garbage collector.

    - The first thread to wait on it alone sleeps on a ``_Wakeup`` (the
      node's, from the compiled core), which the raft thread releases only
      once it has let go of the GIL: woken earlier, the waiter would only
      block again on the GIL (two more context switches per blocking
      ``apply().result()``). Further waiters, ``wait()`` and callbacks use
      the Condition.

    Each node makes a subclass whose ``_node`` is its Core's key, so that
    waiting on a pending future from that node's raft thread (inside an FSM
    method or a callback), which would deadlock, raises RuntimeError.
    """

    _node = 0               # no node's (set on a node's subclass)
    _Wakeup: Any = None     # set on a node's subclass

    def __init__(self) -> None:  # the base __init__ would make them all now
        self._state = RUNNING
        self._result = None
        self._exception = None
        self._cond: Optional[threading.Condition] = None
        self._lists: Optional[tuple[list[Any], list[Any]]] = None
        self._wakeup: Any = None

    # The base class and concurrent.futures.wait() use these attributes
    # directly; made on first use (under the Condition, or for wait(), under
    # the futures' Conditions, which the getter takes first).
    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        return self._get_lists()[0]

    @property
    def _done_callbacks(self) -> list[Any]:
        return self._get_lists()[1]

    def _get_lists(self) -> tuple[list[Any], list[Any]]:
        lists = self._lists
        if lists is None:
            with _lazy:
                lists = self._lists
                if lists is None:
                    lists = self._lists = ([], [])
        return lists

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]  # an attribute in the base
        cond = self._cond
        if cond is None:
            with _lazy:
                cond = self._cond
                if cond is None:
                    cond = self._cond = threading.Condition()
        return cond

    def _finish_fast(self, result: Optional[_T], exception: Optional[BaseException]) -> bool:
        """Resolve without a Condition if none exists yet: then no callback
        is registered and at most the one Wakeup waits."""
        with _lazy:
            if self._cond is not None:
                return False
            if self._state in _DONE:
                raise concurrent.futures.InvalidStateError(f"{self!r} is already done")
            self._result = result
            self._exception = exception
            self._state = FINISHED
            return True

    def _wake_lone_waiter(self) -> None:
        # Once done, no Wakeup is registered any more (_wait_alone checks
        # the state under the same lock), so reading it now is enough.
        if self._wakeup is not None:
            self._wakeup.set()

    def set_result(self, result: _T) -> None:
        if not self._finish_fast(result, None):
            super().set_result(result)
        self._wake_lone_waiter()

    def set_exception(self, exception: Optional[BaseException]) -> None:
        if not self._finish_fast(None, exception):
            super().set_exception(exception)
        self._wake_lone_waiter()

    def _wait_alone(self, timeout: Optional[float]) -> bool:
        """Wait on a Wakeup if nobody else waits; False: use the Condition.
        Raises TimeoutError as result() does."""
        Wakeup = self._Wakeup
        if Wakeup is None or self._wakeup is not None:
            return False
        with _lazy:
            if self._state in _DONE:
                return True
            if self._cond is not None or self._wakeup is not None:
                return False
            wakeup = self._wakeup = Wakeup()
        if not wakeup.wait(timeout):
            raise concurrent.futures.TimeoutError()
        return True

    # Reading one attribute needs no lock (and must not make a Condition).
    def done(self) -> bool:
        return self._state in _DONE

    def running(self) -> bool:
        return self._state == RUNNING

    def cancelled(self) -> bool:
        return self._state in (CANCELLED, CANCELLED_AND_NOTIFIED)

    def _check_not_raft_thread(self) -> None:
        if self._state not in _DONE and on_raft_thread(self._node):
            raise RuntimeError(
                "cannot wait for a pending future of a node from its own raft "
                "thread (inside an FSM method or a callback): it would deadlock")

    def result(self, timeout: Optional[float] = None) -> _T:
        if self._state != FINISHED:
            self._check_not_raft_thread()
            if not self._wait_alone(timeout):
                return super().result(timeout)
        # FINISHED: no lock needed, none made
        if self._exception is not None:
            try:
                raise self._exception
            finally:
                self = None  # type: ignore[assignment]  # no cycle, as in the base
        return self._result  # type: ignore[return-value]

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        if self._state != FINISHED:
            self._check_not_raft_thread()
            if not self._wait_alone(timeout):
                return super().exception(timeout)
        return self._exception


def future_type_for_node() -> type[Future[Any]]:
    """A fresh Future subclass for one node (its raft thread set on start)."""
    return type("Future", (Future,), {"__slots__": (), "__module__": __name__})
