"""snapshot_log_bytes: a snapshot comes sooner when the entries since the
last one are big, whatever snapshot_threshold (which counts entries) says."""

import time

import pytest

import canonical_raft as raft
from canonical_raft.testing import wait_until
from fsms import Counter

pytestmark = pytest.mark.timeout(60)

KIB = 1024


class Big(Counter):
    """A Counter that ignores its command's bytes (each command is big)."""

    def apply(self, command):
        return super().apply(b"1")


def started(make_node, **kw):
    fsm = Big()
    node = make_node(fsm, snapshot_trailing=2, max_batch_bytes=0, **kw)
    node.bootstrap([(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)
    wait_until(lambda: node.is_leader, 20)
    return node, fsm


def apply_big(node, n, size=16 * KIB):
    for _ in range(n):
        node.apply(b"x" * size).result(timeout=20)


def test_big_entries_snapshot_before_the_threshold(make_node):
    node, fsm = started(make_node, snapshot_threshold=100_000, snapshot_log_bytes=256 * KIB)
    apply_big(node, 40)                   # 640 KiB: two caps' worth
    wait_until(lambda: fsm.snapshots >= 2, 10, message="snapshots by bytes")
    assert node.stats()["snapshot_index"] > 0
    # the entry threshold is back once the snapshot started: small entries
    # (far below the cap) do not snapshot at every apply
    taken = fsm.snapshots
    for _ in range(50):
        node.apply(b"1").result(timeout=20)
    time.sleep(0.2)
    assert fsm.snapshots == taken, "small entries should not trigger snapshots"


def test_zero_counts_entries_only(make_node):
    node, fsm = started(make_node, snapshot_threshold=100_000, snapshot_log_bytes=0)
    apply_big(node, 40)
    time.sleep(0.3)
    assert fsm.snapshots == 0
    assert node.stats()["snapshot_index"] == 0


def test_entry_threshold_still_applies(make_node):
    node, fsm = started(make_node, snapshot_threshold=16, snapshot_log_bytes=1 << 30)
    for _ in range(40):
        node.apply(b"1").result(timeout=20)
    wait_until(lambda: fsm.snapshots >= 2, 10, message="snapshots by entries")


def test_state_survives_a_restart_after_byte_snapshots(make_node, tmp_path):
    data = tmp_path / "restart"
    node, fsm = started(make_node, data_dir=data, snapshot_threshold=100_000,
                        snapshot_log_bytes=128 * KIB)
    apply_big(node, 30)
    wait_until(lambda: fsm.snapshots >= 2, 10)
    node.close()
    again = Big()
    node = make_node(again, data_dir=data, address=node.address, snapshot_trailing=2,
                     max_batch_bytes=0, snapshot_threshold=100_000,
                     snapshot_log_bytes=128 * KIB)
    node.start()
    assert again.restores == 1
    node.wait_for_leader(timeout=20)
    wait_until(lambda: node.is_leader, 20)
    assert node.apply(b"1").result(timeout=20) == 31
