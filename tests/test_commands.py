"""Commands arrive byte-exact; input types; FSM exceptions."""

import array
import os
import random

import pytest

import canonical_raft as raft
from canonical_raft.testing import wait_until
from fsms import Recorder

pytestmark = pytest.mark.timeout(60)

LENGTHS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 23, 24, 25, 31, 33, 63, 64, 65,
           127, 255, 256, 257, 1000, 1023, 4095, 4096, 4097, 65535, 65537, 1_000_003]


def test_commands_of_any_length_arrive_byte_exact(cluster):
    c = cluster(3, fsm_factory=Recorder)
    leader = c.leader()
    rng = random.Random(1234)
    sent = [rng.randbytes(n) for n in LENGTHS]
    sent += [b"\x00" * 7, b"\x00" * 8, b"\xff" * 9, b"\x00", b""]  # zeros must not look like padding
    sent += [rng.randbytes(rng.randrange(0, 300)) for _ in range(100)]
    futures = [leader.apply(cmd) for cmd in sent]
    assert [f.result(timeout=30) for f in futures] == list(range(1, len(sent) + 1))
    c.wait_converged(key=lambda f: f.commands, expected=sent, timeout=30)
    for fsm in c.fsms:
        assert set(fsm.types) == {bytes}, f"FSM.apply got {set(fsm.types)}, expected bytes"


def test_commands_byte_exact_via_apply_many(cluster):
    c = cluster(3, fsm_factory=Recorder)
    leader = c.leader()
    rng = random.Random(99)
    sent = [rng.randbytes(n) for n in LENGTHS[:24]] * 3
    futures = leader.apply_many(sent)
    assert [f.result(timeout=30) for f in futures] == list(range(1, len(sent) + 1))
    c.wait_converged(key=lambda f: f.commands, expected=sent, timeout=30)


@pytest.mark.timeout(180)
def test_large_command_20mib(cluster):
    c = cluster(3, fsm_factory=Recorder, election_timeout=1.0, heartbeat_timeout=0.1)
    leader = c.leader()
    big = os.urandom(20 * 1024 * 1024 + 3)
    before = leader.apply(b"before").result(timeout=30)
    assert before == 1
    assert leader.apply(big).result(timeout=120) == 2
    assert leader.apply(b"after").result(timeout=60) == 3
    # compare without building huge reprs on failure
    wait_until(lambda: all(len(f.commands) == 3 for f in c.fsms), 120,
               message="every node to apply the 20 MiB command")
    for fsm in c.fsms:
        assert fsm.commands[0] == b"before" and fsm.commands[2] == b"after"
        assert len(fsm.commands[1]) == len(big)
        assert fsm.commands[1] == big


def test_bytes_like_inputs(cluster):
    c = cluster(3, fsm_factory=Recorder)
    leader = c.leader()
    ba = bytearray(b"from a bytearray")
    mv = memoryview(b"0123456789abcdef")[3:11]  # a slice of a larger buffer
    inputs = [b"plain bytes", ba, memoryview(b"from a memoryview"), mv, bytearray(), memoryview(b"")]
    expected = [bytes(x) for x in inputs]
    futures = [leader.apply(x) for x in inputs]
    # the command is copied at submission: later changes to the buffer don't matter
    ba[:] = b"X" * len(ba)
    assert [f.result(timeout=20) for f in futures] == list(range(1, len(inputs) + 1))
    c.wait_converged(key=lambda f: f.commands, expected=expected)


def test_bytes_like_with_wide_items(cluster):
    c = cluster(3, fsm_factory=Recorder)
    leader = c.leader()
    arr = array.array("I", [1, 2, 0xDEADBEEF])
    assert leader.apply(arr).result(timeout=20) == 1
    assert leader.apply(memoryview(arr)).result(timeout=20) == 2
    c.wait_converged(key=lambda f: f.commands, expected=[arr.tobytes(), arr.tobytes()])


@pytest.mark.parametrize("bad", ["text", 42, None, 1.5, [b"a"], object()])
def test_non_bytes_command_raises_type_error_at_once(leader_node, bad):
    node, fsm = leader_node
    with pytest.raises(TypeError):
        node.apply(bad)
    with pytest.raises(TypeError):
        node.apply_many([bad])
    assert node.apply(b"1").result(timeout=20) == 1  # the bad ones were not applied
    assert fsm.value == 1 and fsm.applies == 1


def test_non_bytes_command_type_error_on_follower_too(cluster):
    c = cluster(3)
    leader = c.leader()
    follower = c.followers(leader)[0]
    with pytest.raises(TypeError):
        follower.apply("text")


def test_fsm_exception_is_delivered_and_node_keeps_running(cluster):
    c = cluster(3, fsm_factory=lambda: Recorder(fail_on=b"bad"))
    leader = c.leader()
    assert leader.apply(b"one").result(timeout=20) == 1
    fut = leader.apply(b"bad")
    exc = fut.exception(timeout=20)
    assert isinstance(exc, ValueError)
    assert "refused b'bad' at #2" in str(exc)
    with pytest.raises(ValueError):
        fut.result()
    # later applies succeed; the failed one still counted as applied
    assert leader.apply(b"three").result(timeout=20) == 3
    futures = leader.apply_many([b"four", b"bad", b"six"])
    assert futures[0].result(timeout=20) == 4
    assert isinstance(futures[1].exception(timeout=20), ValueError)
    assert futures[2].result(timeout=20) == 6
    expected = [b"one", b"bad", b"three", b"four", b"bad", b"six"]
    c.wait_converged(key=lambda f: f.commands, expected=expected)
    for node in c.nodes:
        assert node.state in (raft.State.LEADER, raft.State.FOLLOWER)
        assert not node.stats()["error"]


class Boom(Exception):
    pass


class Picky(Recorder):
    def apply(self, command):
        n = super().apply(command)
        if command == b"boom":
            raise Boom("boom")
        if command == b"exit":
            raise SystemExit(3)
        return n


def test_fsm_exception_subclasses_and_system_exit(make_node):
    node = make_node(Picky())
    node.bootstrap([(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)
    assert node.apply(b"a").result(timeout=20) == 1
    assert isinstance(node.apply(b"boom").exception(timeout=20), Boom)
    assert isinstance(node.apply(b"exit").exception(timeout=20), SystemExit)
    assert node.apply(b"b").result(timeout=20) == 4
    assert node.is_leader


def test_many_large_commands_in_one_apply_many(cluster):
    c = cluster(3, fsm_factory=Recorder, election_timeout=1.0, heartbeat_timeout=0.1)
    leader = c.leader()
    rng = random.Random(7)
    sent = [rng.randbytes(512 * 1024 + i) for i in range(40)]  # ~20 MiB in one call
    futures = leader.apply_many(sent)
    assert [f.result(timeout=60) for f in futures] == list(range(1, 41))
    wait_until(lambda: all(len(f.commands) == 40 for f in c.fsms), 60)
    for fsm in c.fsms:
        assert [len(x) for x in fsm.commands] == [len(x) for x in sent]
        assert fsm.commands == sent
