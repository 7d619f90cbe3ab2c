"""read_barrier(): linearizable reads on any node without a log write each
(ReadIndex), concurrent calls sharing one round; stale_ok()."""

import asyncio
import socket
import struct
import threading
import time
from concurrent.futures import Future

import pytest

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM, wait_until
import peerwire

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


class FakeVoter:
    """Listens on a stopped member's address (plaintext, loopback) and keeps
    the PINGs (term, round) a leader's forwarding stream sends there; answers
    only when told, on a forwarding stream of its own as that member."""

    def __init__(self, id, address, leader_address):
        self.id = id
        self.address = address
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_server((host, int(port)))
        self.sock.settimeout(0.2)
        self.pings = []
        self.cond = threading.Condition()
        self.closed = False
        self.out = socket.create_connection(tuple(leader_address.rsplit(":", 1)), timeout=5)
        self.out.sendall(peerwire.forward_handshake(id, address))
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        conns = []
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()
        for conn in conns:
            conn.close()

    def _read(self, conn):
        buf = b""

        def need(n):
            nonlocal buf
            while len(buf) < n and not self.closed:
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return False
                if not chunk:
                    return False
                buf += chunk
            return len(buf) >= n
        conn.settimeout(0.2)
        if not need(24):
            return
        protocol, _, alen = struct.unpack("<QQQ", buf[:24])
        if protocol != peerwire.FORWARD_PROTOCOL:
            while need(len(buf) + 1):     # raft's own stream: read, ignore
                buf = b""
            return
        buf = buf[24 + alen:]
        while need(16):
            ftype, _, _, _, blen = struct.unpack("<BBHIQ", buf[:16])
            if not need(16 + blen):
                return
            body, buf = buf[16:16 + blen], buf[16 + blen:]
            if ftype == peerwire.FWD_PING:
                with self.cond:
                    self.pings.append(struct.unpack("<QQ", body))
                    self.cond.notify_all()

    def next_ping(self, after=0, timeout=2.0):
        """The first PING of a round numbered above `after`: (term, round)."""
        with self.cond:
            assert self.cond.wait_for(
                lambda: any(r > after for _, r in self.pings), timeout), (after, self.pings)
            return next((t, r) for t, r in self.pings if r > after)

    def pong(self, term, round):
        self.out.sendall(peerwire.forward_frame(peerwire.FWD_PONG, struct.pack("<QQ", term, round)))

    def close(self):
        self.closed = True
        self.thread.join(5)
        self.sock.close()
        self.out.close()


@pytest.fixture
def leader_alone(cluster):
    """A leader whose followers are stopped, one replaced by a FakeVoter:
    until it steps down (an election timeout, 3 s, after the last heartbeat
    answered) its read rounds end only when the test answers them."""
    c = cluster(3, RecordingFSM, election_timeout=3.0, heartbeat_timeout=0.3)
    leader = c.leader()
    leader.read_barrier().result(10)        # this term's barrier: rounds only from now on
    f1, f2 = c.followers()
    c.kill(f2.id)
    fake = FakeVoter(f2.id, f2.address, leader.address)
    try:
        # Reads (that f1 answers) until the leader's stream to f2's address
        # reaches the fake (the first PINGs went to the stopped node).
        for _ in range(100):
            leader.read_barrier().result(10)
            if fake.pings:
                break
            time.sleep(0.05)
        assert fake.pings, "no PING reached the fake voter"
        c.kill(f1.id)
        yield leader, fake
    finally:
        fake.close()


def test_rounds_overlap_and_a_read_waits_for_a_round_that_started_after_it(leader_alone):
    leader, fake = leader_alone
    a = leader.read_barrier()
    term, ra = fake.next_ping(after=fake.pings[-1][1])
    # b comes while a's round is under way: a round of its own starts at
    # once (not after a's), and a's answer does not end it.
    b = leader.read_barrier()
    _, rb = fake.next_ping(after=ra)
    fake.pong(term, ra)
    assert a.result(2) is None
    time.sleep(0.2)
    assert not b.done()
    fake.pong(term, rb)
    assert b.result(2) is None
    # An answer to a later round ends the earlier ones with it.
    c = leader.read_barrier()
    _, rc = fake.next_ping(after=rb)
    d = leader.read_barrier()
    _, rd = fake.next_ping(after=rc)
    fake.pong(term, rd)
    assert c.result(2) is None and d.result(2) is None
    # An answer of another term counts for nothing.
    e = leader.read_barrier()
    _, re = fake.next_ping(after=rd)
    fake.pong(term + 1, re)
    time.sleep(0.2)
    assert not e.done()
    fake.pong(term, re)
    assert e.result(2) is None


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
