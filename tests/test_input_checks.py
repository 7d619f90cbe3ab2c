"""Bad input new users hit, each a clear error at construction or bootstrap
(issue 12, item 5)."""

import pytest

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("address", ["[::1]:9000", "::1:9000", "[fe80::1]:9000"])
def test_ipv6_is_refused_clearly(tmp_path, address):
    with pytest.raises(ValueError, match="IPv6 is not supported"):
        raft.Node(1, address, str(tmp_path), RecordingFSM())


@pytest.mark.parametrize("address", ["0.0.0.0:9000", "0:9000"])
def test_unspecified_address_is_refused(tmp_path, address):
    with pytest.raises(ValueError, match="other nodes can reach"):
        raft.Node(1, address, str(tmp_path), RecordingFSM())


def test_unspecified_address_refused_among_servers(tmp_path):
    node = raft.Node(1, "127.0.0.1:9000", str(tmp_path), RecordingFSM())
    with pytest.raises(ValueError, match="other nodes can reach"):
        node.bootstrap([(1, "127.0.0.1:9000"), (2, "0.0.0.0:9001")])
    node.close()


def test_host_names_and_ipv4_still_accepted(tmp_path):
    for address in ("localhost:9000", "127.0.0.2:9000", "node-1.example:1"):
        raft.Node(1, address, str(tmp_path / address.replace(":", "_")), RecordingFSM()).close()


def test_bootstrap_with_another_address_for_this_node(tmp_path):
    node = raft.Node(1, "127.0.0.1:9000", str(tmp_path), RecordingFSM())
    with pytest.raises(ValueError, match="'127.0.0.1:9001', but it is '127.0.0.1:9000'"):
        node.bootstrap([(1, "127.0.0.1:9001"), (2, "127.0.0.1:9002")])
    assert not any(p.name.startswith("metadata") for p in tmp_path.iterdir())
    node.close()


def test_fsm_class_instead_of_instance(tmp_path):
    with pytest.raises(TypeError, match=r"pass RecordingFSM\(\), not the class"):
        raft.Node(1, "127.0.0.1:9000", str(tmp_path), RecordingFSM)
