"""A data dir belongs to one node at a time (issue 12, item 1): a second
node, in this process or another, fails at once, names the dir and the
holder, and changes nothing on disk; the live node's writes all survive."""

import gc
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import canonical_raft as raft
from canonical_raft.datadir import LOCK_NAME, DataDirInUseError
from canonical_raft.testing import FAST_TIMINGS, RecordingFSM, free_ports, wait_until

pytestmark = pytest.mark.timeout(60)


def _address():
    return f"127.0.0.1:{free_ports(1)[0]}"


def _single(data_dir, address=None, fsm=None):
    return raft.Node(1, address or _address(), data_dir, fsm or RecordingFSM(), **FAST_TIMINGS)


def _listing(path):
    return sorted((e.name, e.stat().st_size) for e in os.scandir(path))


@pytest.fixture
def live(tmp_path):
    """A running single-node cluster with 100 acknowledged writes."""
    data_dir = str(tmp_path / "d")
    node = _single(data_dir)
    node.bootstrap([(1, node.address)])
    node.start()
    wait_until(lambda: node.is_leader, timeout=10)
    for f in [node.apply(b"w%d" % i) for i in range(100)]:
        f.result(timeout=10)
    yield node, data_dir
    node.close()


def test_second_node_in_this_process_is_refused(live):
    node, data_dir = live
    before = _listing(data_dir)
    for call in ("start", "bootstrap", "recover"):
        other = _single(data_dir)
        with pytest.raises(DataDirInUseError) as info:
            if call == "start":
                other.start()
            else:
                getattr(other, call)([(1, other.address)])
        assert data_dir in str(info.value) and "in this process" in str(info.value)
        other.close()
        assert _listing(data_dir) == before, f"{call}() changed the live node's files"
    assert node.apply(b"still").result(timeout=10) == 101


def test_second_node_in_another_process_is_refused(live):
    node, data_dir = live
    before = _listing(data_dir)
    script = textwrap.dedent(f"""
        import canonical_raft as raft
        from canonical_raft.testing import RecordingFSM
        node = raft.Node(1, {_address()!r}, {data_dir!r}, RecordingFSM())
        try:
            node.start()
        except raft.DataDirInUseError as exc:
            print(exc)
            raise SystemExit(3)
        node.close()
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"pid {os.getpid()}" in r.stdout and data_dir in r.stdout
    assert _listing(data_dir) == before
    assert node.apply(b"still").result(timeout=10) == 101


def test_acknowledged_writes_survive_after_the_refusal(live):
    node, data_dir = live
    with pytest.raises(DataDirInUseError):
        _single(data_dir).start()
    node.close()
    fsm = RecordingFSM()
    again = _single(data_dir, fsm=fsm)
    try:
        again.start()
        wait_until(lambda: again.is_leader, timeout=10)
        again.barrier().result(timeout=10)
        assert fsm.commands[:100] == [b"w%d" % i for i in range(100)]
    finally:
        again.close()


def test_close_and_failed_start_release_the_dir(tmp_path):
    data_dir = str(tmp_path / "d")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        node = _single(data_dir, f"127.0.0.1:{busy.getsockname()[1]}")
        node.bootstrap([(1, node.address)])
        with pytest.raises(OSError):
            node.start()                # the address is taken: the start fails
    finally:
        busy.close()
    node.close()
    fresh = _single(data_dir)
    try:
        fresh.start()                   # the failed node let go of the dir
    finally:
        fresh.close()
    assert os.path.exists(os.path.join(data_dir, LOCK_NAME))
    assert os.stat(os.path.join(data_dir, LOCK_NAME)).st_mode & 0o777 == 0o600


def test_unclosed_node_that_never_started_lets_go_when_dropped(tmp_path):
    data_dir = str(tmp_path / "d")
    node = _single(data_dir)
    node.bootstrap([(1, node.address)])
    del node                            # never started, never closed
    gc.collect()
    other = _single(data_dir)
    try:
        other.start()
    finally:
        other.close()
