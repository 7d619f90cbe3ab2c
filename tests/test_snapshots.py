"""Snapshots, restarts, restore, persist() snapshots, failing snapshot/restore."""

import threading

import pytest

import canonical_raft as raft
from canonical_raft.testing import wait_until
from fsms import Counter, Recorder

pytestmark = pytest.mark.timeout(90)

SNAP = dict(snapshot_threshold=8, snapshot_trailing=4)


def caught_up(c, node):
    """Once the restarted ``node`` leads again, a barrier: its whole log is applied."""
    c.leader()
    return node.barrier().result(timeout=20)


def test_snapshot_then_restart_whole_cluster(cluster):
    c = cluster(3, fsm_factory=Recorder, **SNAP)
    leader = c.leader()
    sent = [b"c%03d" % i for i in range(60)]
    for i in range(0, 60, 6):  # several rounds so that several snapshots are due
        futures = leader.apply_many(sent[i:i + 6])
        assert [f.result(timeout=20) for f in futures] == list(range(i + 1, i + 7))
    c.wait_converged(key=lambda f: f.commands, expected=sent)
    wait_until(lambda: all(f.snapshots >= 1 for f in c.fsms), 20, message="a snapshot on every node")
    wait_until(lambda: all(n.stats()["snapshot_index"] > 0 for n in c.nodes), 20)
    assert all(f.restores == 0 for f in c.fsms)

    old_fsms = list(c.fsms)
    for id in (1, 2, 3):
        c.kill(id)
    # new Node objects on the same data dirs, no bootstrap, new FSM instances
    new = [Recorder() for _ in range(3)]
    for id in (1, 2, 3):
        c.create(id, new[id - 1])
    for id in (1, 2, 3):
        c.node(id).start()
    for fsm in new:
        assert fsm.restores == 1, "start() should have restored the last snapshot"
        got = list(fsm.commands)
        assert got == sent[:len(got)] and len(got) >= 8
    leader = c.leader()
    assert leader.barrier().result(timeout=20) is None
    c.wait_converged(key=lambda f: f.commands, expected=sent)
    assert all(f is not o for f, o in zip(c.fsms, old_fsms))
    for node in c.nodes:  # the configuration came back from the data dir
        assert sorted(node.configuration) == sorted(c.servers)
        assert node.stats()["snapshot_index"] > 0
    assert leader.apply(b"more").result(timeout=20) == 61
    c.wait_converged(key=lambda f: f.commands, expected=sent + [b"more"])


def test_single_node_restart_comes_back_with_state(cluster):
    c = cluster(1, fsm_factory=Counter, **SNAP)
    node = c.leader()
    for i in range(1, 31):
        assert node.apply(b"%d" % i).result(timeout=20) == i * (i + 1) // 2
    total = 465
    wait_until(lambda: c.fsm(1).snapshots >= 2, 10)
    c.kill(1)
    fsm = Counter()
    node = c.restart(1, fsm)
    assert fsm.restores == 1
    assert 0 < fsm.value <= total
    assert caught_up(c, node) is None
    assert fsm.value == total
    assert node.apply(b"1").result(timeout=20) == total + 1


def test_restart_without_snapshot_replays_log(cluster):
    c = cluster(1, fsm_factory=Counter)  # default threshold: no snapshot
    node = c.leader()
    for _ in range(10):
        node.apply(b"2").result(timeout=20)
    c.kill(1)
    fsm = Counter()
    node = c.restart(1, fsm)
    assert fsm.restores == 0
    caught_up(c, node)
    assert fsm.value == 20


def test_lagging_follower_catches_up_through_installed_snapshot(cluster):
    c = cluster(3, fsm_factory=Recorder, **SNAP)
    leader = c.leader()
    lagging = c.followers(leader)[0].id
    c.kill(lagging)
    sent = [b"x%d" % i for i in range(80)]
    for cmd in sent:
        leader.apply(cmd).result(timeout=20)
    wait_until(lambda: leader.stats()["snapshot_index"] > 20, 20,
               message="the leader to compact its log past what the lagging node has")
    fsm = Recorder()
    c.restart(lagging, fsm)
    c.wait_converged(key=lambda f: f.commands, expected=sent, timeout=30)
    assert fsm.restores >= 1, "the lagging node should have received a snapshot"


class PersistingCounter(Counter):
    """snapshot() returns an object whose persist() runs off the raft thread."""

    def __init__(self):
        super().__init__()
        self.persist_threads = []
        self.released = 0

    def snapshot(self):
        self.snapshots += 1
        value = self.value
        fsm = self

        class Snap:
            def persist(self):
                fsm.persist_threads.append(threading.get_ident())
                return str(value).encode()

            def release(self):
                fsm.released += 1

        return Snap()


def test_snapshot_with_persist_object(cluster):
    c = cluster(1, fsm_factory=PersistingCounter, **SNAP)
    node = c.leader()
    for _ in range(40):
        node.apply(b"1").result(timeout=20)
    fsm = c.fsm(1)
    wait_until(lambda: len(fsm.persist_threads) >= 1 and node.stats()["snapshot_index"] > 0, 20,
               message="a persisted snapshot")
    assert threading.get_ident() not in fsm.persist_threads
    wait_until(lambda: fsm.released >= 1, 10, message="release() to be called")
    c.kill(1)
    new = PersistingCounter()
    node = c.restart(1, new)
    assert new.restores == 1 and new.value > 0
    caught_up(c, node)
    assert new.value == 40


def test_persist_runs_off_the_raft_thread(cluster):
    # API.md: persist() is called off the raft thread while later commands
    # keep being applied (HashiCorp's FSMSnapshot.Persist)
    c = cluster(1, fsm_factory=PersistingCounter, **SNAP)
    node = c.leader()
    for _ in range(40):
        node.apply(b"1").result(timeout=20)
    fsm = c.fsm(1)
    wait_until(lambda: len(fsm.persist_threads) >= 1, 20, message="a persisted snapshot")
    assert len(fsm.threads) == 1
    assert fsm.threads.isdisjoint(fsm.persist_threads), "persist() ran on the raft thread"


class FlakySnapshots(Counter):
    """The first two snapshots fail."""

    def __init__(self):
        super().__init__()
        self.failures = 0

    def snapshot(self):
        if self.failures < 2:
            self.failures += 1
            raise RuntimeError("snapshot failed on purpose")
        return super().snapshot()


def test_failing_snapshot_is_retried_and_node_keeps_running(cluster):
    c = cluster(1, fsm_factory=FlakySnapshots, **SNAP)
    node = c.leader()
    fsm = c.fsm(1)
    for i in range(1, 61):
        assert node.apply(b"1").result(timeout=20) == i
    wait_until(lambda: fsm.failures == 2 and fsm.snapshots >= 1, 20,
               message="failed snapshots then a successful one")
    wait_until(lambda: node.stats()["snapshot_index"] > 0, 10)
    assert node.is_leader
    assert node.apply(b"1").result(timeout=20) == 61
    c.kill(1)
    new = Counter()
    node = c.restart(1, new)
    assert new.restores == 1
    caught_up(c, node)
    assert new.value == 61


class BadRestore(Counter):
    def restore(self, data):
        raise ValueError("cannot restore this")


def test_start_raises_what_restore_raised(cluster):
    c = cluster(1, fsm_factory=Counter, **SNAP)
    node = c.leader()
    for _ in range(30):
        node.apply(b"1").result(timeout=20)
    wait_until(lambda: c.fsm(1).snapshots >= 1, 10)
    c.kill(1)
    node = c.create(1, BadRestore())
    with pytest.raises(ValueError, match="cannot restore this"):
        node.start()
    node.close()  # closing a node whose start failed works, and is idempotent
    node.close()
    # the data is intact: a good FSM restores it
    fsm = Counter()
    node = c.restart(1, fsm)
    assert fsm.restores == 1
    caught_up(c, node)
    assert fsm.value == 30


def test_bootstrap_after_snapshot_restart_is_refused(cluster):
    c = cluster(1, fsm_factory=Counter, **SNAP)
    node = c.leader()
    for _ in range(20):
        node.apply(b"1").result(timeout=20)
    c.kill(1)
    node = c.create(1)
    with pytest.raises(raft.CantBootstrapError):
        node.bootstrap(c.servers)


class BytesLikeSnapshots(Counter):
    """snapshot() returns a memoryview over a bytearray; restore() records what it got."""

    def __init__(self):
        super().__init__()
        self.restored_types = []

    def snapshot(self):
        self.snapshots += 1
        return memoryview(bytearray(str(self.value).encode()))

    def restore(self, data):
        self.restored_types.append(type(data))
        super().restore(data)


def test_snapshot_may_return_any_bytes_like(cluster):
    c = cluster(1, fsm_factory=BytesLikeSnapshots, **SNAP)
    node = c.leader()
    for _ in range(30):
        node.apply(b"1").result(timeout=20)
    wait_until(lambda: node.stats()["snapshot_index"] > 0, 20)
    c.kill(1)
    fsm = BytesLikeSnapshots()
    node = c.restart(1, fsm)
    assert fsm.restores == 1 and fsm.restored_types == [bytes]
    caught_up(c, node)
    assert fsm.value == 30


def test_restore_failing_on_installed_snapshot_stops_that_node(cluster):
    c = cluster(3, fsm_factory=Counter, **SNAP)
    leader = c.leader()
    lagging = c.followers(leader)[0].id
    c.kill(lagging)
    for _ in range(60):
        leader.apply(b"1").result(timeout=20)
    wait_until(lambda: leader.stats()["snapshot_index"] > 20, 20)
    bad = BadRestore()
    node = c.restart(lagging, bad)  # its own log has no snapshot: start() succeeds

    def stopped():
        return node.state == raft.State.UNAVAILABLE and node.stats()["error"]

    wait_until(stopped, 30, message="the node whose restore() failed to stop with an error")
    assert "cannot restore this" in node.stats()["error"]
    # the stopped node refuses work, then closes cleanly
    assert isinstance(node.apply(b"1").exception(timeout=10), raft.RaftError)
    c.kill(lagging)
    # the rest of the cluster is fine
    leader = c.leader()
    assert leader.apply(b"1").result(timeout=20) == 61


@pytest.mark.parametrize("knobs", [dict(snapshot_compression=True), dict(pre_vote=False),
                                   dict(tcp_nodelay=False)])
def test_cluster_with_other_knobs(cluster, knobs):
    c = cluster(3, fsm_factory=Recorder, **SNAP, **knobs)
    leader = c.leader()
    lagging = c.followers(leader)[0].id
    sent = [b"k%d" % i for i in range(40)]
    for cmd in sent[:10]:
        leader.apply(cmd).result(timeout=20)
    c.kill(lagging)
    for cmd in sent[10:]:
        leader.apply(cmd).result(timeout=20)
    wait_until(lambda: leader.stats()["snapshot_index"] > 20, 20)
    fsm = Recorder()
    c.restart(lagging, fsm)
    c.wait_converged(key=lambda f: f.commands, expected=sent, timeout=30)
    assert fsm.restores >= 1
