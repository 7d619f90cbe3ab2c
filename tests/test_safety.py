"""Deadlock guards, fork, garbage collection of unclosed nodes, Ctrl-C while waiting."""

import asyncio
import gc
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

import canonical_raft as raft
from canonical_raft.testing import FAST_TIMINGS, free_address, free_ports, port_is_free, wait_until
from canonical_raft.testing.procs import child_env
from fsms import Counter

TESTS_DIR = Path(__file__).resolve().parent

pytestmark = pytest.mark.timeout(60)


def outcome(fn):
    """What calling fn() did: ("returned", value) or ("raised", exception type, message)."""
    try:
        return ("returned", fn())
    except BaseException as e:
        return ("raised", type(e), str(e))


class Reentrant(Counter):
    """Calls blocking methods of its own node from inside apply()."""

    def __init__(self):
        super().__init__()
        self.node = None
        self.probes = {}
        self.nested = []

    def apply(self, command):
        if command == b"probe-wait":
            self.probes["wait_for_leader"] = outcome(lambda: self.node.wait_for_leader(timeout=3))
            self.probes["wait_for_leader_no_timeout"] = outcome(lambda: self.node.wait_for_leader())
            return "probed"
        if command == b"probe-result":
            fut = self.node.apply(b"0")
            bar = self.node.barrier()
            self.nested += [fut, bar]
            self.probes["pending"] = (fut.done(), bar.done())
            self.probes["result"] = outcome(lambda: fut.result(timeout=3))
            # without a timeout only if the guard works: otherwise this would hang for good
            guarded = self.probes["result"][0] == "raised" and self.probes["result"][1] is RuntimeError
            self.probes["result_no_timeout"] = (outcome(lambda: fut.result())
                                                if guarded and not fut.done() else None)
            self.probes["exception"] = outcome(lambda: fut.exception(timeout=3))
            self.probes["barrier"] = outcome(lambda: bar.result(timeout=3))
            return "probed"
        if command == b"probe-close":
            self.probes["close"] = outcome(self.node.close)
            return "probed"
        return super().apply(command)


def reentrant_cluster(cluster):
    c = cluster(3, fsm_factory=Reentrant, start=False)
    for id in (1, 2, 3):
        c.fsm(id).node = c.node(id)
    c.start()
    return c


def assert_runtime_error(result, what):
    assert result is not None, f"{what}: not probed"
    assert result[0] == "raised" and result[1] is RuntimeError, f"{what} inside apply: {result}"


def test_blocking_calls_inside_apply_raise_runtime_error(cluster):
    c = reentrant_cluster(cluster)
    leader = c.leader()
    assert leader.apply(b"probe-wait").result(timeout=30) == "probed"
    assert leader.apply(b"probe-result").result(timeout=30) == "probed"
    wait_until(lambda: all("barrier" in f.probes for f in c.fsms), 20)
    for fsm in c.fsms:  # every node applied the probes, on its own raft thread
        assert_runtime_error(fsm.probes["wait_for_leader"], "wait_for_leader(timeout=3)")
        assert_runtime_error(fsm.probes["wait_for_leader_no_timeout"], "wait_for_leader()")
    lead = c.fsm(leader.id)
    assert lead.probes["pending"] == (False, False), "the nested futures should have been pending"
    assert_runtime_error(lead.probes["result"], "result(timeout=3) of a pending future of the same node")
    assert_runtime_error(lead.probes["result_no_timeout"], "result() of a pending future")
    assert_runtime_error(lead.probes["exception"], "exception(timeout=3) of a pending future")
    assert_runtime_error(lead.probes["barrier"], "barrier().result(timeout=3)")
    # the nested submissions themselves went through, and the node keeps working
    fut, bar = lead.nested
    assert fut.result(timeout=20) == 0
    assert bar.result(timeout=20) is None
    assert leader.apply(b"5").result(timeout=20) == 5
    c.wait_converged(key=lambda f: f.value, expected=5)


def test_close_inside_apply_raises_runtime_error(cluster):
    c = reentrant_cluster(cluster)
    leader = c.leader()
    assert leader.apply(b"probe-close").result(timeout=30) == "probed"
    wait_until(lambda: all("close" in f.probes for f in c.fsms), 20)
    for fsm in c.fsms:
        assert_runtime_error(fsm.probes["close"], "close()")
    for node in c.nodes:
        assert node.state in (raft.State.LEADER, raft.State.FOLLOWER)
    assert leader.apply(b"3").result(timeout=20) == 3
    c.wait_converged(key=lambda f: f.value, expected=3)


def test_done_callback_on_raft_thread_may_submit(leader_node):
    node, fsm = leader_node
    chained = []
    first = node.apply(b"1")
    first.add_done_callback(lambda f: chained.append(node.apply(b"10")))
    assert first.result(timeout=20) == 1
    wait_until(lambda: chained, 10)
    assert chained[0].result(timeout=20) == 11


def wait_child(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            return status
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"forked child {pid} did not exit within {timeout}s")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_cannot_use_parent_node(leader_node):
    node, fsm = leader_node
    assert node.apply(b"1").result(timeout=20) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 0
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(10)  # a hang kills the child, the parent sees the signal
            checks = [lambda: node.apply(b"1"), lambda: node.state, lambda: node.barrier(),
                      lambda: node.stats(), lambda: node.apply_many([b"1"])]
            for bit, check in enumerate(checks):
                try:
                    check()
                except RuntimeError:
                    pass
                else:
                    code |= 1 << bit
        except BaseException:
            code |= 64
        os._exit(code)
    status = wait_child(pid, 20)
    assert os.WIFEXITED(status), f"child died by signal {os.WTERMSIG(status) if os.WIFSIGNALED(status) else status}"
    code = os.WEXITSTATUS(status)
    names = ["apply", "state", "barrier", "stats", "apply_many"]
    failed = [n for bit, n in enumerate(names) if code & (1 << bit)]
    assert code == 0, f"in the forked child these did not raise RuntimeError: {failed} (code {code})"
    # the parent's node is unaffected
    assert node.apply(b"1").result(timeout=20) == 2
    assert node.is_leader


def test_unclosed_node_warns_and_is_closed_by_gc(tmp_path):
    addr = free_address()
    port = int(addr.rsplit(":", 1)[1])
    node = raft.Node(1, addr, str(tmp_path / "gc"), Counter(), **FAST_TIMINGS)
    node.bootstrap([(1, addr)])
    node.start()
    node.wait_for_leader(timeout=20)
    assert node.apply(b"1").result(timeout=20) == 1
    assert not port_is_free(port)
    with pytest.warns(ResourceWarning):
        del node
        gc.collect()
    wait_until(lambda: port_is_free(port), 10, message="the dropped node's port to be released")


def test_unclosed_node_with_pending_futures_gc(tmp_path):
    # the futures must not keep the node alive forever, nor crash when it goes
    addr = free_address()
    node = raft.Node(1, addr, str(tmp_path / "gc"), Counter(), **FAST_TIMINGS)
    node.bootstrap([(1, addr)])
    node.start()
    node.wait_for_leader(timeout=20)
    futures = [node.apply(b"1") for _ in range(100)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del node
        gc.collect()
    wait_until(lambda fs=futures: all(f.done() for f in fs), 10, message="every future to complete")
    for f in futures:
        exc = f.exception(timeout=0)
        assert exc is None or isinstance(exc, raft.ShutdownError), exc
    # once the futures are dropped too, nothing keeps the node alive
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del futures, f, exc
        gc.collect()
    wait_until(lambda: port_is_free(int(addr.rsplit(":", 1)[1])), 10,
               message="the dropped node's port to be released")


BLOCKED_ON_FUTURE = textwrap.dedent("""
    import signal, sys, threading
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import canonical_raft as raft

    release = threading.Event()

    class Slow(raft.FSM):
        def apply(self, command):
            release.wait(30)          # holds this entry's future pending
            return 1
        def snapshot(self):
            return b""
        def restore(self, data):
            pass

    addr, data_dir = sys.argv[1], sys.argv[2]
    node = raft.Node(1, addr, data_dir, Slow(), election_timeout=0.5, heartbeat_timeout=0.05)
    node.bootstrap([(1, addr)])
    node.start()
    node.wait_for_leader(timeout=20)
    future = node.apply(b"x")
    print("WAITING", flush=True)
    try:
        future.result()
    finally:
        release.set()
        node.close()
    print("RESULT RETURNED", flush=True)
""")

BLOCKED_ON_LEADER = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import canonical_raft as raft

    addrs, data_dir = sys.argv[1].split(","), sys.argv[2]
    node = raft.Node(1, addrs[0], data_dir, raft.FSM(), election_timeout=0.5, heartbeat_timeout=0.05)
    node.bootstrap([(i + 1, a) for i, a in enumerate(addrs)])
    node.start()                      # its two peers never start: no leader, ever
    print("WAITING", flush=True)
    try:
        node.wait_for_leader()
    finally:
        node.close()
    print("LEADER FOUND", flush=True)
""")


def run_and_interrupt(procs, script, args):
    p = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(TESTS_DIR),
                         start_new_session=True)
    procs.append(p)
    deadline = time.monotonic() + 30
    line = b""
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([p.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(p.stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
    if line.strip() != b"WAITING":
        p.kill()
        out, err = p.communicate(timeout=10)
        raise AssertionError(f"script did not get ready: {line!r} {err.decode(errors='replace')[-2000:]}")
    time.sleep(0.5)  # let it block
    assert p.poll() is None, "the script should be blocked"
    started = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        raise AssertionError(f"SIGINT did not interrupt the wait within 10 s; stderr: "
                             f"{err.decode(errors='replace')[-3000:]}")
    elapsed = time.monotonic() - started
    err = err.decode(errors="replace")
    assert p.returncode != 0, (p.returncode, out, err)
    assert "KeyboardInterrupt" in err, err[-3000:]
    assert elapsed < 5, f"took {elapsed:.1f}s to react to SIGINT"
    return out.decode(errors="replace"), err


@pytest.mark.timeout(60)
def test_ctrl_c_while_waiting_on_future(procs, tmp_path):
    out, err = run_and_interrupt(procs, BLOCKED_ON_FUTURE, [free_address(), str(tmp_path / "d")])
    assert "RESULT RETURNED" not in out


@pytest.mark.timeout(60)
def test_ctrl_c_while_waiting_for_leader(procs, tmp_path):
    addrs = ",".join(f"127.0.0.1:{p}" for p in free_ports(3))
    out, err = run_and_interrupt(procs, BLOCKED_ON_LEADER, [addrs, str(tmp_path / "d")])
    assert "LEADER FOUND" not in out


def test_cancelled_futures_are_skipped(leader_node):
    node, fsm = leader_node
    futures = [node.apply(b"1") for _ in range(200)]
    cancelled = [f for f in futures if f.cancel()]
    last = node.apply(b"1").result(timeout=20)
    node.barrier().result(timeout=20)
    assert last == fsm.value  # the node kept going; results still match the FSM
    for f in futures:
        assert f.done()
        if f not in cancelled:
            assert isinstance(f.result(timeout=0), int)
    assert node.is_leader and not node.stats()["error"]


def test_apply_async_cancelled_task(leader_node):
    node, fsm = leader_node

    async def main():
        task = asyncio.ensure_future(node.apply_async(b"5"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await node.apply_async(b"1")

    result = asyncio.run(main())
    node.barrier().result(timeout=20)
    assert result == fsm.value and result in (1, 6)


def test_raising_callbacks_do_not_hurt_the_node(cluster):
    c = cluster(3, start=False)
    calls = []

    def bad_observer(n):
        calls.append(n.id)
        raise RuntimeError("observer failed on purpose")

    for id in (1, 2, 3):
        c.node(id).on_state_change(bad_observer)
    c.start()
    leader = c.leader()
    fut = leader.apply(b"1")
    fut.add_done_callback(lambda f: 1 / 0)
    assert fut.result(timeout=20) == 1
    assert leader.apply(b"1").result(timeout=20) == 2
    c.wait_converged(key=lambda f: f.value, expected=2)
    assert set(calls) == {1, 2, 3}


def test_close_wakes_a_thread_blocked_in_wait_for_leader(make_node):
    p = free_ports(3)
    node = make_node(id=1, address=f"127.0.0.1:{p[0]}")
    node.bootstrap([(i + 1, f"127.0.0.1:{p[i]}") for i in range(3)])
    node.start()
    outcome_box = []

    def waiter():
        outcome_box.append(outcome(node.wait_for_leader))

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert t.is_alive()
    node.close()
    t.join(10)
    assert not t.is_alive(), "wait_for_leader() still blocked after close()"
    assert outcome_box[0][0] == "raised" and issubclass(outcome_box[0][1], raft.ShutdownError), outcome_box
