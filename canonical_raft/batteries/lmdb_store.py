"""The on-disk store of ``ReplicatedDict(path=...)``: a directory with one
live LMDB environment in it, swapped for a new one atomically when a
snapshot is installed. Only this module knows the layout::

    path/
      canonical_raft.lock   one holder at a time (datadir.DataDirLock: flock)
      CURRENT               the live environment's name, e.g. "env-3" (replaced by rename)
      env-3/                LMDB's data.mdb and lock.mdb

An environment holds four databases:

    items   item key -> order (8 bytes, big-endian) + the value's JSON text (UTF-8)
    order   order -> the key (UTF-8): insertion order (iteration, popitem, snapshots)
    meta    kind, format, applied, chain, genesis, next_order, count, snapshots
    marks   seq (8 bytes) -> chain: points of the log at which this state was committed

An item key is ``.`` + the key's UTF-8 (LMDB refuses empty keys), or ``#``
+ its BLAKE2b digest when that would pass LMDB's 511-byte key limit.

``applied`` is the number of the last command of the log (counted by the
Group, which also keeps ``chain``, a hash of every command so far, and
``genesis``, the chain after the first) that the state holds; it is written
in the same transaction as the state it describes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
from typing import NamedTuple, Optional

import lmdb

from ..datadir import LOCK_NAME, DataDirLock
from .errors import StoreError

__all__ = ["Store", "Env", "Meta", "item_key", "DEFAULT_MAP_SIZE"]

#: Bytes an environment may grow to (LMDB's map size): 1 GiB unless told.
DEFAULT_MAP_SIZE = 1 << 30
KIND = b"canonical_raft.batteries.dict"
FORMAT = b"1"
CURRENT = "CURRENT"
_ENV_NAME = re.compile(r"env-([0-9]{1,18})\Z")
_INT = struct.Struct(">q")
_ORDER = struct.Struct(">Q")
_LONG_KEY = 480            # UTF-8 bytes from which an item key is a digest
_KEEP_SNAPSHOTS = 3        # marks are kept from the oldest of the last few snapshots
_REMEDY = ("stop the node, move that directory away (or delete it) and start the node "
           "again: the dict is rebuilt from the node's snapshot and log")


def item_key(key: bytes) -> bytes:
    """The items key of a key's UTF-8 bytes."""
    if len(key) < _LONG_KEY:
        return b"." + key
    return b"#" + hashlib.blake2b(key, digest_size=32).digest()


def pack_order(order: int) -> bytes:
    return _ORDER.pack(order)


def unpack_order(data: bytes) -> int:
    return int(_ORDER.unpack_from(data)[0])


class Meta(NamedTuple):
    """What an environment's state is."""
    applied: int                 # the last command it holds (0: none, -1: not known)
    chain: Optional[bytes]       # the log's chain after that command
    genesis: Optional[bytes]     # the log's chain after its first command
    next_order: int              # the insertion number of the next new key
    keys: int                    # keys held
    snapshots: tuple[int, ...]   # the last snapshots taken (their seqs)


EMPTY = Meta(0, None, None, 0, 0, ())


class Env:
    """One LMDB environment of a store, open. The dict that owns it counts
    its users (``refs``, under the dict's lock): a retired one is closed and
    deleted when the last goes."""

    def __init__(self, directory: str, map_size: int, *, create: bool) -> None:
        self.directory = directory
        self.refs = 0
        self.retired = False
        try:
            self.env = lmdb.open(directory, map_size=map_size, subdir=True, create=create,
                                 max_dbs=4, readahead=False, metasync=False, mode=0o700)
        except lmdb.Error as exc:
            raise StoreError(f"{directory}: not a usable LMDB environment ({exc}); "
                             f"{_REMEDY}") from None
        try:
            self.items = self.env.open_db(b"items", create=create)
            self.order = self.env.open_db(b"order", create=create)
            self.meta_db = self.env.open_db(b"meta", create=create)
            self.marks = self.env.open_db(b"marks", create=create)
            with self.env.begin(db=self.meta_db) as txn:
                kind, fmt = txn.get(b"kind"), txn.get(b"format")
            if create and kind is None:
                with self.env.begin(write=True, db=self.meta_db) as txn:
                    txn.put(b"kind", KIND)
                    txn.put(b"format", FORMAT)
                    self.put_meta(txn, EMPTY)
                kind, fmt = KIND, FORMAT
        except lmdb.NotFoundError:
            self.env.close()
            raise StoreError(f"{directory}: an LMDB environment, but not a ReplicatedDict "
                             f"store (no {'items, order, meta and marks'} databases); "
                             f"{_REMEDY}") from None
        except lmdb.Error as exc:
            self.env.close()
            raise StoreError(f"{directory}: a damaged LMDB environment ({exc}); "
                             f"{_REMEDY}") from None
        if kind != KIND or fmt != FORMAT:
            self.env.close()
            got = f"kind {kind!r}, format {fmt!r}"
            raise StoreError(f"{directory}: not a ReplicatedDict store this code reads ({got}); "
                             f"{_REMEDY}")

    def __repr__(self) -> str:
        return f"<Env {self.directory} refs={self.refs}{' retired' if self.retired else ''}>"

    # -- meta and marks (inside the caller's transaction) ---------------------

    def meta(self, txn: lmdb.Transaction[bytes]) -> Meta:
        def number(name: bytes, fmt: struct.Struct, default: int) -> int:
            data = txn.get(name, db=self.meta_db)
            return default if data is None else int(fmt.unpack(data)[0])
        try:
            snapshots = tuple(json.loads(txn.get(b"snapshots", b"[]", db=self.meta_db)))
            return Meta(number(b"applied", _INT, -1), txn.get(b"chain", db=self.meta_db),
                        txn.get(b"genesis", db=self.meta_db),
                        number(b"next_order", _ORDER, 0), number(b"count", _ORDER, 0),
                        tuple(int(s) for s in snapshots))
        except (ValueError, TypeError, struct.error) as exc:
            raise StoreError(f"{self.directory}: damaged metadata ({exc}); {_REMEDY}") from None

    def put_meta(self, txn: lmdb.Transaction[bytes], meta: Meta) -> None:
        put = txn.put
        put(b"applied", _INT.pack(meta.applied), db=self.meta_db)
        for name, value in ((b"chain", meta.chain), (b"genesis", meta.genesis)):
            if value is None:
                txn.delete(name, db=self.meta_db)
            else:
                put(name, value, db=self.meta_db)
        put(b"next_order", _ORDER.pack(meta.next_order), db=self.meta_db)
        put(b"count", _ORDER.pack(meta.keys), db=self.meta_db)
        put(b"snapshots", json.dumps(list(meta.snapshots)).encode(), db=self.meta_db)
        if meta.applied > 0 and meta.chain is not None:
            put(_INT.pack(meta.applied), meta.chain, db=self.marks)

    def mark(self, txn: lmdb.Transaction[bytes], seq: int) -> Optional[bytes]:
        return txn.get(_INT.pack(seq), db=self.marks)

    def marks_between(self, txn: lmdb.Transaction[bytes], after: int, through: int) -> dict[int, bytes]:
        """The marks of commands after ``after`` up to ``through``."""
        found: dict[int, bytes] = {}
        with txn.cursor(db=self.marks) as cursor:
            if not cursor.set_range(_INT.pack(after + 1)):
                return found
            for key, chain in cursor:
                seq = int(_INT.unpack(key)[0])
                if seq > through:
                    break
                found[seq] = chain
        return found

    def prune_marks(self, txn: lmdb.Transaction[bytes], below: int) -> None:
        with txn.cursor(db=self.marks) as cursor:
            if not cursor.first():
                return
            while True:
                key = cursor.key()
                if not key or int(_INT.unpack(key)[0]) >= below or not cursor.delete():
                    return

    # -- lifetime (under the owning dict's lock) ------------------------------

    def unref(self) -> None:
        self.refs -= 1
        if self.retired and self.refs <= 0:
            self._drop()

    def retire(self) -> None:
        """No longer live: close and delete it once nothing uses it."""
        self.retired = True
        if self.refs <= 0:
            self._drop()

    def close(self) -> None:
        self.env.close()

    def _drop(self) -> None:
        self.env.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class Store:
    """The directory of one dict: held exclusively while open, and the
    environment CURRENT names (``live``)."""

    def __init__(self, path: str | os.PathLike[str], map_size: int) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.map_size = map_size
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
        except FileExistsError:
            raise StoreError(f"{self.path} is not a directory: a ReplicatedDict's path is a "
                             f"directory it owns") from None
        self._lock = DataDirLock(self.path)
        self._lock.acquire()           # DataDirInUseError if another holder has it
        try:
            self.live = self._open()
        except BaseException:
            self._lock.release()
            raise

    def _open(self) -> Env:
        names = set(os.listdir(self.path)) - {LOCK_NAME}
        current = self._current()
        if current is None:
            stray = sorted(n for n in names if not _ENV_NAME.match(n) and n != CURRENT + ".tmp")
            if stray:
                raise StoreError(f"{self.path} holds files that are not a ReplicatedDict "
                                 f"store's ({', '.join(stray[:5])}): give the dict a directory "
                                 f"of its own")
            self._remove_others(names, keep=None)   # a creation that did not finish
            env = Env(os.path.join(self.path, "env-1"), self.map_size, create=True)
            self._point_to(env)
            return env
        env = Env(os.path.join(self.path, current), self.map_size, create=False)
        self._remove_others(names, keep=current)    # an install that did not finish
        return env

    def _current(self) -> Optional[str]:
        try:
            with open(os.path.join(self.path, CURRENT), encoding="ascii") as f:
                name = f.read().strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"{self.path}/{CURRENT}: unreadable ({exc}); {_REMEDY}") from None
        if not _ENV_NAME.match(name) or not os.path.isdir(os.path.join(self.path, name)):
            raise StoreError(f"{self.path}/{CURRENT} names {name!r}, which is not an "
                             f"environment here; {_REMEDY}")
        return name

    def _remove_others(self, names: set[str], keep: Optional[str]) -> None:
        for name in names:
            if name != keep and (_ENV_NAME.match(name) or name == CURRENT + ".tmp"):
                target = os.path.join(self.path, name)
                if os.path.isdir(target):
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    os.unlink(target)

    def _point_to(self, env: Env) -> None:
        """Make ``env`` the live one, atomically and durably: CURRENT is
        written aside, synced, renamed over the old one, and the directory
        synced."""
        env.env.sync(True)
        tmp = os.path.join(self.path, CURRENT + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, os.path.basename(env.directory).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(self.path, CURRENT))
        dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def new_env(self) -> Env:
        """An empty environment beside the live one, not live yet."""
        number = int(_ENV_NAME.match(os.path.basename(self.live.directory)).group(1))  # type: ignore[union-attr]
        directory = os.path.join(self.path, f"env-{number + 1}")
        shutil.rmtree(directory, ignore_errors=True)
        return Env(directory, self.map_size, create=True)

    def switch(self, env: Env) -> None:
        """Make ``env`` (from new_env(), filled) the live one; the old one is
        retired (deleted once unused)."""
        self._point_to(env)
        old, self.live = self.live, env
        old.retire()

    @staticmethod
    def discard(env: Env) -> None:
        """Drop an environment from new_env() that did not become live."""
        env.retire()

    def close(self) -> None:
        """Close the live environment (its users' transactions become
        invalid) and let the directory go."""
        try:
            self.live.close()
        finally:
            self._lock.release()


def keep_marks_from(snapshots: tuple[int, ...]) -> int:
    """Below which seq marks can go: libraft may restart from any of the last
    few snapshots (one may not have been written when the node stopped)."""
    return min(snapshots[-_KEEP_SNAPSHOTS:]) if snapshots else 0


def record_snapshot(snapshots: tuple[int, ...], seq: int) -> tuple[int, ...]:
    if snapshots and snapshots[-1] == seq:
        return snapshots
    return (*snapshots, seq)[-_KEEP_SNAPSHOTS:]
