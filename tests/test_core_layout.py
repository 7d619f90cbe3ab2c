"""The compiled core's exports: the constants C defines, the one raft-thread
check, and Core taking its settings as one object."""

import threading
from types import SimpleNamespace

import pytest

import canonical_raft as raft
from canonical_raft import _raft, errors
from canonical_raft.testing import free_ports


def test_errors_and_enums_come_from_the_compiled_module():
    assert len(_raft.ERROR_CODES) == 23
    for name, code in _raft.ERROR_CODES.items():
        assert getattr(errors, name) == code
    # libraft's numbering (raft.h), which the public values have always had.
    assert (errors.NOMEM, errors.NOTLEADER, errors.SHUTDOWN, errors.TOOMANY) == (1, 7, 9, 23)
    assert {r.name: r.value for r in raft.Role} == _raft.ROLES
    assert {s.name: s.value for s in raft.State} == _raft.STATES
    assert (raft.Role.STANDBY, raft.Role.VOTER, raft.Role.SPARE) == (0, 1, 2)
    assert [s.value for s in raft.State] == [0, 1, 2, 3]
    assert _raft.CHANGES == {"ADD": 1, "ASSIGN": 2, "REMOVE": 3}
    assert type(errors.error_for(errors.NOTLEADER, "x")) is raft.NotLeaderError
    assert type(errors.error_for(errors.CANCELED, "x")) is raft.ShutdownError


def test_on_raft_thread(make_node):
    seen = []

    class Probe(raft.FSM):
        def apply(self, command):
            key = node._core.key
            seen.append((_raft.on_raft_thread(), _raft.on_raft_thread(key),
                         _raft.on_raft_thread(key + 1000)))
            return len(seen)

        def snapshot(self):
            return b""

        def restore(self, data):
            pass

    node = make_node(Probe())
    node.bootstrap([(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)
    assert not _raft.on_raft_thread()
    assert not _raft.on_raft_thread(node._core.key)
    assert node.apply(b"1").result(timeout=20) == 1
    assert seen == [(True, True, False)]
    outside = []
    t = threading.Thread(target=lambda: outside.append(_raft.on_raft_thread(node._core.key)))
    t.start()
    t.join(10)
    assert outside == [False]
    assert not _raft.on_raft_thread(0)


def test_keys_are_distinct(make_node):
    a, b = make_node(), make_node()
    assert a._core.key != b._core.key and a._core.key > 0


def test_core_takes_one_settings_object(tmp_path):
    (port,) = free_ports(1)
    settings = dict(election_timeout=0.5, heartbeat_timeout=0.05, snapshot_threshold=64,
                    snapshot_trailing=8, pre_vote=True, install_snapshot_timeout=5.0,
                    max_catch_up_rounds=10, max_catch_up_round_duration=5.0,
                    max_inflight_entries=32, segment_size=1024 * 1024,
                    snapshot_compression=False, tcp_nodelay=True,
                    max_batch_bytes=64 * 1024, snapshot_log_bytes=0, auto_recovery=False,
                    max_message_size=1 << 30, peer_handshake_timeout=10.0,
                    peer_idle_timeout=30.0, forward=False, forward_timeout=10.0,
                    session_expiry=1_000_000, max_sessions=4096, storage="uv")
    from fsms import Counter
    core = _raft.Core(None, 1, f"127.0.0.1:{port}", str(tmp_path), Counter(),
                      SimpleNamespace(**settings))
    try:
        core.bootstrap([raft.Server(1, f"127.0.0.1:{port}")])
        core.start()
        core.wait_for_leader(20)
        assert core.apply(b"1").result(20) == 1
    finally:
        core.close()


def test_a_bad_settings_object_fails_start(tmp_path):
    (port,) = free_ports(1)
    from fsms import Counter
    core = _raft.Core(None, 1, f"127.0.0.1:{port}", str(tmp_path), Counter(),
                      SimpleNamespace(election_timeout=1.0))
    try:
        with pytest.raises(raft.RaftError, match="bad node settings"):
            core.start()
    finally:
        core.close()
