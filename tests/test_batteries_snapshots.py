"""batteries: snapshots copy the state cheaply on the raft thread and
serialise it in persist(); restore validates before replacing; nodes
restarted or caught up by snapshot end with the same state."""

import json
import time

import pytest

from canonical_raft import batteries
from canonical_raft.batteries import (Group, ReplicatedCounter, ReplicatedDict, ReplicatedLock,
                                      ReplicatedObject, ReplicatedQueue, command, replicated)
from canonical_raft.testing import LocalCluster, wait_until

pytestmark = pytest.mark.timeout(120)


class Notes(ReplicatedObject):
    def __init__(self):
        super().__init__()
        self.lines = []

    @replicated
    def write(self, line):
        self.lines.append(line)


def make_group():
    return Group(d=ReplicatedDict(), c=ReplicatedCounter(), q=ReplicatedQueue(),
                 lock=ReplicatedLock(), notes=Notes())


def state(group):
    return (group["d"].copy(), group["c"].get(), group["q"].to_list(), group["lock"].lease(),
            group["lock"].last_token, group["lock"].log_time, list(group["notes"].lines),
            group.active_version)


def attach_all(cluster):
    for node, group in zip(cluster.nodes, cluster.fsms):
        if group.node is not node:
            group.attach(node)


def apply_directly(group, structure, op, *args):
    """Apply a command as the raft thread would (no node)."""
    return group.apply(command.encode(structure, op, 1, list(args)))


def fill(group, n=50, tag="x"):
    for i in range(n):
        apply_directly(group, "d", "set", f"{tag}{i}", {"i": i, "l": [i]})
        apply_directly(group, "c", "add", i)
        apply_directly(group, "q", "put", [i])
        apply_directly(group, "notes", "write", [f"{tag}{i}"], {})
    apply_directly(group, "lock", "acquire", "me", 30.0, 1234.5, "")
    apply_directly(group, "lock", "acquire", "you", 30.0, 1234.5, "job-7")


def test_snapshot_round_trips_every_structure():
    a, b = make_group(), make_group()
    fill(a)
    apply_directly(a, None, "activate", 1)
    snap = a.snapshot()
    data = snap.persist()
    snap.release()
    b.restore(data)
    assert state(a) == state(b)
    assert state(b)[3] == batteries.Lease("me", 1, 1264.5)
    assert b["lock"].leases() == {"": batteries.Lease("me", 1, 1264.5),
                                  "job-7": batteries.Lease("you", 2, 1264.5)}
    doc = json.loads(data)
    assert doc["kind"] == "canonical_raft.batteries" and doc["format"] == 1
    assert {k: v["type"] for k, v in doc["structures"].items()} == \
        {"d": "dict", "c": "counter", "q": "queue", "lock": "lock", "notes": "object"}


def test_persist_sees_the_state_as_of_snapshot_not_later_applies():
    group = make_group()
    fill(group, 10)
    expected = state(group)
    snap = group.snapshot()                       # the raft thread: freeze
    fill(group, 10, tag="later")                   # later commands keep being applied
    apply_directly(group, "d", "clear")
    apply_directly(group, "q", "get")
    other = make_group()
    other.restore(snap.persist())                  # off the thread: serialise the frozen copy
    assert state(other) == expected
    snap.release()
    with pytest.raises(RuntimeError, match="released"):
        snap.persist()


def test_restoring_a_structure_this_code_lacks():
    group = make_group()
    newer = b'{"kind": "canonical_raft.batteries", "format": 1, "active": 1, "structures": ' \
            b'{"c": {"type": "counter", "version": 1, "state": 7}, ' \
            b'"later": {"type": "dict", "version": 2, "state": {}}}}'
    group.restore(newer)                  # of a version never active: nothing to hold
    assert group["c"].get() == 7 and group.read_point() is None
    active = newer.replace(b'"version": 2', b'"version": 1')
    group.restore(active)                 # active: this node is outdated, but runs on
    assert group["c"]._value == 7
    with pytest.raises(batteries.OutdatedReplicaError, match="'later'"):
        group["c"].get()


@pytest.mark.parametrize("data, words", [
    (b"\xff", "not a batteries snapshot"),
    (b"[]", "not a batteries snapshot"),
    (b'{"kind": "other"}', "not a batteries snapshot"),
    (b'{"kind": "canonical_raft.batteries", "format": 2}', "format 2"),
    (b'{"kind": "canonical_raft.batteries", "format": 1, "active": 1, "structures": []}',
     "malformed"),
    (b'{"kind": "canonical_raft.batteries", "format": 1, "active": 1, '
     b'"structures": {"d": {"type": "counter", "state": 1}}}', "is a dict here"),
    (b'{"kind": "canonical_raft.batteries", "format": 1, "active": 1, '
     b'"structures": {"d": {"type": "dict", "state": {"a": 1}}, "c": {"type": "counter", '
     b'"state": "many"}}}', "must be an int"),
    (b'{"kind": "canonical_raft.batteries", "format": 1, "active": 1, '
     b'"structures": {"lock": {"type": "lock", "state": {"leases": [["me"]]}}}}', "malformed lock"),
    (b'{"kind": "canonical_raft.batteries", "format": 1, "active": 1, '
     b'"structures": {"q": {"type": "queue", "state": {}}}}', "holds a list"),
])
def test_restore_validates_before_replacing(data, words):
    group = make_group()
    fill(group, 3)
    before = state(group)
    with pytest.raises((ValueError, TypeError), match=words):
        group.restore(data)
    assert state(group) == before                  # nothing replaced, not even the valid part


def test_restarted_and_lagging_nodes_restore_snapshots(tmp_path):
    with LocalCluster(3, make_group, tmp_path, snapshot_threshold=64, snapshot_trailing=8) as c:
        attach_all(c)

        def write(n, tag):
            g = c.fsm(c.leader().id)
            for i in range(n):                     # one at a time: one log entry each
                g["d"].set(f"{tag}{i}", i).result(10)
                g["c"].incr().result(10)
                g["q"].put(i).result(10)
                g["notes"].write(f"{tag}{i}").result(10)
            g["lock"].acquire(tag, 60).result(10)

        write(60, "a")
        wait_until(lambda: all(n.stats()["snapshot_index"] > 0 for n in c.nodes),
                   message="a snapshot on every node")
        c.wait_converged(key=state)

        # A follower restarted: restores its own snapshot, replays the rest.
        follower = next(n.id for n in c.nodes if not n.is_leader)
        c.restart(follower)
        attach_all(c)
        c.wait_converged(key=state)

        # A follower down while the log is compacted past it: the leader's snapshot.
        follower = next(n.id for n in c.nodes if not n.is_leader)
        c.kill(follower)
        write(60, "b")
        restored = []
        group = make_group()
        restore = group.restore
        group.restore = lambda data: (restored.append(len(data)), restore(data))[1]
        c.restart(follower, group)
        attach_all(c)
        c.wait_converged(key=state, timeout=20)
        assert restored

        # The leader itself restarted.
        leader = c.leader().id
        c.restart(leader)
        attach_all(c)
        write(5, "c")
        c.wait_converged(key=state, timeout=20)
        final = state(c.fsm(1))
        assert final[1] == 125 and len(final[0]) == 125 and final[3].owner == "a"
        assert final[6][-1] == "c4" and len(final[6]) == 125


def test_snapshot_holds_the_raft_thread_briefly_for_a_big_dict(capsys):
    group = Group(big=ReplicatedDict())
    n = 1_000_000
    group["big"]._data = {f"key{i:07d}": i for i in range(n)}   # as if applied
    t0 = time.perf_counter()
    snap = group.snapshot()                        # what the raft thread does
    hold = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = snap.persist()                          # off the raft thread
    off = time.perf_counter() - t0
    snap.release()
    with capsys.disabled():
        print(f"\n1,000,000-key dict: snapshot() holds the raft thread {hold * 1e3:.1f} ms; "
              f"persist() (off the thread) {off * 1e3:.0f} ms, {len(data) / 1e6:.1f} MB")
    assert hold < off / 4
    assert hold < 0.5                               # far below the 1 s election timeout


def test_persist_lets_other_threads_run(capsys):
    # persist() runs off the raft thread, but the raft thread needs the GIL
    # to apply: one json.dumps of the whole state would hold it throughout.
    import threading
    group = Group(big=ReplicatedDict())
    group["big"]._data = {f"key{i:07d}": i for i in range(500_000)}
    snap = group.snapshot()
    t0 = time.perf_counter()
    json.dumps(group["big"]._data)
    one_call = time.perf_counter() - t0
    gaps, done = [], threading.Event()
    worker = threading.Thread(target=lambda: (snap.persist(), done.set()))
    last = time.perf_counter()
    worker.start()
    while not done.is_set():
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    with capsys.disabled():
        print(f"\n500,000 keys: one json.dumps {one_call * 1e3:.0f} ms; longest pause of "
              f"another thread during persist() {max(gaps) * 1e3:.0f} ms")
    assert max(gaps) < one_call / 2
