"""Apply on any node (forward=True): a follower's commands go to the leader
and resolve with the result of this node's own FSM; exactly once through the
session table; the bad inputs and faults of issue 14 (in one process; the
multi-process faults are in test_forward_procs.py)."""

import asyncio
import socket
import time

import pytest

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM, wait_until
from fsms import Counter
import peerwire

pytestmark = pytest.mark.timeout(90)


def fwd(stats):
    return stats["forwarding"]


def test_each_follower_forwards_and_gets_its_own_fsm_result(cluster):
    c = cluster(3, Counter, forward=True)
    leader = c.leader()
    for f in c.followers():
        fsm = c.fsm(f.id)
        result = f.apply(b"5").result(20)
        # The result is this node's FSM's, and the write is visible here.
        assert result == fsm.value
        assert f.apply_many([b"1", b"2"])[1].result(20) == fsm.value
        assert asyncio.run(f.apply_async(b"3")) == fsm.value

        async def burst():
            return await f.apply_many_async([b"1", b"1"])
        assert asyncio.run(burst())[-1] == fsm.value
    c.wait_converged(key=lambda fsm: fsm.value)
    assert c.fsm(leader.id).value == 2 * (5 + 1 + 2 + 3 + 2)
    assert all(fwd(f.stats())["forwarded"] == 6 for f in c.followers())
    assert fwd(leader.stats())["appended"] == 12


def test_a_forwarded_apply_made_in_a_done_callback_goes_out_at_once(cluster):
    """A follower's apply() from a done callback (the raft thread's own
    list) is sent in the same loop iteration, not after the next wake-up
    (a heartbeat, a second apart here)."""
    from test_read_barrier import SLOW_HEARTBEAT, chain
    c = cluster(3, Counter, forward=True, **SLOW_HEARTBEAT)
    c.leader()
    follower = c.followers()[0]
    follower.apply(b"1").result(10)
    took = chain(lambda: follower.apply(b"1"), 20).result(60)
    assert took < 5.0, f"20 chained forwarded applies took {took:.1f}s"
    assert c.fsm(follower.id).value == 22


def test_without_forward_a_follower_still_refuses(cluster):
    c = cluster(3, Counter)
    c.leader()
    follower = c.followers()[0]
    with pytest.raises(raft.NotLeaderError):
        follower.apply(b"1").result(10)
    assert fwd(follower.stats())["forwarded"] == 0


def test_many_in_flight_from_every_follower_each_applied_once(cluster):
    c = cluster(3, RecordingFSM, forward=True, max_batch_bytes=4096)
    c.leader()
    futures = []
    for f in c.followers():
        futures += [(f.id, i, fut) for i, fut in
                    enumerate(f.apply_many([b"%d-%d" % (f.id, i) for i in range(500)]))]
    for _, _, fut in futures:
        fut.result(30)
    c.wait_converged(key=lambda fsm: fsm.commands)
    commands = c.fsm(1).commands
    assert len(commands) == len(set(commands)) == 1000
    # A node's own commands arrive in its order.
    for f in c.followers():
        mine = [x for x in commands if x.startswith(b"%d-" % f.id)]
        assert mine == [b"%d-%d" % (f.id, i) for i in range(500)]


def test_the_leader_forwarding_to_itself_appends_with_its_session(cluster):
    c = cluster(1, Counter, forward=True)
    node = c.leader()
    assert node.apply(b"2").result(10) == 2       # the plain path on a leader
    assert fwd(node.stats())["forwarded"] == 0


def test_an_oversized_command_fails_on_the_submitting_node(cluster):
    c = cluster(3, RecordingFSM, forward=True, max_message_size=1 << 20)
    c.leader()
    follower = c.followers()[0]
    with pytest.raises(raft.RaftError, match="too big to forward") as err:
        follower.apply(b"x" * (1 << 20)).result(10)
    assert err.value.code == raft.errors.TOOBIG
    big, small = follower.apply_many([b"y" * (1 << 20), b"ok"])
    with pytest.raises(raft.RaftError, match="too big"):
        big.result(10)
    assert small.result(20) == len(c.fsm(follower.id).commands)
    assert b"x" * (1 << 20) not in c.fsm(follower.id).commands


def test_no_leader_within_forward_timeout_is_not_leader(cluster):
    c = cluster(3, RecordingFSM, forward=True, forward_timeout=1.0)
    c.leader()
    lone = c.followers()[0]
    for node in c.running:
        if node is not lone:
            c.kill(node.id)
    wait_until(lambda: lone.leader is None, 20, message="the lone node to know no leader")
    start = time.monotonic()
    fut = lone.apply(b"never")
    with pytest.raises(raft.NotLeaderError):      # never sent: said as such
        fut.result(10)
    assert 0.9 < time.monotonic() - start < 5
    assert b"never" not in c.fsm(lone.id).commands


def test_close_fails_forwarded_futures_with_shutdown(cluster):
    c = cluster(3, RecordingFSM, forward=True, forward_timeout=60.0)
    c.leader()
    lone = c.followers()[0]
    for node in c.running:
        if node is not lone:
            c.kill(node.id)
    futures = lone.apply_many([b"a", b"b", b"c"])
    time.sleep(0.2)
    assert not any(f.done() for f in futures)
    c.kill(lone.id)
    for f in futures:
        with pytest.raises(raft.ShutdownError):
            f.result(10)


def raw_forward(address, frames, id, own_address="127.0.0.1:1"):
    """Open a forwarding stream to address as member `id` (plaintext on
    loopback proves no identity: this is what a rogue process could send)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(peerwire.forward_handshake(id, own_address) + b"".join(frames))
        sock.settimeout(0.2)
        try:
            return sock.recv(1)
        except OSError:
            return b""


def test_a_non_member_is_refused_and_counted(cluster):
    c = cluster(3, RecordingFSM, forward=True)
    leader = c.leader()
    raw_forward(leader.address, [peerwire.forward_apply(99, 1, [b"rogue"])], id=99)
    wait_until(lambda: leader.stats()["refused"].get("forward_not_member"), 10)
    leader.barrier().result(10)
    assert b"rogue" not in c.fsm(leader.id).commands
    assert fwd(leader.stats())["appended"] == 0


def test_a_malformed_frame_drops_the_stream(cluster):
    c = cluster(3, RecordingFSM, forward=True)
    leader = c.leader()
    bad = peerwire.forward_apply(7, 1, [b"abc"])
    bad = bad[:16 + 40] + (1 << 40).to_bytes(8, "little") + bad[16 + 48:]  # a lying length
    raw_forward(leader.address, [bad], id=c.followers()[0].id)
    wait_until(lambda: leader.stats()["refused"].get("forward_malformed"), 10)
    assert fwd(leader.stats())["appended"] == 0


def test_a_resent_frame_is_applied_once(cluster):
    """The session table at apply time: the same seqs twice, one application."""
    c = cluster(3, RecordingFSM, forward=True)
    leader = c.leader()
    member = c.followers()[0].id
    frame = peerwire.forward_apply(0x5E55, 1, [b"one", b"two", b"three"])
    raw_forward(leader.address, [frame, frame], id=member)
    wait_until(lambda: fwd(leader.stats())["duplicates"] == 3, 10)
    c.wait_converged(key=lambda fsm: fsm.commands)
    assert c.fsm(leader.id).commands == [b"one", b"two", b"three"]
    # Overlapping: seqs 2..4, only 4 is new.
    raw_forward(leader.address, [peerwire.forward_apply(0x5E55, 2, [b"two", b"three", b"four"])],
                id=member)
    wait_until(lambda: fwd(leader.stats())["duplicates"] == 5, 10)
    c.wait_converged(key=lambda fsm: fsm.commands)
    assert c.fsm(leader.id).commands == [b"one", b"two", b"three", b"four"]
    assert all(fwd(n.stats())["duplicates"] == 5 for n in c.running)


def test_a_continuation_out_of_order_is_refused(cluster):
    """Without RESYNC a frame must start where the session's last ended."""
    c = cluster(3, RecordingFSM, forward=True)
    leader = c.leader()
    member = c.followers()[0].id
    raw_forward(leader.address, [
        peerwire.forward_apply(0xAB, 1, [b"s1"]),
        peerwire.forward_apply(0xAB, 3, [b"s3"], flags=0),     # 2 missing: refused
        peerwire.forward_apply(0xAB, 2, [b"s2"], flags=0),     # continues: taken
    ], id=member)
    wait_until(lambda: fwd(leader.stats())["appended"] == 2, 10)
    leader.barrier().result(10)
    assert c.fsm(leader.id).commands == [b"s1", b"s2"]


def test_the_session_table_survives_snapshot_and_restart(cluster):
    c = cluster(3, RecordingFSM, forward=True, snapshot_threshold=16, snapshot_trailing=2)
    leader = c.leader()
    member = c.followers()[0].id
    raw_forward(leader.address, [peerwire.forward_apply(0xC0FFEE, 1, [b"once"])], id=member)
    for i in range(60):                    # past a few snapshots
        leader.apply(b"pad%d" % i).result(10)
    c.wait_converged(key=lambda fsm: fsm.commands)
    assert all(n.stats()["snapshot_index"] > 0 for n in c.running)
    for n in list(c.running):
        c.restart(n.id)
    leader = c.leader()
    wait_until(lambda: all(fwd(n.stats())["sessions"] == 1 for n in c.running), 20)
    raw_forward(leader.address, [peerwire.forward_apply(0xC0FFEE, 1, [b"once"])],
                id=c.followers()[0].id)
    wait_until(lambda: fwd(leader.stats())["duplicates"] == 1, 10)
    leader.apply(b"end").result(10)
    c.wait_converged(key=lambda fsm: fsm.commands)
    assert c.fsm(leader.id).commands.count(b"once") == 1


def test_sessions_expire_by_log_index_and_are_capped(cluster):
    c = cluster(1, RecordingFSM, session_expiry=1000, max_sessions=2, max_batch_bytes=0)
    node = c.leader()
    addr, me = node.address, node.id
    raw_forward(addr, [peerwire.forward_apply(1, 1, [b"a1"])], id=me)
    raw_forward(addr, [peerwire.forward_apply(2, 1, [b"b1"])], id=me)
    wait_until(lambda: fwd(node.stats())["sessions"] == 2, 10)
    raw_forward(addr, [peerwire.forward_apply(3, 1, [b"c1"])], id=me)   # 1 goes
    wait_until(lambda: b"c1" in c.fsm(me).commands, 10)
    assert fwd(node.stats())["sessions"] == 2
    raw_forward(addr, [peerwire.forward_apply(1, 2, [b"a2"])], id=me)   # gone: refused
    wait_until(lambda: fwd(node.stats())["refused"] == 1, 10)
    node.apply_many([b"pad"] * 1000)[-1].result(20)                    # 1000 entries later
    node.apply(b"tick").result(10)
    assert fwd(node.stats())["sessions"] == 0
    assert b"a2" not in c.fsm(me).commands


class Token(raft.FSM):
    """Returns the same object for every command (its refcount shows leaks)."""

    def __init__(self, token):
        self.token = token

    def apply(self, command):
        return self.token

    def snapshot(self):
        return b""

    def restore(self, data):
        pass


def test_forwarding_leaks_nothing(tmp_path):
    import gc
    import sys
    from canonical_raft.testing import LocalCluster
    gc.collect()
    token = object()
    rc = sys.getrefcount(token)
    with LocalCluster(3, lambda: Token(token), tmp_path, forward=True,
                      snapshot_threshold=64, forward_timeout=1.0) as c:
        c.leader()
        f = c.followers()[0]
        for fut in f.apply_many([b"x"] * 2000):
            assert fut.result(20) is token
        # Many at once: overlapping rounds on the leader, READs under way together here.
        for fut in [n.read_barrier() for _ in range(200) for n in (f, c.leader())]:
            assert fut.result(10) is None
        for other in c.running:
            if other is not f:
                c.kill(other.id)
        stranded = f.apply_many([b"y"] * 10) + [f.read_barrier()]
    for fut in stranded:
        with pytest.raises(raft.RaftError):
            fut.result(10)
    del fut, stranded, c, f, other     # the cluster holds the FSMs, they the token
    gc.collect()
    assert sys.getrefcount(token) == rc
    counters = raft._raft.debug_counters()
    assert all(v == 0 for v in counters.values()), counters
