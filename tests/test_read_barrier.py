"""read_barrier(): linearizable reads on any node without a log write each
(ReadIndex), concurrent calls sharing one round; stale_ok()."""

import asyncio
import threading
import time
from concurrent.futures import Future

import pytest

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM, wait_until

pytestmark = pytest.mark.timeout(90)


def rounds(node):
    return node.stats()["forwarding"]["read_rounds"]


def test_read_barrier_on_leader_and_follower(cluster):
    c = cluster(3, RecordingFSM)
    leader = c.leader()
    assert leader.read_barrier().result(10) is None
    for f in c.followers():
        assert f.read_barrier().result(10) is None
        assert asyncio.run(f.read_barrier_async()) is None


def test_a_write_acknowledged_anywhere_is_visible_after_read_barrier(cluster):
    """Linearizable: every write acknowledged before read_barrier() starts
    is in this node's FSM once it returns (a follower applies a heartbeat
    or so behind the leader: without the barrier this fails)."""
    c = cluster(3, RecordingFSM, forward=True)
    c.leader()
    nodes = c.running
    for i in range(60):
        writer = nodes[i % 3]
        reader = nodes[(i + 1) % 3]
        command = b"w%d" % i
        writer.apply(command).result(10)
        reader.read_barrier().result(10)
        assert command in c.fsm(reader.id).commands, (i, writer.id, reader.id)


def test_read_barrier_writes_nothing_to_the_log(cluster):
    c = cluster(3, RecordingFSM)
    leader = c.leader()
    # The first of a term commits a barrier; a follower's first may add one
    # more so that it learns the commit index without waiting for a heartbeat.
    leader.read_barrier().result(10)
    c.followers()[0].read_barrier().result(10)
    time.sleep(0.3)
    before = leader.stats()["last_index"]
    for _ in range(20):
        leader.read_barrier().result(10)
        c.followers()[0].read_barrier().result(10)
    assert leader.stats()["last_index"] == before


@pytest.mark.parametrize("on", ["leader", "follower"])
def test_concurrent_calls_share_a_round(cluster, on):
    c = cluster(3, RecordingFSM)
    leader = c.leader()
    node = leader if on == "leader" else c.followers()[0]
    node.read_barrier().result(10)
    before = rounds(leader)
    start = threading.Barrier(64)
    errors = []

    def reader():
        try:
            start.wait(10)
            for _ in range(5):
                node.read_barrier().result(10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    used = rounds(leader) - before
    assert 1 <= used < 64 * 5 / 4, used        # 320 reads in far fewer rounds


def chain(submit, links):
    """Call submit() `links` times, each from the previous one's done
    callback (on the raft thread); a Future of the seconds it took."""
    out = Future()
    left = [links]
    t0 = time.monotonic()

    def done(f):
        if f.exception() is not None:
            out.set_exception(f.exception())
        elif left[0] == 0:
            out.set_result(time.monotonic() - t0)
        else:
            left[0] -= 1
            submit().add_done_callback(done)
    submit().add_done_callback(done)
    return out


# One heartbeat a second: a request made on the raft thread that waited for
# the loop's next wake-up would wait for it (about half a second a link).
SLOW_HEARTBEAT = dict(election_timeout=2.0, heartbeat_timeout=1.0)


@pytest.mark.parametrize("on", ["leader", "follower"])
def test_a_read_made_in_a_done_callback_does_not_wait_for_a_wakeup(cluster, on):
    """A read barrier submitted from a done callback (the raft thread's own
    list) joins the round or READ of the same loop iteration: 30 in a row
    take milliseconds each, not a heartbeat each."""
    c = cluster(3, RecordingFSM, **SLOW_HEARTBEAT)
    leader = c.leader()
    node = leader if on == "leader" else c.followers()[0]
    node.read_barrier().result(10)
    took = chain(node.read_barrier, 30).result(60)
    assert took < 3.0, f"30 chained reads took {took:.1f}s"


def test_read_barrier_without_a_majority_fails(cluster):
    c = cluster(3, RecordingFSM, forward_timeout=1.0)
    leader = c.leader()
    leader.read_barrier().result(10)
    for f in c.followers():
        c.kill(f.id)
    # Whatever this node still believes, no majority confirms it.
    with pytest.raises(raft.NotLeaderError):
        leader.read_barrier().result(10)


def test_read_barrier_on_a_closed_or_unstarted_node(make_node):
    node = make_node()
    with pytest.raises(raft.NotLeaderError):
        node.read_barrier().result(1)
    node.close()
    with pytest.raises(raft.ShutdownError):
        node.read_barrier().result(1)


def test_close_fails_waiting_reads_with_shutdown(cluster):
    c = cluster(3, RecordingFSM, forward_timeout=60.0)
    leader = c.leader()
    lone = c.followers()[0]
    for node in c.running:
        if node is not lone:
            c.kill(node.id)
    fut = lone.read_barrier()
    time.sleep(0.2)
    assert not fut.done()
    c.kill(lone.id)
    with pytest.raises(raft.ShutdownError):
        fut.result(10)
    assert leader.id != lone.id


def test_stale_ok(cluster):
    c = cluster(3, RecordingFSM)
    leader = c.leader()
    follower = c.followers()[0]
    assert leader.stale_ok(0)
    wait_until(lambda: follower.stale_ok(0.5), 10)
    with pytest.raises(ValueError):
        follower.stale_ok(-1)
    with pytest.raises(TypeError):
        follower.stale_ok("1")
    c.kill(leader.id)
    time.sleep(0.3)
    assert not follower.stale_ok(0.2)       # no election within 0.5 s
