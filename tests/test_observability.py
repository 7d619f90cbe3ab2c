"""Observability: on_state_change callbacks, libraft's trace messages in
logging (only when asked for), and stats()."""

import logging
import threading
import time

import pytest

import canonical_raft as raft
from canonical_raft.testing import free_ports, wait_until

# every test has a timeout; some set a longer one
pytestmark = pytest.mark.timeout(60)

S = raft.State
TRACE_LOGGER = "canonical_raft.libraft"


def subsequence(wanted, seq):
    """True if ``wanted`` appears in ``seq`` in order (not necessarily adjacent)."""
    it = iter(seq)
    return all(any(x == w for x in it) for w in wanted)


class Observed:
    """Registers a recording callback on each node of a cluster before start."""

    def __init__(self, c):
        self.c = c
        self.seen = {id: [] for id in range(1, len(c.nodes) + 1)}
        self.threads = set()
        self.lock = threading.Lock()
        for id in range(1, len(c.nodes) + 1):
            c.node(id).on_state_change(self.callback(id))

    def callback(self, id):
        def observer(node):
            assert node is self.c.node(id)
            with self.lock:
                self.threads.add(threading.get_ident())
                self.seen[id].append((node.state, node.leader.id if node.leader else None))
        return observer

    def states(self, id, since=0):
        with self.lock:
            return [state for state, _ in self.seen[id][since:]]

    def mark(self):
        with self.lock:
            return {id: len(v) for id, v in self.seen.items()}


# -- on_state_change ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_state_change_on_election_and_reelection(cluster):
    c = cluster(3, start=False)
    obs = Observed(c)
    c.start()
    leader = c.leader()
    wait_until(lambda: subsequence([S.CANDIDATE, S.LEADER], obs.states(leader.id)), 10,
               message="the leader's callback to see CANDIDATE then LEADER")
    for f in c.followers(leader):
        wait_until(lambda: (S.FOLLOWER, leader.id) in obs.seen[f.id], 10,
                   message=f"follower {f.id}'s callback to see the leader")
    assert threading.get_ident() not in obs.threads   # raft threads only

    # the leader goes away: a follower becomes candidate, then leader
    mark = obs.mark()
    c.kill(leader.id)
    new = c.leader()
    wait_until(lambda: subsequence([S.FOLLOWER, S.CANDIDATE, S.LEADER],
                                   obs.states(new.id, mark[new.id] - 1)), 10,
               message=f"node {new.id}'s callback to see FOLLOWER -> CANDIDATE -> LEADER")
    other = next(n for n in c.running if n.id != new.id)
    wait_until(lambda: (S.FOLLOWER, new.id) in obs.seen[other.id][mark[other.id]:], 10,
               message="the other follower's callback to see the new leader")


@pytest.mark.timeout(60)
def test_state_change_on_transfer(cluster):
    c = cluster(3, start=False)
    obs = Observed(c)
    c.start()
    leader = c.leader()
    target = c.followers(leader)[0]
    wait_until(lambda: obs.seen[target.id], 10)
    mark = obs.mark()
    assert leader.transfer(target.id).result(timeout=30) == c.servers[target.id - 1]
    wait_until(lambda: (S.LEADER, target.id) in obs.seen[target.id][mark[target.id]:], 10,
               message="the target's callback to see itself leader")
    wait_until(lambda: (S.FOLLOWER, target.id) in obs.seen[leader.id][mark[leader.id]:], 10,
               message="the old leader's callback to see it follow the target")
    # (while the transfer runs, libraft reports no leader: (LEADER, None) may show)
    assert (S.LEADER, leader.id) not in obs.seen[target.id][mark[target.id]:]


@pytest.mark.timeout(60)
def test_raising_callback_is_logged_and_the_node_goes_on(cluster, caplog):
    caplog.set_level(logging.ERROR, logger="canonical_raft")
    c = cluster(3, start=False)
    calls = []

    def bad(node):
        calls.append(node.state)
        raise RuntimeError("observer failed on purpose")

    for id in range(1, 4):
        node = c.node(id)
        node.on_state_change(bad)
        node.on_state_change(lambda n: calls.append("after"))   # still called
    c.start()
    leader = c.leader()
    assert leader.apply(b"1").result(timeout=20) == 1
    c.wait_converged(key=lambda f: f.value, expected=1)
    wait_until(lambda: any("observer failed on purpose" in r.getMessage()
                           or (r.exc_info and "on purpose" in str(r.exc_info[1]))
                           for r in caplog.records), 10,
               message="the callback's exception in the log")
    records = [r for r in caplog.records if r.name.startswith("canonical_raft")
               and r.levelno >= logging.ERROR]
    assert records
    assert "after" in calls and any(isinstance(x, S) for x in calls)
    assert all(n.state != S.UNAVAILABLE for n in c.running)
    assert all(n.stats()["error"] is None for n in c.running)


def test_on_state_change_needs_a_callable(make_node):
    node = make_node()
    with pytest.raises(TypeError):
        node.on_state_change(42)

    def fn(n):
        pass

    handle = node.on_state_change(fn)
    assert handle.fn is fn and handle.active
    assert handle(node) is None                 # usable as a decorator: it calls fn


@pytest.mark.timeout(60)
def test_an_observer_cancelled_is_not_called_again(cluster):
    c = cluster(3, start=False)
    kept, dropped = [], []
    handles = {}
    for id in range(1, 4):
        node = c.node(id)
        node.on_state_change(lambda n: kept.append(n.state))
        handles[id] = node.on_state_change(lambda n: dropped.append(n.state))
    c.start()
    leader = c.leader()
    wait_until(lambda: len(dropped) >= 3, 10, message="every node's first change")
    assert all(h.cancel() for h in handles.values())
    assert not any(h.cancel() for h in handles.values())     # idempotent
    assert not any(h.active for h in handles.values())
    before, seen = len(dropped), len(kept)
    leader.transfer().result(timeout=20)                      # more changes on every node
    wait_until(lambda: len(kept) > seen, 10, message="changes after the cancel")
    assert len(dropped) == before


@pytest.mark.timeout(60)
def test_an_observer_may_cancel_itself(cluster):
    c = cluster(1, start=False)
    calls = []

    def once(n):
        calls.append(n.state)
        handle.cancel()

    handle = c.node(1).on_state_change(once)
    c.start()
    c.leader()                  # follower, candidate, leader: several changes
    wait_until(lambda: calls, 10, message="the first change")
    c.node(1).close()
    assert len(calls) == 1


# -- libraft's tracer ---------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def trace_logger(monkeypatch):
    monkeypatch.delenv("LIBRAFT_TRACE", raising=False)
    logger = logging.getLogger(TRACE_LOGGER)
    handler = Collect()
    old_level = logger.level
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.mark.timeout(60)
def test_trace_messages_when_the_logger_is_enabled(cluster, trace_logger):
    logger, handler = trace_logger
    logger.setLevel(logging.DEBUG)              # before start()
    c = cluster(3)
    leader = c.leader()
    assert leader.apply(b"1").result(timeout=20) == 1
    wait_until(lambda: len(handler.records) > 5, 10, message="libraft trace messages")
    for r in handler.records[:50]:
        assert r.name == TRACE_LOGGER
        assert r.levelno == logging.DEBUG
        assert isinstance(r.getMessage(), str) and r.getMessage()
    ids = {n.id for n in c.nodes}
    tagged = {id for id in ids
              if any(r.getMessage().startswith(f"node {id} ") for r in handler.records)}
    assert tagged == ids, "every node's messages should say which node they come from"


@pytest.mark.timeout(60)
def test_no_trace_messages_unless_enabled(cluster, trace_logger, caplog):
    logger, handler = trace_logger
    logger.setLevel(logging.INFO)               # enabled, but not for DEBUG
    caplog.set_level(logging.INFO)
    c = cluster(3)
    leader = c.leader()
    for _ in range(5):
        leader.apply(b"1").result(timeout=20)
    c.wait_converged(key=lambda f: f.value, expected=5)
    leader.transfer().result(timeout=30)
    c.leader()
    assert handler.records == []
    assert [r for r in caplog.records if r.name == TRACE_LOGGER] == []


# -- stats() -------------------------------------------------------------------------

KEYS = {"state", "term", "leader_id", "commit_index", "last_applied", "last_index",
        "snapshot_index", "error", "voters", "servers", "pending_applies", "last_contact"}


@pytest.mark.timeout(60)
def test_stats_keys_and_values(cluster):
    c = cluster(3, snapshot_threshold=8, snapshot_trailing=2)
    leader = c.leader()
    futs = [leader.apply(b"1") for _ in range(20)] + leader.apply_many([b"1"] * 20)
    for f in futs:
        f.result(timeout=20)
    for _ in range(10):
        leader.apply(b"1").result(timeout=20)       # one entry each: a snapshot
    c.wait_converged(key=lambda f: f.value, expected=50)
    wait_until(lambda: leader.stats()["pending_applies"] == 0, 10,
               message="pending_applies back to 0")

    def settled():
        stats = [n.stats() for n in c.nodes]
        return stats if len({s["last_applied"] for s in stats}) == 1 else None

    for node, st in zip(c.nodes, wait_until(settled, 10)):
        assert KEYS <= set(st), KEYS - set(st)
        assert isinstance(st["state"], S) and st["state"] == node.state
        assert st["leader_id"] == leader.id
        assert st["voters"] == 3 and st["servers"] == 3
        assert st["pending_applies"] == 0
        assert st["error"] is None
        assert st["snapshot_index"] > 0
        assert st["snapshot_index"] <= st["last_applied"] <= st["commit_index"] <= st["last_index"]
        assert isinstance(st["last_contact"], float)
        if node is leader:
            assert st["last_contact"] == 0.0
        else:
            assert 0.0 < st["last_contact"] < 1.0    # heartbeats every 50 ms


def test_stats_before_start_and_after_close(make_node):
    node = make_node()
    st = node.stats()
    assert KEYS <= set(st)
    assert st["state"] == S.UNAVAILABLE
    assert st["leader_id"] == 0
    assert st["last_contact"] is None            # never heard from a leader
    assert st["pending_applies"] == 0
    assert st["voters"] == 0 and st["servers"] == 0
    node.bootstrap([(node.id, node.address)])
    node.start()
    wait_until(lambda: node.is_leader, 20)
    st = node.stats()
    assert st["voters"] == 1 and st["servers"] == 1
    assert st["last_contact"] == 0.0             # the leader itself
    node.close()
    st = node.stats()
    assert st["state"] == S.UNAVAILABLE
    assert st["pending_applies"] == 0


@pytest.mark.timeout(60)
def test_last_contact_is_none_until_a_leader_is_heard(make_node):
    ports = free_ports(3)
    servers = [raft.Server(i + 1, f"127.0.0.1:{ports[i]}") for i in range(3)]
    node = make_node(id=1, address=servers[0].address)
    node.bootstrap(servers)
    node.start()                                 # its peers never start
    time.sleep(0.3)
    st = node.stats()
    assert st["leader_id"] == 0 and st["last_contact"] is None
    assert st["voters"] == 3 and st["servers"] == 3


@pytest.mark.timeout(60)
def test_pending_applies_counts_commands_waiting_for_commit(cluster):
    # Followers gone: the leader cannot commit, so what it was given waits
    # until it steps down (after about an election timeout without quorum).
    c = cluster(3, election_timeout=1.0, heartbeat_timeout=0.05)
    leader = c.leader()
    assert leader.apply(b"1").result(timeout=20) == 1
    for f in c.followers(leader):
        c.kill(f.id)
    futures = [leader.apply(b"1") for _ in range(5)]
    seen = []

    def all_five():
        seen.append(leader.stats()["pending_applies"])
        return seen[-1] == len(futures)

    try:
        try:
            wait_until(all_five, 0.8)
        except TimeoutError:
            pytest.fail("pending_applies should count the 5 commands whose futures are "
                        f"pending; it showed {sorted(set(seen))}")
    finally:
        for f in futures:
            exc = f.exception(timeout=20)       # the leader steps down
            assert isinstance(exc, raft.LeadershipLostError), exc
        wait_until(lambda: leader.stats()["pending_applies"] == 0, 10,
                   message="pending_applies back to 0")
