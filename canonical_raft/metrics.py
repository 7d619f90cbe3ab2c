"""Prometheus metrics of one node: what ``stats()`` knows, read at each
scrape, and the counters and histograms an observer can count as they
happen (applies, bytes, apply latency, elections, leader changes,
snapshots). Needs ``prometheus_client`` (``pip install
'canonical_raft[metrics]'``); docs/metrics.md lists every metric.

::

    metrics = NodeMetrics()                 # its own registry: one per node
    node = raft.Node(..., metrics.instrument(group))   # counts snapshots
    metrics.watch(node)                     # stats() at each scrape, state changes
    group.attach(metrics.meter(node))       # count the applies submitted through it
    body, content_type = metrics.render()   # the text exposition format
"""

from __future__ import annotations

import threading
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

from .types import State

if TYPE_CHECKING:
    from .node import Node

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

    ``NodeMetrics(node)`` watches ``node`` at once; ``NodeMetrics()`` then
    ``watch(node)`` lets ``instrument()`` wrap the FSM before the node is
    made. Watching registers an observer (``on_state_change``) that counts
    elections started and leader changes seen; after ``close()`` it counts
    nothing more (a node keeps its observers until it closes).
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
        self.snapshots = Counter(f"{PREFIX}_snapshots", "FSM snapshots taken here, and "
                                 "restored (from disk at start or installed from the leader).",
                                 ["kind"], registry=r)
        for result in ("ok", "error"):
            self.applies.labels(result)
        for kind in ("taken", "restored"):
            self.snapshots.labels(kind)
        self._closed = False
        self._lock = threading.Lock()
        self._state = State.UNAVAILABLE
        self._leader_id: Optional[int] = None
        if node is not None:
            self.watch(node)

    def watch(self, node: Node) -> None:
        """Collect ``node.stats()`` at each scrape and count its state changes."""
        if self.node is not None:
            raise ValueError("these metrics already watch a node: one NodeMetrics per node")
        self.node = node
        self._state = node.state
        leader = node.leader
        self._leader_id = leader.id if leader is not None else None
        self.registry.register(_StatsCollector(node))
        node.on_state_change(self._observe)

    def _observe(self, node: Node) -> None:
        # On the raft thread: counting only.
        if self._closed:
            return
        state, leader = node.state, node.leader
        with self._lock:
            if state == State.CANDIDATE and self._state != State.CANDIDATE:
                self.elections.inc()
            self._state = state
            if leader is not None and leader.id != self._leader_id:
                self.leader_changes.inc()
            if leader is not None:
                self._leader_id = leader.id

    def meter(self, submitter: Any) -> Metered:
        """A stand-in for ``submitter`` (the node) whose ``apply()`` counts
        each command, its bytes and its latency; the rest passes through.
        Give it to ``group.attach()`` instead of the node."""
        return Metered(submitter, self)

    def instrument(self, fsm: Any) -> _InstrumentedFSM:
        """A stand-in for ``fsm`` (give it to the Node instead) that counts
        its snapshots taken and restored."""
        return _InstrumentedFSM(fsm, self)

    def render(self) -> tuple[bytes, str]:
        """(the text exposition of every metric, its content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """Stop counting state changes (the observer stays registered on the
        node, doing nothing, until the node closes)."""
        self._closed = True


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


class _InstrumentedFSM:
    """An FSM that counts snapshot() and restore() calls of the one it wraps."""

    def __init__(self, fsm: Any, metrics: NodeMetrics) -> None:
        self.fsm = fsm
        self.apply = fsm.apply          # the hot path: no extra call
        self._taken = metrics.snapshots.labels("taken")
        self._restored = metrics.snapshots.labels("restored")

    def snapshot(self) -> Any:
        snap = self.fsm.snapshot()
        self._taken.inc()
        return snap

    def restore(self, data: bytes) -> None:
        self.fsm.restore(data)
        self._restored.inc()
