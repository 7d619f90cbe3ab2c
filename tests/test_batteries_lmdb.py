"""batteries, issue 14 item 5: ReplicatedDict(path=...) keeps its state in
LMDB. The same semantics as the dict in memory (side by side on a fake node),
snapshots from a read transaction, restores that swap the environment
atomically, restarts that resume from the store, and stores that are not
this dict's refused clearly."""

import json
import os
import random

import pytest

lmdb = pytest.importorskip("lmdb")

import canonical_raft as raft  # noqa: E402
from canonical_raft import batteries  # noqa: E402
from canonical_raft.batteries import (ABSENT, Group, ReplicatedCounter, ReplicatedDict,  # noqa: E402
                                      StoreError, command, lmdb_dict)
from canonical_raft.datadir import DataDirInUseError  # noqa: E402
from canonical_raft.testing import free_address  # noqa: E402
from test_batteries_group import FakeNode  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def apply(group, structure, op, *args):
    """Apply a command as the raft thread would (no node)."""
    return group.apply(command.encode(structure, op, 1, list(args)))


def persisted(group):
    snap = group.snapshot()
    try:
        return snap.persist()
    finally:
        snap.release()


def doc(data):
    """A snapshot decoded, the dict's items in their order."""
    d = json.loads(data)
    return {name: (e["type"], list(e["state"].items()) if e["type"] == "dict" else e["state"])
            for name, e in d["structures"].items()}, d["applied"], d["chain"]


@pytest.fixture
def small_batches(monkeypatch):
    """Commit every few keys, so that reads mix staged and committed ones."""
    monkeypatch.setattr(lmdb_dict, "FLUSH_ITEMS", 5)


@pytest.fixture
def stores(tmp_path):
    """ReplicatedDicts on stores under tmp_path, closed at the end."""
    made = []

    def make(name="store", **kwargs):
        d = ReplicatedDict(path=tmp_path / name, **kwargs)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


KEYS = ["", "a", "b", "é", 'quote"s', "tab\t", "x" * 600, "y" * 600] + [f"k{i}" for i in range(12)]


def random_command(rng, d):
    """One write through the dict's public API; its outcome (FakeNode has
    checked every replica gave the same)."""
    key = rng.choice(KEYS)
    value = rng.choice([1, 1.5, "s", None, [1, {"n": rng.randrange(3)}], {"deep": {"er": [True]}}])
    op = rng.randrange(100)
    try:
        if op < 35:
            return d.set(key, value).result()
        if op < 45:
            return d.delete(key).result()
        if op < 55:
            return d.pop(key, "absent")
        if op < 62:
            return d.popitem()
        if op < 75:
            old = rng.choice([ABSENT, 1, "s", None, value])
            return d.cas(key, old, rng.choice([ABSENT, value])).result()
        if op < 85:
            return d.setdefault(key, value)
        if op < 97:
            return d.set_many({rng.choice(KEYS): rng.randrange(9) for _ in range(rng.randrange(6))}
                              ).result()
        return d.clear()
    except KeyError as exc:
        return f"KeyError {exc}"


def test_semantics_equal_the_dict_in_memory(stores, small_batches):
    mem = Group(d=ReplicatedDict(), c=ReplicatedCounter())
    disk = Group(d=stores(), c=ReplicatedCounter())
    disk.attach(FakeNode([disk, mem]))       # every command on both; outcomes compared
    d, m = disk["d"], mem["d"]
    rng = random.Random(14)
    for step in range(1500):
        random_command(rng, d)
        if step % 50 == 0:
            disk["c"].incr().result()
        if step % 97 == 0:
            assert list(d) == list(m) and len(d) == len(m)
            assert d.copy() == m.copy() and d == m and m == d
            assert list(d.items()) == list(m.items()) and list(d.values()) == list(m.values())
            for key in KEYS:
                assert (key in d) == (key in m) and d.get(key, "no") == m.get(key, "no")
    assert doc(persisted(disk)) == doc(persisted(mem))
    assert d.store_info()["applied"] > 0 and 1 not in d and d.get(1) is None

    # Each restores the other's snapshot: the same state, the same order.
    mem2 = Group(d=ReplicatedDict(), c=ReplicatedCounter())
    mem2.restore(persisted(disk))
    disk2 = Group(d=stores("other"), c=ReplicatedCounter())
    disk2.restore(persisted(mem))
    assert list(mem2["d"].items()) == list(m.items()) == list(disk2["d"].items())
    assert mem2["c"].get() == disk2["c"].get() == mem["c"].get()


def test_values_read_are_copies_and_views_hold_one_moment(stores, small_batches):
    disk = Group(d=stores())
    disk.attach(FakeNode([disk]))
    d = disk["d"]
    d["lst"] = [1, 2]
    d["lst"].append(3)
    d.get("lst").append(4)
    assert d["lst"] == [1, 2]
    d.set_many({f"v{i}": i for i in range(12)}).result()
    view = d.items()                         # one read transaction and the staged writes
    keys = iter(d)
    d.clear()                                # after the view: not in it
    d["new"] = 1
    assert len(view) == 13 and dict(view)["v11"] == 11 and "new" not in dict(view)
    assert len(list(keys)) == 13
    assert list(d) == ["new"] and d.copy() == {"new": 1}


def test_persist_reads_the_state_as_of_the_snapshot(stores, small_batches):
    disk = Group(d=stores(), c=ReplicatedCounter())
    for i in range(40):
        apply(disk, "d", "set", f"k{i}", {"i": i})
    expected = doc(persisted(disk))
    snap = disk.snapshot()                   # the raft thread: commit, open a read transaction
    assert disk["d"].store_info()["pending"] == 0
    for i in range(40, 80):
        apply(disk, "d", "set", f"k{i}", i)  # later commands keep being applied
    apply(disk, "d", "clear")
    data = snap.persist()                    # off the thread: streamed from the transaction
    snap.release()
    assert doc(data) == expected
    with pytest.raises(RuntimeError, match="released"):
        snap.persist()
    other = Group(d=ReplicatedDict(), c=ReplicatedCounter())
    other.restore(data)
    assert other["d"].copy() == {f"k{i}": {"i": i} for i in range(40)}


def test_restore_swaps_the_environment_atomically(stores, tmp_path):
    # A follower that lags: the leader's snapshot is further along the same log.
    source, d = Group(d=ReplicatedDict()), stores()
    group = Group(d=d)
    for i in range(10):
        apply(group, "d", "set", f"old{i}", i)
        apply(source, "d", "set", f"old{i}", i)
    apply(source, "d", "clear")
    for i in range(30):
        apply(source, "d", "set", f"new{i}", i)
    data = persisted(source)
    reading = iter(d)                        # a reader on the environment being replaced
    assert next(reading) == "old0"
    group.restore(data)
    assert d.copy() == {f"new{i}": i for i in range(30)}
    assert list(reading) == [f"old{i}" for i in range(1, 10)]   # its view is intact
    del reading
    d["new0"]                                # the next read lets the old environment go
    assert sorted(os.listdir(tmp_path / "store")) == ["CURRENT", "canonical_raft.lock", "env-2"]

    # Snapshots that fail validation, one after the dict's state was written
    # into a new environment: nothing replaced, the new one removed.
    d = stores("two")
    group = Group(d=d, q=batteries.ReplicatedQueue())
    group.restore(data)                      # its environment: env-2
    head = b'{"kind":"canonical_raft.batteries","format":1,"active":1,"structures":'
    for bad, words in [
        (head + b'{"d":{"type":"dict","state":{"a":1}},"q":{"type":"queue","state":{}}}}',
         "holds a list"),
        (head + b'{"d":{"type":"dict","state":{"a":1,"b":}}}}', "malformed"),
        (head + b'{"d":{"type":"queue","state":[]}}}', "is a dict here"),
        (data.replace(b'"active":1', b'"active":0'), "malformed"),
    ]:
        with pytest.raises(ValueError, match=words):
            group.restore(bad)
        assert d.copy() == {f"new{i}": i for i in range(30)}
        assert sorted(os.listdir(tmp_path / "two")) == ["CURRENT", "canonical_raft.lock", "env-2"]


def test_restore_keeps_a_store_that_holds_the_snapshot_already(stores, tmp_path):
    group = Group(c=ReplicatedCounter(), d=stores())
    for i in range(50):
        apply(group, "d", "set", f"k{i}", i)
        apply(group, "c", "add", 1)
    data = persisted(group)                  # at command 100
    for i in range(50, 60):
        apply(group, "d", "set", f"k{i}", i)
        apply(group, "c", "add", 1)
    group.close()

    # A restart: the snapshot at 100, the store at 119 (committed at close).
    again = Group(c=ReplicatedCounter(), d=stores())
    again.restore(data)
    d = again["d"]
    assert d.store_info()["resumed_from"] == 100 and len(d) == 60
    assert sorted(os.listdir(tmp_path / "store")) == ["CURRENT", "canonical_raft.lock", "env-1"]
    for i in range(50, 60):                  # the replay: the dict's commands are skipped
        apply(again, "d", "set", f"k{i}", i)
        apply(again, "c", "add", 1)
    assert d.store_info()["skipped"] == 10 and again["c"].get() == 60
    apply(again, "d", "set", "after", 1)      # past what the store held: applied
    assert d.store_info()["skipped"] == 10 and d["after"] == 1 and len(d) == 61


def test_the_store_of_another_log_is_refused(stores):
    ours = Group(d=stores())
    apply(ours, "d", "set", "mine", 1)
    apply(ours, "d", "set", "mine", 2)
    ours.close()
    theirs = Group(d=ReplicatedDict())
    apply(theirs, "d", "set", "theirs", 1)    # another first command: another log
    apply(theirs, "d", "set", "x", 1)
    refused = Group(d=stores())
    with pytest.raises(StoreError, match="another log"):
        refused.restore(persisted(theirs))
    refused.close()
    cousin = Group(d=ReplicatedDict())       # the same first command, then another history
    apply(cousin, "d", "set", "mine", 1)
    apply(cousin, "d", "set", "mine", 3)
    refused = Group(d=stores())
    with pytest.raises(StoreError, match="another log"):
        refused.restore(persisted(cousin))
    assert refused["d"]["mine"] == 2         # refused: nothing of it changed
    refused.close()

    # Replayed from the start (no snapshot): refused at its first command,
    # before anything of the store is skipped.
    replay = Group(d=stores())
    with pytest.raises(StoreError, match="another history"):
        apply(replay, "d", "set", "theirs", 1)
    with pytest.raises(StoreError, match="another history"):
        replay["d"]["mine"]
    with pytest.raises(StoreError, match="another history"):
        apply(replay, "d", "set", "x", 1)


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(b"not a directory"), "not a directory"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), "not a ReplicatedDict store"),
    (lambda p: lmdb.open(str(p)).close(), "not a ReplicatedDict store"),
    (lambda p: (p.mkdir(), (p / "CURRENT").write_text("env-9\n")), "not an environment"),
    (lambda p: (p.mkdir(), (p / "env-1").mkdir(), (p / "env-1" / "data.mdb").write_bytes(
        os.urandom(8192)), (p / "CURRENT").write_text("env-1\n")), "not a usable LMDB"),
    (lambda p: (p.mkdir(), lmdb.open(str(p / "env-1"), max_dbs=2).close(),
                (p / "CURRENT").write_text("env-1\n")), "not a ReplicatedDict store"),
])
def test_a_path_that_is_not_a_store_is_refused(tmp_path, make, words):
    path = tmp_path / "store"
    make(path)
    before = sorted(os.listdir(path)) if path.is_dir() else None
    with pytest.raises(StoreError, match=words) as info:
        ReplicatedDict(path=path)
    assert str(path) in str(info.value)
    if before is not None:                   # nothing of it was changed or removed
        assert set(before) <= set(os.listdir(path))


def test_one_dict_per_store_and_closed_means_closed(stores, tmp_path):
    d = stores()
    with pytest.raises(DataDirInUseError, match="in use"):
        ReplicatedDict(path=tmp_path / "store")
    with pytest.raises(ValueError, match="map_size"):
        ReplicatedDict(map_size=1 << 30)
    with pytest.raises(ValueError, match="map_size"):
        ReplicatedDict(path=tmp_path / "small", map_size=4096)
    group = Group(d=d)
    apply(group, "d", "set", "a", 1)
    group.close()
    with pytest.raises(StoreError, match="closed"):
        d["a"]
    with pytest.raises(StoreError, match="closed"):
        apply(group, "d", "set", "a", 2)
    again = stores()                         # the store is free again, and holds "a"
    assert again["a"] == 1 and again.store_info()["applied"] == 1


def test_a_full_store_is_a_clear_error_and_a_larger_map_resumes(stores, small_batches):
    d = stores(map_size=1 << 20)
    group = Group(d=d)
    big = "x" * 50_000
    with pytest.raises(StoreError, match="is full") as info:
        for i in range(100):
            apply(group, "d", "set", f"k{i}", big)
    assert "map_size" in str(info.value) and "larger" in str(info.value)
    with pytest.raises(StoreError, match="is full"):
        len(d)
    group.close()
    again = stores(map_size=16 << 20)        # the node restarted with room: replays the rest
    held = again.store_info()["applied"]
    assert 0 < held < 100 and len(again) == held


@pytest.mark.timeout(60)
def test_a_restarted_node_resumes_from_its_store(tmp_path):
    address = free_address()

    def run(first, n):
        group = Group(d=ReplicatedDict(path=tmp_path / "store"), c=ReplicatedCounter())
        node = raft.Node(1, address, tmp_path / "data", group, snapshot_threshold=32,
                         snapshot_trailing=8)
        try:
            group.attach(node)
            if first:
                node.bootstrap([(1, address)])
            node.start()
            node.wait_for_leader(10)
            node.barrier().result(10)
            info = group["d"].store_info()
            state = (group["d"].copy(), group["c"].get())
            for i in range(n):               # one entry each: snapshots every 32
                group["d"].set(f"k{i}", i).result(10)
                group["c"].incr().result(10)
                if i % 5 == 0:
                    group["d"].popitem()
            node.barrier().result(10)
            return info, state, node.stats()["snapshot_index"], (group["d"].copy(),
                                                                   group["c"].get())
        finally:
            node.close()
            group.close()

    _, _, snapshot_index, written = run(True, 100)
    assert snapshot_index > 0
    info, state, _, _ = run(False, 0)
    assert state == written                  # nothing lost, nothing twice (popitem would show it)
    # The store held everything: the commands after the snapshot were skipped.
    assert info["resumed_from"] > 0 and info["skipped"] > 0
    assert info["resumed_from"] + info["skipped"] <= info["applied"]


def test_no_snapshot_while_the_replay_is_behind_the_store(stores):
    group = Group(d=stores())
    for i in range(10):
        apply(group, "d", "set", f"k{i}", i)
    group.close()
    again = Group(d=stores())                # a restart with no snapshot: replayed from 1
    with pytest.raises(RuntimeError, match="holds commands up to 10"):
        again.snapshot()                     # the state of command 0 is nowhere
    for i in range(10):
        apply(again, "d", "set", f"k{i}", i)
    assert doc(persisted(again))[1] == 10    # past what the store held: it can


def test_a_store_at_an_unknown_point_is_rebuilt_from_the_log(stores):
    # A snapshot that does not say its point of the log (an older writer's).
    old = (b'{"kind":"canonical_raft.batteries","format":1,"active":1,'
           b'"structures":{"d":{"type":"dict","version":1,"state":{"a":1}}}}')
    group = Group(d=stores())
    group.restore(old)
    apply(group, "d", "set", "b", 2)
    assert group["d"].copy() == {"a": 1, "b": 2}
    group.close()
    reopened = stores()
    assert reopened.store_info()["applied"] == -1 and reopened.copy() == {"a": 1, "b": 2}
    reopened.close()
    replay = Group(d=stores())               # no snapshot this time: the log from its start,
    apply(replay, "d", "set", "x", 1)        # onto an emptied store, never onto what it held
    assert replay["d"].copy() == {"x": 1}
