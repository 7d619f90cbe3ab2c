"""The event-loop bridge: asyncio futures settled in batches per event loop,
done callbacks without a Condition, submissions made on the raft thread, and
nothing lost on the way (every future once, with its own result, in log
order per submitter)."""

import asyncio
import gc
import logging
import os
import sys
import threading

import pytest

import canonical_raft as raft
from canonical_raft import _raft
from canonical_raft.testing import wait_until
from fsms import Counter

pytestmark = pytest.mark.timeout(60)


class Gated(Counter):
    """A Counter whose apply() waits for `gate` (futures stay pending until
    the test opens it); raises for b"raise", StopIteration for b"stop"."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.log = []

    def apply(self, command):
        if not self.gate.wait(30):
            raise RuntimeError("the test never opened the gate")
        self.log.append(bytes(command))
        if command == b"raise":
            raise ValueError("raised by apply")
        if command == b"stop":
            raise StopIteration("raised by apply")
        return super().apply(b"1")


@pytest.fixture
def gated(make_node):
    fsm = Gated()
    node = make_node(fsm)
    node.bootstrap([(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)
    wait_until(lambda: node.is_leader, 20, message="the single node to be leader")
    yield node, fsm
    fsm.gate.set()          # let close() finish the pending applies


class CountingLoop(asyncio.SelectorEventLoop):
    """Counts the wake-ups other threads give it: its readers' callbacks
    (the node's eventfd) and call_soon_threadsafe() (without add_reader,
    which `eventfd=False` refuses, as loops that cannot watch a file do)."""

    def __init__(self, eventfd=True):
        super().__init__()
        self.eventfd = eventfd
        self.threadsafe_calls = 0
        self.reader_calls = 0

    def call_soon_threadsafe(self, *args, **kwargs):
        self.threadsafe_calls += 1
        return super().call_soon_threadsafe(*args, **kwargs)

    def add_reader(self, fd, callback, *args):
        if not self.eventfd:
            raise NotImplementedError

        def counted(*a):
            self.reader_calls += 1
            callback(*a)
        return super().add_reader(fd, counted, *args)


def run_in(loop, coro):
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# -- asyncio -------------------------------------------------------------------

@pytest.mark.parametrize("eventfd", [True, False], ids=["eventfd", "call_soon_threadsafe"])
def test_results_reach_the_loop_in_batches(gated, eventfd):
    node, fsm = gated
    loop = CountingLoop(eventfd)

    async def main():
        fsm.gate.clear()
        tasks = [asyncio.ensure_future(node.apply_async(b"x")) for _ in range(1000)]
        await asyncio.sleep(0.2)            # all submitted, all waiting on the gate
        fsm.gate.set()
        return await asyncio.gather(*tasks)

    results = run_in(loop, main())
    assert results == list(range(1, 1001)), "each its own result, in log order"
    # One wake-up per raft-loop iteration that completed any: far fewer than
    # one per future (the raft thread applies a whole entry per iteration).
    wakeups = loop.reader_calls if eventfd else loop.threadsafe_calls
    assert 1 <= wakeups < 100, (loop.reader_calls, loop.threadsafe_calls)
    if eventfd:
        assert loop.threadsafe_calls == 0, "the eventfd was the only wake-up"


def test_several_loops_on_several_threads(gated):
    node, fsm = gated
    per_loop = {}

    def client(name):
        async def main():
            return [await node.apply_async(b"x") for _ in range(200)]
        per_loop[name] = asyncio.run(main())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(50)
    assert not any(t.is_alive() for t in threads)
    everything = sorted(r for results in per_loop.values() for r in results)
    assert everything == list(range(1, 801)), "every future once, with its own result"
    for results in per_loop.values():
        assert results == sorted(results), "log order per submitter"


def test_a_loops_eventfd_goes_with_the_loop(gated):
    node, _ = gated

    async def main():
        return await node.apply_async(b"x")

    asyncio.run(main())              # the first loop's waker, then steady state
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for i in range(20):
        assert asyncio.run(main()) == i + 2
    node.barrier().result(timeout=20)
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before, "an eventfd outlived its loop"


def test_one_loop_two_nodes(gated, leader_node):
    a, _ = gated
    b, b_fsm = leader_node

    async def main():
        return await asyncio.gather(*(n.apply_async(b"1") for _ in range(100) for n in (a, b)))

    results = asyncio.run(main())
    assert sorted(results[0::2]) == list(range(1, 101))
    assert sorted(results[1::2]) == list(range(1, 101))
    assert b_fsm.value == 100


def test_cancelled_awaits_leave_the_node_and_the_command_alone(gated):
    node, fsm = gated

    async def main():
        fsm.gate.clear()
        tasks = [asyncio.ensure_future(node.apply_async(b"x")) for _ in range(100)]
        await asyncio.sleep(0.1)
        for task in tasks[::2]:
            task.cancel()
        fsm.gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes[::2])
        assert outcomes[1::2] == list(range(2, 101, 2))
        # the node goes on
        return await node.apply_async(b"x")

    assert asyncio.run(main()) == 101
    assert fsm.value == 101, "the cancelled commands ran too"


def test_a_loop_closed_with_futures_pending(gated):
    node, fsm = gated
    loop = asyncio.new_event_loop()
    fsm.gate.clear()
    futures = [loop.run_until_complete(_submitted(node)) for _ in range(20)]
    loop.close()                     # nobody will ever run their callbacks
    fsm.gate.set()
    assert node.apply(b"x").result(timeout=20) == 21
    assert not any(f.done() for f in futures), "a closed loop's futures stay as they were"

    async def main():                # another loop works as before
        return await node.apply_async(b"x")
    assert asyncio.run(main()) == 22


async def _submitted(node):
    """An apply_async() future, without awaiting it."""
    return node._core.apply_future(b"x")


def test_apply_async_exceptions(gated):
    node, fsm = gated

    async def main():
        with pytest.raises(ValueError, match="raised by apply"):
            await node.apply_async(b"raise")
        with pytest.raises(RuntimeError, match="StopIteration"):
            await node.apply_async(b"stop")
        with pytest.raises(TypeError):
            await node.apply_async("not bytes")
        return await node.apply_async(b"x")

    assert asyncio.run(main()) == 1


def test_apply_async_on_a_closed_node(gated):
    node, _ = gated
    node.close()

    async def main():
        with pytest.raises(raft.ShutdownError):
            await node.apply_async(b"x")
        with pytest.raises(raft.ShutdownError):
            await node.apply_many_async([b"x"])
        with pytest.raises(raft.ShutdownError):
            await node.barrier_async()
        return await node.apply_many_async([b"x", b"y"], return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o) for o in outcomes] == [raft.ShutdownError] * 2
    assert outcomes[0] is not outcomes[1]


def test_close_fails_pending_async_futures(gated):
    node, fsm = gated

    async def main():
        fsm.gate.clear()
        tasks = [asyncio.ensure_future(node.apply_async(b"x")) for _ in range(10)]
        await asyncio.sleep(0.1)
        closer = threading.Thread(target=node.close)
        closer.start()
        fsm.gate.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)
        closer.join(20)
        return outcomes

    for outcome in asyncio.run(main()):
        assert isinstance(outcome, (int, raft.ShutdownError)), outcome


def test_apply_many_async(gated):
    node, fsm = gated

    async def main():
        assert await node.apply_many_async([]) == []
        first = await node.apply_many_async([b"x"] * 100)
        assert first == list(range(1, 101))
        with pytest.raises(ValueError, match="raised by apply"):
            await node.apply_many_async([b"x", b"raise", b"x", b"raise"])
        mixed = await node.apply_many_async([b"x", b"raise", b"x"], return_exceptions=True)
        assert mixed[0] == 103 and mixed[2] == 104 and isinstance(mixed[1], ValueError)
        bursts = await asyncio.gather(*(node.apply_many_async([b"x"] * 50) for _ in range(20)))
        return bursts

    bursts = asyncio.run(main())
    assert sorted(r for burst in bursts for r in burst) == list(range(105, 1105))
    for burst in bursts:
        assert burst == list(range(burst[0], burst[0] + 50)), "one burst, one entry, in order"
    assert fsm.value == 1104


def test_barrier_async_follows_earlier_applies(gated):
    node, fsm = gated

    async def main():
        fsm.gate.clear()
        pending = [node._core.apply_future(b"x") for _ in range(10)]
        barrier = asyncio.ensure_future(node.barrier_async())
        await asyncio.sleep(0.05)
        assert not barrier.done()
        fsm.gate.set()
        await barrier
        assert all(f.done() for f in pending)
        assert fsm.value == 10

    asyncio.run(main())


# -- done callbacks ---------------------------------------------------------------

def test_done_callbacks_need_no_condition(gated):
    node, fsm = gated
    fsm.gate.clear()
    fut = node.apply(b"x")
    seen = []
    fut.add_done_callback(lambda f: seen.append((threading.get_ident(), f.result())))
    fsm.gate.set()
    wait_until(lambda: seen, 20, message="the callback")
    assert seen[0][1] == 1 and seen[0][0] in fsm.threads, "called on the raft thread"
    assert fut._cond is None, "a callback makes no Condition"
    late = []
    fut.add_done_callback(late.append)          # done already: called at once
    assert late == [fut]
    assert fut._cond is None


def test_a_raising_callback_is_logged_and_the_others_run(gated, caplog):
    node, fsm = gated
    fsm.gate.clear()
    fut = node.apply(b"x")
    seen = []

    def bad(f):
        raise KeyError("raised by a callback")

    fut.add_done_callback(seen.append)
    fut.add_done_callback(bad)
    fut.add_done_callback(seen.append)
    with caplog.at_level(logging.ERROR, logger="canonical_raft"):
        fsm.gate.set()
        wait_until(lambda: len(seen) == 2, 20, message="both good callbacks")
        assert node.apply(b"x").result(timeout=20) == 2, "the node goes on"
    assert any("raised by a callback" in r.getMessage() or
               (r.exc_info and "raised by a callback" in str(r.exc_info[1]))
               for r in caplog.records)


def test_chains_of_submissions_from_callbacks_keep_order(gated):
    node, fsm = gated
    chains, length = 16, 100
    results = {i: [] for i in range(chains)}
    done = threading.Event()
    finished = []

    def step(chain, f):
        results[chain].append(f.result())
        if len(results[chain]) < length:
            node.apply(b"x").add_done_callback(lambda f2: step(chain, f2))
        else:
            finished.append(chain)
            if len(finished) == chains:
                done.set()

    for chain in range(chains):
        node.apply(b"x").add_done_callback(lambda f, chain=chain: step(chain, f))
    assert done.wait(40), f"chains stuck: {[len(r) for r in results.values()]}"
    everything = sorted(r for chain in results.values() for r in chain)
    assert everything == list(range(1, chains * length + 1))
    for chain in results.values():
        assert chain == sorted(chain), "log order per submitter"


def test_a_callback_cannot_wait_on_a_pending_future_of_its_node(gated):
    node, fsm = gated
    errors = []
    fsm.gate.clear()
    first, second = node.apply(b"x"), node.apply(b"x")

    def wait_for_second(f):
        try:
            second.result(timeout=5)
        except RuntimeError as exc:
            errors.append(exc)

    first.add_done_callback(wait_for_second)
    fsm.gate.set()
    assert second.result(timeout=20) == 2
    wait_until(lambda: errors, 10, message="the RuntimeError")
    assert "deadlock" in str(errors[0])


def test_submissions_from_a_callback_after_close_fail(gated):
    node, fsm = gated
    fsm.gate.clear()
    outcomes = []

    def resubmit(f):
        outcomes.append(node.apply(b"x"))

    pending = [node.apply(b"x") for _ in range(5)]
    for f in pending:
        f.add_done_callback(resubmit)
    closer = threading.Thread(target=node.close)
    closer.start()
    fsm.gate.set()
    closer.join(20)
    assert not closer.is_alive()
    assert len(outcomes) == 5
    for f in outcomes:           # each resolved (applied before the close) or failed
        assert f.done()
        assert f.exception(0) is None or isinstance(f.exception(0), raft.ShutdownError)


# -- threads: order per submitter ------------------------------------------------

def test_threads_order_per_submitter(gated):
    node, fsm = gated
    n_threads, per_thread = 8, 100

    def client(i):
        for j in range(per_thread):
            node.apply(f"{i}:{j}".encode()).result(timeout=20)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(50)
    assert not any(t.is_alive() for t in threads)
    by_thread = {}
    for command in fsm.log:
        i, j = command.decode().split(":")
        by_thread.setdefault(i, []).append(int(j))
    assert by_thread == {str(i): list(range(per_thread)) for i in range(n_threads)}


# -- references ---------------------------------------------------------------------

def test_no_reference_left_behind(gated):
    node, fsm = gated
    token = object()
    command = bytes(bytearray(b"refcount-command"))

    class Returns(Counter):
        def apply(self, c):
            super().apply(b"1")
            return token

    node.close()
    node2 = raft.Node(2, node.address, node.data_dir + "-2", Returns())
    try:
        node2.bootstrap([(2, node.address)])
        node2.start()
        node2.wait_for_leader(timeout=20)
        wait_until(lambda: node2.is_leader, 20)
        rc_token, rc_command = sys.getrefcount(token), sys.getrefcount(command)

        async def main():
            for _ in range(200):
                assert await node2.apply_async(command) is token
            assert all(r is token for r in await node2.apply_many_async([command] * 200))
            await node2.barrier_async()

        asyncio.run(main())
        chained = threading.Event()

        def chain(f, n=[0]):
            n[0] += 1
            if n[0] < 200:
                node2.apply(command).add_done_callback(chain)
            else:
                chained.set()
        node2.apply(command).add_done_callback(chain)
        assert chained.wait(20)
        node2.barrier().result(timeout=20)
        gc.collect()
        assert sys.getrefcount(token) == rc_token
        assert sys.getrefcount(command) == rc_command
    finally:
        node2.close()


def test_debug_counters_at_zero_after_the_bridge(make_node):
    """With the debug build (make debug), nothing the new paths allocate
    outlives the node."""
    gc.collect()
    before = _raft.debug_counters()
    node = make_node()
    node.bootstrap([(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)
    wait_until(lambda: node.is_leader, 20)

    async def main():
        await asyncio.gather(*(node.apply_async(b"1") for _ in range(500)))
        await node.apply_many_async([b"1"] * 500)
        tasks = [asyncio.ensure_future(node.apply_async(b"1")) for _ in range(100)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await node.barrier_async()

    asyncio.run(main())
    node.close()
    gc.collect()
    after = _raft.debug_counters()
    assert {k: after[k] - before[k] for k in ("requests", "wakeups")} == \
        {"requests": 0, "wakeups": 0}, (before, after)
