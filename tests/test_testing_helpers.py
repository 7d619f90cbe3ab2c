"""canonical_raft.testing.LocalCluster and the raft_cluster pytest fixture."""

import socket
import textwrap

import pytest

import canonical_raft as raft
from canonical_raft import testing
from canonical_raft.testing import LocalCluster, RecordingFSM

# The tests run from the source tree, where the pytest11 entry point of an
# installed canonical_raft is not there: load the plugin by name.
pytest_plugins = ["pytester", "canonical_raft.pytest_plugin"]


class Counter(raft.FSM):
    def __init__(self):
        self.value = 0

    def apply(self, command):
        self.value += int(command)
        return self.value

    def snapshot(self):
        return str(self.value).encode()

    def restore(self, data):
        self.value = int(data)


def is_closed(node):
    fut = node.apply(b"1")
    return fut.done() and isinstance(fut.exception(), raft.ShutdownError)


@pytest.mark.timeout(60)
def test_local_cluster_replicates(tmp_path):
    with LocalCluster(3, Counter, tmp_path) as cluster:
        assert [n.id for n in cluster.nodes] == [1, 2, 3]
        addresses = [n.address for n in cluster.nodes]
        assert len(set(addresses)) == 3
        assert all(a.startswith("127.0.0.1:") for a in addresses)
        assert [s.address for s in cluster.servers] == addresses
        assert all((tmp_path / f"node{i}").is_dir() for i in (1, 2, 3))
        assert len({id(f) for f in cluster.fsms}) == 3

        leader = cluster.leader(timeout=20)
        assert leader.is_leader
        assert all(n.leader.id == leader.id for n in cluster.nodes)
        assert cluster.apply(b"5", timeout=20) == 5
        assert cluster.apply(b"-2", timeout=20) == 3
        index = cluster.wait_converged(timeout=20, key=lambda fsm: fsm.value)
        assert [f.value for f in cluster.fsms] == [3, 3, 3]
        assert all(n.stats()["last_applied"] == index for n in cluster.nodes)
        assert cluster.fsm(2) is cluster.fsms[1] and cluster.node(3) is cluster.nodes[2]
    assert all(is_closed(n) for n in cluster.nodes)


@pytest.mark.timeout(60)
def test_kill_and_restart(tmp_path):
    with LocalCluster(3, Counter, tmp_path) as cluster:
        assert cluster.apply(b"1", timeout=20) == 1
        old = cluster.leader(timeout=20)
        old_fsm = cluster.fsm(old.id)
        cluster.kill(old.id)
        assert is_closed(old)
        assert [n.id for n in cluster.running] == [i for i in (1, 2, 3) if i != old.id]

        new = cluster.leader(timeout=20)
        assert new.id != old.id
        assert cluster.apply(b"10", timeout=20) == 11
        assert old_fsm.value == 1  # it was down

        node = cluster.restart(old.id)
        assert node is cluster.node(old.id) and node is not old
        assert node.address == old.address and node.data_dir == old.data_dir
        assert cluster.fsm(old.id) is not old_fsm
        cluster.wait_converged(timeout=20, key=lambda fsm: fsm.value)
        assert cluster.fsm(old.id).value == 11

        # restart() with a given state machine; a running node is killed first.
        mine = Counter()
        node2 = cluster.restart(old.id, fsm=mine)
        assert cluster.fsm(old.id) is mine and is_closed(node)
        cluster.wait_converged(timeout=20, key=lambda fsm: fsm.value)
        assert mine.value == 11
    assert all(is_closed(n) for n in (old, node, node2))


@pytest.mark.timeout(60)
def test_no_quorum_times_out(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path) as cluster:
        leader = cluster.leader(timeout=20)
        # Kill the leader and one follower: the survivor is a follower and,
        # without a quorum, never leads (a surviving leader would only step
        # down after an election timeout, which a busy machine stretches).
        cluster.kill(leader.id)
        cluster.kill(next(i for i in (1, 2, 3) if i != leader.id))
        with pytest.raises(TimeoutError, match="leader"):
            cluster.leader(timeout=1.5)
        with pytest.raises(TimeoutError):
            cluster.apply(b"x", timeout=1.5)


@pytest.mark.timeout(60)
def test_wait_converged_reports_differences(tmp_path):
    with LocalCluster(2, RecordingFSM, tmp_path) as cluster:
        cluster.apply(b"a", timeout=20)
        assert cluster.wait_converged(timeout=20, key=lambda fsm: fsm.commands) >= 1
        with pytest.raises(TimeoutError, match="did not converge"):
            cluster.wait_converged(timeout=0.5, key=id)  # never equal


@pytest.mark.timeout(60)
def test_recording_fsm_snapshots(tmp_path):
    # A snapshot every 4 entries: the restarted node restores one.
    with LocalCluster(3, RecordingFSM, tmp_path, snapshot_threshold=4,
                      snapshot_trailing=2) as cluster:
        commands = [b"", b"x" * 9, b"\x00\xff", b"last"] * 3
        for c in commands:
            cluster.apply(c, timeout=20)
        cluster.kill(3)
        node = cluster.restart(3)
        cluster.wait_converged(timeout=20, key=lambda fsm: fsm.commands)
        assert cluster.fsm(3).commands == commands
        assert node.stats()["snapshot_index"] > 0


@pytest.mark.timeout(60)
def test_port_taken_between_pick_and_start(tmp_path, monkeypatch):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    real = testing.free_ports
    calls = []

    def first_one_taken(n, host="127.0.0.1"):
        calls.append(n)
        ports = real(n, host)
        if len(calls) == 1:
            ports[-1] = taken
        return ports

    monkeypatch.setattr(testing, "free_ports", first_one_taken)
    try:
        with LocalCluster(3, RecordingFSM, tmp_path) as cluster:
            assert len(calls) == 2
            assert f"127.0.0.1:{taken}" not in [n.address for n in cluster.nodes]
            assert cluster.apply(b"ok", timeout=20) == 1
    finally:
        holder.close()


@pytest.mark.timeout(60)
def test_start_false_then_start(tmp_path):
    with LocalCluster(3, Counter, tmp_path, start=False) as cluster:
        assert [n.id for n in cluster.running] == [1, 2, 3]
        assert all(n.state == raft.State.UNAVAILABLE for n in cluster.nodes)
        seen = []
        for node in cluster.nodes:
            node.on_state_change(lambda n: seen.append((n.id, n.state)))
        mine = Counter()
        unstarted = cluster.node(2)
        swapped = cluster.create(2, mine)          # before start(): a swap
        assert is_closed(unstarted) and cluster.fsm(2) is mine
        swapped.on_state_change(lambda n: seen.append((n.id, n.state)))
        cluster.start()
        with pytest.raises(RuntimeError, match="started already"):
            cluster.start()
        leader = cluster.leader(timeout=20)
        testing.wait_until(lambda: (leader.id, raft.State.LEADER) in seen, 20)
        assert cluster.apply(b"4", timeout=20) == 4
        cluster.wait_converged(timeout=20, key=lambda fsm: fsm.value, expected=4)
        assert mine.value == 4


@pytest.mark.timeout(60)
def test_create_with_node_kwargs_then_start_it(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path, timeout=20) as cluster:
        assert cluster.timeout == 20.0
        leader = cluster.leader()
        followers = cluster.followers()
        assert sorted(n.id for n in followers) == sorted({1, 2, 3} - {leader.id})
        assert cluster.followers(leader) == followers
        target = followers[0]
        node = cluster.create(target.id, snapshot_threshold=4, snapshot_trailing=2)
        assert is_closed(target) and node is cluster.node(target.id)
        assert node in cluster.running             # counts as running: start it
        assert node.data_dir == str(cluster.data_dir(target.id))
        assert node.address == target.address
        node.start()
        for i in range(12):
            cluster.apply(b"%d" % i)
        testing.wait_until(lambda: node.stats()["snapshot_index"] > 0, 20,
                           message="a snapshot on the node made with snapshot_threshold=4")
        cluster.wait_converged(key=lambda fsm: fsm.commands)
        assert leader.stats()["snapshot_index"] == 0   # the others keep the default


@pytest.mark.timeout(60)
def test_new_node_grows_the_cluster(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path, timeout=20) as cluster:
        with pytest.raises(ValueError, match="in the cluster already"):
            cluster.new_node(3)
        fourth = cluster.new_node(4)
        assert fourth not in cluster.nodes and fourth not in cluster.running
        assert len(cluster.servers) == 3
        assert fourth.data_dir == str(cluster.data_dir(4))
        assert testing.port_is_free(int(fourth.address.rsplit(":", 1)[1]))
        fourth.start()
        leader = cluster.leader()
        assert leader.add(4, fourth.address).result(timeout=20) is None
        cluster.apply(b"x")
        testing.wait_until(lambda: fourth.stats()["last_applied"] >= leader.stats()["commit_index"],
                           20)
        assert isinstance(fourth.leader, raft.Server) and fourth.leader.id == leader.id
    assert is_closed(fourth)


@pytest.mark.timeout(60)
def test_wait_converged_expected_and_ids(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path, timeout=20) as cluster:
        cluster.apply(b"a")
        with pytest.raises(ValueError, match="expected needs a key"):
            cluster.wait_converged(expected=[b"a"])
        with pytest.raises(TimeoutError, match=r"key expected: \[b'b'\]"):
            cluster.wait_converged(timeout=0.5, key=lambda fsm: fsm.commands, expected=[b"b"])
        leader = cluster.leader()
        rest = [n.id for n in cluster.followers(leader)]
        assert leader.remove(rest[0]).result(timeout=20) is None
        cluster.apply(b"b")
        ids = [leader.id, rest[1]]
        cluster.wait_converged(key=lambda fsm: fsm.commands, expected=[b"a", b"b"], ids=ids)
        assert cluster.fsm(rest[0]).commands == [b"a"]   # removed: it stopped
        assert testing.agreed_leader([cluster.node(i) for i in ids]) is leader


def test_small_helpers():
    address = testing.free_address()
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1" and testing.port_is_free(int(port))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert not testing.port_is_free(s.getsockname()[1])

    def never():
        return False

    with pytest.raises(TimeoutError, match="waiting for never"):
        testing.wait_until(never, 0.05)
    with pytest.raises(TimeoutError, match="waiting for the moon"):
        testing.wait_until(never, 0.05, message="the moon")
    fsm = RecordingFSM()
    for c in (b"one", b"", b"three"):
        fsm.apply(c)
    data = fsm.snapshot()
    other = RecordingFSM()
    other.restore(data)
    assert other.commands == [b"one", b"", b"three"]
    for cut in (1, 9, len(data) - 1):
        with pytest.raises(ValueError, match="cut short"):
            RecordingFSM().restore(data[:cut])


@pytest.mark.timeout(30)
def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError):
        LocalCluster(0, RecordingFSM, tmp_path)
    with pytest.raises(TypeError):
        LocalCluster(1, "not callable", tmp_path)
    with pytest.raises(TypeError):  # Node's own check of the fsm
        LocalCluster(1, object, tmp_path)
    for timeout in (0, -1, "10", True):
        with pytest.raises(ValueError, match="timeout"):
            LocalCluster(1, RecordingFSM, tmp_path, timeout=timeout)


@pytest.mark.timeout(60)
def test_raft_cluster_fixture(raft_cluster):
    first = raft_cluster(n=3, fsm_factory=Counter)
    second = raft_cluster(n=1)
    assert isinstance(first, LocalCluster) and isinstance(second, LocalCluster)
    assert first.base_dir != second.base_dir
    assert first.apply(b"2", timeout=20) == 2
    assert second.apply(b"hello", timeout=20) == 1
    assert isinstance(second.fsm(1), RecordingFSM)
    first.wait_converged(timeout=20, key=lambda fsm: fsm.value)


@pytest.mark.timeout(90)
def test_raft_cluster_fixture_closes_at_teardown(pytester, monkeypatch):
    import canonical_raft.pytest_plugin as plugin

    made = []

    class Tracked(LocalCluster):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(plugin, "LocalCluster", Tracked)
    pytester.makepyfile(test_inner=textwrap.dedent("""
        def test_uses_two(raft_cluster):
            a = raft_cluster(n=2)
            b = raft_cluster(n=1, election_timeout=0.3, heartbeat_timeout=0.03)
            assert a.apply(b"x", timeout=20) == 1
            assert b.apply(b"y", timeout=20) == 1

        def test_fails_but_still_closes(raft_cluster):
            raft_cluster(n=1).leader(timeout=20)
            assert False, "on purpose"
    """))
    result = pytester.runpytest("-p", "canonical_raft.pytest_plugin", "-q")
    result.assert_outcomes(passed=1, failed=1)
    assert len(made) == 3
    assert all(is_closed(n) for c in made for n in c.nodes)
