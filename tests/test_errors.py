"""Runtime errors: not leader, shutdown, close semantics, bootstrap twice, error codes."""

import threading

import pytest

import canonical_raft as raft
from canonical_raft.testing import free_ports, port_is_free, wait_until
from fsms import Counter

pytestmark = pytest.mark.timeout(60)

# libraft's error numbers (raft.h, 0.22)
RAFT_NOTLEADER = 7
RAFT_SHUTDOWN = 9
RAFT_CANTBOOTSTRAP = 10


def test_exception_hierarchy():
    for cls in (raft.NotLeaderError, raft.LeadershipLostError, raft.ShutdownError,
                raft.CantBootstrapError, raft.CantChangeError, raft.NoConnectionError):
        assert issubclass(cls, raft.RaftError)
    assert issubclass(raft.RaftError, Exception)


def test_apply_on_follower_fails_with_not_leader(cluster):
    c = cluster(3)
    leader = c.leader()
    expected = c.servers[leader.id - 1]
    for follower in c.followers(leader):
        wait_until(lambda: follower.leader == expected, 10)
        fut = follower.apply(b"1")
        assert fut.done(), "a follower's apply returns an already-failed future"
        exc = fut.exception(timeout=0)
        assert isinstance(exc, raft.NotLeaderError)
        assert isinstance(exc, raft.RaftError)
        assert exc.code == RAFT_NOTLEADER
        assert isinstance(exc.leader, raft.Server)
        assert exc.leader == expected
        assert str(exc)
        with pytest.raises(raft.NotLeaderError):
            fut.result(timeout=0)
        futures = follower.apply_many([b"1", b"2"])
        assert len(futures) == 2
        for f in futures:
            assert isinstance(f.exception(timeout=10), raft.NotLeaderError)
    # nothing was applied anywhere
    assert leader.barrier().result(timeout=20) is None
    assert all(f.value == 0 for f in c.fsms)


def test_not_leader_without_known_leader(make_node):
    p = free_ports(3)
    servers = [(i + 1, f"127.0.0.1:{p[i]}") for i in range(3)]
    node = make_node(id=1, address=servers[0][1])
    node.bootstrap(servers)
    node.start()
    exc = node.apply(b"1").exception(timeout=10)
    assert isinstance(exc, raft.NotLeaderError)
    assert exc.leader is None


def test_apply_after_close_fails_with_shutdown(leader_node):
    node, fsm = leader_node
    assert node.apply(b"1").result(timeout=20) == 1
    node.close()
    fut = node.apply(b"1")
    exc = fut.exception(timeout=10)
    assert isinstance(exc, raft.ShutdownError)
    assert isinstance(exc, raft.RaftError)
    assert isinstance(exc.code, int)
    assert isinstance(node.barrier().exception(timeout=10), raft.ShutdownError)
    assert all(isinstance(f.exception(timeout=10), raft.ShutdownError)
               for f in node.apply_many([b"1", b"2"]))
    assert fsm.value == 1


def test_apply_before_start_is_not_lost(make_node):
    # unspecified whether it fails at once or waits for start(); it must not hang
    node = make_node()
    node.bootstrap([(node.id, node.address)])
    fut = node.apply(b"1")
    node.start()
    node.wait_for_leader(timeout=20)
    wait_until(fut.done, 20, message="the future submitted before start() to complete")
    exc = fut.exception(timeout=0)
    assert exc is None or isinstance(exc, raft.RaftError), exc


def test_close_fails_pending_futures_with_shutdown(cluster):
    # a big election timeout so that the leader does not step down (which would
    # fail the futures with LeadershipLostError) before we close it
    c = cluster(3, election_timeout=2.0, heartbeat_timeout=0.1)
    leader = c.leader(timeout=30)
    assert leader.apply(b"1").result(timeout=20) == 1
    for f in c.followers(leader):
        c.kill(f.id)
    futures = [leader.apply(b"1") for _ in range(50)] + leader.apply_many([b"1"] * 50)
    futures.append(leader.barrier())
    assert not any(f.done() for f in futures), "nothing can commit without the followers"
    c.kill(leader.id)
    assert all(f.done() for f in futures), "close() returned with futures still pending"
    errors = [f.exception(timeout=0) for f in futures]
    assert all(isinstance(e, raft.ShutdownError) for e in errors), {type(e) for e in errors}


def test_close_is_idempotent_and_thread_safe(leader_node):
    node, fsm = leader_node
    port = int(node.address.rsplit(":", 1)[1])
    errors = []

    def closer():
        try:
            node.close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=closer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    node.close()
    node.close()
    assert port_is_free(port)


def test_close_from_a_thread_that_reuses_the_raft_threads_ident(leader_node):
    # Thread idents are reused once a thread has exited: after close() the old
    # raft thread's ident can belong to any new thread, which is not the raft thread.
    node, fsm = leader_node
    assert node.apply(b"1").result(timeout=20) == 1
    (raft_ident,) = fsm.threads
    node.close()
    outcomes = []

    def probe():
        if threading.get_ident() == raft_ident:
            try:
                node.close()
                outcomes.append("closed")
            except BaseException as e:
                outcomes.append(e)

    for _ in range(50):
        t = threading.Thread(target=probe)
        t.start()
        t.join(10)
        if outcomes:
            break
    if not outcomes:
        pytest.skip("no new thread got the old raft thread's ident")
    assert outcomes == ["closed"]


def test_close_unstarted_node(make_node):
    node = make_node()
    node.close()
    node.close()
    assert isinstance(node.apply(b"1").exception(timeout=10), raft.ShutdownError)


def test_context_manager_closes(tmp_path):
    addr = f"127.0.0.1:{free_ports(1)[0]}"
    fsm = Counter()
    with raft.Node(1, addr, str(tmp_path / "d"), fsm, election_timeout=0.5,
                   heartbeat_timeout=0.05) as node:
        node.bootstrap([(1, addr)])
        node.start()
        node.wait_for_leader(timeout=20)
        assert node.apply(b"2").result(timeout=20) == 2
    assert isinstance(node.apply(b"1").exception(timeout=10), raft.ShutdownError)
    assert port_is_free(int(addr.rsplit(":", 1)[1]))


def test_context_manager_closes_on_exception(tmp_path):
    addr = f"127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(KeyError):
        with raft.Node(1, addr, str(tmp_path / "d"), Counter(), election_timeout=0.5,
                       heartbeat_timeout=0.05) as node:
            node.bootstrap([(1, addr)])
            node.start()
            raise KeyError("boom")
    assert isinstance(node.apply(b"1").exception(timeout=10), raft.ShutdownError)
    assert port_is_free(int(addr.rsplit(":", 1)[1]))


def test_bootstrap_twice_raises_cant_bootstrap(make_node, tmp_path):
    addr = f"127.0.0.1:{free_ports(1)[0]}"
    d = tmp_path / "boot"
    node = make_node(address=addr, data_dir=d)
    node.bootstrap([raft.Server(1, addr)])
    with pytest.raises(raft.CantBootstrapError) as info:
        node.bootstrap([raft.Server(1, addr)])
    assert info.value.code == RAFT_CANTBOOTSTRAP
    assert isinstance(info.value, raft.RaftError)
    assert str(info.value)
    node.close()
    # a new node on the same data dir
    again = make_node(address=addr, data_dir=d)
    with pytest.raises(raft.CantBootstrapError):
        again.bootstrap([(1, addr)])
    again.start()  # the bootstrapped state is usable
    again.wait_for_leader(timeout=20)
    assert again.apply(b"1").result(timeout=20) == 1


def test_bootstrap_after_start_refused(leader_node):
    node, _ = leader_node
    with pytest.raises(raft.RaftError):
        node.bootstrap([(node.id, node.address)])
    assert node.apply(b"1").result(timeout=20) == 1


def test_start_twice_refused(leader_node):
    node, _ = leader_node
    with pytest.raises((raft.RaftError, RuntimeError)):
        node.start()
    assert node.apply(b"1").result(timeout=20) == 1


def test_wait_for_leader_timeout(make_node):
    p = free_ports(3)
    node = make_node(id=2, address=f"127.0.0.1:{p[1]}")
    node.bootstrap([(i + 1, f"127.0.0.1:{p[i]}") for i in range(3)])
    node.start()
    with pytest.raises(TimeoutError):
        node.wait_for_leader(timeout=0.5)
    with pytest.raises(TimeoutError):
        node.wait_for_leader(timeout=0)


def test_leader_without_quorum_fails_pending_with_leadership_lost(cluster):
    c = cluster(3, election_timeout=0.5, heartbeat_timeout=0.05)
    leader = c.leader()
    assert leader.apply(b"1").result(timeout=20) == 1
    for f in c.followers(leader):
        c.kill(f.id)
    futures = [leader.apply(b"1") for _ in range(20)]
    # the leader steps down once it has not heard from a quorum for an election timeout
    wait_until(lambda: all(f.done() for f in futures), 20, message="the pending futures to fail")
    errors = {type(f.exception(timeout=0)) for f in futures}
    assert errors <= {raft.LeadershipLostError, raft.NotLeaderError}, errors
    assert raft.LeadershipLostError in errors
    wait_until(lambda: not leader.is_leader, 10)
    assert isinstance(leader.apply(b"1").exception(timeout=10), raft.NotLeaderError)
