"""Secure by default: a node reachable from the network (an address that is
not loopback) needs tls= or insecure=True; loopback nodes run plaintext."""

import socket

import pytest

import canonical_raft as raft
from canonical_raft import peer_security
from canonical_raft.testing import RecordingFSM, free_ports


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.3.4.5", True), ("localhost", True), ("::1", True),
    ("10.0.0.5", False), ("192.0.2.7", False), ("8.8.8.8", False),
    ("no-such-host.invalid", False)])
def test_is_loopback(host, loopback):
    assert peer_security.is_loopback(host) is loopback


def test_the_decision():
    peer_security.check(1, "127.0.0.1:9000", None, False)
    peer_security.check(1, "10.0.0.5:9000", None, True)
    peer_security.check(1, "10.0.0.5:9000", object(), False)
    with pytest.raises(ValueError) as info:
        peer_security.check(1, "10.0.0.5:9000", None, False)
    text = str(info.value)
    assert "python -m canonical_raft certs init DIR" in text
    assert "certs node DIR --id N --host HOST" in text
    assert "insecure=True" in text


def local_non_loopback_ipv4():
    """An IPv4 address of this machine that is not loopback, or None. Found
    with a UDP socket's connect() (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


@pytest.mark.timeout(60)
def test_a_non_loopback_node_refuses_to_start_without_tls(tmp_path):
    host = local_non_loopback_ipv4()
    if host is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    port = free_ports(1, host)[0]
    address = f"{host}:{port}"
    node = raft.Node(1, address, tmp_path / "a", RecordingFSM())
    node.bootstrap([(1, address)])
    with pytest.raises(ValueError, match="not a loopback address"):
        node.start()
    node.close()
    # insecure=True: it starts and serves (one node, nothing leaves the machine).
    with raft.Node(1, address, tmp_path / "a", RecordingFSM(), insecure=True) as node:
        node.start()
        node.wait_for_leader(10)
        assert node.apply(b"x").result(10) == 1


@pytest.mark.timeout(60)
def test_loopback_runs_plaintext_by_default(tmp_path):
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    with raft.Node(1, address, tmp_path / "a", RecordingFSM()) as node:
        node.bootstrap([(1, address)])
        node.start()
        node.wait_for_leader(10)
        assert node.tls is None
        with pytest.raises(RuntimeError, match="no tls"):
            node.reload_tls()


def test_argument_checks(tmp_path):
    with pytest.raises(TypeError, match="raft.TLS"):
        raft.Node(1, "127.0.0.1:1", tmp_path / "a", RecordingFSM(), tls="certs/")
    with pytest.raises(TypeError, match="insecure"):
        raft.Node(1, "127.0.0.1:1", tmp_path / "b", RecordingFSM(), insecure=1)
