"""batteries, issue 14 item 5, on 3-node clusters: the structure tests of
test_batteries_structures run again with every node's dict in LMDB; a
follower behind the leader's log installs its snapshot (a new environment,
swapped in); a node whose store holds another cluster's state is refused."""

import os
import shutil

import pytest

pytest.importorskip("lmdb")

import canonical_raft as raft  # noqa: E402
from canonical_raft.batteries import (Group, ReplicatedCounter, ReplicatedDict,  # noqa: E402
                                      ReplicatedLock, ReplicatedQueue, StoreError)
from canonical_raft.testing import LocalCluster, wait_until  # noqa: E402

# The structure tests, on LMDB dicts (their `cluster` fixture is replaced below).
from test_batteries_structures import (followers, leader,  # noqa: E402,F401
                                       test_bad_commands_fail_alike_everywhere_and_change_nothing,
                                       test_dict_cas,
                                       test_dict_writes_on_the_leader_are_read_on_every_node,
                                       test_group_routes_by_structure_name,
                                       test_iteration_while_the_raft_thread_writes,
                                       test_linearizable_reads_on_the_leader_and_on_a_follower,
                                       test_set_many_is_one_command_all_or_nothing,
                                       test_values_read_are_copies,
                                       test_writes_on_a_follower_fail_with_not_leader)

pytestmark = pytest.mark.timeout(90)


class Stores:
    """Groups whose dict is in LMDB, one store per Group made (LocalCluster
    makes them for ids 1..n in order); all closed at the end."""

    def __init__(self, base):
        self.base = base
        self.groups = []

    def make(self, path=None):
        path = path or self.base / f"store{len(self.groups)}"
        group = Group(d=ReplicatedDict(path=path), c=ReplicatedCounter(), q=ReplicatedQueue(),
                      lock=ReplicatedLock())
        self.groups.append(group)
        return group

    def restart(self, cluster, id, wipe=False):
        """Stop node ``id``, close its store, start it again on the same one
        (emptied first if ``wipe``)."""
        old = cluster.fsm(id)
        cluster.kill(id)
        old.close()
        path = old["d"].path
        if wipe:
            shutil.rmtree(path)
        group = self.make(path)
        node = cluster.restart(id, group)
        group.attach(node)
        return group

    def close(self):
        for group in self.groups:
            group.close()


def attach_all(cluster):
    for node, group in zip(cluster.nodes, cluster.fsms):
        if group.node is not node:
            group.attach(node)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    stores = Stores(tmp_path_factory.mktemp("stores"))
    try:
        with LocalCluster(3, stores.make, tmp_path_factory.mktemp("lmdb-cluster")) as c:
            attach_all(c)
            assert all(type(g["d"]).__name__ == "LMDBDict" for g in c.fsms)
            yield c
    finally:
        stores.close()


def dicts(group):
    """What wait_converged compares: the dict's items in order, the counter."""
    return list(group["d"].items()), group["c"].get()


def test_a_lagging_follower_installs_the_leaders_snapshot(tmp_path):
    stores = Stores(tmp_path / "stores")
    try:
        with LocalCluster(3, stores.make, tmp_path, snapshot_threshold=32,
                          snapshot_trailing=8) as c:
            attach_all(c)

            def write(tag, n):
                group = c.fsm(c.leader().id)
                for i in range(n):           # one entry each
                    group["d"].set(f"{tag}{i}", i).result(10)
                    group["c"].incr().result(10)
                    if i % 9 == 0:
                        group["d"].popitem()

            write("a", 40)
            c.wait_converged(key=dicts)
            follower = next(n.id for n in c.nodes if not n.is_leader)
            path = c.fsm(follower)["d"].path
            c.kill(follower)                 # down while the log is compacted past it
            c.fsm(follower).close()
            write("b", 80)
            group = stores.make(path)
            c.restart(follower, group)
            group.attach(c.node(follower))
            c.wait_converged(key=dicts, timeout=30)
            # It took the leader's snapshot: a new environment, swapped in.
            info = group["d"].store_info()
            assert info["installed"] >= 1 and info["resumed_from"] is None
            with open(os.path.join(path, "CURRENT")) as f:
                current = f.read().strip()
            assert sorted(os.listdir(path)) == ["CURRENT", "canonical_raft.lock", current]
            assert current != "env-1"            # the old environments are gone

            # Restarted again: it resumes from its own store, skipping what it holds.
            write("c", 20)
            c.wait_converged(key=dicts)
            group = stores.restart(c, follower)
            c.wait_converged(key=dicts)
            info = group["d"].store_info()
            assert info["resumed_from"] is not None and info["skipped"] > 0

            # Its store wiped: rebuilt from the leader (a snapshot, then the log).
            group = stores.restart(c, follower, wipe=True)
            write("d", 5)
            c.wait_converged(key=dicts, timeout=30)
            assert len(group["d"]) == len(c.fsm(c.leader().id)["d"])
    finally:
        stores.close()


def test_a_store_of_another_cluster_is_refused_at_start(tmp_path):
    stores = Stores(tmp_path / "stores")
    try:
        with LocalCluster(1, stores.make, tmp_path / "a", snapshot_threshold=16,
                          snapshot_trailing=4) as a:
            attach_all(a)
            for i in range(40):
                a.fsm(1)["d"].set(f"a{i}", i).result(10)
            wait_until(lambda: a.node(1).stats()["snapshot_index"] > 0)
            address, data_dir = a.servers[0].address, a.data_dir(1)
        with LocalCluster(1, stores.make, tmp_path / "b") as b:
            attach_all(b)
            b.fsm(1)["d"].set("b", 1).result(10)
            store_b = b.fsm(1)["d"].path
        stores.close()
        # Cluster a's node, given cluster b's store by mistake.
        group = stores.make(store_b)
        with raft.Node(1, address, data_dir, group) as node:
            with pytest.raises(StoreError, match="another log") as info:
                node.start()
        assert store_b in str(info.value) and "Move it away" in str(info.value)
        assert group["d"]["b"] == 1              # refused: nothing of it changed
    finally:
        stores.close()
