"""The futures returned by Node methods."""

from __future__ import annotations

import concurrent.futures
from typing import TypeVar

from ._raft import FutureCore

# What this module relies on in concurrent.futures' private side, all of it
# (tests/test_futures_internals.py fails if the running CPython changes it):
# - the state names (the compiled FutureCore compares with the base
#   class's own objects);
# - the instance attributes that the base class's methods and the module's
#   wait()/as_completed() read: FutureCore provides each one itself
#   (_condition, _waiters and _done_callbacks made on first use).
from concurrent.futures._base import (CANCELLED, CANCELLED_AND_NOTIFIED,  # noqa: F401
                                      FINISHED, RUNNING)

BASE_ATTRIBUTES = frozenset({"_condition", "_state", "_result", "_exception",
                             "_waiters", "_done_callbacks"})

_T = TypeVar("_T")


class Future(FutureCore, concurrent.futures.Future[_T]):  # type: ignore[override]  # properties over the base's attributes
    """A concurrent.futures.Future for a command submitted to a node.

    Its state and every method that changes or waits for it are compiled
    (``FutureCore``, core/future.pxi); the differences from the base class
    are not visible through its API:

    - It starts RUNNING: submitted work cannot be taken back, so cancel()
      returns False.
    - No lock of its own: each change of state is atomic under the GIL.
      Its Condition, which costs more than the rest of apply(), is made
      only for a second waiting thread, wait() or as_completed(); done
      callbacks and one waiting thread need none.
    - The first thread to wait on it sleeps on a ``Wakeup``, which the raft
      thread releases only once it has let go of the GIL: woken earlier,
      the waiter would only block again on the GIL.
    - A done callback that raises is logged (logger ``canonical_raft``) and
      the others still run.

    Waiting on a pending future from its node's raft thread (inside an FSM
    method or a callback), which would deadlock, raises RuntimeError.
    """

    __slots__ = ()

    def __init__(self) -> None:
        pass        # not the base's __init__, which makes a Condition now
