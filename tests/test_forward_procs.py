"""Writes from every node of three processes (forward=True) while the leader
is killed, or frozen long enough to be deposed and then let go with frames
still in its buffers: every acknowledged write is applied exactly once, none
twice, and a write that failed with NotLeaderError was never applied (and
with a new leader well within forward_timeout, none fails)."""

import collections
import sys
import threading
import time
from pathlib import Path

import pytest

from canonical_raft.testing import free_ports, procs, wait_until

pytestmark = pytest.mark.timeout(150)

TESTS_DIR = Path(__file__).resolve().parent
FORWARD_PROC = str(TESTS_DIR / "forward_proc.py")


@pytest.fixture
def three(tmp_path):
    ports = free_ports(3)
    addrs = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(3)}
    made = {}
    try:
        for i, address in addrs.items():
            argv = [sys.executable, FORWARD_PROC, "--id", str(i), "--address", address,
                    "--data-dir", str(tmp_path / f"n{i}"),
                    "--bootstrap", procs.format_servers(addrs), "--forward-timeout", "10"]
            made[i] = procs.Process(argv, name=f"node {i}", log_path=tmp_path / f"n{i}.log",
                                    env=procs.child_env(TESTS_DIR))
        for p in made.values():
            p.wait_ready(30)
        yield made
    finally:
        procs.stop_all(made.values(), 15)


def leader_of(nodes, ids):
    def agreed():
        statuses = {i: nodes[i].call("status") for i in ids}
        leaders = {s["leader"] for s in statuses.values()}
        lead = leaders.pop() if len(leaders) == 1 else None
        return lead if lead in statuses and statuses[lead]["is_leader"] else None
    return wait_until(agreed, 30, interval=0.05, message=f"a leader agreed on by {ids}")


class Writers:
    """A thread per node writing unique commands, a few batches in flight."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.outcomes = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in nodes]
        for t in self.threads:
            t.start()

    def run(self, id):
        node, k, inflight = self.nodes[id], 0, collections.deque()
        while not self.stop.is_set() or inflight:
            while not self.stop.is_set() and len(inflight) < 4:
                batch = [f"n{id}-{k}-{j}" for j in range(8)]
                k += 1
                try:
                    inflight.append((batch, node.submit("writes", commands=batch)))
                except procs.ProcessError:
                    self.record(batch, [{"ok": False, "error": "gone"}] * len(batch))
                    return
            batch, fut = inflight.popleft()
            try:
                results = node.wait(fut, 40)["results"]
            except procs.ProcessError:
                results = [{"ok": False, "error": "gone"}] * len(batch)
            self.record(batch, results)
            if not node.alive:
                for batch, _ in inflight:
                    self.record(batch, [{"ok": False, "error": "gone"}] * len(batch))
                return

    def record(self, batch, results):
        with self.lock:
            for command, r in zip(batch, results):
                self.outcomes[command] = "ok" if r["ok"] else r["error"]

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads)
        return self.outcomes


def check(items, outcomes):
    counts = collections.Counter(items)
    assert not [c for c, n in counts.items() if n > 1], "duplicates"
    kinds = collections.Counter(outcomes.values())
    assert set(kinds) <= {"ok", "LeadershipLostError", "NotLeaderError", "gone"}, kinds
    lost = [c for c, o in outcomes.items() if o == "ok" and c not in counts]
    assert not lost, f"{len(lost)} acknowledged writes missing, e.g. {lost[:3]}"
    dishonest = [c for c, o in outcomes.items() if o == "NotLeaderError" and c in counts]
    assert not dishonest, f"NotLeaderError but applied: {dishonest[:3]}"
    return kinds


def converged(nodes, ids):
    def same():
        lists = [nodes[i].call("read", timeout=20) for i in ids]
        if not all(x["ok"] for x in lists):
            return None
        items = [x["items"] for x in lists]
        return items[0] if all(x == items[0] for x in items) else None
    return wait_until(same, 60, interval=0.2, message=f"nodes {ids} to converge")


def test_leader_killed_with_forwarded_writes_in_flight(three):
    nodes = three
    lead = leader_of(nodes, [1, 2, 3])
    writers = Writers(nodes)
    time.sleep(1.5)
    nodes[lead].kill()
    time.sleep(3.0)
    outcomes = writers.finish()
    survivors = [i for i in nodes if i != lead]
    items = converged(nodes, survivors)
    kinds = check(items, outcomes)
    # A new leader within forward_timeout (10 s): the followers' writes in
    # flight when it died were resent to it and all went through.
    assert set(kinds) <= {"ok", "gone"} and kinds["ok"] > 200, kinds
    for i in survivors:
        stats = nodes[i].call("stats")
        assert stats["pending"] == 0, stats


def test_leader_frozen_then_released_with_stale_frames(three):
    """SIGSTOP: the others elect a new leader and the followers resend to it;
    SIGCONT: the old leader reads the frames it held, now as a follower."""
    nodes = three
    lead = leader_of(nodes, [1, 2, 3])
    writers = Writers({i: p for i, p in nodes.items() if i != lead})
    time.sleep(1.0)
    nodes[lead].pause()
    try:
        time.sleep(2.5)
    finally:
        nodes[lead].resume()
    time.sleep(2.0)
    outcomes = writers.finish()
    items = converged(nodes, [1, 2, 3])
    kinds = check(items, outcomes)
    assert set(kinds) == {"ok"} and kinds["ok"] > 200, kinds
    stats = [nodes[i].call("stats") for i in nodes]
    assert all(s["pending"] == 0 for s in stats), stats
