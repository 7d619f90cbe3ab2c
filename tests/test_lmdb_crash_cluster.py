"""Crash points of a storage="lmdb" cluster (issue 16): three node
processes under load, and round after round one of them SIGKILLed at a
random moment (the leader or a follower) and started again. Killed leaders
come back with an uncommitted tail the new leader truncates; followers that
missed more than the trailing entries get the leader's snapshot installed;
appends, checkpoints and snapshots run all along. At the end every node
holds 0, 1, 2, ... in order, once each, the same on every node, and every
number whose future resolved is there.

CANONICAL_RAFT_CRASH_ROUNDS (default 8 here) sets the rounds: the soak in
bench/README.md ran hundreds."""

import os
import random
import time
from pathlib import Path

import pytest

from canonical_raft.testing import free_address, wait_until
from canonical_raft.testing import procs

HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("CANONICAL_RAFT_CRASH_ROUNDS", "8"))
IDS = (1, 2, 3)


class Cluster:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.addresses = {i: free_address() for i in IDS}
        self.procs = {}
        self.acked = -1

    def start(self, i, bootstrap=False):
        servers = procs.format_servers(self.addresses)
        argv = procs.python_argv("lmdb_crash_child", "--id", str(i),
                                 "--address", self.addresses[i],
                                 "--data-dir", str(self.tmp_path / f"n{i}"),
                                 "--snapshot-every", "300",
                                 *(["--bootstrap", servers] if bootstrap else []))
        self.procs[i] = procs.Process(argv, name=f"node {i}", log_path=self.tmp_path / f"n{i}.log",
                                      env=procs.child_env(HERE), on_event=self.on_event)

    def on_event(self, proc, name, data):
        if name == "acked":
            self.acked = max(self.acked, data["upto"])

    def leader(self, timeout=20):
        """The node that says it leads, once one does."""
        found = []

        def one():
            for i, p in self.procs.items():
                try:
                    if p.call("role", timeout=5)["leader"]:
                        found.append(i)
                        return True
                except procs.ProcessError:
                    pass
            return False
        wait_until(one, timeout=timeout, message="no leader")
        return found[-1]

    def load(self):
        """Start the load on the leader, after a barrier there (so it goes
        on from everything committed so far)."""
        for _ in range(5):
            leader = self.leader()
            try:
                self.procs[leader].call("items", timeout=30)
                self.procs[leader].call("load", timeout=10)
                return leader
            except procs.ProcessError:
                time.sleep(0.2)         # it lost leadership meanwhile: find the next one
        raise AssertionError("could not start the load on a leader 5 times")

    def stop(self):
        procs.stop_all(self.procs.values())


@pytest.mark.timeout(120 + 12 * ROUNDS)
def test_sigkill_at_random_points_of_a_cluster_loses_nothing_acknowledged(tmp_path):
    rnd = random.Random(int(os.environ.get("CANONICAL_RAFT_CRASH_SEED", "1")))
    cluster = Cluster(tmp_path)
    try:
        for i in IDS:
            cluster.start(i, bootstrap=True)
        for p in cluster.procs.values():
            p.wait_ready()
        leader = cluster.load()
        killed_leaders = installs = 0
        for _ in range(ROUNDS):
            time.sleep(rnd.uniform(0.1, 0.8))
            victim = leader if rnd.random() < 0.5 else rnd.choice([i for i in IDS if i != leader])
            killed_leaders += victim == leader
            installs += cluster.procs[victim].call("role", timeout=10)["installs"]
            cluster.procs[victim].kill()
            cluster.procs[victim].stop()
            if rnd.random() < 0.5:
                time.sleep(rnd.uniform(0.2, 1.0))   # the others go on without it
            cluster.start(victim)
            cluster.procs[victim].wait_ready()
            leader = cluster.load() if victim == leader else leader
        time.sleep(0.5)
        acked = cluster.acked       # the load goes on: what was acknowledged by now
        leader = cluster.leader()
        n = len(cluster.procs[leader].call("items", timeout=30)["items"])   # after a barrier

        def held():
            return {i: cluster.procs[i].call("held", timeout=30)["items"] for i in IDS}
        wait_until(lambda: all(len(items) >= n for items in held().values()),
                   timeout=30, message="the nodes did not converge")
        final = held()
        installs += sum(cluster.procs[i].call("role", timeout=10)["installs"] for i in IDS)
    finally:
        cluster.stop()
    for i, items in final.items():
        assert items[:n] == list(range(n)), f"node {i}: not 0..{n - 1} in order, once each"
    assert acked > 100 and n > acked, (acked, n)
    print(f"{ROUNDS} rounds ({killed_leaders} leaders killed), {acked + 1} acknowledged, "
          f"{n} held, {installs} snapshots installed by restarted nodes")
