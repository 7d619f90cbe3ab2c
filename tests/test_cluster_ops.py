"""Leadership transfer, removing the leader, changes cut short by close(),
and the tuning knobs (validation, snapshot compression through a restart)."""

import os
from pathlib import Path

import pytest

import canonical_raft as raft
from canonical_raft import errors
from canonical_raft.testing import agreed_leader, free_address, wait_until
from fsms import Counter, Recorder


# every test has a timeout; some set a longer one
pytestmark = pytest.mark.timeout(60)


# -- leadership transfer ---------------------------------------------------------


@pytest.mark.timeout(60)
def test_transfer_to_a_chosen_node(cluster):
    c = cluster(3)
    leader = c.leader()
    leader.apply(b"1").result(timeout=20)
    target = c.followers(leader)[0]
    fut = leader.transfer(target.id)
    result = fut.result(timeout=30)
    assert isinstance(result, raft.Server)
    assert result == c.servers[target.id - 1]
    assert c.leader().id == target.id
    assert target.is_leader and not leader.is_leader
    assert leader.state == raft.State.FOLLOWER
    # the old leader now redirects, the new one takes writes
    exc = leader.apply(b"1").exception(timeout=10)
    assert isinstance(exc, raft.NotLeaderError) and exc.leader == result
    assert target.apply(b"1").result(timeout=20) == 2
    c.wait_converged(key=lambda f: f.value, expected=2)


@pytest.mark.timeout(60)
def test_transfer_to_any(cluster):
    c = cluster(3)
    leader = c.leader()
    old = leader.id
    result = leader.transfer().result(timeout=30)
    new = c.leader()
    assert new.id != old
    assert isinstance(result, raft.Server) and result == c.servers[new.id - 1]
    # 0 is the same as no argument
    result = new.transfer(0).result(timeout=30)
    newer = c.leader()
    assert newer.id != new.id
    assert result == c.servers[newer.id - 1]
    assert newer.apply(b"1").result(timeout=20) == 1
    c.wait_converged(key=lambda f: f.value, expected=1)


@pytest.mark.timeout(60)
def test_transfer_errors(cluster):
    c = cluster(3)
    leader = c.leader()
    follower = c.followers(leader)[0]
    lead_server = c.servers[leader.id - 1]
    exc = follower.transfer(leader.id).exception(timeout=10)
    assert isinstance(exc, raft.NotLeaderError) and exc.leader == lead_server
    exc = follower.transfer().exception(timeout=10)
    assert isinstance(exc, raft.NotLeaderError)
    for target in (leader.id, 42):              # itself, a stranger
        exc = leader.transfer(target).exception(timeout=10)
        assert type(exc) is raft.RaftError and exc.code == errors.BADID, (target, exc)
    # a spare cannot lead
    spare = free_address()
    assert leader.add(4, spare, role=raft.Role.SPARE).result(timeout=20) is None
    exc = leader.transfer(4).exception(timeout=10)
    assert type(exc) is raft.RaftError and exc.code == errors.BADID
    with pytest.raises(ValueError):
        leader.transfer(-1)
    with pytest.raises(TypeError):
        leader.transfer("2")
    # none of that moved the leadership
    assert c.leader().id == leader.id
    assert leader.apply(b"1").result(timeout=20) == 1


# -- removing the leader -------------------------------------------------------------


@pytest.mark.timeout(60)
def test_removing_the_leader_itself(cluster):
    c = cluster(3, fsm_factory=Recorder)
    leader = c.leader()
    leader.apply(b"before").result(timeout=20)
    rest = c.followers(leader)
    assert leader.remove(leader.id).result(timeout=30) is None
    wait_until(lambda: not leader.is_leader, 10, message="the removed leader to step down")
    new = agreed_leader(rest, 20)
    assert new.id != leader.id
    expected = sorted(s for s in c.servers if s.id != leader.id)
    wait_until(lambda: all(sorted(n.configuration) == expected for n in rest), 20,
               message="the two others to have a 2-server configuration")
    assert new.stats()["voters"] == 2
    assert new.apply(b"after").result(timeout=20) == 2
    c.wait_converged(key=lambda f: f.commands, ids=[n.id for n in rest],
                     expected=[b"before", b"after"])
    # the removed node is out: it stopped (ShutdownOnRemove, API.md), it is
    # no longer replicated to
    assert not leader.is_leader
    wait_until(lambda: leader.state == raft.State.UNAVAILABLE, 10)
    assert "removed from the cluster" in leader.stats()["error"]
    assert isinstance(leader.apply(b"x").exception(timeout=10), raft.ShutdownError)
    assert c.fsm(leader.id).commands == [b"before"]


# -- close() while a change is in flight --------------------------------------------


@pytest.mark.timeout(60)
def test_close_fails_a_change_in_flight(cluster):
    c = cluster(3)
    leader = c.leader()
    fut = leader.add(4, free_address())     # nobody there: catch-up goes on
    wait_until(lambda: 4 in {s.id for s in leader.configuration}, 10)
    assert not fut.done()
    c.kill(leader.id)
    assert isinstance(fut.exception(timeout=10), raft.ShutdownError)
    # closed: every kind of change fails at once
    for f in (leader.add(5, free_address()), leader.assign(2, raft.Role.STANDBY),
              leader.remove(2), leader.transfer()):
        assert isinstance(f.exception(timeout=5), raft.ShutdownError)


# -- tuning knobs --------------------------------------------------------------------

BAD_KNOBS = [
    ("install_snapshot_timeout", 0, ValueError),
    ("install_snapshot_timeout", -1.0, ValueError),
    ("install_snapshot_timeout", "30", TypeError),
    ("max_catch_up_rounds", 0, ValueError),
    ("max_catch_up_rounds", 2**32, ValueError),
    ("max_catch_up_rounds", 1.5, TypeError),
    ("max_catch_up_rounds", True, TypeError),
    ("max_catch_up_round_duration", 0, ValueError),
    ("max_catch_up_round_duration", float("nan"), ValueError),
    ("max_catch_up_round_duration", None, TypeError),
    ("max_inflight_entries", 0, ValueError),
    ("max_inflight_entries", -5, ValueError),
    ("max_inflight_entries", "32", TypeError),
    ("segment_size", 0, ValueError),
    ("segment_size", 1024, ValueError),
    ("segment_size", 8.0 * 1024 * 1024, TypeError),
    ("snapshot_compression", 1, TypeError),
    ("snapshot_compression", "yes", TypeError),
    ("tcp_nodelay", 0, TypeError),
    ("tcp_nodelay", None, TypeError),
]


@pytest.mark.parametrize("knob, value, exc", BAD_KNOBS,
                         ids=[f"{k}={v!r}" for k, v, _ in BAD_KNOBS])
def test_bad_knob_value_is_refused_with_its_name(tmp_path, knob, value, exc):
    with pytest.raises(exc, match=knob):
        raft.Node(1, free_address(), str(tmp_path / "n"), Counter(), **{knob: value})


def test_every_knob_accepts_a_good_value(tmp_path):
    good = dict(install_snapshot_timeout=5, max_catch_up_rounds=3,
                max_catch_up_round_duration=0.5, max_inflight_entries=1,
                segment_size=64 * 1024, snapshot_compression=True, tcp_nodelay=False)
    for knob, value in good.items():
        node = raft.Node(1, free_address(), str(tmp_path / knob), Counter(), **{knob: value})
        node.close()
    raft.Node(1, free_address(), str(tmp_path / "all"), Counter(), **good).close()


def snapshot_files(data_dir):
    return [p for p in Path(data_dir).iterdir()
            if p.name.startswith("snapshot-") and not p.name.endswith(".meta")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("reopen_compressed", [True, False])
def test_snapshot_compression_round_trips_through_a_restart(cluster, reopen_compressed):
    c = cluster(1, fsm_factory=Recorder, snapshot_threshold=8, snapshot_trailing=2,
                snapshot_compression=True)
    node = c.leader()
    sent = [bytes([65 + i % 26]) * 2000 for i in range(40)]     # very compressible
    for cmd in sent:
        node.apply(cmd).result(timeout=20)
    wait_until(lambda: node.stats()["snapshot_index"] >= 30, 20,
               message="a snapshot of most of the commands")
    c.kill(1)
    files = snapshot_files(c.data_dir(1))
    assert files, os.listdir(c.data_dir(1))
    # ~60 KB of commands in the newest snapshot, a few hundred bytes on disk
    assert min(p.stat().st_size for p in files) < 10_000, \
        {p.name: p.stat().st_size for p in files}
    # the flag is in the snapshot itself: a node configured either way reads it
    fsm = Recorder()
    node = c.restart(1, fsm, snapshot_compression=reopen_compressed)
    assert fsm.restores == 1
    node.barrier().result(timeout=20)
    assert fsm.commands == sent
    node.apply(b"more").result(timeout=20)
    assert fsm.commands == sent + [b"more"]
