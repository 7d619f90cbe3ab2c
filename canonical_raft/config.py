"""Every setting of a Node, once: name, default, unit, range and doc.

Node's validation, its docstring, the tuning page's table
(docs/howto/tuning.md, checked by tests/test_config.py) and the benchmark's
settings (bench/settings.py) are all derived from SETTINGS. Adding a knob is
one Setting here plus one line in the compiled core's configure().
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict, Union

Value = Union[float, int, bool, str]

_DAY = 24 * 3600.0
_KIB = 1024
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Setting:
    """One knob. ``kind`` is float (seconds: more than 0, at least 1 ms, at
    most a day), int (``low``..``high`` inclusive), bool, or str (one of
    ``choices``)."""

    name: str
    default: Value
    kind: type
    unit: str
    doc: str
    low: float = 0
    high: float = 2**32 - 1
    choices: tuple[str, ...] = ()

    def check(self, value: object) -> Value:
        """``value`` checked and converted, or TypeError/ValueError."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise TypeError(f"{self.name} must be a bool, not {type(value).__name__}")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise TypeError(f"{self.name} must be a str, not {type(value).__name__}")
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(map(repr, self.choices))}, "
                                 f"got {value!r}")
            return value
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{self.name} must be a number of seconds, "
                                f"not {type(value).__name__}")
            if not value > 0 or value > _DAY:
                raise ValueError(f"{self.name} must be > 0 seconds (and at most a day), "
                                 f"got {value!r}")
            if value * 1000 < 1:
                raise ValueError(f"{self.name} must be at least 1 ms, got {value!r}")
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{self.name} must be an int, not {type(value).__name__}")
        if not self.low <= value <= self.high:
            raise ValueError(f"{self.name} must be in {int(self.low)}..{int(self.high)}, "
                             f"got {value}")
        return value

    def shown(self, value: Value | None = None) -> str:
        """``value`` (the default if None) as a person reads it: 16 MiB, 1.0 s."""
        value = self.default if value is None else value
        if self.unit == "bytes" and isinstance(value, int) and value:
            for size, suffix in ((1024 * _MIB, "GiB"), (_MIB, "MiB"), (_KIB, "KiB")):
                if value % size == 0:
                    return f"{value // size} {suffix}"
        if self.unit == "s":
            return f"{value} s"
        return str(value)


SETTINGS: tuple[Setting, ...] = (
    Setting("election_timeout", 1.0, float, "s",
            "How long a follower waits without hearing from a leader before it stands "
            "for election. libraft draws each wait at random between this and twice this."),
    Setting("heartbeat_timeout", 0.1, float, "s",
            "How often an idle leader sends heartbeats. Must be shorter than "
            "election_timeout; a tenth of it is usual."),
    Setting("snapshot_threshold", 8192, int, "entries",
            "Log entries applied between two snapshots. This binding's default: "
            "libraft's 1024 pauses every node's loop too often.", low=1),
    Setting("snapshot_log_bytes", 64 * _MIB, int, "bytes",
            "Snapshot sooner once the entries since the last snapshot hold this many "
            "bytes (0: count entries only). libraft keeps those entries in memory: "
            "this bounds it.", high=2**63 - 1),
    Setting("snapshot_trailing", 128, int, "entries",
            "Log entries kept after a snapshot, for followers a little behind."),
    Setting("pre_vote", True, bool, "",
            "A node first checks that it could win before starting an election, so "
            "that a node coming back from a network partition does not disrupt a "
            "working leader."),
    Setting("install_snapshot_timeout", 30.0, float, "s",
            "How long the leader waits for a follower to install a snapshot it sent."),
    Setting("max_catch_up_rounds", 10, int, "rounds",
            "Rounds of log replication a new server gets to catch up before its "
            "promotion to voter fails.", low=1),
    Setting("max_catch_up_round_duration", 5.0, float, "s",
            "The longest one of those rounds may take."),
    Setting("max_inflight_entries", 32, int, "messages",
            "Append messages in flight to each follower (pipelining).", low=1),
    # libraft reports free log space in KiB in 16 bits: about three segments
    # must stay under 64 MiB, hence the 16 MiB ceiling.
    Setting("segment_size", 16 * _MIB, int, "bytes",
            "Size of each open log segment file on disk (64 KiB to 16 MiB). libraft "
            "keeps three allocated ahead (48 MiB by default) plus the closed ones not "
            "yet covered by a snapshot: give a node's data directory at least 4 "
            "segments' worth, or lower this on a small disk. This binding's default "
            "(libraft's is 8 MiB): closing a segment pauses the loop for tens of ms, "
            "so fewer, bigger segments measured faster.", low=64 * _KIB, high=16 * _MIB),
    Setting("snapshot_compression", False, bool, "",
            "zlib-compress snapshots (this binding's own; libraft 0.22's switch does "
            "nothing)."),
    Setting("tcp_nodelay", True, bool, "",
            "TCP_NODELAY on raft's connections (this binding's default; libraft leaves "
            "Nagle's algorithm on, which costs latency)."),
    Setting("max_batch_bytes", 64 * _KIB, int, "bytes",
            "Bytes of waiting commands packed into one log entry (0: one entry per "
            "command).", high=64 * _MIB),
    Setting("auto_recovery", False, bool, "",
            "Let libraft repair a damaged log at start by discarding the damaged segment and "
            "everything after it (libraft's default; this binding's is off: a damaged data "
            "dir makes start() raise raft.CorruptError). Safe only when the other voters hold "
            "the discarded entries, and it can leave a follower stuck behind until the next "
            "leader change; see docs/howto/recovery.md."),
    # The peer transport (core/peer_transport.c).
    Setting("max_message_size", 1024 * _MIB, int, "bytes",
            "The largest raft message a peer may send this node (its firewall drops "
            "the connection beyond). An InstallSnapshot carries a whole snapshot: "
            "keep this above the largest snapshot your FSM makes (a snapshot that "
            "does not fit is logged at WARNING when taken).", low=_MIB, high=2**62),
    Setting("peer_handshake_timeout", 10.0, float, "s",
            "How long an inbound peer connection may take from accept to the end "
            "of its TLS and raft handshakes before it is dropped."),
    Setting("peer_idle_timeout", 30.0, float, "s",
            "How long an inbound peer connection may stay part-way through a "
            "message without sending a byte before it is dropped."),
    # Apply on any node (core/forward.pxi, docs/howto/forwarding.md).
    Setting("forward", False, bool, "",
            "apply() on a follower sends the command to the leader (over the peer "
            "port) and resolves with its result once this node has applied it, "
            "exactly once. Every node must run a release that has forwarding "
            "before any node sets it."),
    Setting("forward_timeout", 10.0, float, "s",
            "How long a forwarded command, or a read_barrier(), may wait for a "
            "leader (retried across leader changes) before it fails."),
    Setting("session_expiry", 1_000_000, int, "entries",
            "A forwarding session unused for this many log entries leaves the "
            "session table (log time, not wall time). Keep it well above the "
            "entries applied within forward_timeout; the same on every node.",
            low=1000, high=2**62),
    Setting("max_sessions", 4096, int, "sessions",
            "Sessions the table holds at most; a new one replaces the one unused "
            "longest. The same on every node.", low=1, high=1 << 20),
    # The io (core/raft_io.pxi).
    Setting("storage", "uv", str, "",
            "Where the node keeps its log, term, vote and snapshots: \"uv\", libraft's "
            "own segment files, or \"lmdb\", the binding's own raft_io over one LMDB "
            "file (docs/howto/storage.md). Every node of a cluster must use the same "
            "(their messages differ); a data dir keeps the kind it was made with "
            "(`python -m canonical_raft convert-storage` converts one offline).",
            choices=("uv", "lmdb")),
)

BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}


class Settings(TypedDict, total=False):
    """The keyword arguments of Node beyond the first four (for type
    checkers; tests/test_config.py keeps it equal to SETTINGS)."""

    election_timeout: float
    heartbeat_timeout: float
    snapshot_threshold: int
    snapshot_log_bytes: int
    snapshot_trailing: int
    pre_vote: bool
    install_snapshot_timeout: float
    max_catch_up_rounds: int
    max_catch_up_round_duration: float
    max_inflight_entries: int
    segment_size: int
    snapshot_compression: bool
    tcp_nodelay: bool
    max_batch_bytes: int
    auto_recovery: bool
    max_message_size: int
    peer_handshake_timeout: float
    peer_idle_timeout: float
    forward: bool
    forward_timeout: float
    session_expiry: int
    max_sessions: int
    storage: str


class Config:
    """A node's checked settings, one attribute per Setting (read by the
    compiled core's configure())."""

    __slots__ = tuple(s.name for s in SETTINGS)

    def __init__(self, values: Mapping[str, Value]) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Config is read-only")

    def __getattr__(self, name: str) -> Value:  # for type checkers; slots answer first
        raise AttributeError(name)

    def as_dict(self) -> dict[str, Value]:
        return {s.name: getattr(self, s.name) for s in SETTINGS}

    def __repr__(self) -> str:
        return f"Config({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"


def defaults() -> dict[str, Value]:
    return {s.name: s.default for s in SETTINGS}


def validate(values: Mapping[str, object]) -> Config:
    """Check ``values`` (any subset of SETTINGS) over the defaults: TypeError
    for an unknown name or a wrong type, ValueError for a value out of range."""
    unknown = set(values) - set(BY_NAME)
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(sorted(BY_NAME))}")
    checked = {s.name: s.check(values.get(s.name, s.default)) for s in SETTINGS}
    if float(checked["heartbeat_timeout"]) >= float(checked["election_timeout"]):
        raise ValueError("heartbeat_timeout must be shorter than election_timeout")
    return Config(checked)


def docstring_lines() -> list[str]:
    """Node's docstring section on its settings: each name, its default and
    the first sentence of its doc."""
    lines = []
    for s in SETTINGS:
        first = s.doc.split(". ")[0].rstrip(".")
        lines += textwrap.wrap(f"{s.name} (default {s.shown()}): {first}.", 76,
                               initial_indent="    ", subsequent_indent="        ")
    return lines


def markdown_table() -> str:
    """The settings table of docs/howto/tuning.md."""
    rows = ["| argument | default | what it does |", "|---|---|---|"]
    rows += [f"| `{s.name}` | `{s.shown()}` | {s.doc} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
