"""batteries: a rolling upgrade, mixed versions in one cluster. Commands of
a version above the active one fail on every node, whatever code it runs,
so the replicas stay identical; activation turns them on; a node left
behind knows it is outdated; snapshots cross versions."""

import pytest

from canonical_raft import batteries
from canonical_raft.batteries import Group, ReplicatedDict, ReplicatedObject, replicated
from canonical_raft.testing import LocalCluster, wait_until

pytestmark = pytest.mark.timeout(120)


class InventoryV1(ReplicatedObject):
    def __init__(self):
        super().__init__()
        self.stock = {}

    @replicated
    def add(self, item, n):
        self.stock[item] = self.stock.get(item, 0) + n
        return self.stock[item]


class InventoryV2(InventoryV1):
    @replicated(version=2)
    def remove(self, item):
        return self.stock.pop(item, 0)


def old_code():
    return Group(inv=InventoryV1())


def new_code():
    return Group(inv=InventoryV2(), audit=ReplicatedDict(version=2))


def attach_all(cluster):
    for node, group in zip(cluster.nodes, cluster.fsms):
        if group.node is not node:
            group.attach(node)


def key(group):
    return dict(group["inv"].stock), group.active_version


def lead_on(cluster, id):
    """Make node ``id`` the leader; its group."""
    if cluster.leader().id != id:
        cluster.leader().transfer(id).result(10)
        wait_until(lambda: cluster.leader().id == id, message=f"node {id} to lead")
    return cluster.fsm(id)


@pytest.fixture
def mixed(tmp_path):
    """Nodes 1 and 2 run the new code, node 3 the old."""
    with LocalCluster(3, new_code, tmp_path, snapshot_threshold=64, snapshot_trailing=4) as c:
        c.restart(3, old_code())
        attach_all(c)
        yield c


def test_the_new_codes_commands_fail_alike_until_activated(mixed):
    new = lead_on(mixed, 1)
    assert new.supported_version == 2 and mixed.fsm(3).supported_version == 1
    assert new["inv"].add("apple", 5).result(10) == 5        # version 1: runs everywhere
    with pytest.raises(batteries.UnsupportedCommandError, match="activate"):
        new["inv"].remove("apple").result(10)                  # version 2: fails on every node
    with pytest.raises(batteries.UnsupportedCommandError):
        new["audit"].set("who", "me").result(10)               # a structure of version 2
    mixed.wait_converged(key=key)
    assert {repr(key(g)) for g in mixed.fsms} == {repr(({"apple": 5}, 1))}
    assert len(new["audit"]) == 0

    # The old node cannot activate what it does not run.
    old = lead_on(mixed, 3)
    with pytest.raises(ValueError, match="up to 1"):
        old.activate(2)

    # Upgrade node 3, then activate: version 2 runs everywhere.
    mixed.restart(3, new_code())
    attach_all(mixed)
    new = lead_on(mixed, 1)
    assert new.activate(2).result(10) == 2
    assert new.activate(1).result(10) == 2                    # never lowered
    assert new["inv"].remove("apple").result(10) == 5
    new["audit"].set("who", "me").result(10)
    mixed.wait_converged(key=lambda g: (key(g), g["audit"].copy()))
    assert all(g["audit"]["who"] == "me" and g["inv"].stock == {} for g in mixed.fsms)


def test_an_old_node_installs_a_new_nodes_snapshot(mixed):
    new = lead_on(mixed, 1)
    mixed.kill(3)
    for i in range(150):                                       # snapshots, the log compacted
        new["inv"].add(f"i{i % 10}", 1).result(10)
    wait_until(lambda: mixed.node(1).stats()["snapshot_index"] > 100)
    old, restored = old_code(), []
    restore = old.restore
    old.restore = lambda data: (restored.append(len(data)), restore(data))[1]
    mixed.restart(3, old)                                      # catches up by a snapshot
    attach_all(mixed)
    mixed.wait_converged(key=key, timeout=20)
    assert restored                                            # with "audit" in it, skipped
    assert mixed.fsm(3)["inv"].stock == {f"i{i}": 15 for i in range(10)}


def test_activating_past_a_node_leaves_it_outdated(mixed):
    new = lead_on(mixed, 1)
    new["inv"].add("pear", 1).result(10)
    new.activate(2).result(10)                                 # node 3 still runs version 1
    wait_until(lambda: mixed.fsm(3).active_version == 2)
    old = mixed.fsm(3)
    with pytest.raises(batteries.OutdatedReplicaError, match="upgrade"):
        old.read_point()
    with pytest.raises(batteries.OutdatedReplicaError):
        old["inv"]._read("local")
    new["inv"].remove("pear").result(10)                       # the new nodes go on
    # Upgraded, node 3 rebuilds the same state from its log.
    mixed.restart(3, new_code())
    attach_all(mixed)
    mixed.wait_converged(key=key)
    assert mixed.fsm(3).read_point() is None and mixed.fsm(3)["inv"].stock == {}
