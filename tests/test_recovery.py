"""recover(): forcing a new configuration after losing quorum, following
the procedure of libraft's raft_recover (see README, "Recovery")."""

import shutil

import pytest

import canonical_raft as raft
from canonical_raft.testing import free_address, wait_until
from fsms import Counter, Recorder


# every test has a timeout; some set a longer one
pytestmark = pytest.mark.timeout(60)


def lose_quorum(c, commands):
    """Write ``commands`` through the cluster's leader, then stop every node
    (step 1); return the id of the node with the highest term and longest log
    (the one to recover on, step 2)."""
    leader = c.leader()
    for cmd in commands:
        leader.apply(cmd).result(timeout=20)
    c.wait_converged(key=lambda f: f.commands, expected=commands)
    stats = {n.id: n.stats() for n in c.running}
    for id in [n.id for n in c.running]:
        c.kill(id)
    return max(stats, key=lambda id: (stats[id]["term"], stats[id]["last_index"]))


@pytest.mark.timeout(60)
def test_three_nodes_down_to_one_survivor(cluster):
    c = cluster(3, fsm_factory=Recorder, snapshot_threshold=8, snapshot_trailing=2)
    sent = [b"c%d" % i for i in range(12)]        # past a snapshot, and a log tail
    survivor = lose_quorum(c, sent)
    # Nodes 1-3 are gone but for the survivor: alone it cannot elect itself.
    node = c.restart(survivor)
    with pytest.raises(TimeoutError):
        node.wait_for_leader(timeout=1.5)
    assert not node.is_leader
    c.kill(survivor)

    fsm = Recorder()
    node = c.create(survivor, fsm)
    node.recover([c.servers[survivor - 1]])
    node.start()
    assert node.wait_for_leader(timeout=20) == c.servers[survivor - 1]
    wait_until(lambda: node.is_leader, 20)
    assert node.configuration == [c.servers[survivor - 1]]
    assert node.stats()["voters"] == 1
    node.barrier().result(timeout=20)
    assert fsm.commands == sent                    # its state is intact
    assert node.apply(b"after").result(timeout=20) == len(sent) + 1
    assert fsm.commands == sent + [b"after"]

    # the recovered configuration is durable: a plain restart keeps it
    fsm = Recorder()
    node = c.restart(survivor, fsm)
    wait_until(lambda: node.is_leader, 20)
    node.barrier().result(timeout=20)
    assert fsm.commands == sent + [b"after"]
    assert node.configuration == [c.servers[survivor - 1]]


@pytest.mark.timeout(60)
def test_recovered_node_grows_the_cluster_back(cluster):
    c = cluster(3, fsm_factory=Recorder)
    sent = [b"a", b"b", b"c"]
    survivor = lose_quorum(c, sent)
    node = c.create(survivor)
    node.recover([c.servers[survivor - 1]])
    node.start()
    wait_until(lambda: node.is_leader, 20)
    # fresh replacements for the lost two: empty data dirs, no bootstrap
    fresh = []
    for id in (11, 12):
        fsm = Recorder()
        new = c.new_node(id, fsm)
        new.start()
        assert node.add(id, new.address).result(timeout=30) is None
        fresh.append((new, fsm))
    assert node.stats()["voters"] == 3
    assert node.apply(b"d").result(timeout=20) == 4
    for new, fsm in fresh:
        wait_until(lambda: fsm.commands == sent + [b"d"], 20, message=f"node {new.id} to catch up")
    # and it tolerates losing one node again
    c.kill(survivor)
    lead = wait_until(lambda: next((n for n, _ in fresh if n.is_leader), None), 20,
                      message="a new leader among the fresh nodes")
    assert lead.apply(b"e").result(timeout=20) == 5


@pytest.mark.timeout(60)
def test_recover_two_survivors_by_copying_the_data_dir(cluster):
    c = cluster(3, fsm_factory=Recorder)
    sent = [b"x", b"y"]
    recover_on = lose_quorum(c, sent)
    lost = next(id for id in (1, 2, 3) if id != recover_on)     # its disk is gone
    other = next(id for id in (1, 2, 3) if id not in (recover_on, lost))
    keep = sorted([c.servers[recover_on - 1], c.servers[other - 1]])

    node = c.create(recover_on)
    node.recover(keep)
    c.kill(recover_on)               # recover() itself starts nothing; close the object
    # step 3: the other survivor gets a copy of the recovered data dir
    shutil.rmtree(c.data_dir(other))
    shutil.copytree(c.data_dir(recover_on), c.data_dir(other))
    # step 4: restart them
    fsms = {}
    for id in (recover_on, other):
        fsms[id] = Recorder()
        c.restart(id, fsms[id])
    leader = c.leader()
    assert sorted(leader.configuration) == keep
    assert leader.stats()["voters"] == 2
    assert leader.apply(b"z").result(timeout=20) == 3
    c.wait_converged(key=lambda f: f.commands, expected=sent + [b"z"])


def test_recover_arguments_and_timing(make_node):
    node = make_node()
    with pytest.raises(ValueError):
        node.recover([])
    with pytest.raises(ValueError):
        node.recover([(1, node.address), (1, free_address())])
    with pytest.raises((TypeError, ValueError)):
        node.recover([("one", node.address)])
    node.bootstrap([(node.id, node.address)])
    node.start()
    with pytest.raises(raft.RaftError):          # only before start()
        node.recover([(node.id, node.address)])
    wait_until(lambda: node.is_leader, 20)
    node.close()
    with pytest.raises(raft.RaftError):          # nor after close()
        node.recover([(node.id, node.address)])


@pytest.mark.timeout(60)
def test_recover_keeps_roles(cluster):
    c = cluster(3, fsm_factory=Counter)
    leader = c.leader()
    leader.apply(b"7").result(timeout=20)
    c.wait_converged(key=lambda f: f.value, expected=7)
    survivor = leader.id
    for id in (1, 2, 3):
        c.kill(id)
    spare = raft.Server(9, free_address(), raft.Role.SPARE)
    node = c.create(survivor)
    node.recover([c.servers[survivor - 1], spare])
    node.start()
    wait_until(lambda: node.is_leader, 20)
    assert sorted(node.configuration) == sorted([c.servers[survivor - 1], spare])
    assert node.stats()["voters"] == 1 and node.stats()["servers"] == 2
    node.barrier().result(timeout=20)
    assert c.fsm(survivor).value == 7
