"""batteries, issue 14 item 6: a 2,000,000-key ReplicatedDict under load
keeps its leader through several snapshots (three nodes in one process,
so sharing one GIL: harder than three processes)."""

import time

import pytest

from canonical_raft.batteries import Group, ReplicatedDict
from canonical_raft.testing import LocalCluster

pytestmark = pytest.mark.timeout(240)

KEYS = 2_000_000
LOAD_SECONDS = 15


def test_a_big_dict_keeps_its_leader_through_snapshots(tmp_path, capsys):
    def make():
        return Group(d=ReplicatedDict(timeout=60))

    # libraft's default timings (1 s election timeout), snapshots often.
    with LocalCluster(3, make, tmp_path, election_timeout=1.0, heartbeat_timeout=0.1,
                      snapshot_threshold=256, snapshot_trailing=64) as cluster:
        for node, group in zip(cluster.nodes, cluster.fsms):
            group.attach(node)
        leader = cluster.leader()
        term = leader.stats()["term"]
        d = cluster.fsm(leader.id)["d"]
        for k in range(KEYS // 10_000):
            d.set_many({f"k{k:04d}{i:05d}": i for i in range(10_000)}).result(60)
        before = [n.stats()["snapshot_index"] for n in cluster.nodes]
        start, sets, worst = time.monotonic(), 0, 0.0
        while time.monotonic() - start < LOAD_SECONDS:
            t0 = time.perf_counter()
            for f in [d.set(f"load{sets + i}", i) for i in range(64)]:
                f.result(60)
            worst = max(worst, time.perf_counter() - t0)
            sets += 64
        stats = [n.stats() for n in cluster.nodes]
        after = [s["snapshot_index"] for s in stats]
        with capsys.disabled():
            print(f"\n{KEYS:,}-key dict, {LOAD_SECONDS} s of load: {sets / LOAD_SECONDS:,.0f} "
                  f"sets/s, slowest batch of 64 {worst * 1e3:.0f} ms, snapshot_index "
                  f"{before} -> {after}, term {term} -> {stats[0]['term']}")
        assert len(d) == KEYS + sets
        assert all(a - b >= 3 * 256 for a, b in zip(after, before)), (before, after)
        assert cluster.leader().id == leader.id
        assert {s["term"] for s in stats} == {term}
