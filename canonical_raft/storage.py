"""The storage kind of a data dir: "uv" (libraft's segment files) or "lmdb"
(the binding's own store, DATA_DIR/lmdb/data.mdb: core/lmdb_store.c).

A new data dir records its kind in the file ``canonical_raft.storage`` the
first time a node takes it (bootstrap, recover or start, under the data
dir's lock); an lmdb store is created just before that record is written,
so a recorded lmdb dir without its data file is damage, not a new node.
A dir from before the record is recognised by its files. Opening a dir
with the other kind fails with a clear error naming the dir, both kinds
and the conversion command (``python -m canonical_raft convert-storage``).
"""

from __future__ import annotations

import os
import re

from . import _raft
from .errors import CORRUPT, INVALID, CorruptError, RaftError

RECORD_NAME = "canonical_raft.storage"
KINDS = ("uv", "lmdb")
STORE_DIR = "lmdb"                       # core/lmdb_store.h CR_STORE_SUBDIR
LMDB_FILE = os.path.join(STORE_DIR, "data.mdb")

# libraft's uv backend's files (uv_list.c, uv_metadata.c).
_UV_FILE = re.compile(r"metadata[12]\Z|open-\d+\Z|\d{16}-\d{16}\Z|snapshot-\d+-\d+-\d+(\.meta)?\Z")

LMDB_REMEDY = ("The node refuses to start rather than lose acknowledged entries. If the "
               "other voters hold the data: remove this node from the cluster, wipe its "
               "data dir and add it back (docs/howto/recovery.md).")


def recorded(data_dir: str) -> str | None:
    """The dir's kind: its record, else what its files say, else None (new)."""
    try:
        with open(os.path.join(data_dir, RECORD_NAME)) as f:
            kind = f.read().strip()
    except FileNotFoundError:
        kind = None
    if kind is not None:
        if kind not in KINDS:
            raise CorruptError(f"{os.path.join(data_dir, RECORD_NAME)}: unknown storage "
                               f"kind {kind!r} (expected one of {', '.join(KINDS)})", CORRUPT)
        return kind
    if os.path.exists(os.path.join(data_dir, LMDB_FILE)):
        return "lmdb"
    if any(_UV_FILE.match(name) for name in os.listdir(data_dir)):
        return "uv"
    return None


def mismatch(data_dir: str, kind: str, wanted: str) -> RaftError:
    return RaftError(
        f"data_dir {data_dir!r} holds storage={kind!r}, but this node was given "
        f"storage={wanted!r}: open it with storage={kind!r}, or convert it offline "
        f"(python -m canonical_raft convert-storage {data_dir} --to {wanted})", INVALID)


def write_record(data_dir: str, kind: str) -> None:
    """Record ``kind`` durably (write, fsync, rename, fsync the dir)."""
    path = os.path.join(data_dir, RECORD_NAME)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, f"{kind}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def check(data_dir: str, wanted: str) -> None:
    """Refuse a dir of the other kind; make a new dir of kind ``wanted``.
    Call with the data dir's lock held."""
    kind = recorded(data_dir)
    if kind is None:
        if wanted == "lmdb":
            _raft.lmdb_create(data_dir)
        write_record(data_dir, wanted)
    elif kind != wanted:
        raise mismatch(data_dir, kind, wanted)


def start_failure(exc: RaftError, data_dir: str) -> RaftError:
    """An lmdb store's damage, as CorruptError with the remedy (its message
    names the file); any other error unchanged."""
    if exc.code != CORRUPT or LMDB_REMEDY in str(exc):
        return exc
    return CorruptError(f"{exc}. {LMDB_REMEDY}", CORRUPT)
