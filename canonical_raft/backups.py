"""Backups: reading a backup file (``node.backup(path)`` writes one) and
seeding a new node's data dir from it. The file's format is the compiled
core's (core/backup.pxi); docs/backups.md is the guide."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Optional

from . import _raft, convert, datadir, integrity
from . import storage as _storage
from .errors import CANTBOOTSTRAP, CantBootstrapError
from .types import Role, Server, as_server

__all__ = ["BackupInfo", "read_backup", "restore_backup"]

# What a fresh data dir may hold: the lock bootstrap()/start() take.
_FRESH = {datadir.LOCK_NAME}


@dataclass(frozen=True)
class BackupInfo:
    """What a backup holds: the index and term of the last entry its
    state includes, the configuration then (``servers``), and the size of
    its snapshot in bytes."""
    path: str
    index: int
    term: int
    servers: list[Server]
    snapshot_size: int


def _read(path: str | os.PathLike[str]) -> tuple[BackupInfo, int, bytes]:
    name = os.fspath(path)
    index, term, conf_index, servers, snapshot = _raft.read_backup(name)
    info = BackupInfo(os.fsdecode(name), index, term,
                      [Server(id, address, Role(role)) for id, address, role in servers],
                      len(snapshot))
    return info, conf_index, snapshot


def read_backup(path: str | os.PathLike[str]) -> BackupInfo:
    """Check a backup file whole (its lengths, its checksum, the snapshot's
    own checksum) and say what it holds; ``CorruptError`` naming the file
    if it is truncated or damaged."""
    return _read(path)[0]


def restore_backup(path: str | os.PathLike[str], data_dir: str | os.PathLike[str],
                   servers: Optional[Iterable[Server | tuple[Any, ...]]] = None,
                   storage: str = "uv") -> BackupInfo:
    """Seed the empty ``data_dir`` of a new node with the backup at
    ``path``: its snapshot, at the backup's index and term, with the
    configuration ``servers`` (default: the backup's own). Then start a
    ``Node`` on that dir without ``bootstrap()``: it restores the FSM from
    the snapshot. Give every voter of the new cluster the same backup and
    the same ``servers``. ``CorruptError`` (nothing written) for a bad
    file, ``CantBootstrapError`` for a dir that has state. ``storage``:
    the kind of the node that will start on the dir (``"uv"`` or
    ``"lmdb"``)."""
    if storage not in _storage.KINDS:
        raise ValueError(f"storage must be one of {', '.join(_storage.KINDS)}, not {storage!r}")
    info, conf_index, snapshot = _read(path)
    if servers is None:
        chosen = info.servers
    else:
        chosen = [as_server(s) for s in servers]
        if not chosen:
            raise ValueError("servers must not be empty")
        ids = [s.id for s in chosen]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate server ids in {ids}")
        if chosen != info.servers:
            conf_index = info.index      # a new configuration, as of the snapshot
    directory = datadir.prepare(data_dir)
    lock = datadir.DataDirLock(directory)
    lock.acquire()
    try:
        present = sorted(set(os.listdir(directory)) - _FRESH)
        if present:
            raise CantBootstrapError(f"{directory} is not empty ({', '.join(present[:5])}): "
                                     "a backup seeds a new node's empty data dir",
                                     CANTBOOTSTRAP)
        # Seeded through libraft's uv io; an lmdb dir is converted from it.
        _raft.seed_snapshot(directory, info.index, info.term, conf_index, chosen, snapshot)
        integrity.check(directory)      # what start() will check, now
        if storage == "lmdb":
            convert.convert_locked(directory, "uv", "lmdb")
            for name in convert.old_files(directory, "uv"):
                os.unlink(os.path.join(directory, name))
    finally:
        lock.release()
    return replace(info, servers=chosen)
