"""The peer transport's firewall and bounds, against a live node's plaintext
port (tests/test_tls_cluster.py does the same over TLS): hostile input is
dropped before libraft's decoder sees it, counted in stats()["refused"] and
logged; the node goes on serving with its term and state unchanged."""

import logging
import os
import socket
import time

import pytest

import canonical_raft as raft
from canonical_raft import _raft
from canonical_raft.testing import LocalCluster, RecordingFSM, wait_until

import peerwire as w


def refused(node, reason):
    return node.stats()["refused"].get(reason, 0)


def wait_refused(node, reason, at_least, timeout=10.0):
    wait_until(lambda: refused(node, reason) >= at_least, timeout=timeout,
               message=f"{reason} >= {at_least} on node {node.id}")


@pytest.fixture
def cluster(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path) as c:
        c.leader()
        yield c


def snapshot_state(c):
    return {n.id: (n.stats()["term"], n.state) for n in c.running}


def attack_cases(target_id, member_id):
    """(name, bytes, expected reason) for the four attacks and more."""
    hs = w.handshake(member_id, "127.0.0.1:1")
    return [
        ("oversized InstallSnapshot configuration length",
         hs + w.install_snapshot_huge_conf(term=1), ("fw_header_length", "fw_configuration_length")),
        ("huge AppendEntries entry count",
         hs + w.append_entries_huge_count(term=1), ("fw_entry_count",)),
        ("RequestVote with term 2^64-1",
         hs + w.request_vote(w.U64, member_id), "fw_term_range"),
        ("garbage handshake", w.garbage(64), "fw_handshake_protocol"),
        ("truncated handshake", hs[:20], "fw_truncated"),
        ("oversized handshake address length",
         b"\1" + b"\0" * 7 + member_id.to_bytes(8, "little") + (2**40).to_bytes(8, "little"),
         "fw_handshake_address_length"),
        ("unknown id", w.handshake(99, "127.0.0.1:1") + w.request_vote(1, 99), "fw_handshake_id_refused"),
        ("RequestVote for another candidate",
         hs + w.request_vote(5, target_id), "fw_candidate_id"),
        ("unknown message type", hs + w.message(9, 0, b"\0" * 8), "fw_message_type"),
    ]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", ["leader", "follower"])
def test_hostile_input_is_refused_and_the_node_serves_on(cluster, target):
    leader = cluster.leader()
    node = leader if target == "leader" else cluster.followers()[0]
    member = next(n.id for n in cluster.running if n.id != node.id)
    before = snapshot_state(cluster)
    applied = 0
    for name, data, reasons in attack_cases(node.id, member):
        reasons = (reasons,) if isinstance(reasons, str) else reasons
        count = sum(refused(node, r) for r in reasons)
        w.send_plain(node.address, data, timeout=3)
        wait_until(lambda: sum(refused(node, r) for r in reasons) > count, timeout=10,
                   message=f"{name}: one of {reasons} counted ({node.stats()['refused']})")
        # Still serving, nothing changed.
        assert cluster.apply(b"after %s" % name.encode()) is not None
        applied += 1
        assert snapshot_state(cluster) == before, name
    assert node.stats()["term"] == before[node.id][0]
    cluster.wait_converged()
    for fsm in cluster.fsms:
        assert len(fsm.commands) == applied


@pytest.mark.timeout(60)
def test_refusals_are_logged_at_warning_rate_limited(cluster, caplog):
    node = cluster.followers()[0]
    caplog.set_level(logging.WARNING, logger="canonical_raft")
    for _ in range(5):
        w.send_plain(node.address, w.garbage(64), timeout=2)
    wait_refused(node, "fw_handshake_protocol", 5)
    time.sleep(0.2)
    lines = [r for r in caplog.records if "fw_handshake_protocol" in r.getMessage()
             and f"node {node.id}:" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.WARNING
    assert "refused peer 127.0.0.1:" in lines[0].getMessage()


@pytest.mark.timeout(120)
def test_idle_connections_do_not_stop_the_node_and_are_closed(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path, peer_handshake_timeout=1.0,
                      peer_idle_timeout=1.0) as c:
        node = c.leader()
        host, port = node.address.rsplit(":", 1)
        socks = []
        try:
            for _ in range(1000):
                s = socket.create_connection((host, int(port)), timeout=5)
                socks.append(s)
            # Serving all along: the cluster commits writes.
            for i in range(20):
                c.apply(b"w%d" % i, timeout=10)
            # Every one of them is closed by the node: pending_limit (the
            # oldest go first), then the handshake timeout.
            closed_by_node = w.count_closed_by_node(socks, timeout=20)
            assert closed_by_node >= 800
            wait_until(lambda: refused(node, "pending_limit") +
                       refused(node, "handshake_timeout") >= closed_by_node, timeout=10,
                       message=f"{closed_by_node} refusals ({node.stats()['refused']})")
            # A connection part-way through a message is closed too.
            s = socket.create_connection((host, int(port)), timeout=5)
            other = next(n.id for n in c.running if n.id != node.id)
            s.sendall(w.handshake(other, "127.0.0.1:1") + w.request_vote(1, other)[:20])
            s.settimeout(10)
            assert s.recv(1) == b""
            s.close()
            wait_refused(node, "fw_idle", 1)
            c.apply(b"still serving", timeout=10)
        finally:
            for s in socks:
                s.close()


@pytest.mark.timeout(60)
def test_connections_per_peer_are_capped(cluster):
    node = cluster.followers()[0]
    member = next(n.id for n in cluster.running if n.id != node.id)
    host, port = node.address.rsplit(":", 1)
    socks = []
    try:
        for _ in range(6):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(w.handshake(member, "127.0.0.1:1"))
            socks.append(s)
        # libraft's own connection from `member` counts too: the oldest go.
        wait_refused(node, "peer_limit", 2)
        cluster.apply(b"ok")
    finally:
        for s in socks:
            s.close()


@pytest.mark.timeout(60)
def test_the_transport_is_gone_after_close(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path) as c:
        c.apply(b"x")
        w.send_plain(c.nodes[0].address, w.garbage(8), timeout=1)
        assert _raft.transport_live() > 0
    wait_until(lambda: _raft.transport_live() == 0, timeout=10, message="transport objects freed")


def test_refusal_reason_names_are_stable():
    names = _raft.refusal_reasons()
    for reason in ("fw_term_range", "fw_entry_count", "fw_configuration_length", "tls_verify",
                   "tls_expired", "tls_idmismatch", "conn_limit", "pending_limit",
                   "peer_limit", "handshake_timeout", "outbound_data", "fw_idle"):
        assert reason in names


@pytest.mark.timeout(60)
def test_data_dir_is_private(tmp_path):
    old = os.umask(0)
    try:
        d = tmp_path / "open"
        d.mkdir(mode=0o777)
        os.chmod(d, 0o777)
        with LocalCluster(1, RecordingFSM, d, snapshot_threshold=16, snapshot_trailing=2) as c:
            for i in range(64):
                c.apply(b"x%d" % i)
            wait_until(lambda: c.nodes[0].stats()["snapshot_index"] > 0, timeout=10)
            node_dir = c.data_dir(1)
            assert os.stat(node_dir).st_mode & 0o777 == 0o700
            names = os.listdir(node_dir)
            assert any(n.startswith("snapshot") for n in names), names
            for name in names:
                try:
                    mode = os.stat(node_dir / name).st_mode & 0o777
                except FileNotFoundError:
                    continue        # a segment libraft renamed or removed meanwhile
                assert mode == 0o600, (name, oct(mode))
    finally:
        os.umask(old)
    assert raft.Node  # the package is importable with tests' path


@pytest.mark.timeout(60)
def test_an_entry_conflicting_with_a_committed_one_is_dropped(cluster):
    # libraft 0.22.1 aborts (double free) on it; core/log_guard.h drops it.
    leader = cluster.leader()
    cluster.apply(b"committed")
    node = cluster.followers()[0]
    wait_until(lambda: node.stats()["commit_index"] >= 2, timeout=10)
    term = node.stats()["term"]
    assert term >= 2
    before = snapshot_state(cluster)
    count = refused(node, "log_conflict")
    # Entry 1 (the bootstrap configuration, term 1) replaced by a term-`term` one.
    w.send_plain(node.address, w.handshake(leader.id, "127.0.0.1:1") +
                 w.append_entries(term, 0, 0, 0, [(term, b"evil")]), timeout=3)
    wait_refused(node, "log_conflict", count + 1)
    cluster.apply(b"after")
    assert snapshot_state(cluster) == before
    cluster.wait_converged()
    assert all(b"evil" not in f.commands for f in cluster.fsms)


@pytest.mark.timeout(60)
def test_max_message_size_is_enforced(tmp_path):
    with pytest.raises(ValueError, match="max_message_size"):
        raft.Node(1, "127.0.0.1:1", tmp_path / "x", RecordingFSM(), max_message_size=1000)
    with LocalCluster(3, RecordingFSM, tmp_path / "c", max_message_size=1 << 20) as c:
        leader = c.leader()
        node = c.followers()[0]
        term = node.stats()["term"]
        big = [(term, b"\0" * (600 << 10)), (term, b"\0" * (600 << 10))]
        before = refused(node, "fw_payload_too_big") + refused(node, "fw_message_too_big")
        hs = w.handshake(leader.id, "127.0.0.1:1")
        w.send_plain(node.address, hs + w.append_entries(term, 10**6, term, 0, big), timeout=3)
        wait_until(lambda: refused(node, "fw_payload_too_big") +
                   refused(node, "fw_message_too_big") > before, timeout=10)
        c.apply(b"ok")
