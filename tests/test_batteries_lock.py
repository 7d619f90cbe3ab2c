"""batteries: ReplicatedLock's TTL is judged by log time (the stamps the
submitting leader put in the commands), the same on every node; fencing
tokens increase with every grant, across leaders and snapshots."""

import pytest

from canonical_raft.batteries import Group, Lease, ReplicatedLock
from canonical_raft.testing import LocalCluster

pytestmark = pytest.mark.timeout(90)


class FakeClock:
    """The leader's clock, set by the test."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


CLOCK = FakeClock()


def make_group():
    return Group(lock=ReplicatedLock(clock=CLOCK))


def attach_all(cluster):
    for node, group in zip(cluster.nodes, cluster.fsms):
        if group.node is not node:
            group.attach(node)


def lock_state(group):
    lock = group["lock"]
    return tuple(lock._leases.items()), lock.log_time, lock.last_token


@pytest.fixture
def cluster(tmp_path):
    CLOCK.now = 1000.0
    with LocalCluster(3, make_group, tmp_path, snapshot_threshold=64, snapshot_trailing=8) as c:
        attach_all(c)
        yield c


def lock_on_leader(cluster):
    return cluster.fsm(cluster.leader().id)["lock"]


def test_ttl_by_log_time_and_fencing(cluster):
    lock = lock_on_leader(cluster)
    t1 = lock.acquire("a", 10).result(10)
    assert t1 == 1 and lock.lease() == Lease("a", 1, 1010.0)
    assert lock.acquire("b", 10).result(10) is None          # held
    CLOCK.now = 1009.9
    assert lock.acquire("b", 10).result(10) is None          # not yet expired
    assert lock.acquire("a", 10).result(10) == t1            # the holder again: extended, same token
    CLOCK.now = 1019.8
    assert lock.acquire("b", 10).result(10) is None          # extended to 1019.9
    CLOCK.now = 1019.9
    t2 = lock.acquire("b", 5).result(10)                     # expired at exactly its end
    assert t2 == 2
    assert lock.release("a", t1).result(10) is False         # a's lease is gone
    assert lock.renew("a", t1, 10).result(10) is False
    assert lock.renew("b", t2, 10).result(10) is True
    assert lock.lease().expires == 1029.9
    assert lock.release("b", 1).result(10) is False          # wrong token
    assert lock.release("b", t2).result(10) is True
    assert lock.lease() is None
    assert lock.acquire("a", 1).result(10) == 3              # every grant: a higher token
    cluster.wait_converged(key=lock_state)
    states = {lock_state(g) for g in cluster.fsms}
    assert states == {((("", Lease("a", 3, 1020.9)),), 1019.9, 3)}


def test_log_time_never_goes_back(cluster):
    lock = lock_on_leader(cluster)
    CLOCK.now = 2000.0
    token = lock.acquire("a", 10).result(10)
    CLOCK.now = 1500.0                                       # a new leader whose clock is behind
    assert lock.acquire("b", 10).result(10) is None
    assert lock.log_time == 2000.0
    assert lock.release("a", token).result(10) is True       # judged at 2000, not 1500
    cluster.wait_converged(key=lock_state)


def test_every_node_decides_by_log_time_not_its_own_clock(cluster):
    # Followers apply the same stamps; their own clocks (the real time here,
    # decades after the fake one) play no part.
    lock = lock_on_leader(cluster)
    CLOCK.now = 3000.0
    lock.acquire("a", 60).result(10)
    cluster.wait_converged(key=lock_state)
    for group in cluster.fsms:
        assert group["lock"].lease() == Lease("a", lock.last_token, 3060.0)


def test_tokens_increase_across_leader_changes_and_snapshots(cluster):
    tokens = []
    CLOCK.now = 4000.0
    for i in range(40):                                      # 40 grants, 80 entries: a snapshot
        lock = lock_on_leader(cluster)
        CLOCK.now += 1
        tokens.append(lock.acquire(f"w{i}", 0.5).result(10))
        lock.release(f"w{i}", tokens[-1]).result(10)
    assert max(n.stats()["snapshot_index"] for n in cluster.nodes) > 0
    old = cluster.leader().id
    cluster.kill(old)
    cluster.restart(old)                                     # restores the snapshot
    attach_all(cluster)
    for i in range(5):
        CLOCK.now += 1
        tokens.append(lock_on_leader(cluster).acquire(f"v{i}", 0.5).result(10))
    assert tokens == sorted(set(tokens)) and tokens == list(range(1, 46))
    cluster.wait_converged(key=lock_state)


def test_named_resources_and_a_bounded_table(cluster):
    lock = lock_on_leader(cluster)
    CLOCK.now = 6000.0
    a = lock.acquire("w1", 10, resource="job-1").result(10)
    b = lock.acquire("w2", 10, resource="job-2").result(10)
    assert b == a + 1                                         # one token sequence for all
    assert lock.acquire("w2", 10, resource="job-1").result(10) is None
    assert lock.acquire("w3", 10).result(10) == b + 1         # the "" lock is free
    assert set(lock.leases()) == {"job-1", "job-2", ""}
    assert lock.lease("job-2") == Lease("w2", b, 6010.0)
    assert lock.release("w1", a, resource="job-2").result(10) is False
    assert lock.release("w1", a, resource="job-1").result(10) is True
    for i in range(50):                                       # many short-lived locks
        lock.acquire("w", 1, resource=f"tmp-{i}").result(10)
        CLOCK.now += 2
    assert len(lock._leases) <= 8                             # expired ones were dropped
    cluster.wait_converged(key=lock_state)


def test_wait_acquire(cluster):
    lock = lock_on_leader(cluster)
    CLOCK.now = 5000.0
    lock.acquire("a", 1).result(10)
    with pytest.raises(TimeoutError):
        lock.wait_acquire("b", 1, timeout=0.2, interval=0.05)
    CLOCK.now = 5001.0
    assert lock.wait_acquire("b", 1, timeout=5) == lock.last_token
