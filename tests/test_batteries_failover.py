"""batteries: the leader killed while writes are in flight. Every write
acknowledged is on every surviving node, the replicas are identical, and
the structures go on under the new leader (and the old one, restarted,
catches up)."""

import pytest

import canonical_raft as raft
from canonical_raft.batteries import Group, ReplicatedCounter, ReplicatedDict, ReplicatedLock
from canonical_raft.testing import LocalCluster

pytestmark = pytest.mark.timeout(120)


def make():
    return Group(d=ReplicatedDict(), c=ReplicatedCounter(), lock=ReplicatedLock())


def attach_all(cluster):
    for node, group in zip(cluster.nodes, cluster.fsms):
        if group.node is not node:
            group.attach(node)


def state(group):
    # The count and chain too: every node applied the same commands alike
    # (the sets in C, core/lane.pxi; the rest in Python).
    return (group["d"].copy(), group["c"].get(), group["lock"].leases(), group["lock"].last_token,
            group._seq, group._chain)


def test_leader_killed_mid_writes(tmp_path):
    with LocalCluster(3, make, tmp_path, snapshot_threshold=64, snapshot_trailing=8) as cluster:
        attach_all(cluster)
        old = cluster.leader()
        g = cluster.fsm(old.id)
        token = g["lock"].acquire("holder", 3600).result(10)
        futures = []
        for i in range(400):
            futures.append((f"k{i}", g["d"].set(f"k{i}", i), g["c"].incr()))
            if i == 200:
                futures[150][1].result(10)                   # some acknowledged, some in flight
                cluster.kill(old.id)
        acked, counted = [], 0
        for key, set_future, incr_future in futures:
            try:
                set_future.result(10)
                acked.append(key)
            except (raft.LeadershipLostError, raft.ShutdownError, raft.NotLeaderError):
                pass
            try:
                incr_future.result(10)
                counted += 1
            except (raft.LeadershipLostError, raft.ShutdownError, raft.NotLeaderError):
                pass
        new = cluster.leader()
        assert new.id != old.id
        cluster.wait_converged(key=state)
        survivors = [cluster.fsm(n.id) for n in cluster.running]
        d = survivors[0]["d"]
        assert all(key in d for key in acked)                  # nothing acknowledged is lost
        assert survivors[0]["c"].get() >= counted
        # The new leader goes on; the lock and its token survived the change.
        g = cluster.fsm(new.id)
        assert g["lock"].lease() is not None and g["lock"].lease().token == token
        assert g["lock"].acquire("other", 10).result(10) is None
        before = survivors[0]["c"].get()
        assert len(acked) > 150 and before >= 150
        assert g["c"].incr().result(10) == before + 1
        cluster.restart(old.id)
        attach_all(cluster)
        cluster.wait_converged(key=state, timeout=20)
