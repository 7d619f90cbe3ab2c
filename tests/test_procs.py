"""canonical_raft.testing.procs: the node-process protocol, with a child that runs no raft node.

The child is this file run as a script (``python test_procs.py [--fail] [--stubborn]``).
"""

import os
import signal
import sys
import threading
import time
from concurrent.futures import Future

import pytest

from canonical_raft.testing import procs

HERE = os.path.abspath(__file__)


# -- the child ------------------------------------------------------------------


def child_main(argv):
    channel = procs.Child("test-child")
    if "--fail" in argv:
        channel.failed(RuntimeError("cannot start"))
        channel.flush()
        return 1
    if "--stubborn" in argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # only SIGKILL stops it

    def later(seconds, value):
        future = Future()
        timer = threading.Timer(seconds, future.set_result, args=({"value": value},))
        timer.daemon = True
        timer.start()
        return future

    def emit(name, n):
        for i in range(n):
            channel.event(name, i=i)
        return {"sent": n}

    def boom():
        raise ValueError("no such thing")

    def die(code):
        os._exit(code)

    def close():
        if "--stubborn" in argv or "--slow-close" in argv:
            time.sleep(60)
        return {"closed": True}

    channel.ready(argv=argv)
    try:
        channel.serve({"echo": lambda **args: dict(args), "sleep": lambda seconds: time.sleep(seconds),
                       "later": later, "emit": emit, "boom": boom, "die": die, "close": close})
    finally:
        channel.flush()
    return 0


# -- the tests ------------------------------------------------------------------


@pytest.fixture
def spawn(tmp_path):
    made = []

    def start(*args, on_event=None):
        p = procs.Process([sys.executable, HERE, *args], name=f"child{len(made)}",
                          log_path=tmp_path / f"child{len(made)}.log", on_event=on_event)
        made.append(p)
        return p

    try:
        yield start
    finally:
        procs.stop_all(made, 2.0)
        assert not [p for p in made if p.alive]


@pytest.mark.timeout(60)
def test_request_reply_and_ids(spawn):
    p = spawn()
    assert p.wait_ready(30)["pid"] == p.pid
    assert p.call("echo", a=1, b=[2, "x"]) == {"a": 1, "b": [2, "x"]}
    # replies come in completion order and find their request by id
    slow = p.submit("later", seconds=0.5, value="slow")
    fast = p.submit("later", seconds=0.0, value="fast")
    assert fast.result(10) == {"value": "fast"}
    assert not slow.done()
    assert slow.result(10) == {"value": "slow"}
    with pytest.raises(procs.RemoteError, match="ValueError: no such thing"):
        p.call("boom")
    with pytest.raises(procs.RemoteError, match="unknown command"):
        p.call("nope")
    p.stop()
    assert p.returncode == 0


@pytest.mark.timeout(60)
def test_events_reach_the_parent_in_order(spawn):
    seen = []
    p = spawn(on_event=lambda proc, name, data: seen.append((proc, name, data["i"])))
    p.wait_ready(30)
    assert p.call("emit", name="tick", n=5) == {"sent": 5}
    # the events were written before the reply, on the same pipe
    assert seen == [(p, "tick", i) for i in range(5)]


@pytest.mark.timeout(60)
def test_a_failing_event_handler_does_not_stop_the_replies(spawn):
    def on_event(proc, name, data):
        raise RuntimeError("a bug in the parent's handler")

    p = spawn(on_event=on_event)
    p.wait_ready(30)
    assert p.call("emit", name="tick", n=2) == {"sent": 2}
    assert p.call("echo", still="here") == {"still": "here"}


@pytest.mark.timeout(60)
def test_a_child_that_dies_fails_its_pending_requests(spawn):
    exits = []
    p = spawn()
    p._on_exit = exits.append
    p.wait_ready(30)
    pending = p.submit("later", seconds=30, value=0)  # a deferred reply, still pending
    with pytest.raises(procs.ProcessGone):
        p.call("die", code=7)
    with pytest.raises(procs.ProcessGone):
        pending.result(10)
    assert p.exited.wait(10) and not p.alive
    assert p.returncode == 7 and p.exit_status() == "exited with status 7"
    assert exits == [p]
    with pytest.raises(procs.ProcessGone):  # nothing is sent to a dead process
        p.submit("echo").result(1)


@pytest.mark.timeout(60)
def test_a_start_failure_is_reported(spawn):
    p = spawn("--fail")
    with pytest.raises(procs.ProcessGone, match="RuntimeError: cannot start"):
        p.wait_ready(30)


@pytest.mark.timeout(60)
def test_timeout_leaves_the_request_pending(spawn):
    p = spawn()
    p.wait_ready(30)
    future = p.submit("later", seconds=1.0, value=1)
    started = time.monotonic()
    with pytest.raises(procs.ReplyTimeout, match="no reply to 'later'"):
        p.wait(future, 0.2, "later")
    assert time.monotonic() - started < 1.0
    assert future.result(10) == {"value": 1}  # the late reply still arrives
    with pytest.raises(TimeoutError):         # ReplyTimeout is a TimeoutError
        p.call("sleep", timeout=0.1, seconds=1.0)


@pytest.mark.timeout(60)
def test_stop_escalates_sigterm_then_sigkill(spawn):
    polite = spawn()
    polite.wait_ready(30)
    polite.stop(5.0)
    assert polite.returncode == 0 and not polite.signals_sent

    slow = spawn("--slow-close")  # close hangs; SIGTERM (SystemExit) ends it
    slow.wait_ready(30)
    slow.stop(0.3)
    assert slow.returncode == 0 and slow.signals_sent == {signal.SIGTERM}

    stubborn = spawn("--stubborn")  # close hangs and SIGTERM is ignored: SIGKILL
    stubborn.wait_ready(30)
    started = time.monotonic()
    stubborn.stop(0.3)
    assert stubborn.returncode == -signal.SIGKILL
    assert stubborn.signals_sent == {signal.SIGTERM, signal.SIGKILL}
    assert time.monotonic() - started < procs.TERM_TIMEOUT + 5.0
    assert stubborn.exited.is_set()


@pytest.mark.timeout(60)
def test_eof_on_stdin_ends_the_child(spawn):
    p = spawn()
    p.wait_ready(30)
    p.proc.stdin.close()  # the parent went away
    p.proc.wait(10)
    assert p.returncode == 0


@pytest.mark.timeout(60)
def test_kill_and_pause(spawn):
    p = spawn()
    p.wait_ready(30)
    p.pause()
    future = p.submit("echo", x=1)  # written from a thread: never blocks on a stopped child
    assert not future.done()
    p.resume()
    assert future.result(10) == {"x": 1}
    p.kill()
    assert p.returncode == -signal.SIGKILL and not p.alive


def test_child_env_imports_this_package():
    env = procs.child_env("/somewhere")
    parts = env["PYTHONPATH"].split(os.pathsep)
    import canonical_raft
    assert parts[0] == os.path.dirname(os.path.dirname(canonical_raft.__file__))
    assert parts[1] == "/somewhere"
    assert env["PYTHONFAULTHANDLER"] == "1" and "PYTHONWARNINGS" not in env


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
