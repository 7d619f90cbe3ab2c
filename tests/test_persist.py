"""Snapshots whose persist() runs off the raft thread (HashiCorp's
FSMSnapshot): applies go on meanwhile, release() is always called, a failed
persist() is retried, and close() waits for a running persist()."""

import threading

import pytest

import canonical_raft as raft
from canonical_raft.testing import wait_until

SNAP = dict(snapshot_threshold=8, snapshot_trailing=2)


class Snapshot:
    def __init__(self, fsm, value):
        self.fsm = fsm
        self.value = value

    def persist(self):
        self.fsm.persist_threads.add(threading.get_ident())
        self.fsm.persist_started.set()
        if not self.fsm.proceed.wait(30):
            raise TimeoutError("the test never let persist() finish")
        if self.fsm.fail_persists > 0:
            self.fsm.fail_persists -= 1
            raise OSError("persist failed on purpose")
        return str(self.value).encode()

    def release(self):
        self.fsm.released += 1


class SlowPersistCounter(raft.FSM):
    def __init__(self, fail_persists=0):
        self.value = 0
        self.apply_threads = set()
        self.persist_threads = set()
        self.persist_started = threading.Event()
        self.proceed = threading.Event()
        self.snapshots = 0
        self.released = 0
        self.fail_persists = fail_persists

    def apply(self, command):
        self.apply_threads.add(threading.get_ident())
        self.value += int(command)
        return self.value

    def snapshot(self):
        self.snapshots += 1
        return Snapshot(self, self.value)     # cheap: captures the value

    def restore(self, data):
        self.value = int(data)


@pytest.mark.timeout(60)
def test_applies_continue_while_persist_runs(cluster):
    c = cluster(1, fsm_factory=SlowPersistCounter, **SNAP)
    node = c.leader()
    fsm = c.fsm(1)
    for i in range(1, 11):
        assert node.apply(b"1").result(timeout=10) == i
    assert fsm.persist_started.wait(10), "no snapshot was taken"
    # persist() is blocked now; the node keeps applying.
    for i in range(11, 61):
        assert node.apply(b"1").result(timeout=10) == i
    assert fsm.released == 0 and node.stats()["snapshot_index"] == 0
    fsm.proceed.set()
    wait_until(lambda: node.stats()["snapshot_index"] > 0, 10, message="snapshot written")
    assert fsm.released >= 1
    assert fsm.persist_threads and fsm.persist_threads.isdisjoint(fsm.apply_threads)

    # The persisted bytes are a real snapshot: a restart restores them and
    # replays the rest of the log.
    c.kill(1)
    restarted = SlowPersistCounter()
    restarted.proceed.set()
    node = c.restart(1, restarted)
    node.wait_for_leader(10)
    assert node.apply(b"0").result(timeout=10) == 60


@pytest.mark.timeout(60)
def test_failed_persist_is_released_and_retried(cluster):
    c = cluster(1, fsm_factory=lambda: SlowPersistCounter(fail_persists=1), **SNAP)
    node = c.leader()
    fsm = c.fsm(1)
    fsm.proceed.set()
    for i in range(1, 41):
        assert node.apply(b"1").result(timeout=10) == i
    wait_until(lambda: node.stats()["snapshot_index"] > 0, 20,
               message="a snapshot after the failed persist()")
    assert fsm.fail_persists == 0          # the failure happened ...
    assert fsm.snapshots >= 2              # ... and a later snapshot was taken
    assert fsm.released == fsm.snapshots or fsm.released == fsm.snapshots - 1
    assert node.is_leader and node.apply(b"1").result(timeout=10) == 41


@pytest.mark.timeout(60)
def test_close_waits_for_running_persist(cluster):
    c = cluster(1, fsm_factory=SlowPersistCounter, **SNAP)
    node = c.leader()
    fsm = c.fsm(1)
    for _ in range(10):
        node.apply(b"1").result(timeout=10)
    assert fsm.persist_started.wait(10)
    timer = threading.Timer(0.5, fsm.proceed.set)
    timer.start()
    try:
        node.close()
    finally:
        timer.cancel()
    assert fsm.proceed.is_set()            # close() returned after persist()
    assert fsm.released >= 1
    assert raft._raft.debug_counters()["requests"] == 0
