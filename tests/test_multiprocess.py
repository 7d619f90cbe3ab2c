"""A 3-process cluster on loopback; SIGKILL the leader; acknowledged writes survive."""

import itertools
import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import TESTS_DIR, free_ports, subprocess_env, wait_for

pytestmark = pytest.mark.timeout(120)

NODE_PROC = str(TESTS_DIR / "node_proc.py")


class Proc:
    """A node_proc.py child driven by JSON lines."""

    def __init__(self, procs, id, address, data_dir, bootstrap, log_path):
        self.id = id
        self.log = open(log_path, "ab")
        cmd = [sys.executable, NODE_PROC, "--id", str(id), "--address", address,
               "--data-dir", str(data_dir)]
        if bootstrap:
            cmd += ["--bootstrap", bootstrap]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, env=subprocess_env(), start_new_session=True)
        procs.append(self.p)
        self.lines = queue.Queue()
        self.seq = itertools.count(1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        started = self._next(30)
        assert started.get("event") == "started", started
        self.pid = started["pid"]
        assert self.pid == self.p.pid

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def _next(self, timeout):
        try:
            msg = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node {self.id}: no reply within {timeout}s") from None
        if msg is None:
            raise AssertionError(f"node {self.id} exited (rc={self.p.poll()})")
        return msg

    def send(self, op, **kw):
        seq = next(self.seq)
        self.p.stdin.write((json.dumps(dict(kw, op=op, seq=seq)) + "\n").encode())
        self.p.stdin.flush()
        return seq

    def call(self, op, timeout=30, **kw):
        seq = self.send(op, **kw)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next(max(0.01, deadline - time.monotonic()))
            if msg.get("seq") == seq:
                return msg

    def alive(self):
        return self.p.poll() is None

    def kill(self):
        self.p.send_signal(signal.SIGKILL)  # by PID
        self.p.wait(timeout=10)

    def close(self):
        if self.alive():
            try:
                self.call("close", timeout=15)
            except (AssertionError, BrokenPipeError, OSError):
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self.log.close()


@pytest.fixture
def proc_cluster(procs, tmp_path):
    made = []

    def factory(n=3):
        ports = free_ports(n)
        addrs = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(n)}
        boot = ",".join(f"{i}={a}" for i, a in addrs.items())
        nodes = {}

        def spawn(i, bootstrap=True):
            p = Proc(procs, i, addrs[i], tmp_path / f"n{i}", boot if bootstrap else "",
                     tmp_path / f"n{i}.log")
            made.append(p)
            nodes[i] = p
            return p

        for i in addrs:
            spawn(i)
        return nodes, spawn, tmp_path

    yield factory
    for p in made:
        p.close()


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

    return wait_for(agreed, timeout, interval=0.05, message=f"a leader agreed on by {ids}")


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
    nodes[lead].send("apply", commands=[f"inflight-{j}" for j in range(50)])
    nodes[lead].kill()
    assert not nodes[lead].alive()

    survivors = [i for i in ids if i != lead]
    new_lead, results = apply_on_leader(nodes, survivors, ["after-kill"], timeout=40)
    assert new_lead != lead
    assert nodes[new_lead].call("barrier", timeout=20).get("ok") is True

    def converged():
        lists = [nodes[i].call("items")["items"] for i in survivors]
        return lists if lists[0] == lists[1] and "after-kill" in lists[0] else None

    items = wait_for(converged, 30, interval=0.1, message="the survivors to converge")[0]
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

    final = wait_for(all_three, 30, interval=0.1, message="the restarted node to catch up")[0]
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
    wait_for(lambda: nodes[follower].call("items")["items"] == expected, 30, interval=0.1,
             message="the restarted follower to catch up")
