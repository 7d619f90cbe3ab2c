"""A WARNING when an FSM method holds the raft thread for more than a
quarter of the election timeout (core/slow_fsm.pxi), naming the method."""

import logging
import time

import pytest

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM, free_address

pytestmark = pytest.mark.timeout(60)


class Slow(RecordingFSM):
    def __init__(self):
        super().__init__()
        self.slow_apply = self.slow_snapshot = self.slow_restore = 0.0

    def apply(self, command):
        time.sleep(self.slow_apply)
        return super().apply(command)

    def snapshot(self):
        time.sleep(self.slow_snapshot)
        return super().snapshot()

    def restore(self, data):
        time.sleep(self.slow_restore)
        super().restore(data)


def held_lines(caplog, method):
    return [r for r in caplog.records if r.levelno == logging.WARNING
            and f"FSM.{method}() held the raft thread" in r.getMessage()]


def single(tmp_path, fsm, **kw):
    node = raft.Node(1, free_address(), tmp_path / "n", fsm, election_timeout=1.0,
                     heartbeat_timeout=0.1, **kw)
    node.bootstrap([(1, node.address)])
    node.start()
    node.wait_for_leader(10)
    return node


def test_a_slow_apply_is_named_once_per_interval(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="canonical_raft")
    fsm = Slow()
    with single(tmp_path, fsm) as node:
        node.apply(b"fast").result(10)
        assert not held_lines(caplog, "apply")
        fsm.slow_apply = 0.3                     # past 1.0 s / 4
        node.apply(b"slow").result(10)
        node.apply(b"slow").result(10)
        (line,) = held_lines(caplog, "apply")    # the second is counted, not logged
        assert "quarter of the election timeout (1000 ms)" in line.getMessage()
        assert raft._raft.held_counts(node._core)["apply"] == 2


def test_a_slow_snapshot_points_to_persist(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="canonical_raft")
    fsm = Slow()
    fsm.slow_snapshot = 0.3
    with single(tmp_path, fsm, snapshot_threshold=5, snapshot_trailing=1) as node:
        for i in range(8):
            node.apply(b"%d" % i).result(10)
        deadline = time.monotonic() + 10
        while not held_lines(caplog, "snapshot") and time.monotonic() < deadline:
            time.sleep(0.05)
        (line,) = held_lines(caplog, "snapshot")
        assert "persist()" in line.getMessage()
        assert not held_lines(caplog, "apply")


def test_a_slow_restore_is_named(tmp_path, caplog):
    fsm = Slow()
    with single(tmp_path, fsm, snapshot_threshold=5, snapshot_trailing=1) as node:
        for i in range(8):
            node.apply(b"%d" % i).result(10)
        deadline = time.monotonic() + 10
        while node.stats()["snapshot_index"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    caplog.set_level(logging.WARNING, logger="canonical_raft")
    again = Slow()
    again.slow_restore = 0.3
    with raft.Node(1, free_address(), tmp_path / "n", again, election_timeout=1.0) as node:
        node.start()
        assert again.commands[:5] == [b"0", b"1", b"2", b"3", b"4"]
    assert held_lines(caplog, "restore")
