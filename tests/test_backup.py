"""node.snapshot() on demand, node.backup(path) from any node, and
Node.restore_backup() seeding a new cluster with identical state; damaged
backups refused (docs/backups.md)."""

import threading
import time

import pytest

import canonical_raft as raft
from canonical_raft.testing import FAST_TIMINGS, LocalCluster, RecordingFSM, wait_until

pytestmark = pytest.mark.timeout(60)


class Commands(RecordingFSM, raft.FSM):
    """Every command in log order: a restored copy must be a prefix."""


class Persisted(Commands):
    """snapshot() returns an object whose persist() runs off the raft thread."""

    def __init__(self):
        super().__init__()
        self.persist_threads = set()
        self.released = 0

    def snapshot(self):
        frozen = list(self.commands)
        fsm = self

        class Snap:
            def persist(self):
                fsm.persist_threads.add(threading.get_ident())
                copy = Commands()
                copy.commands = frozen
                return copy.snapshot()

            def release(self):
                fsm.released += 1

        return Snap()


class Failing(Commands):
    def snapshot(self):
        raise OSError("snapshot refused")


def _restored_cluster(tmp_path, backup, n=3, fsm=Commands):
    """A new cluster (new ports, new dirs) seeded from `backup`, started."""
    cluster = LocalCluster(n, fsm, tmp_path / "restored", start=False)
    for server in cluster.servers:
        info = raft.Node.restore_backup(backup, cluster.data_dir(server.id), cluster.servers)
        assert info.servers == cluster.servers
    for node in cluster.nodes:
        node.start()
    return cluster


def test_snapshot_on_leader_and_follower(tmp_path):
    with LocalCluster(3, Commands, tmp_path) as cluster:
        for i in range(20):
            cluster.apply(b"x%d" % i)
        leader = cluster.leader()
        applied = leader.stats()["last_applied"]
        index = leader.snapshot().result(timeout=10)
        assert index >= applied
        assert leader.stats()["snapshot_index"] == index
        follower = cluster.followers(leader)[0]
        wait_until(lambda: follower.stats()["last_applied"] >= applied, timeout=10)
        applied = follower.stats()["last_applied"]
        index = follower.snapshot().result(timeout=10)
        assert index >= applied and follower.stats()["snapshot_index"] == index
        # Nothing applied since: that snapshot, at once.
        assert follower.snapshot().result(timeout=10) == follower.stats()["snapshot_index"]
        # The threshold is back to its setting (8192): no snapshot per entry.
        before = follower.stats()["snapshot_index"]
        for i in range(10):
            cluster.apply(b"z%d" % i)
        time.sleep(0.3)
        assert follower.stats()["snapshot_index"] == before


def test_snapshot_async_and_failure(tmp_path):
    import asyncio
    with LocalCluster(1, Failing, tmp_path) as cluster:
        cluster.apply(b"a")
        node = cluster.leader()
        with pytest.raises(raft.RaftError, match="snapshot failed"):
            node.snapshot().result(timeout=10)
        with pytest.raises(OSError, match="snapshot refused"):
            node.backup(tmp_path / "never.bak").result(timeout=10)
        assert not (tmp_path / "never.bak").exists()
        assert node.state == raft.State.LEADER          # the node keeps running
    with LocalCluster(1, Commands, tmp_path / "ok") as cluster:
        cluster.apply(b"a")
        node = cluster.leader()
        assert asyncio.run(node.snapshot_async()) == node.stats()["snapshot_index"] > 0
        assert asyncio.run(node.backup_async(tmp_path / "a.bak")) == node.stats()["last_applied"]


def test_backup_from_follower_and_leader_under_load_restores_identical_state(tmp_path):
    with LocalCluster(3, Persisted, tmp_path / "orig") as cluster:
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        stop = threading.Event()
        written = []

        def load():
            i = 0
            while not stop.is_set() and i < 20000:
                futures = leader.apply_many([b"w%d" % (i + k) for k in range(20)])
                for f in futures:
                    f.result(timeout=20)
                written.append(i)
                i += 20

        writer = threading.Thread(target=load)
        writer.start()
        try:
            wait_until(lambda: len(written) > 5, timeout=20)
            from_follower = follower.backup(tmp_path / "follower.bak").result(timeout=20)
            from_leader = leader.backup(str(tmp_path / "leader.bak")).result(timeout=20)
            wait_until(lambda: len(written) > 10, timeout=20)
        finally:
            stop.set()
            writer.join(timeout=30)
        assert from_follower > 0 and from_leader > 0
        fsm = cluster.fsms[follower.id - 1]
        assert fsm.persist_threads and threading.get_ident() not in fsm.persist_threads
        assert fsm.released >= 1
        final = list(cluster.fsms[leader.id - 1].commands)
    for name, index in (("follower.bak", from_follower), ("leader.bak", from_leader)):
        info = raft.Node.read_backup(tmp_path / name)
        assert info.index == index and info.term >= 1 and len(info.servers) == 3
        with _restored_cluster(tmp_path / name.replace(".", "_"), tmp_path / name) as new:
            new.leader()
            contents = [list(f.commands) for f in new.fsms]
            assert contents[0] == contents[1] == contents[2]
            assert 0 < len(contents[0]) < len(final)
            assert contents[0] == final[:len(contents[0])]     # exactly a point of the log
            assert all(n.stats()["last_applied"] >= index for n in new.nodes)
            # The new cluster takes writes, on top of the restored state.
            assert new.apply(b"after") == len(contents[0]) + 1
            new.wait_converged(key=lambda f: f.commands)


def test_restore_with_the_backups_own_configuration_and_refusals(tmp_path):
    with LocalCluster(1, Commands, tmp_path / "orig") as cluster:
        for i in range(5):
            cluster.apply(b"c%d" % i)
        node = cluster.leader()
        index = node.backup(tmp_path / "one.bak").result(timeout=10)
        address = node.address
    # The same id and address as the backup's (a cluster rebuilt in place).
    info = raft.Node.restore_backup(tmp_path / "one.bak", tmp_path / "again")
    assert info.index == index and [s.address for s in info.servers] == [address]
    fsm = Commands()
    with raft.Node(1, address, tmp_path / "again", fsm, **FAST_TIMINGS) as again:
        again.start()
        again.wait_for_leader(timeout=10)
        assert fsm.commands == [b"c%d" % i for i in range(5)]
    # A dir with state is refused, and so is bootstrap on the seeded one.
    with pytest.raises(raft.CantBootstrapError, match="not empty"):
        raft.Node.restore_backup(tmp_path / "one.bak", tmp_path / "again")
    with raft.Node(1, address, tmp_path / "again", Commands()) as again:
        with pytest.raises(raft.CantBootstrapError):
            again.bootstrap([(1, address)])


def _damaged(tmp_path, name, change):
    data = bytearray((tmp_path / "good.bak").read_bytes())
    path = tmp_path / name
    path.write_bytes(bytes(change(data)))
    return path


def test_a_corrupt_or_truncated_backup_is_refused_naming_it(tmp_path):
    with LocalCluster(1, Commands, tmp_path / "orig") as cluster:
        for i in range(50):
            cluster.apply(b"payload-%d" % i)
        cluster.leader().backup(tmp_path / "good.bak").result(timeout=10)
    size = (tmp_path / "good.bak").stat().st_size

    def flip(at):
        def change(data):
            data[at] ^= 0x40
            return data
        return change

    cases = {
        "flipped_middle.bak": (flip(size // 2), "checksum mismatch"),
        "flipped_header.bak": (flip(10), "checksum mismatch"),
        "flipped_trailer.bak": (flip(size - 2), "checksum mismatch"),
        "truncated.bak": (lambda d: d[:size - 100], "truncated"),
        "truncated_header.bak": (lambda d: d[:20], "truncated"),
        "longer.bak": (lambda d: d + b"\0" * 8, "past its end"),
        "not_a_backup.bak": (lambda d: b"hello" + d[5:], "not a canonical_raft backup"),
        "empty.bak": (lambda d: b"", "not a canonical_raft backup"),
    }
    for name, (change, words) in cases.items():
        path = _damaged(tmp_path, name, change)
        with pytest.raises(raft.CorruptError, match=words) as caught:
            raft.Node.read_backup(path)
        assert str(path) in str(caught.value)
        target = tmp_path / f"dir_{name}"
        with pytest.raises(raft.CorruptError, match=words):
            raft.Node.restore_backup(path, target)
        assert not target.exists()       # refused before anything is made
    assert raft.Node.read_backup(tmp_path / "good.bak").index > 50


def test_backup_and_snapshot_while_closing_or_not_started(tmp_path):
    node = raft.Node(1, "127.0.0.1:1", tmp_path / "new", Commands())
    with pytest.raises(raft.ShutdownError):
        node.snapshot().result(timeout=5)
    with pytest.raises(raft.ShutdownError):
        node.backup(tmp_path / "x.bak").result(timeout=5)
    node.close()
    with LocalCluster(1, Commands, tmp_path / "c") as cluster:
        cluster.apply(b"a")
        node = cluster.leader()
        closer = threading.Thread(target=node.close)
        futures = []
        closer.start()
        deadline = time.monotonic() + 10
        while closer.is_alive() and time.monotonic() < deadline and len(futures) < 400:
            futures.append(node.backup(tmp_path / f"b{len(futures)}.bak"))
            futures.append(node.snapshot())
        closer.join(timeout=10)
        late = [node.backup(tmp_path / "late.bak"), node.snapshot()]
        for f in late:
            with pytest.raises(raft.ShutdownError):
                f.result(timeout=5)
        for f in futures:             # each either done or refused, never left pending
            exc = f.exception(timeout=5)
            assert exc is None or isinstance(exc, raft.ShutdownError), exc
        assert not (tmp_path / "late.bak").exists()


class Held(Commands):
    """snapshot() returns one object, kept: its references can be counted."""

    def __init__(self):
        super().__init__()
        self.snap = self.Snap(self)

    class Snap:
        def __init__(self, fsm):
            self.fsm = fsm

        def persist(self):
            return Commands.snapshot(self.fsm)

        def release(self):
            pass

    def snapshot(self):
        return self.snap


def test_no_leak_in_snapshot_and_backup_paths(tmp_path):
    import gc
    import sys
    from canonical_raft import _raft
    gc.collect()
    before = _raft.debug_counters()     # (process-wide: what other tests left counts too)
    fsm = Held()
    rc_snap = sys.getrefcount(fsm.snap)
    with LocalCluster(1, lambda: fsm, tmp_path / "c") as cluster:
        node = cluster.leader()
        for i in range(20):
            cluster.apply(b"c%d" % i)
            assert node.snapshot().result(timeout=10) >= 1
            assert node.backup(tmp_path / f"b{i % 3}.bak").result(timeout=10) >= 1
        failed = node.backup(tmp_path / "missing" / "dir" / "x.bak")
        assert isinstance(failed.exception(timeout=10), FileNotFoundError)
        pending = [node.backup(tmp_path / f"p{i}.bak") for i in range(5)]
        pending += [node.snapshot() for _ in range(5)]
        del failed
    assert all(f.done() for f in pending)
    del pending, node, cluster
    gc.collect()
    assert _raft.debug_counters() == before
    after = sys.getrefcount(fsm.snap)     # measured as before (an assert adds a temporary)
    assert after == rc_snap, "the snapshot object leaked references"
