"""Fixtures: in-process clusters and single nodes that are always closed at teardown."""

import faulthandler
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import canonical_raft as raft  # noqa: E402
from canonical_raft import testing  # noqa: E402
from helpers import FAST, Cluster, Counter, free_address, wait_for  # noqa: E402,F401

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
def cluster(tmp_path):
    """Factory: ``cluster(n=3, fsm_factory=Counter, start=True, **node_kwargs)``.

    Creates n nodes on 127.0.0.1 with free ports, bootstraps all of them with the
    same server list and starts them (unless start=False). Every node is closed
    at teardown.
    """
    made = []

    def factory(n=3, fsm_factory=Counter, start=True, **node_kwargs):
        c = Cluster(tmp_path / f"cluster{len(made)}", n, fsm_factory, **node_kwargs)
        made.append(c)
        if start:
            c.bootstrap_start()
        return c

    yield factory
    testing._close_each((c.close_all for c in made), BaseException)


@pytest.fixture
def make_node(tmp_path):
    """Factory for single nodes: ``make_node(fsm=None, id=1, address=None, data_dir=None, **kw)``.

    The node is not bootstrapped nor started; it is closed at teardown.
    """
    nodes = []

    def factory(fsm=None, id=1, address=None, data_dir=None, **kwargs):
        opts = dict(FAST)
        opts.update(kwargs)
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
    wait_for(lambda: node.is_leader, 20, message="the single node to be leader")
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
