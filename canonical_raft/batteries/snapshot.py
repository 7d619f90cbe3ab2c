"""A Group's snapshot: one JSON document, written in pieces off the raft
thread (persist()) and read member by member (restore())::

    {"kind": "canonical_raft.batteries", "format": 1, "active": 1,
     "applied": 1234, "chain": "<32 hex>", "genesis": "<32 hex>",
     "versions": {"users": 1, "hits": 1},
     "structures": {"hits": {"type": "counter", "version": 1, "state": 7},
                    "users": {"type": "dict", "version": 1, "state": {...}}}}

``applied``, ``chain`` and ``genesis`` are the point of the log the
snapshot holds (structure.LogPoint; absent in older snapshots: not known).
Durable structures (``ReplicatedDict(path=...)``) come last and
``versions`` names every structure, so that a restore which keeps a durable
structure's own state (its store already holds this point or later) stops
reading before that structure's state, however large.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

from . import codec
from .structure import LogPoint, Structure

__all__ = ["SNAPSHOT_FORMAT", "CHAIN_START", "GroupSnapshot", "Contents", "read"]

#: The snapshot layout written by this code; read() refuses higher ones.
SNAPSHOT_FORMAT = 1
KIND = "canonical_raft.batteries"
#: The chain before the log's first command.
CHAIN_START = bytes(16)

Frozen = list[tuple[str, Structure, Any]]


class GroupSnapshot:
    """A group's state frozen at a snapshot; persist() serialises it off the
    raft thread (canonical_raft's persist() protocol)."""

    def __init__(self, active: int, point: LogPoint, frozen: Frozen) -> None:
        self.active = active
        self.point = point
        self.frozen: Optional[Frozen] = frozen

    def persist(self) -> bytes:
        frozen = self.frozen
        if frozen is None:
            raise RuntimeError("this snapshot was released")
        head: dict[str, Any] = {"kind": KIND, "format": SNAPSHOT_FORMAT, "active": self.active}
        seq, chain, genesis = self.point
        if seq is not None:
            head["applied"] = seq
            head["chain"] = chain.hex()
            if genesis is not None:
                head["genesis"] = genesis.hex()
        head["versions"] = {name: structure._version for name, structure, _ in frozen}
        parts = [codec.dumps(head)[:-1].encode(), b',"structures":{']
        for i, (name, structure, state) in enumerate(frozen):
            entry = codec.dumps({"type": structure.kind, "version": structure._version})
            parts.append(f'{"," if i else ""}{codec.dumps(name)}:{entry[:-1]},"state":'.encode())
            parts.extend(piece if type(piece) is bytes else piece.encode()  # type: ignore[union-attr]
                         for piece in structure._dump_text(state))
            parts.append(b"}")
        parts.append(b"}}")
        return b"".join(parts)

    def release(self) -> None:
        frozen, self.frozen = self.frozen, None
        for _, structure, state in frozen or ():
            structure._thaw(state)


class Contents(NamedTuple):
    """A snapshot read and validated, not installed yet."""
    active: int
    point: LogPoint
    prepared: list[tuple[Structure, Any]]   # install each: structure._install(prepared)
    kept: list[Structure]                   # durable: keep their own state (_resume)
    lacking: list[str]                      # active structures this code lacks


def read(structures: Mapping[str, Structure], data: bytes) -> Contents:
    """The contents of a snapshot for a group of ``structures``; raises
    (ValueError, TypeError, StoreError) having changed nothing if it is not
    one that group can take."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not a batteries snapshot ({len(data)} bytes): {exc}") from None
    reader = codec.Reader(text)
    if not reader.at("{"):
        raise ValueError("not a batteries snapshot")
    prepared: list[tuple[Structure, Any]] = []
    try:
        return _read(structures, reader, prepared)
    except codec.ReadError as exc:
        _discard(prepared)
        raise ValueError(f"malformed batteries snapshot: {exc}") from None
    except BaseException:
        _discard(prepared)
        raise


def _discard(prepared: list[tuple[Structure, Any]]) -> None:
    for structure, made in prepared:
        structure._discard(made)


class _Header(NamedTuple):
    active: int
    point: LogPoint
    versions: Optional[dict[str, Any]]


def _header(fields: dict[str, Any]) -> _Header:
    if fields.get("kind") != KIND:
        raise ValueError("not a batteries snapshot")
    fmt = fields.get("format")
    if type(fmt) is not int or fmt > SNAPSHOT_FORMAT or fmt < 1:
        raise ValueError(f"snapshot format {fmt!r}: this code reads up to {SNAPSHOT_FORMAT}")
    active = fields.get("active")
    if type(active) is not int or active < 1:
        raise ValueError("malformed batteries snapshot")
    point = LogPoint(None, CHAIN_START, None)
    seq, chain, genesis = fields.get("applied"), fields.get("chain"), fields.get("genesis")
    if type(seq) is int and seq >= 0:
        try:
            point = LogPoint(seq, bytes.fromhex(chain),  # type: ignore[arg-type]
                             None if genesis is None else bytes.fromhex(genesis))
        except (TypeError, ValueError):
            raise ValueError("malformed batteries snapshot: its log point") from None
    versions = fields.get("versions")
    return _Header(active, point, versions if type(versions) is dict else None)


def _read(structures: Mapping[str, Structure], reader: codec.Reader,
          prepared: list[tuple[Structure, Any]]) -> Contents:
    fields: dict[str, Any] = {}
    header: Optional[_Header] = None
    kept: list[Structure] = []
    keeps: set[int] = set()
    seen: set[str] = set()
    lacking: list[str] = []
    done = False
    for key in reader.members():
        if key != "structures":
            fields[key] = reader.value()
            continue
        header = _header(fields)
        # Before any state is read: which durable structures keep their own.
        kept = [s for s in structures.values() if s.durable and s._keeps(header.point)]
        keeps = {id(s) for s in kept}     # by identity: a ReplicatedDict compares as a mapping
        if not reader.at("{"):
            raise ValueError("malformed batteries snapshot")
        for name in reader.members():
            seen.add(name)
            structure = structures.get(name)
            if structure is not None and id(structure) in keeps and _rest_is_kept(
                    structures, keeps, header.versions, seen):
                done = True         # nothing after this is needed: stop reading
                break
            if structure is None:
                entry = reader.value()
                if _was_active(entry, header.active):
                    lacking.append(name)
            elif id(structure) in keeps:
                reader.value()      # its state stays as it is
            elif structure.durable:
                prepared.append((structure, _durable_entry(reader, name, structure, header.point)))
            else:
                entry = reader.value()
                if type(entry) is not dict or entry.get("type") != structure.kind:
                    got = entry.get("type") if type(entry) is dict else entry
                    raise ValueError(f"{name!r} is a {structure.kind} here, the snapshot has {got!r}")
                prepared.append((structure, structure._prepare(entry.get("state"))))
        if done:
            break
    if header is None:
        _header(fields)             # says what is wrong, if that is it
        raise ValueError("malformed batteries snapshot")
    if not done:
        reader.end()
    elif header.versions is not None:
        lacking += [name for name in sorted(set(header.versions) - seen - set(structures))
                    if _was_active({"version": header.versions[name]}, header.active)]
    for name, structure in structures.items():
        if name in seen or id(structure) in keeps:
            continue
        if structure.durable:
            prepared.append((structure, structure._prepare_stream(None, header.point)))
        else:
            prepared.append((structure, structure._prepare(None)))
    return Contents(header.active, header.point, prepared, kept, sorted(lacking))


def _rest_is_kept(structures: Mapping[str, Structure], keeps: set[int],
                  versions: Optional[dict[str, Any]], seen: set[str]) -> bool:
    """Whether every structure the snapshot holds and that is not read yet
    keeps its own state (or is one this code lacks, whose version the
    header gives): then reading can stop."""
    if versions is None:
        return False
    return all(id(structures[name]) in keeps for name in set(versions) - seen if name in structures)


def _was_active(entry: Any, active: int) -> bool:
    # A structure of newer code that was never active holds nothing (every
    # command to it failed): skip it. One that was active: this node cannot
    # hold it, it is outdated (but keeps running, a voter the cluster may
    # need while it is upgraded).
    since = entry.get("version") if type(entry) is dict else None
    return type(since) is not int or since <= active


def _durable_entry(reader: codec.Reader, name: str, structure: Structure,
                   point: LogPoint) -> Any:
    """A durable structure's entry, its state streamed into a new store."""
    kind: Any = None
    made: Any = None
    has_state = False
    try:
        for field in reader.members():
            if field == "type":
                kind = reader.value()
                if kind != structure.kind:
                    break
            elif field == "state" and not has_state:
                has_state = True
                made = structure._prepare_stream(reader, point)
            else:
                reader.value()
        if kind != structure.kind:
            raise ValueError(f"{name!r} is a {structure.kind} here, the snapshot has {kind!r}")
        if not has_state:
            made = structure._prepare_stream(None, point)
        return made
    except BaseException:
        if made is not None:
            structure._discard(made)
        raise
