"""canonical_raft.metrics counting the node's events (Node.on_event) as
they happen, and docs/metrics.md naming exactly the metrics it exposes."""

import re
from pathlib import Path

import pytest

parser = pytest.importorskip("prometheus_client.parser",
                             reason="metrics need prometheus_client: pip install 'canonical_raft[metrics]'")

from canonical_raft.metrics import NodeMetrics  # noqa: E402
from canonical_raft.testing import wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(60)

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def value(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels)


def watched(cluster, n=3, **kwargs):
    """A started cluster whose nodes each have a NodeMetrics from before start()."""
    c = cluster(n, start=False, **kwargs)
    metrics = {id: NodeMetrics(c.node(id)) for id in range(1, n + 1)}
    c.start()
    return c, metrics


def test_a_killed_follower_is_lost_then_resumed_on_the_leaders_metrics(cluster):
    c, metrics = watched(cluster, election_timeout=0.5, heartbeat_timeout=0.05)
    leader = c.leader()
    on_leader = metrics[leader.id]
    follower = c.followers(leader)[0]
    assert value(on_leader, "canonical_raft_peers_lost_total") == 0
    c.kill(follower.id)
    wait_until(lambda: value(on_leader, "canonical_raft_peers_lost_total") == 1, 10,
               message="the leader counted the killed follower lost")
    assert value(on_leader, "canonical_raft_peers_resumed_total") == 0
    c.restart(follower.id)
    wait_until(lambda: value(on_leader, "canonical_raft_peers_resumed_total") == 1, 20,
               message="the leader counted it back")
    assert value(on_leader, "canonical_raft_peers_lost_total") == 1
    survivor = next(n for n in c.running if n not in (leader, c.node(follower.id)))
    assert value(metrics[survivor.id], "canonical_raft_peers_lost_total") == 0   # a follower


def test_a_transfer_is_an_election_and_a_leader_change_then_close_stops_counting(cluster):
    c, metrics = watched(cluster)
    old = c.leader()

    def changes():
        return {id: value(m, "canonical_raft_leader_changes_total") for id, m in metrics.items()}

    # Each node counts the first leader it learns of.
    wait_until(lambda: all(n.leader is not None and n.leader.id == old.id for n in c.running)
               and min(changes().values()) >= 1, 10, message="every node counted the leader")
    assert value(metrics[old.id], "canonical_raft_elections_total") >= 1
    before = changes()
    target = c.followers(old)[0]
    elections = value(metrics[target.id], "canonical_raft_elections_total")
    old.transfer(target.id).result(timeout=20)
    assert c.leader() is target
    after = {id: count + 1 for id, count in before.items()}
    wait_until(lambda: changes() == after, 10, message=f"each counted the new leader {after}")
    assert value(metrics[target.id], "canonical_raft_elections_total") == elections + 1

    for m in metrics.values():
        m.close()
        m.close()                                           # idempotent
        assert not m._observer.active
    target.transfer(old.id).result(timeout=20)
    wait_until(lambda: all(n.leader is not None and n.leader.id == old.id for n in c.running), 10)
    assert changes() == after
    assert value(metrics[old.id], "canonical_raft_term") == old.stats()["term"]   # still scraped


def test_snapshots_taken_and_installed_and_configurations_committed(cluster):
    c, metrics = watched(cluster, snapshot_threshold=20, snapshot_trailing=2)
    leader = c.leader()
    on_leader = metrics[leader.id]
    for _ in range(60):
        leader.apply(b"1").result(timeout=20)
    wait_until(lambda: value(on_leader, "canonical_raft_snapshots_total", kind="taken") >= 1, 10,
               message="the leader counted a snapshot taken")
    assert value(on_leader, "canonical_raft_snapshots_total", kind="installed") == 0
    configurations = value(on_leader, "canonical_raft_configurations_total")

    # A new node far behind a compacted log installs the leader's snapshot.
    new = c.new_node(4)
    on_new = NodeMetrics(new)
    new.start()
    leader.add(4, new.address).result(timeout=30)
    wait_until(lambda: value(on_new, "canonical_raft_snapshots_total", kind="installed") == 1,
               20, message="node 4 counted the snapshot it installed")
    # add() commits a configuration with node 4 as a spare, then one as a voter.
    wait_until(lambda: value(on_leader, "canonical_raft_configurations_total")
               >= configurations + 1, 10, message="the leader counted the new configuration")
    on_new.close()


def documented():
    """{metric name: its label names} from docs/metrics.md's table, where
    "`canonical_raft_a`, `_b`" names canonical_raft_a and canonical_raft_b."""
    names = {}
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `canonical_raft_"):
            continue
        for name, labels in re.findall(r"`([a-z_]+)(?:\{([a-z_, ]+)\})?`", line.split("|")[1]):
            name = name if name.startswith("canonical_raft_") else "canonical_raft" + name
            names[name] = {label.strip() for label in labels.split(",") if label.strip()}
    return names


def exposed(text):
    """{metric name as scraped (counters with _total): its label names, or
    None if it has no sample yet}, but prometheus_client's *_created series."""
    families = list(parser.text_string_to_metric_families(text))
    counted = {f.name for f in families if f.type in ("counter", "histogram")}
    names = {}
    for f in families:
        if f.name.endswith("_created") and f.name[:-len("_created")] in counted:
            continue
        name = f.name + "_total" if f.type == "counter" else f.name
        names[name] = ({label for s in f.samples for label in s.labels if label != "le"}
                       if f.samples else None)
    return names


def test_docs_name_every_metric_and_its_labels(cluster):
    c, metrics = watched(cluster, 1)
    node = c.leader()
    metrics[1].meter(node).apply(b"1").result(timeout=10)
    docs = documented()
    assert len(docs) >= 20, docs                             # the table was parsed
    got = exposed(metrics[1].render()[0].decode())
    assert sorted(got) == sorted(docs)
    assert {name: labels for name, labels in got.items() if labels is not None} == \
        {name: docs[name] for name, labels in got.items() if labels is not None}
