"""Convert a stopped node's data dir between the storage kinds, in place:

    python -m canonical_raft convert-storage DATA_DIR --to lmdb
    python -m canonical_raft convert-storage DATA_DIR --to uv

The node must be stopped (the data dir's lock is taken: a running node makes
this fail at once). Its term, vote, newest snapshot and log are written in
the new kind beside the old files; the data dir's storage record is then
rewritten, which is the moment the conversion takes effect; last, the old
files are moved into DATA_DIR/converted-from-KIND/ (delete it once the node
runs well on the new kind). Interrupted at any point, the dir is either
still the old kind (run the command again) or already the new one. A
damaged dir is refused (raft.CorruptError), as start() would refuse it.
Start the node again with storage= the new kind. Every node of a cluster
must use the same kind (their peer messages differ): stop the cluster,
convert every node, start them all.
"""

from __future__ import annotations

import argparse
import os
import shutil

from . import _raft, datadir, integrity, storage
from .errors import INVALID, RaftError


def _backup_dir(data_dir: str, kind: str) -> str:
    return os.path.join(data_dir, f"converted-from-{kind}")


def _uv_files(data_dir: str) -> list[str]:
    """libraft's files, and the binding's records of them (core/mark.pxi:
    the high-water mark and the term/vote record, which an lmdb node does
    not keep and a uv node makes afresh)."""
    records = {integrity.MARK_NAME, integrity.VOTE_NAME}
    return sorted(n for n in os.listdir(data_dir)
                  if storage._UV_FILE.match(n) or n in records)


def old_files(data_dir: str, kind: str) -> list[str]:
    """The names, in ``data_dir``, of what holds a dir's state of ``kind``."""
    return _uv_files(data_dir) if kind == "uv" else [storage.STORE_DIR]


def convert_locked(path: str, kind: str, to: str) -> None:
    """Write the state of ``path`` (of storage ``kind``, lock held) in
    storage ``to`` beside it, then record ``to``: the commit. The files of
    ``kind`` stay (old_files)."""
    # What an interrupted earlier attempt left of the new kind.
    if to == "lmdb":
        integrity.check(path)
        shutil.rmtree(os.path.join(path, storage.STORE_DIR), ignore_errors=True)
    else:
        for name in _uv_files(path):
            os.unlink(os.path.join(path, name))
    storage.write_record(path, kind)     # pin the old kind while both exist
    _raft.convert_files(path, to)
    storage.write_record(path, to)       # the commit


def convert(data_dir: str, to: str) -> str:
    """Convert ``data_dir`` to storage ``to``; returns what was done."""
    if to not in storage.KINDS:
        raise ValueError(f"--to must be one of {', '.join(storage.KINDS)}, not {to!r}")
    path = os.path.abspath(data_dir)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data dir {path!r} does not exist")
    lock = datadir.DataDirLock(path)
    lock.acquire()              # DataDirInUseError while a node runs on it
    try:
        kind = storage.recorded(path)
        if kind is None:
            raise RaftError(f"data dir {path!r} holds no raft state: nothing to convert "
                            f"(start the node with storage={to!r})", INVALID)
        if kind == to:
            return f"{path} is already storage={to!r}"
        backup = _backup_dir(path, kind)
        if os.path.exists(backup):
            raise RaftError(f"{backup} exists (from an earlier conversion): move it "
                            f"away first", INVALID)
        convert_locked(path, kind, to)
        os.mkdir(backup, 0o700)
        for name in old_files(path, kind):
            os.rename(os.path.join(path, name), os.path.join(backup, name))
        return (f"{path}: converted from storage={kind!r} to storage={to!r}; the old "
                f"files are in {backup} (delete it once the node runs on {to!r})")
    finally:
        lock.release()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", metavar="DATA_DIR", help="the stopped node's data dir")
    parser.add_argument("--to", required=True, choices=storage.KINDS,
                        help="the storage kind to convert to")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        print(convert(args.data_dir, args.to))
    except (OSError, RaftError, ValueError) as exc:
        print(f"convert-storage: {exc}", flush=True)
        return 1
    return 0
