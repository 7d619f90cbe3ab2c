"""batteries: each structure's semantics on a 3-node cluster (writes on the
leader, reads on every node once converged), Group routing, deterministic
failures, and the errors of misuse."""

import concurrent.futures
import threading

import pytest

import canonical_raft as raft
from canonical_raft import batteries
from canonical_raft.batteries import ABSENT, Group, ReplicatedCounter, ReplicatedDict, ReplicatedQueue
from canonical_raft.testing import LocalCluster, free_ports, wait_until

pytestmark = pytest.mark.timeout(60)


def make_group():
    return Group(d=ReplicatedDict(), c=ReplicatedCounter(), q=ReplicatedQueue(),
                 lock=batteries.ReplicatedLock())


def attach_all(cluster):
    for node, group in zip(cluster.nodes, cluster.fsms):
        if group.node is not node:
            group.attach(node)


def state(group):
    return (group["d"].copy(), group["c"].get(), group["q"].to_list(), group["lock"].lease(),
            group["lock"].last_token, group.active_version)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(3, make_group, tmp_path_factory.mktemp("batteries")) as c:
        attach_all(c)
        yield c


@pytest.fixture
def leader(cluster):
    return cluster.fsm(cluster.leader().id)


@pytest.fixture
def followers(cluster):
    lead = cluster.leader().id
    return [cluster.fsm(n.id) for n in cluster.nodes if n.id != lead]


def converge(cluster):
    cluster.wait_converged(key=state)
    return [state(g) for g in cluster.fsms]


def test_dict_writes_on_the_leader_are_read_on_every_node(cluster, leader):
    d = leader["d"]
    assert d.set("a", 1).result(10) is None
    d["b"] = {"nested": [1, 2]}
    d.update({"c": 3, "e": 4}, f=5)
    assert d.delete("e").result(10) is True
    assert d.delete("e").result(10) is False
    assert d.pop("f") == 5 and d.pop("f", "gone") == "gone"
    with pytest.raises(KeyError):
        d.pop("f")
    with pytest.raises(KeyError):
        del d["nope"]
    assert d.setdefault("a", 9) == 1 and d.setdefault("s", 9) == 9
    converge(cluster)
    for group in cluster.fsms:
        r = group["d"]
        assert r.copy() == {"a": 1, "b": {"nested": [1, 2]}, "c": 3, "s": 9}
        assert r["a"] == 1 and r.get("zz") is None and r.get("zz", 0) == 0
        assert "a" in r and "zz" not in r and len(r) == 4
        assert sorted(r) == ["a", "b", "c", "s"] and sorted(r.keys()) == ["a", "b", "c", "s"]
        assert dict(r.items()) == r.copy() and r == r.copy()
    d.clear()
    converge(cluster)
    assert all(len(g["d"]) == 0 for g in cluster.fsms)


def test_dict_cas(cluster, leader):
    d = leader["d"]
    assert d.cas("k", ABSENT, 1).result(10) is True        # create only if absent
    assert d.cas("k", ABSENT, 2).result(10) is False
    assert d.cas("k", 2, 3).result(10) is False
    assert d.cas("k", 1.0, 3).result(10) is False           # the same JSON only
    assert d.cas("k", 1, {"x": 1, "y": 2}).result(10) is True
    assert d.cas("k", {"y": 2, "x": 1}, [1]).result(10) is True   # key order does not matter
    assert d.cas("k", [1], ABSENT).result(10) is True       # delete if equal
    assert "k" not in d
    assert d.cas("k", [1], ABSENT).result(10) is False
    converge(cluster)


def test_set_many_is_one_command_all_or_nothing(cluster, leader):
    d = leader["d"]
    with pytest.raises(TypeError):
        d.set_many({"ok": 1, "bad": (1,)})                  # refused whole, at the call
    before = cluster.leader().stats()["last_index"]
    d.set_many({f"m{i}": i for i in range(100)}).result(10)
    assert cluster.leader().stats()["last_index"] == before + 1
    assert "ok" not in d and len([k for k in d if k.startswith("m")]) == 100
    converge(cluster)


def test_values_read_are_copies(leader):
    d = leader["d"]
    d["lst"] = [1, 2]
    d["lst"].append(3)
    d.get("lst").append(4)
    d.copy()["lst"].append(5)
    list(d.values())                                        # views are of a copy
    assert d["lst"] == [1, 2]


def test_iteration_while_the_raft_thread_writes(leader):
    d = leader["d"]
    futures = [d.set(f"it{i}", i) for i in range(2000)]
    seen = 0
    while not futures[-1].done():
        seen += sum(1 for _ in d.items()) + len(list(d))
    for f in futures:
        f.result(10)
    assert len([k for k in d if k.startswith("it")]) == 2000


def test_linearizable_reads_on_the_leader_and_on_a_follower(cluster, leader, followers):
    leader["d"]["lin"] = "x"
    assert leader["d"].get("lin", consistency="linearizable") == "x"
    assert leader["c"].get(consistency="linearizable") == leader["c"].value
    # node.read_barrier() (ReadIndex) serves followers too.
    assert followers[0]["d"].get("lin", consistency="linearizable") == "x"
    with pytest.raises(ValueError, match="consistency"):
        leader["d"].get("lin", consistency="eventual")
    assert followers[0]["d"].get("lin", "maybe not yet") in ("x", "maybe not yet")


def test_writes_on_a_follower_fail_with_not_leader(followers):
    d = followers[0]["d"]
    with pytest.raises(raft.NotLeaderError):
        d.set("f", 1).result(10)
    with pytest.raises(raft.NotLeaderError):
        d["f"] = 1
    with pytest.raises(raft.NotLeaderError):
        followers[0]["c"].incr().result(10)


def test_counter(cluster, leader):
    c = leader["c"]
    start = c.set(10).result(10)
    assert start == 10
    assert c.incr().result(10) == 11 and c.decr().result(10) == 10
    assert c.add(-15).result(10) == -5
    futures = [c.incr() for _ in range(200)]
    results = [f.result(10) for f in futures]
    assert results == list(range(-4, 196))                  # each its own value, in order
    assert c.add(2**80).result(10) == 195 + 2**80           # arbitrary precision
    converge(cluster)
    assert {int(g["c"]) for g in cluster.fsms} == {195 + 2**80}


def test_queue_is_fifo_and_each_item_taken_once(cluster, leader):
    q = leader["q"]
    while q.get().result(10) is not None:
        pass
    assert q.get().result(10) is None                      # empty
    assert q.put("a").result(10) == 1
    assert q.put_many([{"b": 1}, ["c"], 4]).result(10) == 4
    assert q.peek() == "a" and len(q) == 4 and q.size() == 4
    assert q.to_list() == ["a", {"b": 1}, ["c"], 4]
    assert q.get().result(10) == "a" and q.pop().result(10) == {"b": 1}
    q.put_many(range(100)).result(10)
    gets = []
    lock = threading.Lock()

    def taker():
        for _ in range(40):
            item = q.get().result(10)
            with lock:
                gets.append(item)

    threads = [threading.Thread(target=taker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    taken = [g for g in gets if g is not None]
    assert sorted(taken, key=repr) == sorted([["c"], 4, *range(100)], key=repr)
    assert gets.count(None) == 120 - 102 and len(q) == 0
    converge(cluster)


def test_group_routes_by_structure_name(cluster, leader):
    # "set" is an operation of both the dict and the counter
    leader["d"].set("route", 7).result(10)
    leader["c"].set(7).result(10)
    assert leader["d"]["route"] == 7 and leader["c"].value == 7
    assert list(leader) == ["d", "c", "q", "lock"] and len(leader) == 4
    assert leader["d"].name == "d" and leader["d"].group is leader
    converge(cluster)


@pytest.mark.parametrize("data, error", [
    (b"\xff garbage", batteries.BadCommandError),
    (b'[1,"nosuch","set",1,["k",1]]', batteries.UnsupportedCommandError),
    (b'[1,"d","nosuch",1,[]]', batteries.UnsupportedCommandError),
    (b'[1,null,"nosuch",1,[]]', batteries.UnsupportedCommandError),
    (b'[1,"d","set",9,["k",1]]', batteries.UnsupportedCommandError),    # above the active version
    (b'[1,"c","add",1,["x"]]', TypeError),                              # a bad argument
    (b'[1,"d","set",1,[1,1]]', TypeError),
    (b'[1,"d","set",1,["k"]]', TypeError),                              # wrong arity
    (b'[1,"lock","acquire",1,["me",5,"soon",""]]', TypeError),
    (b'[1,"lock","acquire",1,["me",5,1.0,7]]', TypeError),
])
def test_bad_commands_fail_alike_everywhere_and_change_nothing(cluster, data, error):
    before = converge(cluster)
    node = cluster.leader()
    with pytest.raises(error):
        node.apply(data).result(10)
    after = converge(cluster)
    assert after == before and len(set(map(repr, after))) == 1
    cluster.fsm(node.id)["c"].incr().result(10)             # the node goes on


def test_misuse_is_a_clear_error(cluster, tmp_path):
    group = make_group()
    with pytest.raises(batteries.NotAttachedError, match="attach"):
        group["d"].set("k", 1)
    with pytest.raises(batteries.NotAttachedError):
        group.activate(1)
    with pytest.raises(TypeError, match="node"):
        group.attach(object())
    node = cluster.node(1)
    with pytest.raises(ValueError, match="already attached to that node"):
        cluster.fsm(1).attach(node)
    with pytest.raises(ValueError, match="new Group for each Node"):
        cluster.fsm(1).attach(cluster.node(2))
    d = ReplicatedDict()
    with pytest.raises(batteries.NotAttachedError):
        d.get("k", consistency="linearizable")
    Group(x=d)                                              # the failed read bound nothing
    with pytest.raises(ValueError, match="one group"):
        Group(y=d)
    with pytest.raises(ValueError, match="give the Group"):
        d.attach(node)
    with pytest.raises(TypeError, match="not a replicated structure"):
        Group(x={})
    with pytest.raises(ValueError, match="at least one"):
        Group()
    with pytest.raises(ValueError):
        ReplicatedDict(timeout=0)
    with pytest.raises(ValueError):
        ReplicatedDict(version=0)
    with pytest.raises(ValueError, match="supports versions up to 1"):
        cluster.fsm(1).activate(2)


def test_a_structure_alone_is_a_nodes_fsm(tmp_path):
    counter = ReplicatedCounter()
    port = free_ports(1)[0]
    with raft.Node(1, f"127.0.0.1:{port}", tmp_path / "solo", counter,
                   election_timeout=0.5, heartbeat_timeout=0.05) as node:
        assert counter.attach(node) is counter and counter.name == ""
        node.bootstrap([(1, f"127.0.0.1:{port}")])
        node.start()
        node.wait_for_leader(10)
        wait_until(lambda: node.is_leader)
        assert counter.add(5).result(10) == 5
        assert counter.get(consistency="linearizable") == 5
        with pytest.raises(ValueError, match="one group"):
            Group(c=counter)


def test_submitting_from_inside_the_fsm_raises_on_the_raft_thread(tmp_path):
    # It would submit on the leader only, and waiting would deadlock: RuntimeError.
    errors = []

    class Greedy(batteries.ReplicatedObject):
        _d = None

        @batteries.replicated
        def nest(self):
            try:
                self._d["x"] = 1
            except RuntimeError as exc:
                errors.append(exc)

    greedy, d = Greedy(), ReplicatedDict()
    greedy._d = d
    group = Group(g=greedy, d=d)
    port = free_ports(1)[0]
    with raft.Node(1, f"127.0.0.1:{port}", tmp_path / "n", group,
                   election_timeout=0.5, heartbeat_timeout=0.05) as node:
        group.attach(node)
        node.bootstrap([(1, f"127.0.0.1:{port}")])
        node.start()
        wait_until(lambda: node.is_leader)
        greedy.nest().result(10)
        assert errors and isinstance(errors[0], RuntimeError)
