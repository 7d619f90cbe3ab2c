"""A 3-process cluster on loopback; SIGKILL the leader; acknowledged writes survive."""

import sys
import time
from pathlib import Path

import pytest

from canonical_raft.testing import free_ports, procs, wait_until

pytestmark = pytest.mark.timeout(120)

TESTS_DIR = Path(__file__).resolve().parent
NODE_PROC = str(TESTS_DIR / "node_proc.py")


class Proc(procs.Process):
    """A node_proc.py child."""

    def __init__(self, id, address, data_dir, bootstrap, log_path):
        self.id = id
        argv = [sys.executable, NODE_PROC, "--id", str(id), "--address", address,
                "--data-dir", str(data_dir)]
        if bootstrap:
            argv += ["--bootstrap", bootstrap]
        super().__init__(argv, name=f"node {id}", log_path=log_path, env=procs.child_env(TESTS_DIR))
        try:
            started = self.wait_ready(30)
        except BaseException:
            self.stop()
            raise
        assert started["id"] == id, started
        assert started["pid"] == self.pid

    def call(self, cmd, timeout=30, **kw):
        return super().call(cmd, timeout, **kw)


@pytest.fixture
def proc_cluster(tmp_path):
    made = []

    def factory(n=3):
        ports = free_ports(n)
        addrs = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(n)}
        boot = procs.format_servers(addrs)
        nodes = {}

        def spawn(i, bootstrap=True):
            p = Proc(i, addrs[i], tmp_path / f"n{i}", boot if bootstrap else "",
                     tmp_path / f"n{i}.log")
            made.append(p)
            nodes[i] = p
            return p

        for i in addrs:
            spawn(i)
        return nodes, spawn, tmp_path

    try:
        yield factory
    finally:
        procs.stop_all(made, 15)   # every process, by pid: close, SIGTERM, SIGKILL


def find_leader(nodes, ids, timeout=30, exclude=None):
    """The id that every node in ids reports as leader (and that is leader itself)."""

    def agreed():
        statuses = {i: nodes[i].call("status") for i in ids}
        leaders = {s["leader"] for s in statuses.values()}
        if len(leaders) != 1:
            return None
        lead = leaders.pop()
        if lead is None or lead == exclude or lead not in statuses:
            return None
        return lead if statuses[lead]["is_leader"] else None

    return wait_until(agreed, timeout, interval=0.05, message=f"a leader agreed on by {ids}")


def apply_on_leader(nodes, ids, commands, timeout=30):
    """Apply commands on whoever is leader, retrying NotLeader; returns the acknowledged ones."""
    deadline = time.monotonic() + timeout
    while True:
        lead = find_leader(nodes, ids, timeout=max(1, deadline - time.monotonic()))
        res = nodes[lead].call("apply", commands=commands, timeout=10)["results"]
        if all(r["ok"] for r in res):
            return lead, [r["result"] for r in res]
        if time.monotonic() > deadline:
            raise AssertionError(f"applies keep failing: {res[:3]}")
        time.sleep(0.1)


def test_sigkill_leader_keeps_acknowledged_writes(proc_cluster):
    nodes, spawn, tmp_path = proc_cluster(3)
    ids = [1, 2, 3]
    lead = find_leader(nodes, ids)
    acked = []
    for batch in range(10):
        commands = [f"w{batch}-{j}" for j in range(20)]
        res = nodes[lead].call("apply", commands=commands, timeout=20)["results"]
        assert all(r["ok"] for r in res), res[:3]
        assert [r["result"] for r in res] == list(range(len(acked) + 1, len(acked) + 21))
        acked += commands
    # some writes in flight when the leader dies: their outcome is unknown
    nodes[lead].submit("apply", commands=[f"inflight-{j}" for j in range(50)])
    nodes[lead].kill()
    assert not nodes[lead].alive

    survivors = [i for i in ids if i != lead]
    new_lead, results = apply_on_leader(nodes, survivors, ["after-kill"], timeout=40)
    assert new_lead != lead
    assert nodes[new_lead].call("barrier", timeout=20).get("ok") is True

    def converged():
        lists = [nodes[i].call("items")["items"] for i in survivors]
        return lists if lists[0] == lists[1] and "after-kill" in lists[0] else None

    items = wait_until(converged, 30, interval=0.1, message="the survivors to converge")[0]
    # every acknowledged write is there, once, in acknowledgement order
    positions = [items.index(w) for w in acked]
    assert positions == sorted(positions)
    assert len(items) == len(set(items))
    assert items[:len(acked)] == acked
    assert set(items[len(acked):]) <= {f"inflight-{j}" for j in range(50)} | {"after-kill"}

    # the killed node comes back from its data dir (no bootstrap) and catches up
    back = spawn(lead, bootstrap=False)
    assert back.pid != nodes[new_lead].pid
    more_lead, _ = apply_on_leader(nodes, ids, ["after-restart"], timeout=40)

    def all_three():
        lists = [nodes[i].call("items")["items"] for i in ids]
        return lists if all(x == lists[0] for x in lists) and "after-restart" in lists[0] else None

    final = wait_until(all_three, 30, interval=0.1, message="the restarted node to catch up")[0]
    assert final[:len(items)] == items


def test_sigkill_follower_and_restart(proc_cluster):
    nodes, spawn, tmp_path = proc_cluster(3)
    ids = [1, 2, 3]
    lead = find_leader(nodes, ids)
    follower = next(i for i in ids if i != lead)
    res = nodes[lead].call("apply", commands=[f"a{j}" for j in range(30)])["results"]
    assert all(r["ok"] for r in res)
    nodes[follower].kill()
    res = nodes[lead].call("apply", commands=[f"b{j}" for j in range(30)])["results"]
    assert all(r["ok"] for r in res), "2 of 3 still make a quorum"
    spawn(follower, bootstrap=False)
    expected = [f"a{j}" for j in range(30)] + [f"b{j}" for j in range(30)]
    wait_until(lambda: nodes[follower].call("items")["items"] == expected, 30, interval=0.1,
             message="the restarted follower to catch up")
