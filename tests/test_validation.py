"""Bad arguments raise at construction; unusable addresses and data dirs raise at start."""

import os
import errno
import socket
import stat

import pytest

import canonical_raft as raft
from canonical_raft.testing import free_address, port_is_free
from fsms import Counter

pytestmark = pytest.mark.timeout(30)


def node_args(tmp_path, **overrides):
    args = dict(id=1, address="127.0.0.1:9999", data_dir=str(tmp_path / "d"), fsm=Counter())
    args.update(overrides)
    return args


def construct(tmp_path, kwargs=None, **overrides):
    """Construct (and close, if construction unexpectedly succeeds) a node."""
    a = node_args(tmp_path, **overrides)
    node = raft.Node(a["id"], a["address"], a["data_dir"], a["fsm"], **(kwargs or {}))
    node.close()
    return node


def test_valid_construction_starts_nothing(tmp_path):
    addr = free_address()
    node = raft.Node(1, addr, str(tmp_path / "d"), Counter())
    try:
        assert node.id == 1 and node.address == addr
        assert port_is_free(int(addr.rsplit(":", 1)[1])), "constructing must not listen"
        assert node.state == raft.State.UNAVAILABLE
        assert node.leader is None and node.is_leader is False
    finally:
        node.close()


@pytest.mark.parametrize("bad_id, exc", [(0, ValueError), (-1, ValueError), (-(2 ** 70), ValueError),
                                         ("1", TypeError), (1.0, TypeError), (None, TypeError)])
def test_bad_id(tmp_path, bad_id, exc):
    with pytest.raises(exc):
        construct(tmp_path, id=bad_id)


@pytest.mark.parametrize("bad_address, exc", [
    ("nohost", ValueError), ("host:", ValueError), (":80", ValueError), ("h:0", ValueError),
    ("h:70000", ValueError), ("h:-1", ValueError), ("h:port", ValueError), ("", ValueError),
    (123, TypeError), (None, TypeError), (b"127.0.0.1:80", TypeError),
])
def test_bad_address(tmp_path, bad_address, exc):
    with pytest.raises(exc):
        construct(tmp_path, address=bad_address)


@pytest.mark.parametrize("kwargs", [
    dict(election_timeout=0), dict(election_timeout=-1.0),
    dict(heartbeat_timeout=0), dict(heartbeat_timeout=-0.1),
    dict(election_timeout=0.5, heartbeat_timeout=0.5),
    dict(election_timeout=0.5, heartbeat_timeout=0.6),
    dict(election_timeout=1.0, heartbeat_timeout=2.0),
])
def test_bad_timeouts(tmp_path, kwargs):
    with pytest.raises(ValueError):
        construct(tmp_path, kwargs)


class OnlyApply:
    def apply(self, command):
        return None


class NotCallable:
    apply = snapshot = restore = 3


@pytest.mark.parametrize("fsm", [object(), OnlyApply(), NotCallable(), None, 42])
def test_fsm_without_the_three_methods(tmp_path, fsm):
    with pytest.raises(TypeError):
        construct(tmp_path, fsm=fsm)


def test_unknown_tuning_knob(tmp_path):
    with pytest.raises(TypeError):
        construct(tmp_path, dict(no_such_knob=1))
    with pytest.raises(TypeError):
        construct(tmp_path, dict(electiontimeout=1.0))


def test_known_tuning_knobs_accepted(tmp_path):
    construct(tmp_path, dict(
        election_timeout=2.0, heartbeat_timeout=0.2, snapshot_threshold=64,
        snapshot_trailing=16, pre_vote=False, install_snapshot_timeout=30.0,
        max_catch_up_rounds=10, max_catch_up_round_duration=5.0,
        max_inflight_entries=32, segment_size=8 * 1024 * 1024,
        snapshot_compression=False, tcp_nodelay=True, max_batch_bytes=0,
        snapshot_log_bytes=0))
    construct(tmp_path, dict(snapshot_log_bytes=1 << 40))


@pytest.mark.parametrize("kwargs", [dict(segment_size=-1), dict(snapshot_threshold=-1),
                                    dict(max_inflight_entries=-5), dict(snapshot_log_bytes=-1),
                                    dict(snapshot_log_bytes=2**63)])
def test_bad_tuning_values(tmp_path, kwargs):
    with pytest.raises((ValueError, TypeError, OverflowError)):
        construct(tmp_path, kwargs)


@pytest.mark.parametrize("kwargs", [dict(election_timeout="1"), dict(snapshot_threshold="8"),
                                    dict(snapshot_log_bytes=1.5), dict(snapshot_log_bytes=True)])
def test_wrong_type_of_knob(tmp_path, kwargs):
    with pytest.raises(TypeError):
        construct(tmp_path, kwargs)


def test_positional_only_four(tmp_path):
    with pytest.raises(TypeError):
        raft.Node(1, "127.0.0.1:9999", str(tmp_path / "d"), Counter(), 1.0)


def test_data_dir_created_with_mode_0700(tmp_path):
    d = tmp_path / "fresh"
    assert not d.exists()
    construct(tmp_path, data_dir=str(d))
    assert d.is_dir()
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_data_dir_accepts_pathlike(tmp_path, make_node):
    d = tmp_path / "pathlike"
    node = make_node(data_dir=d)  # a pathlib.Path
    node.bootstrap([(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)
    assert node.apply(b"3").result(timeout=20) == 3
    assert any(d.iterdir()), "raft should have written into the data dir"


def test_bad_servers_for_bootstrap(make_node):
    node = make_node()
    with pytest.raises(ValueError):
        node.bootstrap([(0, node.address)])
    with pytest.raises(ValueError):
        node.bootstrap([(1, "nohost")])
    with pytest.raises(TypeError):
        node.bootstrap([1, 2])
    with pytest.raises((ValueError, raft.RaftError)):
        node.bootstrap([(1, node.address), (1, free_address())])  # duplicate id
    # still bootstrappable after the refusals
    node.bootstrap([raft.Server(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)


@pytest.mark.timeout(30)
def test_busy_port_start_raises(make_node):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        addr = f"127.0.0.1:{holder.getsockname()[1]}"
        node = make_node(address=addr)
        node.bootstrap([(1, addr)])
        with pytest.raises(OSError) as info:
            node.start()
        # It says why, not just libraft's "I/O error".
        assert info.value.errno == errno.EADDRINUSE and addr in str(info.value)
        node.close()
        node.close()
    finally:
        holder.close()


def test_data_dir_is_a_regular_file(tmp_path, make_node):
    f = tmp_path / "file"
    f.write_bytes(b"not a directory")
    with pytest.raises((ValueError, OSError, raft.RaftError)):
        node = make_node(data_dir=f)
        node.bootstrap([(node.id, node.address)])
        node.start()
    assert f.read_bytes() == b"not a directory"


def test_data_dir_under_a_regular_file(tmp_path, make_node):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises((ValueError, OSError, raft.RaftError)):
        node = make_node(data_dir=f / "sub")
        node.bootstrap([(node.id, node.address)])
        node.start()


def test_start_on_data_dir_with_garbage_raises(tmp_path, make_node):
    d = tmp_path / "garbage"
    d.mkdir(mode=0o700)
    (d / "metadata1").write_bytes(os.urandom(64))
    (d / "metadata2").write_bytes(os.urandom(64))
    with pytest.raises((OSError, raft.RaftError)):
        node = make_node(data_dir=d)
        node.start()
