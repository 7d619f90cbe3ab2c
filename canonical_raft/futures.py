"""The futures returned by Node methods."""

import concurrent.futures
import threading


class Future(concurrent.futures.Future):
    """A concurrent.futures.Future that refuses to block its own raft thread.

    Each node makes a subclass whose ``_raft_thread`` is its raft thread's
    ident, so the check costs nothing per future. Waiting on a pending future
    of a node from inside that node's FSM or callbacks would deadlock: the
    future can only complete on the thread that is waiting.
    """

    _raft_thread = -1

    def _check_not_raft_thread(self):
        if not self.done() and threading.get_ident() == self._raft_thread:
            raise RuntimeError(
                "cannot wait for a pending future of a node from its own raft "
                "thread (inside an FSM method or a callback): it would deadlock")

    def result(self, timeout=None):
        self._check_not_raft_thread()
        return super().result(timeout)

    def exception(self, timeout=None):
        self._check_not_raft_thread()
        return super().exception(timeout)


def future_type_for_node():
    """A fresh Future subclass for one node (its raft thread set on start)."""
    return type("Future", (Future,), {"__slots__": (), "__module__": __name__})
