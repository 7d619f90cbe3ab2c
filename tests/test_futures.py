"""Waiting on futures: the Wakeup a lone waiter sleeps on, timeouts, many
waiters, signals, and the Condition that the rest go through."""

import concurrent.futures
import gc
import signal
import threading
import time

import pytest

import canonical_raft as raft
from canonical_raft import _raft
from canonical_raft.testing import wait_until
from fsms import Counter

pytestmark = pytest.mark.timeout(60)


class Gated(Counter):
    """Counts commands once `gate` is open (so futures stay pending until
    then); raises for b"raise"."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()

    def apply(self, command):
        if not self.gate.wait(30):
            raise RuntimeError("the test never opened the gate")
        if command == b"raise":
            raise ValueError("raised by apply")
        return super().apply(b"1")


@pytest.fixture
def gated(make_node):
    fsm = Gated()
    fsm.gate.set()
    node = make_node(fsm)
    node.bootstrap([(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)
    wait_until(lambda: node.is_leader, 20, message="the single node to be leader")
    fsm.gate.clear()
    yield node, fsm
    fsm.gate.set()          # let close() finish the pending applies


# -- Wakeup on its own -------------------------------------------------------

def test_wakeup_wait_times_out_until_set():
    w = _raft.Wakeup()
    t0 = time.monotonic()
    assert w.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.04
    assert w.wait(0) is False
    w.set()
    w.set()                 # a second set() is a no-op
    assert w.wait(0) is True
    assert w.wait() is True  # stays set
    assert w.wait(-1) is True


def test_wakeup_set_from_another_thread_wakes_the_waiter():
    w = _raft.Wakeup()
    timer = threading.Timer(0.1, w.set)
    timer.start()
    try:
        t0 = time.monotonic()
        assert w.wait(20) is True
        assert time.monotonic() - t0 < 10
    finally:
        timer.join(10)


def test_wakeup_huge_timeout_means_forever():
    w = _raft.Wakeup()
    threading.Timer(0.05, w.set).start()
    assert w.wait(1e300) is True


def test_wakeups_are_freed_in_every_state():
    gc.collect()
    before = _raft.debug_counters()["wakeups"]
    unset = _raft.Wakeup()
    set_only = _raft.Wakeup()
    set_only.set()
    waited = _raft.Wakeup()
    waited.set()
    waited.wait(1)
    timed_out = _raft.Wakeup()
    timed_out.wait(0)
    assert _raft.debug_counters()["wakeups"] == before + 4
    del unset, set_only, waited, timed_out
    assert _raft.debug_counters()["wakeups"] == before


def test_signal_handler_runs_while_waiting_on_a_wakeup():
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        t0 = time.monotonic()
        with pytest.raises(Interrupted):
            _raft.Wakeup().wait(30)
        assert time.monotonic() - t0 < 10
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- futures of a node -------------------------------------------------------

def test_blocking_result_waits_on_a_wakeup(gated):
    node, fsm = gated
    fut = node.apply(b"x")
    threading.Timer(0.1, fsm.gate.set).start()
    assert fut.result(timeout=20) == 1
    assert fut._wakeup is not None, "a lone waiter should sleep on a Wakeup"
    assert fut._cond is None, "and need no Condition"
    fsm.gate.set()
    for i in range(2, 202):            # the loop users write
        assert node.apply(b"x").result(timeout=20) == i


def test_result_timeout_then_result_again(gated):
    node, fsm = gated
    fut = node.apply(b"x")
    with pytest.raises(concurrent.futures.TimeoutError):
        fut.result(timeout=0.1)
    with pytest.raises(concurrent.futures.TimeoutError):
        fut.exception(timeout=0.05)    # the second wait goes through the Condition
    assert not fut.done()
    fsm.gate.set()
    assert fut.result(timeout=20) == 1
    assert fut.exception(timeout=0) is None


def test_exception_reaches_a_waiting_thread(gated):
    node, fsm = gated
    fut = node.apply(b"raise")
    threading.Timer(0.1, fsm.gate.set).start()
    exc = fut.exception(timeout=20)
    assert isinstance(exc, ValueError)
    with pytest.raises(ValueError):
        fut.result(timeout=0)


def test_many_waiters_of_one_future_all_wake(gated):
    node, fsm = gated
    fut = node.apply(b"x")
    results = []
    called = []
    fut_ready = threading.Barrier(6)

    def waiter():
        fut_ready.wait(10)
        results.append(fut.result(timeout=20))

    def waits_with_wait():
        fut_ready.wait(10)
        done, not_done = concurrent.futures.wait([fut], timeout=20)
        results.append(fut.result(timeout=0) if fut in done else None)

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    threads.append(threading.Thread(target=waits_with_wait))
    for t in threads:
        t.start()
    fut_ready.wait(10)
    time.sleep(0.1)                    # let them block
    fut.add_done_callback(lambda f: called.append(f.result()))
    fsm.gate.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a waiter never woke"
    assert results == [1] * 5
    wait_until(lambda: called == [1], 10, message="the done callback")


def test_a_waiter_signal_does_not_lose_the_result(gated):
    node, fsm = gated

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted()

    fut = node.apply(b"x")
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Interrupted):
            fut.result(timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    fsm.gate.set()
    assert fut.result(timeout=20) == 1


def test_close_wakes_a_blocked_waiter(gated):
    node, fsm = gated
    node.apply(b"x")                   # blocks the raft thread in apply()
    pending = node.apply(b"y")
    errors = []

    def waiter():
        try:
            pending.result(timeout=30)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    closer = threading.Thread(target=node.close)
    closer.start()
    fsm.gate.set()
    closer.join(30)
    t.join(30)
    assert not t.is_alive() and not closer.is_alive()
    # applied before the close took effect, or failed by it: never lost
    assert errors == [] or isinstance(errors[0], raft.ShutdownError), errors


def test_threads_in_blocking_loops_leave_no_wakeup_behind(make_node):
    gc.collect()
    node = make_node()
    node.bootstrap([(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)
    wait_until(lambda: node.is_leader, 20)
    seen = []

    def loop():
        for _ in range(200):
            seen.append(node.apply(b"1").result(timeout=20))

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(50)
    assert not any(t.is_alive() for t in threads)
    assert sorted(seen) == list(range(1, 801))
    node.close()
    gc.collect()
    assert _raft.debug_counters()["wakeups"] == 0
