"""batteries: @replicated methods of a user's class become commands."""

import concurrent.futures

import pytest

from canonical_raft import batteries
from canonical_raft.batteries import Group, ReplicatedObject, replicated
from canonical_raft.testing import LocalCluster, wait_until

pytestmark = pytest.mark.timeout(90)


class Bank(ReplicatedObject):
    def __init__(self):
        super().__init__()
        self.accounts = {}
        self.transfers = 0
        self._cache = object()          # private: not replicated state

    @replicated
    def open(self, name, balance=0):
        if name in self.accounts:
            raise ValueError(f"{name} exists")
        self.accounts[name] = balance

    @replicated
    def transfer(self, src, dst, amount):
        if self.accounts[src] < amount:
            raise ValueError("insufficient funds")
        self.accounts[src] -= amount
        self.accounts[dst] += amount
        self.transfers += 1
        return self.accounts[src]

    @replicated
    def open_pair(self, a, b):
        self.open(a)                   # a replicated call while applying: part of this command
        self.open(b, balance=1)
        return sorted(self.accounts)

    @replicated(version=2)
    def close(self, name):
        return self.accounts.pop(name)

    def total(self):                    # a plain method: a local read
        return sum(self.accounts.values())


def attach_all(cluster):
    for node, fsm in zip(cluster.nodes, cluster.fsms):
        if fsm.group is None or fsm.group.node is not node:
            fsm.attach(node)


def key(bank):
    return dict(bank.accounts), bank.transfers


@pytest.fixture
def cluster(tmp_path):
    with LocalCluster(3, Bank, tmp_path, snapshot_threshold=64, snapshot_trailing=4) as c:
        attach_all(c)
        yield c


def leader_bank(cluster):
    return cluster.fsm(cluster.leader().id)


def test_methods_become_commands(cluster):
    bank = leader_bank(cluster)
    f = bank.open("alice", balance=100)
    assert isinstance(f, concurrent.futures.Future) and f.result(10) is None
    bank.open("bob").result(10)
    assert bank.transfer("alice", "bob", 30).result(10) == 70
    with pytest.raises(ValueError, match="insufficient"):      # the method's exception, same everywhere
        bank.transfer("bob", "alice", 31).result(10)
    with pytest.raises(ValueError, match="exists"):
        bank.open("bob").result(10)
    with pytest.raises(KeyError):
        bank.transfer("carol", "bob", 1).result(10)
    assert bank.open_pair("c1", "c2").result(10) == ["alice", "bob", "c1", "c2"]
    cluster.wait_converged(key=key)
    for b in cluster.fsms:
        assert b.accounts == {"alice": 70, "bob": 30, "c1": 0, "c2": 1} and b.transfers == 1
        assert b.total() == 101


def test_arguments_are_checked_at_the_call(cluster):
    bank = leader_bank(cluster)
    with pytest.raises(TypeError, match="arguments of open"):
        bank.open(("a", "tuple"))
    with pytest.raises(TypeError, match="keyword arguments of open"):
        bank.open("x", balance=object())


def test_versioned_methods_wait_for_activation(cluster):
    bank = leader_bank(cluster)
    bank.open("z", 5).result(10)
    with pytest.raises(batteries.UnsupportedCommandError):
        bank.close("z").result(10)
    assert bank.group.supported_version == 2
    bank.group.activate(2).result(10)
    assert bank.close("z").result(10) == 5


def test_state_snapshots_and_restores(cluster):
    bank = leader_bank(cluster)
    bank.open("a", 1000).result(10)
    bank.open("b").result(10)
    for _ in range(100):
        bank.transfer("a", "b", 1).result(10)
    # Followers snapshot once they have applied past the threshold.
    wait_until(lambda: min(n.stats()["snapshot_index"] for n in cluster.nodes) > 0,
               timeout=20, message="every node to take a snapshot")
    restored = []

    class Watched(Bank):
        def restore_state(self, state):
            restored.append(state)
            super().restore_state(state)

    follower = next(n.id for n in cluster.nodes if not n.is_leader)
    cluster.restart(follower, Watched())
    attach_all(cluster)
    cluster.wait_converged(key=key)
    assert restored and set(restored[0]) == {"accounts", "transfers"}
    assert cluster.fsm(follower).accounts == {"a": 900, "b": 100}


def test_misuse(cluster, tmp_path):
    with pytest.raises(batteries.NotAttachedError):
        Bank().open("x")
    class Renamed(ReplicatedObject):
        def f(self):
            pass
        g = replicated(f)
    assert "g" in Renamed._ops and "f" not in Renamed._ops     # the command names the attribute
    with pytest.raises(ValueError):
        replicated(version=0)
    assert Bank.transfer.version == 1 and Bank.close.version == 2
    assert Bank.transfer.__doc__ is None or isinstance(Bank.transfer.__doc__, str)


def test_a_group_of_objects_and_structures(tmp_path):
    def make():
        return Group(bank=Bank(), log=batteries.ReplicatedQueue())

    with LocalCluster(3, make, tmp_path) as c:
        for node, group in zip(c.nodes, c.fsms):
            group.attach(node)
        g = c.fsm(c.leader().id)
        g["bank"].open("q", 1).result(10)
        g["log"].put("opened q").result(10)
        c.wait_converged(key=lambda g: (g["bank"].accounts, g["log"].to_list()))
