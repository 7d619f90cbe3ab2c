"""Many threads submitting at once."""

import threading

import pytest

from fsms import Recorder

pytestmark = pytest.mark.timeout(120)

THREADS = 8
PER_THREAD = 500


def run_threads(target, count):
    errors = []

    def wrapper(i):
        try:
            target(i)
        except BaseException as e:
            errors.append(e)

    barrier = threading.Barrier(count)

    def gated(i):
        barrier.wait(30)
        wrapper(i)

    threads = [threading.Thread(target=gated, args=(i,), name=f"submitter-{i}") for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    assert not any(t.is_alive() for t in threads), "a submitting thread hung"
    if errors:
        raise errors[0]


def test_eight_threads_submitting_to_the_leader(cluster):
    c = cluster(3, election_timeout=1.0, heartbeat_timeout=0.1)
    leader = c.leader()
    results = [None] * THREADS

    def submit(i):
        futures = [leader.apply(b"1") for _ in range(PER_THREAD)]
        results[i] = [f.result(timeout=90) for f in futures]

    run_threads(submit, THREADS)
    total = THREADS * PER_THREAD
    flat = [r for rs in results for r in rs]
    # a counter: every result 1..total exactly once
    assert sorted(flat) == list(range(1, total + 1))
    # each thread's commands went into the log in that thread's order
    for rs in results:
        assert rs == sorted(rs)
    c.wait_converged(key=lambda f: f.value, expected=total, timeout=60)
    assert all(f.applies == total for f in c.fsms)


def test_threads_waiting_each_result_and_apply_many(cluster):
    c = cluster(3, fsm_factory=Recorder, election_timeout=1.0, heartbeat_timeout=0.1)
    leader = c.leader()
    n = 40

    def submit(i):
        for j in range(n):
            if j % 2:
                assert leader.apply(b"t%d-%d" % (i, j)).result(timeout=60) >= 1
            else:
                fs = leader.apply_many([b"t%d-%d" % (i, j), b"t%d-%d+" % (i, j)])
                a, b = (f.result(timeout=60) for f in fs)
                assert b == a + 1, "one apply_many's commands are contiguous"

    run_threads(submit, THREADS)
    total = THREADS * (n + n // 2)
    c.wait_converged(key=lambda f: len(f.commands), expected=total, timeout=60)
    c.wait_converged(key=lambda f: f.commands)
    commands = c.fsm(1).commands
    assert len(set(commands)) == total
    for i in range(THREADS):  # per-thread order preserved
        mine = [x for x in commands if x.startswith(b"t%d-" % i)]
        expected = []
        for j in range(n):
            expected.append(b"t%d-%d" % (i, j))
            if j % 2 == 0:
                expected.append(b"t%d-%d+" % (i, j))
        assert mine == expected


@pytest.mark.timeout(30)
def test_properties_read_from_many_threads_while_applying(cluster):
    c = cluster(3, election_timeout=1.0, heartbeat_timeout=0.1)
    leader = c.leader()
    stop = threading.Event()
    seen = []

    def reader(i):
        node = c.nodes[i % 3]
        count = 0
        while not stop.is_set() and count < 100_000:
            node.state, node.leader, node.is_leader, node.configuration, node.stats()
            count += 1
        seen.append(count)

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in readers:
        t.start()
    try:
        futures = [leader.apply(b"1") for _ in range(500)]
        assert sorted(f.result(timeout=60) for f in futures) == list(range(1, 501))
    finally:
        stop.set()
        for t in readers:
            t.join(30)
    assert not any(t.is_alive() for t in readers)
    assert len(seen) == 4 and all(s > 0 for s in seen)
    c.wait_converged(key=lambda f: f.value, expected=500)
