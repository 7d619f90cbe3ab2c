"""Prometheus metrics of one node: what ``stats()`` knows, read at each
scrape, the events ``Node.on_event`` reports, counted as they happen
(elections, leader changes, snapshots taken and installed, peers lost and
resumed, configurations committed), and the applies submitted through a
meter (count, bytes, latency). Needs ``prometheus_client`` (``pip install
'canonical_raft[metrics]'``); docs/metrics.md lists every metric.

::

    metrics = NodeMetrics(node)             # its own registry: one per node
    group.attach(metrics.meter(node))       # count the applies submitted through it
    body, content_type = metrics.render()   # the text exposition format
    metrics.close()                         # stop counting events
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Optional

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
except ImportError:  # pragma: no cover - the extra is missing
    raise ImportError("canonical_raft.metrics needs prometheus_client: "
                      "pip install 'canonical_raft[metrics]'") from None

from .events import Event, EventKind
from .types import State

if TYPE_CHECKING:
    from .node import Node, Observer

__all__ = ["NodeMetrics", "Metered", "PREFIX"]

PREFIX = "canonical_raft"

#: Apply latency buckets (seconds): a commit on one disk takes about a
#: millisecond; a leader change, a second or more.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)

# stats() key -> (metric name, help). The one list of gauges read at a scrape.
_STATS_GAUGES = {
    "term": ("term", "The current term."),
    "commit_index": ("commit_index", "The highest log index known committed."),
    "last_applied": ("last_applied", "The highest log index applied to the FSM here."),
    "last_index": ("last_index", "The highest log index in this node's log."),
    "snapshot_index": ("snapshot_index", "The log index of the last snapshot."),
    "leader_id": ("leader_id", "The id of the leader this node knows (0: none)."),
    "last_contact": ("last_contact_seconds",
                     "Seconds since this node last heard from the leader (0 on the leader)."),
    "pending_applies": ("pending_applies", "Commands submitted here and not yet applied."),
    "servers": ("servers", "Servers in the configuration."),
    "voters": ("voters", "Voters in the configuration."),
}


class _StatsCollector:
    """Reads ``node.stats()`` once per scrape."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def describe(self) -> list[Any]:
        return []           # collected fresh at each scrape; nothing to check up front

    def collect(self) -> Iterator[Any]:
        node = self._node
        stats = node.stats()
        info = GaugeMetricFamily(f"{PREFIX}_node_info", "This node's id and peer address "
                                 "(always 1).", labels=["id", "address"])
        info.add_metric([str(node.id), node.address], 1)
        yield info
        for key, (name, doc) in _STATS_GAUGES.items():
            value = stats.get(key)
            if key == "leader_id" and value is None:
                value = 0
            if isinstance(value, (int, float)):
                yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)
        state = GaugeMetricFamily(f"{PREFIX}_state", "1 for the node's raft state, 0 for the "
                                  "others.", labels=["state"])
        for s in State:
            state.add_metric([s.name.lower()], 1 if stats.get("state") == s else 0)
        yield state
        refused = CounterMetricFamily(f"{PREFIX}_refused_connections", "Peer connections the "
                                      "peer port refused, by reason.", labels=["reason"])
        for reason, count in sorted((stats.get("refused") or {}).items()):
            refused.add_metric([reason], count)
        yield refused


class NodeMetrics:
    """The metrics of one node, in a registry of their own (``registry``).

    ``NodeMetrics(node)``, or ``NodeMetrics()`` then ``watch(node)``: read
    ``node.stats()`` at each scrape and count the node's events from then
    on (one ``on_event`` observer); ``close()`` cancels that observer.
    """

    def __init__(self, node: Optional[Node] = None,
                 registry: Optional[CollectorRegistry] = None) -> None:
        self.node: Optional[Node] = None
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.applies = Counter(f"{PREFIX}_applies", "Commands submitted through the meter, by "
                               "outcome (ok: applied; error: failed or raised).", ["result"],
                               registry=r)
        self.apply_bytes = Counter(f"{PREFIX}_apply_bytes", "Bytes of the commands submitted "
                                   "through the meter.", registry=r)
        self.apply_latency = Histogram(f"{PREFIX}_apply_latency_seconds", "From submission to "
                                       "applied, of the commands that succeeded.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.elections = Counter(f"{PREFIX}_elections", "Elections this node started (it became "
                                 "a candidate).", registry=r)
        self.leader_changes = Counter(f"{PREFIX}_leader_changes", "Times this node learnt of "
                                      "a new leader (the first one included).", registry=r)
        self.snapshots = Counter(f"{PREFIX}_snapshots", "Snapshots taken here, and installed "
                                 "from the leader.", ["kind"], registry=r)
        self.peers_lost = Counter(f"{PREFIX}_peers_lost", "As leader: times a voter or standby "
                                  "sent nothing for an election timeout.", registry=r)
        self.peers_resumed = Counter(f"{PREFIX}_peers_resumed", "As leader: times a lost peer "
                                     "was heard from again.", registry=r)
        self.configurations = Counter(f"{PREFIX}_configurations", "Configurations this node "
                                      "saw committed.", registry=r)
        for result in ("ok", "error"):
            self.applies.labels(result)
        self._counts = {                # the kinds counted one for one
            EventKind.SNAPSHOT_TAKEN: self.snapshots.labels("taken"),
            EventKind.SNAPSHOT_INSTALLED: self.snapshots.labels("installed"),
            EventKind.PEER_LOST: self.peers_lost,
            EventKind.PEER_RESUMED: self.peers_resumed,
            EventKind.CONFIGURATION: self.configurations,
        }
        self._leader_id: Optional[int] = None
        self._observer: Optional[Observer[Any]] = None
        if node is not None:
            self.watch(node)

    def watch(self, node: Node) -> None:
        """Collect ``node.stats()`` at each scrape and count its events."""
        if self.node is not None:
            raise ValueError("these metrics already watch a node: one NodeMetrics per node")
        self.node = node
        leader = node.leader
        self._leader_id = leader.id if leader is not None else None
        self.registry.register(_StatsCollector(node))
        self._observer = node.on_event(self._count)

    def _count(self, event: Event) -> None:
        # On the raft thread, one event at a time: counting only.
        kind = event.kind
        if kind is EventKind.STATE:
            if event.state == State.CANDIDATE:
                self.elections.inc()
        elif kind is EventKind.LEADER:
            # A follower that loses touch hears "no leader" then the same
            # one again: that is not a change.
            if event.leader is not None and event.leader.id != self._leader_id:
                self._leader_id = event.leader.id
                self.leader_changes.inc()
        elif kind in self._counts:
            self._counts[kind].inc()

    def meter(self, submitter: Any) -> Metered:
        """A stand-in for ``submitter`` (the node) whose ``apply()`` counts
        each command, its bytes and its latency; the rest passes through.
        Give it to ``group.attach()`` instead of the node."""
        return Metered(submitter, self)

    def render(self) -> tuple[bytes, str]:
        """(the text exposition of every metric, its content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """Stop counting events (cancels the observer; idempotent). The
        gauges still read ``stats()`` at each scrape."""
        if self._observer is not None:
            self._observer.cancel()


class Metered:
    """``apply()`` counted into a NodeMetrics; every other attribute is the
    node's (``barrier``, ``read_barrier`` where the node has it...)."""

    def __init__(self, submitter: Any, metrics: NodeMetrics) -> None:
        self._submitter = submitter
        self._metrics = metrics
        self._ok = metrics.applies.labels("ok")
        self._error = metrics.applies.labels("error")

    def apply(self, command: bytes) -> Future[Any]:
        start = time.monotonic()
        future: Future[Any] = self._submitter.apply(command)
        self._metrics.apply_bytes.inc(len(command))

        def done(f: Future[Any]) -> None:
            # Often on the raft thread: counting only, never raising.
            if f.cancelled() or f.exception() is not None:
                self._error.inc()
            else:
                self._ok.inc()
                self._metrics.apply_latency.observe(time.monotonic() - start)

        future.add_done_callback(done)
        return future

    def __getattr__(self, name: str) -> Any:
        return getattr(self._submitter, name)
