"""Mutual TLS on the peer port: a TLS cluster works (replication, failover,
a fourth node), and nothing without a certificate of the cluster's CA for
the id it claims gets a byte to libraft."""

import datetime
import os
import shutil
import ssl
import time

import pytest

pytest.importorskip("cryptography")

import canonical_raft as raft
from canonical_raft import certs
from canonical_raft.testing import LocalCluster, RecordingFSM, free_address, wait_until

import peerwire as w


def refused(node):
    return node.stats()["refused"]


def count(node, *reasons):
    r = refused(node)
    return sum(r.get(x, 0) for x in reasons)


def other_ca(tmp_path, name, id, not_before=None, days=certs.NODE_DAYS):
    d = tmp_path / name
    certs.init(str(d))
    certs.node(str(d), id, ["127.0.0.1"], days=days, not_before=not_before)
    return d


def same_ca(tmp_path, tls_dir, name, id, **kwargs):
    """A second certificate of the cluster's CA (a copy of its dir)."""
    d = tmp_path / name
    d.mkdir()
    for f in ("ca.crt", "ca.key"):
        shutil.copy(tls_dir / f, d / f)
    certs.node(str(d), id, ["127.0.0.1"], **kwargs)
    return d


@pytest.fixture
def cluster(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path / "data", tls_dir=tmp_path / "certs") as c:
        c.leader()
        yield c


@pytest.mark.timeout(120)
def test_tls_cluster_replicates_fails_over_and_grows(cluster, tmp_path):
    for i in range(50):
        cluster.apply(b"a%d" % i)
    cluster.wait_converged()
    old = cluster.leader()
    cluster.kill(old.id)
    new = cluster.leader(timeout=15)
    assert new.id != old.id
    for i in range(20):
        cluster.apply(b"b%d" % i)
    four_fsm = RecordingFSM()
    four = cluster.new_node(4, four_fsm)
    assert four.tls is not None
    four.start()
    cluster.leader().add(4, four.address).result(20)
    cluster.apply(b"after 4")
    wait_until(lambda: len(four_fsm.commands) == 71, timeout=20,
               message="node 4 caught up")
    for n in cluster.running:
        assert not {k: v for k, v in refused(n).items() if k.startswith(("tls_", "fw_"))}, \
            refused(n)


@pytest.mark.timeout(120)
def test_a_node_of_another_ca_cannot_join_connect_or_inject(cluster, tmp_path):
    rogue_dir = other_ca(tmp_path, "rogue", 4)
    address = free_address()
    fsm = RecordingFSM()
    members = [(n.id, n.address) for n in cluster.running]
    # Its own cluster, naming the real members: it tries to reach them.
    rogue = raft.Node(4, address, tmp_path / "rogue-data", fsm,
                      tls=raft.TLS.from_dir(rogue_dir, 4),
                      **cluster.node_kwargs)
    try:
        rogue.bootstrap([(4, address)] + members[:1])
        rogue.start()
        leader = cluster.leader()
        before = {n.id: count(n, "tls_verify", "tls_refused") for n in cluster.running}
        join = leader.add(4, address)
        # The rogue never receives the cluster's log, never reaches a member.
        time.sleep(3)
        assert not join.done() or join.exception() is not None
        assert fsm.commands == []
        # It could not connect: refused at the TLS handshake both ways.
        assert any(count(n, "tls_verify", "tls_refused") > before[n.id]
                   for n in cluster.running), [refused(n) for n in cluster.running]
        assert count(rogue, "tls_verify", "tls_refused") > 0, refused(rogue)
        # Injection with its certificate: the handshake fails, nothing arrives.
        ctx = w.client_context(str(rogue_dir / "node-4.crt"), str(rogue_dir / "node-4.key"),
                               str(rogue_dir / "ca.crt"))
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            w.send_tls(cluster.nodes[0].address, ctx, w.handshake(4, address) +
                       w.request_vote(w.U64, 4))
        terms = {n.id: n.stats()["term"] for n in cluster.running}
        assert all(t < 2**63 for t in terms.values())
    finally:
        rogue.close()
    for f in cluster.fsms:
        assert not any(b"rogue" in c for c in f.commands)


def member_context(cluster, id):
    d = cluster.tls_dir
    return w.client_context(str(d / f"node-{id}.crt"), str(d / f"node-{id}.key"),
                            str(d / "ca.crt"))


@pytest.mark.timeout(60)
def test_a_certificate_for_id_2_claiming_id_3_is_refused(cluster, tmp_path):
    target = cluster.nodes[0]
    before = count(target, "fw_handshake_id_mismatch")
    w.send_tls(target.address, member_context(cluster, 2), w.handshake(3, "127.0.0.1:1") +
               w.request_vote(5, 3), timeout=3)
    wait_until(lambda: count(target, "fw_handshake_id_mismatch") > before, timeout=10)
    # And a node cannot be made with a certificate for another id.
    with pytest.raises(ValueError, match="for raft id 2, not this node's id 3"):
        raft.Node(3, free_address(), tmp_path / "x", RecordingFSM(),
                  tls=raft.TLS.from_dir(cluster.tls_dir, 2))
    cluster.apply(b"still serving")


@pytest.mark.timeout(60)
def test_an_expired_certificate_is_refused(cluster, tmp_path):
    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
    d = same_ca(tmp_path, cluster.tls_dir, "expired", 2, days=1, not_before=long_ago)
    target = cluster.nodes[0]
    before = count(target, "tls_expired")
    ctx = w.client_context(str(d / "node-2.crt"), str(d / "node-2.key"), str(d / "ca.crt"))
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        w.send_tls(target.address, ctx, w.handshake(2, "127.0.0.1:1"), timeout=3)
    wait_until(lambda: count(target, "tls_expired") > before, timeout=10)
    cluster.apply(b"still serving")


@pytest.mark.timeout(60)
def test_no_client_certificate_and_plaintext_are_refused(cluster):
    target = cluster.nodes[0]
    ctx = w.client_context(None, None, str(cluster.tls_dir / "ca.crt"))
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        w.send_tls(target.address, ctx, b"x", timeout=3)
    before = count(target, "tls_handshake")
    w.send_plain(target.address, w.handshake(2, "127.0.0.1:1") + w.request_vote(5, 2), timeout=3)
    wait_until(lambda: count(target, "tls_handshake") > before, timeout=10)
    wait_until(lambda: count(target, "tls_nocert") >= 1, timeout=10)


@pytest.mark.timeout(120)
def test_hostile_messages_from_a_member_certificate_are_refused(cluster):
    leader = cluster.leader()
    node = cluster.followers()[0]
    member = next(n.id for n in cluster.running if n.id != node.id)
    terms = {n.id: (n.stats()["term"], n.state) for n in cluster.running}
    hs = w.handshake(member, "127.0.0.1:1")
    for data, reasons in [
            (hs + w.install_snapshot_huge_conf(), ("fw_header_length", "fw_configuration_length")),
            (hs + w.append_entries_huge_count(), ("fw_entry_count",)),
            (hs + w.request_vote(w.U64, member), ("fw_term_range",)),
            (w.garbage(64), ("fw_handshake_protocol", "fw_handshake_id_mismatch"))]:
        before = count(node, *reasons)
        w.send_tls(node.address, member_context(cluster, member), data, timeout=3)
        wait_until(lambda: count(node, *reasons) > before, timeout=10,
                   message=f"{reasons} ({refused(node)})")
        cluster.apply(b"ok")
        assert {n.id: (n.stats()["term"], n.state) for n in cluster.running} == terms
    assert leader.is_leader


@pytest.mark.timeout(120)
def test_certificates_rotate_without_a_restart(cluster, tmp_path):
    node = cluster.nodes[0]
    renewed = same_ca(tmp_path, cluster.tls_dir, "renewed", 1)
    new_tls = raft.TLS.from_dir(renewed, 1)
    node.reload_tls(new_tls)
    assert node.tls == new_tls
    with open(renewed / "node-1.crt") as f:
        new_der = ssl.PEM_cert_to_DER_cert(f.read())
    # New connections present the renewed certificate ...
    sock = w.tls_connect(node.address, member_context(cluster, 2))
    try:
        assert sock.getpeercert(binary_form=True) == new_der
    finally:
        sock.close()
    # ... and the cluster works over them: restart the others.
    for other in (2, 3):
        cluster.kill(other)
        cluster.restart(other)
    cluster.leader(timeout=15)
    cluster.apply(b"after rotation")
    cluster.wait_converged()
    # Reloading the same files again works too.
    node.reload_tls()
    # A bad reload leaves the old context in place.
    with pytest.raises(OSError, match="node-2.key|node-1.crt"):
        node.reload_tls(raft.TLS(renewed / "node-1.crt", cluster.tls_dir / "node-2.key",
                                 renewed / "ca.crt"))
    sock = w.tls_connect(node.address, member_context(cluster, 2))
    sock.close()


@pytest.mark.timeout(30)
def test_missing_and_mismatched_files_name_the_file(cluster, tmp_path):
    d = cluster.tls_dir
    with pytest.raises(OSError, match="nope.crt"):
        raft.TLS(tmp_path / "nope.crt", d / "node-1.key", d / "ca.crt")
    with pytest.raises(OSError, match="node-2.key"):
        raft.Node(1, free_address(), tmp_path / "m", RecordingFSM(),
                  tls=raft.TLS(d / "node-1.crt", d / "node-2.key", d / "ca.crt"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(OSError, match="junk.pem"):
        raft.Node(1, free_address(), tmp_path / "j", RecordingFSM(),
                  tls=raft.TLS(junk, d / "node-1.key", d / "ca.crt"))
    with pytest.raises(OSError, match="junk.pem"):
        raft.Node(1, free_address(), tmp_path / "k", RecordingFSM(),
                  tls=raft.TLS(d / "node-1.crt", d / "node-1.key", junk))
    unreadable = tmp_path / "unreadable.key"
    shutil.copy(d / "node-1.key", unreadable)
    os.chmod(unreadable, 0)
    if os.geteuid() != 0:
        with pytest.raises(OSError, match="unreadable.key"):
            raft.TLS(d / "node-1.crt", unreadable, d / "ca.crt")


@pytest.mark.timeout(60)
def test_nothing_is_left_after_a_tls_cluster_closes(tmp_path):
    from canonical_raft import _raft
    with LocalCluster(3, RecordingFSM, tmp_path / "d", tls_dir=tmp_path / "c") as c:
        c.apply(b"x")
        w.send_plain(c.nodes[0].address, w.garbage(16), timeout=1)
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            w.send_tls(c.nodes[1].address,
                       w.client_context(None, None, str(c.tls_dir / "ca.crt")), b"x", 2)
    wait_until(lambda: _raft.transport_live() == 0, timeout=10)
    counters = _raft.debug_counters()
    assert counters["transport"] == 0 and counters["handles"] == 0, counters


@pytest.mark.timeout(60)
def test_idle_strangers_on_the_tls_port_are_dropped(tmp_path):
    import socket
    with LocalCluster(3, RecordingFSM, tmp_path / "d", tls_dir=tmp_path / "c",
                      peer_handshake_timeout=1.0) as c:
        node = c.leader()
        host, port = node.address.rsplit(":", 1)
        socks = [socket.create_connection((host, int(port)), timeout=5) for _ in range(300)]
        try:
            for i in range(10):
                c.apply(b"w%d" % i, timeout=10)
            closed_by_node = w.count_closed_by_node(socks, timeout=30)
            assert closed_by_node >= 200
            # Counted once the pump's handles have closed, a moment after the socket.
            wait_until(lambda: count(node, "pending_limit", "handshake_timeout",
                                     "tls_timedout") >= closed_by_node, timeout=10,
                       message=f"{closed_by_node} refusals ({refused(node)})")
            c.apply(b"still serving", timeout=10)
        finally:
            for s in socks:
                s.close()
