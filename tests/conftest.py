"""Fixtures: in-process clusters (canonical_raft.testing.LocalCluster) and
single nodes that are always closed at teardown; the suite's FSMs are in fsms.py."""

import faulthandler
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import canonical_raft as raft  # noqa: E402
from canonical_raft import testing  # noqa: E402
from canonical_raft.testing import FAST_TIMINGS, free_address, wait_until  # noqa: E402
from fsms import Counter  # noqa: E402

# The raft_cluster fixture, which ``cluster`` below builds on (from a source
# tree the plugin's pytest11 entry point is not installed).
pytest_plugins = ["canonical_raft.pytest_plugin"]

if not faulthandler.is_enabled():
    faulthandler.enable()

# Grace after a test's own timeout before the last-resort watchdog fires.
WATCHDOG_GRACE = 20


def _real_stderr_fd(config):
    """The stderr that pytest's faulthandler plugin writes to (not the capture file)."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key
        return config.stash[fault_handler_stderr_fd_key]
    except (ImportError, KeyError):
        return sys.__stderr__.fileno()


@pytest.fixture(autouse=True)
def _deadlock_watchdog(request):
    """A hang is a failure even when the GIL is deadlocked.

    pytest-timeout needs the GIL to interrupt a test (its signal handler and its
    timer thread both run Python), so a deadlock between the GIL and a native
    lock would hang the run forever. faulthandler's watchdog is a C thread: at
    the test's timeout plus a grace period it dumps every thread's stack and
    exits the process (status 1). Replaces pytest's own faulthandler_timeout
    timer for the duration of the test.
    """
    marker = request.node.get_closest_marker("timeout")
    timeout = None
    if marker is not None:
        timeout = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    if timeout is None:
        try:
            timeout = float(request.config.getini("timeout") or 0)
        except ValueError:
            timeout = 0
    timeout = float(timeout or 120)
    faulthandler.dump_traceback_later(timeout + WATCHDOG_GRACE, exit=True,
                                      file=_real_stderr_fd(request.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def cluster(raft_cluster):
    """Factory: ``cluster(n=3, fsm_factory=Counter, start=True, **node_kwargs)``.

    A ``canonical_raft.testing.LocalCluster`` of n nodes on 127.0.0.1 (see
    docs/testing.md), bootstrapped and started unless start=False, whose
    waits (leader(), wait_converged(), ...) default to 20 s; every node is
    closed at teardown.
    """

    def factory(n=3, fsm_factory=Counter, **kwargs):
        kwargs.setdefault("timeout", 20.0)
        return raft_cluster(n, fsm_factory, **kwargs)

    return factory


@pytest.fixture
def make_node(tmp_path):
    """Factory for single nodes: ``make_node(fsm=None, id=1, address=None, data_dir=None, **kw)``.

    The node is not bootstrapped nor started; it is closed at teardown.
    """
    nodes = []

    def factory(fsm=None, id=1, address=None, data_dir=None, **kwargs):
        opts = {**FAST_TIMINGS, **kwargs}
        address = address or free_address()
        data_dir = data_dir or (tmp_path / f"node{len(nodes)}")
        node = raft.Node(id, address, str(data_dir), Counter() if fsm is None else fsm, **opts)
        nodes.append(node)
        return node

    yield factory
    testing._close_each((node.close for node in nodes), BaseException)


@pytest.fixture
def leader_node(make_node):
    """A started single-node cluster that is its own leader, and its Counter."""
    fsm = Counter()
    node = make_node(fsm)
    node.bootstrap([(node.id, node.address)])
    node.start()
    node.wait_for_leader(timeout=20)
    wait_until(lambda: node.is_leader, 20, message="the single node to be leader")
    return node, fsm


@pytest.fixture
def procs():
    """A list to append subprocess.Popen objects to; each is stopped by its PID at teardown."""
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
    for p in started:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
        for stream in (p.stdin, p.stdout, p.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
