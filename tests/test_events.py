"""Node.on_event: the state and leader, committed configurations, snapshots
taken and installed, and a leader's peers falling silent and coming back."""

import logging
import threading

import pytest

import canonical_raft as raft
from canonical_raft import EventKind as K
from canonical_raft.testing import wait_until

pytestmark = pytest.mark.timeout(90)


class Recorder:
    """Every event of every node, by node id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = {}

    def __call__(self, event):
        with self.lock:
            self.events.setdefault(event.node_id, []).append(event)

    def of(self, node_id, kind=None):
        with self.lock:
            return [e for e in self.events.get(node_id, []) if kind is None or e.kind == kind]


def watched(cluster, n=3, **kwargs):
    c = cluster(n, start=False, **kwargs)
    rec = Recorder()
    for id in range(1, n + 1):
        c.node(id).on_event(rec)
    c.start()
    return c, rec


def test_state_and_leader_events_on_every_node(cluster):
    c, rec = watched(cluster)
    leader = c.leader()
    for node in c.running:
        wait_until(lambda: any(e.leader is not None and e.leader.id == leader.id
                               for e in rec.of(node.id, K.LEADER)), 10,
                   message=f"node {node.id} told who leads")
        states = [e.state for e in rec.of(node.id, K.STATE)]
        assert states and all(isinstance(s, raft.State) for s in states)
        assert all(e.term >= 1 for e in rec.of(node.id))
    assert raft.State.LEADER in [e.state for e in rec.of(leader.id, K.STATE)]
    kinds = {e.kind for e in rec.of(leader.id)}
    assert kinds <= set(K)
    assert K.LEADER == "leader"       # EventKind is a str


def test_a_committed_configuration_is_an_event(cluster):
    c, rec = watched(cluster)
    leader = c.leader()
    new = c.new_node(4)
    new.start()
    leader.add(4, new.address).result(timeout=30)
    wait_until(lambda: any(4 in [s.id for s in e.servers]
                           for e in rec.of(leader.id, K.CONFIGURATION)), 10,
               message="the configuration with node 4")
    event = [e for e in rec.of(leader.id, K.CONFIGURATION)
             if 4 in [s.id for s in e.servers]][-1]
    assert event.index >= 2 and event.index <= leader.stats()["commit_index"]
    assert [s.id for s in event.servers] == [1, 2, 3, 4]


def test_snapshots_taken_and_installed(cluster):
    c, rec = watched(cluster, snapshot_threshold=20, snapshot_trailing=2)
    leader = c.leader()
    for i in range(60):
        leader.apply(b"1").result(timeout=20)
    wait_until(lambda: rec.of(leader.id, K.SNAPSHOT_TAKEN), 10, message="a snapshot taken")
    taken = rec.of(leader.id, K.SNAPSHOT_TAKEN)
    assert all(e.index > 0 for e in taken)
    assert [e.index for e in taken] == sorted(e.index for e in taken)
    assert not rec.of(leader.id, K.SNAPSHOT_INSTALLED)

    # A new node far behind a compacted log gets the leader's snapshot.
    new = c.new_node(4)
    new.on_event(rec)
    new.start()
    leader.add(4, new.address).result(timeout=30)
    wait_until(lambda: rec.of(4, K.SNAPSHOT_INSTALLED), 20, message=f"node 4 installed {rec.of(4)} {new.stats()}")
    assert rec.of(4, K.SNAPSHOT_INSTALLED)[0].index >= 20


def test_a_silent_peer_is_lost_then_resumed(cluster):
    c, rec = watched(cluster, election_timeout=0.5, heartbeat_timeout=0.05)
    leader = c.leader()
    follower = c.followers(leader)[0]
    wait_until(lambda: leader.stats()["commit_index"] >= 1, 10)
    assert not rec.of(leader.id, K.PEER_LOST)
    c.kill(follower.id)
    wait_until(lambda: rec.of(leader.id, K.PEER_LOST), 10, message="the killed peer lost")
    (lost,) = rec.of(leader.id, K.PEER_LOST)
    assert lost.peer.id == follower.id and lost.peer.address == follower.address
    c.restart(follower.id)
    wait_until(lambda: rec.of(leader.id, K.PEER_RESUMED), 20, message="the peer back")
    (resumed,) = rec.of(leader.id, K.PEER_RESUMED)
    assert resumed.peer.id == follower.id
    assert len(rec.of(leader.id, K.PEER_LOST)) == 1      # once per silence


def test_kinds_filter_and_cancel(cluster):
    c = cluster(3, start=False)
    leaders, everything = [], []
    node = c.node(1)
    only = node.on_event(leaders.append, kinds=["leader"])
    node.on_event(everything.append)
    c.start()
    c.leader()
    wait_until(lambda: leaders, 10, message="a leader event")
    assert all(e.kind is K.LEADER for e in leaders)
    assert {e.kind for e in everything} >= {K.STATE, K.LEADER}
    assert only.fn == leaders.append and only.cancel() and not only.cancel()
    seen = len(leaders)
    c.leader().transfer().result(timeout=20)
    wait_until(lambda: len(everything) > 2, 10)
    assert len(leaders) == seen


def test_bad_arguments(make_node):
    node = make_node()
    with pytest.raises(TypeError):
        node.on_event(42)
    with pytest.raises(ValueError):
        node.on_event(print, kinds=["no such kind"])


def test_a_raising_observer_is_logged_and_the_others_run(cluster, caplog):
    caplog.set_level(logging.ERROR, logger="canonical_raft")
    c = cluster(1, start=False)
    calls = []

    def bad(event):
        raise RuntimeError("event observer failed on purpose")

    c.node(1).on_event(bad)
    c.node(1).on_event(calls.append)
    c.start()
    c.leader()
    wait_until(lambda: calls, 10)
    wait_until(lambda: any("on purpose" in r.getMessage() for r in caplog.records), 10)
    assert c.node(1).state == raft.State.LEADER


def test_watching_again_starts_from_the_present(cluster):
    c = cluster(1)
    node = c.leader()
    first = []
    handle = node.on_event(first.append)
    wait_until(lambda: [e for e in first if e.kind is K.LEADER], 10)
    handle.cancel()
    again = []
    node.on_event(again.append)
    wait_until(lambda: [e for e in again if e.kind is K.LEADER], 10,
               message="the current leader told again")
    (leader,) = [e for e in again if e.kind is K.LEADER]
    assert leader.leader.id == node.id
