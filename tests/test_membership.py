"""Configuration changes: add, assign, remove, and one change at a time.

Leadership transfer and removing the leader are in test_cluster_ops.py,
recover() in test_recovery.py.
"""

import threading
import time

import pytest

import canonical_raft as raft
from canonical_raft import errors
from canonical_raft.testing import free_address, wait_until
from fsms import Counter, Recorder

# every test has a timeout; some set a longer one
pytestmark = pytest.mark.timeout(60)

VOTER, STANDBY, SPARE = raft.Role.VOTER, raft.Role.STANDBY, raft.Role.SPARE

# Small enough that the leader compacts its log long before a 4th node joins.
SNAP = dict(snapshot_threshold=16, snapshot_trailing=4)


def new_node(c, id, fsm=None, start=True):
    """A node that is not in the cluster's bootstrap configuration (see
    LocalCluster.new_node), started unless start=False."""
    node = c.new_node(id, fsm)
    if start:
        node.start()
    return node


def roles(node):
    return {s.id: s.role for s in node.configuration}


def everywhere(c, predicate, nodes=None, timeout=20, message=None):
    nodes = c.running if nodes is None else nodes
    wait_until(lambda: all(predicate(n) for n in nodes), timeout, message=message)


class Writer(threading.Thread):
    """Keeps applying b"1" to a leader until stopped (load during a change)."""

    def __init__(self, leader):
        super().__init__(daemon=True)
        self.leader = leader
        self.stop = threading.Event()
        self.done = 0
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                self.leader.apply(b"1").result(timeout=20)
                self.done += 1
                time.sleep(0.005)
        except BaseException as e:
            self.error = e

    def finish(self):
        self.stop.set()
        self.join(30)
        assert not self.is_alive(), "the writer thread is stuck"
        if self.error is not None:
            raise self.error
        return self.done


@pytest.mark.timeout(90)
def test_new_node_joins_through_snapshot_is_promoted_then_removed(cluster):
    c = cluster(3, **SNAP)
    leader = c.leader()
    for _ in range(60):                      # one entry each: the log gets compacted
        leader.apply(b"1").result(timeout=20)
    wait_until(lambda: leader.stats()["snapshot_index"] >= 40, 20,
               message="the leader to compact its log")
    assert leader.stats()["snapshot_index"] - SNAP["snapshot_trailing"] > 1, \
        "entry 1 must be gone from the leader's log, or no snapshot is sent"

    # A brand-new node: empty data dir, no bootstrap; it knows no one.
    fsm4 = Counter()
    new = new_node(c, 4, fsm4)
    assert new.configuration == []
    assert new.leader is None
    assert new.state == raft.State.FOLLOWER

    writer = Writer(leader)                  # the cluster keeps taking writes
    writer.start()
    try:
        fut = leader.add(4, new.address)
        assert fut.result(timeout=60) is None
    finally:
        written = writer.finish()
    assert written > 0
    total = 60 + written

    server4 = raft.Server(4, new.address, VOTER)
    everywhere(c, lambda n: server4 in n.configuration, c.running + [new],
               message="every node to list node 4 as a voter")
    assert leader.stats()["voters"] == 4 and leader.stats()["servers"] == 4
    wait_until(lambda: new.leader is not None and new.leader.id == leader.id, 20,
               message="node 4 to know the leader")

    assert leader.barrier().result(timeout=20) is None
    wait_until(lambda: all(f.value == total for f in c.fsms) and fsm4.value == total, 20,
               message=f"every FSM, node 4's included, to reach {total}")
    assert fsm4.restores >= 1, "node 4 should have caught up through a snapshot install"
    assert fsm4.applies < total, "node 4 replayed the whole log instead of a snapshot"
    assert new.stats()["snapshot_index"] > 1

    # A voter now: the cluster commits with it in the configuration.
    assert leader.apply(b"1").result(timeout=20) == total + 1
    wait_until(lambda: fsm4.value == total + 1, 20)

    assert leader.remove(4).result(timeout=30) is None
    everywhere(c, lambda n: 4 not in roles(n), message="nodes 1-3 to drop node 4")
    assert sorted(leader.configuration) == sorted(c.servers)
    assert leader.stats()["voters"] == 3 and leader.stats()["servers"] == 3
    assert leader.apply(b"1").result(timeout=20) == total + 2
    c.wait_converged(key=lambda f: f.value, expected=total + 2)
    time.sleep(0.3)                          # a few heartbeats
    assert fsm4.value == total + 1, "a removed node still receives entries"


@pytest.mark.timeout(60)
def test_spare_then_standby_then_voter(cluster):
    c = cluster(3)
    leader = c.leader()
    for _ in range(5):
        leader.apply(b"1").result(timeout=20)
    fsm4 = Counter()
    new = new_node(c, 4, fsm4)

    assert leader.add(4, new.address, role=SPARE).result(timeout=30) is None
    everywhere(c, lambda n: roles(n).get(4) == SPARE, message="node 4 listed as a spare")
    time.sleep(0.5)                          # no promotion follows add(role=SPARE)
    assert roles(leader)[4] == SPARE
    assert leader.stats()["voters"] == 3 and leader.stats()["servers"] == 4
    with pytest.raises(raft.RaftError) as info:
        leader.assign(4, SPARE).result(timeout=10)
    assert info.value.code == errors.BADROLE

    assert leader.assign(4, STANDBY).result(timeout=30) is None
    everywhere(c, lambda n: roles(n).get(4) == STANDBY, message="node 4 a standby")
    # a standby receives the log, but does not vote
    wait_until(lambda: fsm4.value == 5, 20, message="the standby to replicate the log")
    assert leader.stats()["voters"] == 3
    with pytest.raises(raft.RaftError):
        leader.assign(4, STANDBY).result(timeout=10)

    assert leader.assign(4, VOTER).result(timeout=30) is None
    everywhere(c, lambda n: roles(n).get(4) == VOTER, c.running + [new],
               message="node 4 a voter everywhere")
    assert leader.stats()["voters"] == 4
    with pytest.raises(raft.RaftError) as info:
        leader.assign(4, VOTER).result(timeout=10)
    assert info.value.code == errors.BADROLE
    with pytest.raises(raft.RaftError):
        leader.assign(leader.id, VOTER).result(timeout=10)

    # and back down: a voter demoted to spare stops counting
    assert leader.assign(4, SPARE).result(timeout=30) is None
    everywhere(c, lambda n: roles(n).get(4) == SPARE, message="node 4 a spare again")
    assert leader.stats()["voters"] == 3
    assert leader.apply(b"1").result(timeout=20) == 6
    c.wait_converged(key=lambda f: f.value, expected=6)


@pytest.mark.timeout(60)
def test_second_change_while_one_is_in_flight_is_refused(cluster):
    c = cluster(3)
    leader = c.leader()
    f1, f2 = c.followers(leader)
    # Node 4 is not started yet: its promotion waits in catch-up.
    new = new_node(c, 4, start=False)
    first = leader.add(4, new.address)
    refused = [
        leader.add(5, free_address()),
        leader.add(6, free_address(), role=SPARE),
        leader.assign(f1.id, STANDBY),
        leader.remove(f2.id),
    ]
    for fut in refused:
        exc = fut.exception(timeout=10)
        assert isinstance(exc, raft.CantChangeError), exc
        assert exc.code == errors.CANTCHANGE
    assert not first.done(), "the first change should still be catching node 4 up"
    wait_until(lambda: roles(leader).get(4) == SPARE, 10,
               message="node 4 added as a spare, awaiting promotion")
    # Commands are not configuration changes: they go through meanwhile.
    assert leader.apply(b"1").result(timeout=20) == 1

    new.start()
    assert first.result(timeout=30) is None
    everywhere(c, lambda n: roles(n).get(4) == VOTER, c.running + [new],
               message="node 4 promoted")
    # Once the first change is done, the next one is accepted.
    assert leader.remove(4).result(timeout=30) is None
    everywhere(c, lambda n: 4 not in roles(n), message="node 4 removed")
    assert {s.id: s.role for s in leader.configuration} == {1: VOTER, 2: VOTER, 3: VOTER}


@pytest.mark.timeout(60)
def test_back_to_back_changes_one_at_a_time(cluster):
    c = cluster(3)
    leader = c.leader()
    spares = {id: free_address() for id in (4, 5, 6, 7)}
    futures = {id: leader.add(id, address, role=SPARE) for id, address in spares.items()}
    outcomes = {id: fut.exception(timeout=20) for id, fut in futures.items()}
    accepted = [id for id, exc in outcomes.items() if exc is None]
    assert accepted, outcomes
    for id, exc in outcomes.items():
        assert exc is None or isinstance(exc, raft.CantChangeError), (id, exc)
    # The configuration holds exactly the changes that were accepted.
    everywhere(c, lambda n: sorted(s.id for s in n.configuration) == [1, 2, 3] + accepted,
               message=f"the configuration to be 1, 2, 3 and {accepted}")
    # With nothing in flight, each change goes through in turn.
    for id in sorted(set(spares) - set(accepted)):
        assert leader.add(id, spares[id], role=SPARE).result(timeout=20) is None
    for id in spares:
        assert leader.remove(id).result(timeout=20) is None
    everywhere(c, lambda n: sorted(s.id for s in n.configuration) == [1, 2, 3],
               message="the spares removed")


@pytest.mark.timeout(60)
def test_promotion_of_an_unreachable_node_fails_then_succeeds_later(cluster):
    c = cluster(3, max_catch_up_round_duration=0.5)
    leader = c.leader()
    new = new_node(c, 4, start=False)
    t0 = time.monotonic()
    with pytest.raises(raft.NoConnectionError):
        leader.add(4, new.address).result(timeout=30)
    assert time.monotonic() - t0 < 10
    # It stays in the configuration as a spare; the cluster is unaffected.
    wait_until(lambda: roles(leader).get(4) == SPARE, 10)
    assert leader.stats()["voters"] == 3
    assert leader.apply(b"1").result(timeout=20) == 1
    # Once it runs, it can be promoted.
    new.start()
    assert leader.assign(4, VOTER).result(timeout=30) is None
    everywhere(c, lambda n: roles(n).get(4) == VOTER, c.running + [new])
    wait_until(lambda: new.leader is not None and new.leader.id == leader.id, 20)


@pytest.mark.timeout(60)
def test_configuration_change_errors(cluster):
    c = cluster(3)
    leader = c.leader()
    follower = c.followers(leader)[0]
    lead_server = c.servers[leader.id - 1]
    for fut in (follower.add(9, free_address()), follower.assign(leader.id, STANDBY),
                follower.remove(leader.id)):
        exc = fut.exception(timeout=10)
        assert isinstance(exc, raft.NotLeaderError), exc
        assert exc.leader == lead_server
    exc = leader.add(follower.id, free_address()).exception(timeout=10)
    assert isinstance(exc, raft.RaftError) and exc.code == errors.DUPLICATEID
    exc = leader.add(9, follower.address).exception(timeout=10)
    assert isinstance(exc, raft.RaftError) and exc.code == errors.DUPLICATEADDRESS
    exc = leader.remove(42).exception(timeout=10)
    assert isinstance(exc, raft.RaftError) and exc.code == errors.BADID
    exc = leader.assign(42, STANDBY).exception(timeout=10)
    assert isinstance(exc, raft.RaftError) and exc.code in (errors.BADID, errors.NOTFOUND)
    # none of these changed anything
    assert sorted(leader.configuration) == sorted(c.servers)
    assert leader.apply(b"1").result(timeout=20) == 1


def test_bad_arguments_raise_at_once(make_node):
    node = make_node()               # not even started: arguments come first
    for call, exc in [
        (lambda: node.add(0, "127.0.0.1:1"), ValueError),
        (lambda: node.add(-3, "127.0.0.1:1"), ValueError),
        (lambda: node.add("4", "127.0.0.1:1"), TypeError),
        (lambda: node.add(4, "no port"), ValueError),
        (lambda: node.add(4, "127.0.0.1:1", role=7), ValueError),
        (lambda: node.assign(0, VOTER), ValueError),
        (lambda: node.assign(True, VOTER), TypeError),
        (lambda: node.assign(4, 3), ValueError),
        (lambda: node.assign(4, -1), ValueError),
        (lambda: node.remove(0), ValueError),
        (lambda: node.remove(2.0), TypeError),
    ]:
        with pytest.raises(exc):
            call()
    # well-formed, but the node is not started: a failed future, no raise
    assert isinstance(node.add(4, "127.0.0.1:1").exception(timeout=5), raft.NotLeaderError)


@pytest.mark.timeout(60)
def test_removed_follower_keeps_its_state(cluster):
    c = cluster(3, fsm_factory=Recorder)
    leader = c.leader()
    gone = c.followers(leader)[0]
    for i in range(3):
        leader.apply(b"c%d" % i).result(timeout=20)
    c.wait_converged(key=lambda f: f.commands)
    assert leader.remove(gone.id).result(timeout=30) is None
    others = [n for n in c.running if n.id != gone.id]
    everywhere(c, lambda n: gone.id not in roles(n), others)
    assert leader.stats()["voters"] == 2
    leader.apply(b"after").result(timeout=20)
    c.wait_converged(key=lambda f: f.commands, ids=[n.id for n in others],
                     expected=[b"c0", b"c1", b"c2", b"after"])
    assert c.fsm(gone.id).commands == [b"c0", b"c1", b"c2"]
