"""In-process 3-node clusters on loopback: replication, futures, asyncio, barrier, properties."""

import asyncio
import concurrent.futures
import threading

import pytest

import canonical_raft as raft
from canonical_raft.testing import free_ports, wait_until
from fsms import Counter, Recorder

pytestmark = pytest.mark.timeout(60)


def test_apply_returns_fsm_result_and_replicates(cluster):
    c = cluster(3)
    leader = c.leader()
    fut = leader.apply(b"5")
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=20) == 5
    assert leader.apply(b"-2").result(timeout=20) == 3
    assert leader.apply(b"10").result(timeout=20) == 13
    c.wait_converged(key=lambda f: f.value, expected=13)
    assert [f.value for f in c.fsms] == [13, 13, 13]
    # each node applied exactly three commands, on its own raft thread
    wait_until(lambda: all(f.applies == 3 for f in c.fsms), 10)
    main = threading.get_ident()
    for f in c.fsms:
        assert len(f.threads) == 1 and main not in f.threads
    assert len(set().union(*(f.threads for f in c.fsms))) == 3


def test_every_fsm_ends_identical(cluster):
    c = cluster(3, fsm_factory=Recorder)
    leader = c.leader()
    sent = [f"cmd-{i}".encode() for i in range(200)]
    futures = [leader.apply(cmd) for cmd in sent]
    results = [f.result(timeout=30) for f in futures]
    assert results == list(range(1, 201))
    c.wait_converged(key=lambda f: f.commands, expected=sent)
    assert all(f.commands == sent for f in c.fsms)


def test_apply_many_results_in_order(cluster):
    c = cluster(3)
    leader = c.leader()
    futures = leader.apply_many([b"1", b"2", b"3", b"4"])
    assert isinstance(futures, list) and len(futures) == 4
    assert all(isinstance(f, concurrent.futures.Future) for f in futures)
    assert [f.result(timeout=20) for f in futures] == [1, 3, 6, 10]
    # any iterable, and large batches
    futures = leader.apply_many(b"1" for _ in range(300))
    assert [f.result(timeout=30) for f in futures] == list(range(11, 311))
    assert leader.apply_many([]) == []
    c.wait_converged(key=lambda f: f.value, expected=310)


def test_apply_many_mixed_with_apply_keeps_submission_order(cluster):
    c = cluster(3, fsm_factory=Recorder)
    leader = c.leader()
    expected = []
    futures = []
    for i in range(30):
        cmd = b"single-%d" % i
        expected.append(cmd)
        futures.append(leader.apply(cmd))
        batch = [b"batch-%d-%d" % (i, j) for j in range(i % 4)]
        expected.extend(batch)
        futures.extend(leader.apply_many(batch))
    assert [f.result(timeout=30) for f in futures] == list(range(1, len(expected) + 1))
    c.wait_converged(key=lambda f: f.commands, expected=expected)


def test_apply_async_under_asyncio_run(cluster):
    c = cluster(3)
    leader = c.leader()
    follower = c.followers(leader)[0]

    async def main():
        first = await leader.apply_async(b"7")
        rest = await asyncio.gather(*(leader.apply_async(b"1") for _ in range(20)))
        with pytest.raises(raft.NotLeaderError):
            await follower.apply_async(b"1")
        return first, rest

    first, rest = asyncio.run(main())
    assert first == 7
    assert sorted(rest) == list(range(8, 28))
    c.wait_converged(key=lambda f: f.value, expected=27)


def test_apply_async_fsm_exception(cluster):
    c = cluster(3)
    leader = c.leader()

    async def main():
        with pytest.raises(ValueError):
            await leader.apply_async(b"not a number")
        return await leader.apply_async(b"2")

    assert asyncio.run(main()) == 2


def test_barrier_after_pipelined_applies(cluster):
    c = cluster(3)
    leader = c.leader()
    futures = [leader.apply(b"1") for _ in range(150)]
    barrier = leader.barrier()
    assert isinstance(barrier, concurrent.futures.Future)
    assert barrier.result(timeout=30) is None
    # the barrier resolved: every earlier command is applied on the leader's FSM
    assert c.fsm(leader.id).value == 150
    assert all(f.done() for f in futures) or wait_until(lambda: all(f.done() for f in futures), 5)
    assert sorted(f.result() for f in futures) == list(range(1, 151))
    c.wait_converged(key=lambda f: f.value, expected=150)


def test_barrier_on_follower_fails_not_leader(cluster):
    c = cluster(3)
    leader = c.leader()
    follower = c.followers(leader)[0]
    exc = follower.barrier().exception(timeout=10)
    assert isinstance(exc, raft.NotLeaderError)


def test_properties(cluster):
    c = cluster(3)
    leader = c.leader()
    leader.apply(b"3").result(timeout=20)
    c.wait_converged(key=lambda f: f.value, expected=3)
    expected_leader = c.servers[leader.id - 1]
    for node, server in zip(c.nodes, c.servers):
        assert node.id == server.id and isinstance(node.id, int)
        assert node.address == server.address
        assert isinstance(node.state, raft.State)
        assert isinstance(node.is_leader, bool)
        assert node.is_leader == (node.id == leader.id)
        assert node.state == (raft.State.LEADER if node.id == leader.id else raft.State.FOLLOWER)
        assert isinstance(node.leader, raft.Server)
        assert node.leader == expected_leader
        assert node.leader.role == raft.Role.VOTER
        config = node.configuration
        assert isinstance(config, list)
        assert all(isinstance(s, raft.Server) for s in config)
        assert sorted(config) == sorted(c.servers)
        assert all(isinstance(s.role, raft.Role) and s.role == raft.Role.VOTER for s in config)


def test_stats(cluster):
    c = cluster(3)
    leader = c.leader()
    for _ in range(5):
        leader.apply(b"1").result(timeout=20)
    c.wait_converged(key=lambda f: f.value, expected=5)
    keys = {"state", "term", "leader_id", "commit_index", "last_applied", "last_index",
            "snapshot_index", "error"}

    def settled():
        stats = [n.stats() for n in c.nodes]
        return stats if len({s["last_applied"] for s in stats}) == 1 else None

    all_stats = wait_until(settled, 10, message="equal last_applied on every node")
    for node, stats in zip(c.nodes, all_stats):
        assert isinstance(stats, dict)
        assert keys <= set(stats), keys - set(stats)
        assert stats["state"] in (node.state, node.state.name, node.state.name.lower())
        assert stats["leader_id"] == leader.id
        assert stats["term"] >= 1
        assert stats["last_applied"] >= 5 + 1  # 5 commands after the bootstrap entry
        assert stats["commit_index"] >= stats["last_applied"]
        assert stats["last_index"] >= stats["commit_index"]
        assert stats["snapshot_index"] == 0  # default threshold not reached
        assert not stats["error"]
    assert len({s["term"] for s in all_stats}) == 1


def test_leader_is_none_before_election(make_node):
    # a node of a 3-node configuration whose peers never start can't elect anyone
    p = free_ports(3)
    servers = [raft.Server(i + 1, f"127.0.0.1:{p[i]}") for i in range(3)]
    node = make_node(id=1, address=servers[0].address)
    assert node.id == 1 and node.address == servers[0].address
    node.bootstrap(servers)
    node.start()
    for _ in range(5):
        assert node.leader is None
        assert node.is_leader is False
        assert node.state in (raft.State.FOLLOWER, raft.State.CANDIDATE)
    assert sorted(node.configuration) == servers
    with pytest.raises(TimeoutError):
        node.wait_for_leader(timeout=0.3)


def test_wait_for_leader_returns_leader_server(cluster):
    c = cluster(3)
    leader = c.leader()
    expected = c.servers[leader.id - 1]
    for node in c.nodes:
        server = node.wait_for_leader(timeout=10)
        assert isinstance(server, raft.Server)
        assert server == expected


def test_on_state_change(cluster):
    c = cluster(3, start=False)
    seen = {id: [] for id in range(1, 4)}
    threads = set()
    for id in range(1, 4):
        node = c.node(id)

        def observer(n, id=id):
            threads.add(threading.get_ident())
            seen[id].append((n.state, n.leader))

        node.on_state_change(observer)
    c.start()
    leader = c.leader()
    lead_server = c.servers[leader.id - 1]
    wait_until(lambda: (raft.State.LEADER, lead_server) in seen[leader.id], 10,
               message="the leader's observer to see itself LEADER")
    for node in c.followers(leader):
        wait_until(lambda: (raft.State.FOLLOWER, lead_server) in seen[node.id], 10,
                   message=f"follower {node.id}'s observer to see the leader")
    assert threading.get_ident() not in threads


def test_counter_fsm_base_class_and_duck_typing(cluster):
    class Duck:  # not a raft.FSM subclass
        def __init__(self):
            self.value = 0

        def apply(self, command):
            self.value += int(command)
            return ("duck", self.value)

        def snapshot(self):
            return str(self.value).encode()

        def restore(self, data):
            self.value = int(data)

    c = cluster(3, fsm_factory=Duck)
    leader = c.leader()
    assert leader.apply(b"4").result(timeout=20) == ("duck", 4)
    c.wait_converged(key=lambda f: f.value, expected=4)
    assert isinstance(Counter(), raft.FSM)


def test_new_leader_after_leader_closes(cluster):
    c = cluster(3, fsm_factory=Recorder)
    leader = c.leader()
    sent = [b"a%d" % i for i in range(50)]
    for f in leader.apply_many(sent):
        f.result(timeout=20)
    old = leader.id
    c.kill(old)
    leader = c.leader(timeout=30)
    assert leader.id != old
    assert leader.apply(b"after").result(timeout=20) == 51
    c.wait_converged(key=lambda f: f.commands, expected=sent + [b"after"])
    # the old leader comes back as a follower and catches up
    fsm = Recorder()
    c.restart(old, fsm)
    c.wait_converged(key=lambda f: f.commands, expected=sent + [b"after"], timeout=30)
