"""No leaked requests, handles, nodes or references after many applies and close()."""

import gc
import sys

import pytest

import canonical_raft as raft
from canonical_raft.testing import FAST_TIMINGS, LocalCluster, free_address

pytestmark = pytest.mark.timeout(120)

N = 10_000


def debug_counters():
    from canonical_raft import _raft
    fn = getattr(_raft, "debug_counters", None)
    if fn is None:
        pytest.skip("canonical_raft._raft.debug_counters() is not available in this build")
    counters = fn()
    assert isinstance(counters, dict) and counters
    return counters


class Sink(raft.FSM):
    """Returns the same object for every command; raises for b"raise"."""

    def __init__(self, token):
        self.token = token
        self.count = 0

    def apply(self, command):
        self.count += 1
        if command == b"raise":
            raise ValueError("raised by apply")
        return self.token

    def snapshot(self):
        return str(self.count).encode()

    def restore(self, data):
        self.count = int(data)


def test_counters_start_at_zero_when_no_node_is_open():
    gc.collect()
    counters = debug_counters()
    assert all(v == 0 for v in counters.values()), counters


@pytest.mark.timeout(180)
def test_no_leak_after_10000_applies_single_node(tmp_path):
    gc.collect()
    before_counters = debug_counters()
    token = object()
    command = bytes(bytearray(b"leak-check-command"))  # a fresh object, not interned
    fsm = Sink(token)
    rc_command, rc_fsm, rc_token = sys.getrefcount(command), sys.getrefcount(fsm), sys.getrefcount(token)

    addr = free_address()
    node = raft.Node(1, addr, str(tmp_path / "leak"), fsm, snapshot_threshold=512,
                     snapshot_trailing=64, **FAST_TIMINGS)
    node.bootstrap([(1, addr)])
    node.start()
    node.wait_for_leader(timeout=20)
    during = debug_counters()
    assert any(v > 0 for v in during.values()), f"counters do not count a running node: {during}"
    done = 0
    while done < N:
        if (done // 1000) % 2:
            futures = node.apply_many([command] * 1000)
        else:
            futures = [node.apply(command) for _ in range(1000)]
        assert all(f.result(timeout=60) is token for f in futures)
        done += len(futures)
        del futures
    assert isinstance(node.apply(b"raise").exception(timeout=20), ValueError)
    node.barrier().result(timeout=20)
    assert fsm.count == N + 1
    # pending futures at close
    pending = [node.apply(command) for _ in range(100)]
    node.close()
    assert all(f.done() for f in pending)
    del pending
    del node
    gc.collect()

    counters = debug_counters()
    assert all(v == 0 for v in counters.values()), f"after close: {counters} (before: {before_counters})"
    assert sys.getrefcount(command) == rc_command, "the submitted command leaked references"
    assert sys.getrefcount(token) == rc_token, "FSM results leaked references"
    assert sys.getrefcount(fsm) == rc_fsm, "the FSM leaked references"


@pytest.mark.timeout(180)
def test_no_leak_in_a_cluster_with_followers(tmp_path):
    gc.collect()
    token = object()
    command = bytes(bytearray(b"cluster-leak-check"))
    control = [Sink(token) for _ in range(3)]  # FSMs never given to a node
    rc_command, rc_token = sys.getrefcount(command), sys.getrefcount(token)
    c = LocalCluster(3, lambda: Sink(token), tmp_path / "c", timeout=20,
                     snapshot_threshold=256, snapshot_trailing=32)
    try:
        leader = c.leader()
        for _ in range(3):
            futures = leader.apply_many([command] * 500)
            assert all(f.result(timeout=60) is token for f in futures)
            del futures
        followers = c.followers(leader)
        failed = [f.apply(command) for f in followers]  # NotLeader futures
        assert all(isinstance(f.exception(timeout=10), raft.NotLeaderError) for f in failed)
        del failed
        c.wait_converged(key=lambda f: f.count, expected=1500)
    finally:
        c.close()
    fsms = c.fsms
    del c, leader, followers
    gc.collect()
    rc_fsms = [sys.getrefcount(f) for f in fsms]
    assert rc_fsms == [sys.getrefcount(f) for f in control], "the FSMs leaked references"
    counters = debug_counters()
    assert all(v == 0 for v in counters.values()), counters
    assert sys.getrefcount(command) == rc_command
    # followers' results (the token) are dropped, not kept
    assert sys.getrefcount(token) == rc_token + 3, "3 FSMs hold the token; nothing else may"
