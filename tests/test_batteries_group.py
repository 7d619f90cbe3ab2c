"""batteries: a Group without raft, on a fake node that applies each
command to several replicas at once (the Submitter protocol), to check
routing, determinism and the read point quickly."""

import concurrent.futures

import pytest

from canonical_raft import batteries
from canonical_raft.batteries import Group, ReplicatedCounter, ReplicatedDict, ReplicatedQueue

pytestmark = pytest.mark.timeout(30)


class FakeNode:
    """Applies every command to each replica in turn; the future resolves
    with the first replica's outcome (as the submitting node's would)."""

    def __init__(self, replicas, read_barrier=False):
        self.replicas = replicas
        self.barriers = []
        if read_barrier:
            self.read_barrier = lambda: self._barrier("read_barrier")

    def apply(self, command):
        outcomes = []
        for group in self.replicas:
            try:
                outcomes.append((True, group.apply(command)))
            except Exception as exc:
                outcomes.append((False, exc))
        assert len({(ok, type(v).__name__, repr(v)) for ok, v in outcomes}) == 1, outcomes
        future = concurrent.futures.Future()
        ok, value = outcomes[0]
        future.set_result(value) if ok else future.set_exception(value)
        return future

    def barrier(self):
        return self._barrier("barrier")

    def _barrier(self, kind):
        self.barriers.append(kind)
        future = concurrent.futures.Future()
        future.set_result(None)
        return future


def make():
    return Group(d=ReplicatedDict(), c=ReplicatedCounter(), q=ReplicatedQueue())


def snap(group):
    s = group.snapshot()
    try:
        return s.persist()
    finally:
        s.release()


@pytest.fixture
def replicas():
    groups = [make(), make(), make()]
    node = FakeNode(groups)
    groups[0].attach(node)
    return groups


def test_every_replica_ends_identical(replicas):
    g = replicas[0]
    g["d"].update(a=1, b=[1, 2])
    assert g["d"].popitem() == ("b", [1, 2])
    g["d"]["c"] = {"x": None}
    g["c"].add(5).result()
    g["q"].put_many([1, 2, 3]).result()
    g["q"].get().result()
    with pytest.raises(KeyError):
        g["d"].pop("nope")
    for bad in (b"junk", b'[1,"d","set",1,[7,7]]', b'[1,"x","set",1,[]]'):
        with pytest.raises((batteries.BadCommandError, TypeError)):
            replicas[0].node.apply(bad).result()
    assert len({snap(r) for r in replicas}) == 1
    empty = make()
    empty.attach(FakeNode([empty]))
    with pytest.raises(KeyError, match="empty"):
        empty["d"].popitem()


def test_linearizable_reads_prefer_read_barrier():
    groups = [make()]
    plain = FakeNode(groups)
    groups[0].attach(plain)
    groups[0]["d"].get("k", consistency="linearizable")
    assert plain.barriers == ["barrier"]
    groups = [make()]
    readindex = FakeNode(groups, read_barrier=True)
    groups[0].attach(readindex)
    groups[0]["c"].get(consistency="linearizable")
    groups[0]["d"].get("k")                                   # local: no barrier
    assert readindex.barriers == ["read_barrier"]


def test_submitting_from_inside_apply_fails_alike(replicas):
    class Nested(batteries.ReplicatedObject):
        _d = None

        @batteries.replicated
        def run(self):
            self._d.set("k", 1)

    groups = []
    for _ in range(2):
        obj, d = Nested(), ReplicatedDict()
        obj._d = d
        groups.append(Group(o=obj, d=d))
    groups[0].attach(FakeNode(groups))
    with pytest.raises(RuntimeError, match="while a command is applied"):
        groups[0]["o"].run().result()
