"""LMDBDict: what ``ReplicatedDict(path=...)`` makes. The same dict (the
same commands, results, insertion order and snapshots), its state in an
LMDB store (lmdb_store) instead of memory.

Writes applied on the raft thread are staged in memory (``_Pending``, which
readers see) and committed to LMDB in one write transaction per batch: every
FLUSH_ITEMS keys, FLUSH_BYTES bytes or FLUSH_SECONDS (at the next command),
and at every snapshot. The binding does not tell an FSM where the raft
thread's own batches end, so the dict makes its own. Each transaction also
stores the point of the log the state has reached (the Group's LogPoint),
so that after a restart, killed or not, the group skips exactly the
commands the store holds and replays the rest: nothing twice, nothing lost
(the raft log is the durable truth; the store may lag it, never lead it).

A snapshot commits what is pending, then persist() streams the JSON from a
read transaction, off the raft thread. Installing a snapshot builds a new
environment beside the live one and swaps them atomically (lmdb_store).

One lock (``_lock``) orders the raft thread's applies and commits with the
readers of other threads that need a consistent view (a read transaction
and the pending writes, taken together).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any, Optional, Union

import lmdb

from . import codec
from .dict import ReplicatedDict, _check_key
from .errors import StoreError
from .lmdb_store import (DEFAULT_MAP_SIZE, Env, Meta, Store, item_key, keep_marks_from,
                         pack_order, record_snapshot, unpack_order)
from .structure import Consistency, LogPoint, Structure, operation

__all__ = ["LMDBDict", "FLUSH_ITEMS", "FLUSH_BYTES", "FLUSH_SECONDS"]

log = logging.getLogger("canonical_raft.batteries")

#: A batch of staged writes is committed once it holds this many keys,
FLUSH_ITEMS = 1024
#: or this many bytes of values,
FLUSH_BYTES = 8 << 20
#: or is this old (seconds) when the next command comes.
FLUSH_SECONDS = 0.05
_RESTORE_BATCH = 20_000      # keys per write transaction while installing a snapshot
_MIN_MAP_SIZE = 1 << 20
_NEEDS_ESCAPE = re.compile(rb'["\\\x00-\x1f]')

Entry = Optional[tuple[int, bytes]]     # (insertion order, JSON text); None: deleted
_UNSTAGED: tuple[int, bytes] = (-1, b"")   # the sentinel of a key with no staged write


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _dec(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _load(text: bytes) -> Any:
    return json.loads(_dec(text))


def _json_key(raw: bytes) -> bytes:
    """A key's UTF-8 as a JSON string, as codec.dumps writes it."""
    if _NEEDS_ESCAPE.search(raw) is None:
        return b'"' + raw + b'"'
    return _enc(codec.dumps(_dec(raw)))


class _Pending:
    """Writes applied and not yet committed: key -> Entry."""

    __slots__ = ("items", "cleared", "size", "since")

    def __init__(self, cleared: bool = False) -> None:
        self.items: dict[str, Entry] = {}
        self.cleared = cleared            # everything committed is deleted
        self.size = 0                     # bytes of values staged
        self.since = time.monotonic() if cleared else 0.0   # 0: nothing staged


class LMDBDict(ReplicatedDict[Any, Any]):
    """A ReplicatedDict whose state is in LMDB at ``path`` (a directory it
    owns; one dict at a time holds it). ``map_size``: the most bytes the
    store may take; a write that would pass it makes the dict unusable
    (StoreError, on every read and command) until the node is restarted with
    a larger one: it then resumes from what the store holds.

    Reads take a read transaction each (iteration and views: one for the
    whole view, so that a view is consistent). Close it (``close()``, or
    the Group's) once the node is closed; it commits what is pending."""

    durable = True

    def __init__(self, *, version: int = 1, timeout: float = 10.0,
                 path: Optional[Union[str, os.PathLike[str]]] = None,
                 map_size: Optional[int] = None) -> None:
        Structure.__init__(self, version=version, timeout=timeout)
        if path is None:
            raise ValueError("an LMDBDict needs a path")
        if map_size is None:
            map_size = DEFAULT_MAP_SIZE
        if isinstance(map_size, bool) or not isinstance(map_size, int) or map_size < _MIN_MAP_SIZE:
            raise ValueError(f"map_size must be an int of at least {_MIN_MAP_SIZE} bytes, "
                             f"got {map_size!r}")
        self._lock = threading.Lock()
        self._broken: Optional[str] = None      # why it cannot be used (StoreError's message)
        self._closed = False
        self._store = Store(path, map_size)
        self._released: list[Env] = []          # views gone, their env refs to drop
        self._raft_txn: Optional[lmdb.Transaction[bytes]] = None
        self._marks: dict[int, bytes] = {}
        self._resumed_from: Optional[int] = None
        self._installed = 0
        try:
            self._load_meta()
        except BaseException:
            self._store.close()
            raise

    def _load_meta(self) -> None:
        env = self._store.live
        with env.env.begin() as txn:
            meta = env.meta(txn)
        self._meta = meta                       # as committed
        self._len = meta.keys
        self._next_order = meta.next_order
        self._pending = _Pending()
        self._last: tuple[Optional[int], Optional[bytes]] = (meta.applied, meta.chain)
        self._genesis = meta.genesis
        self._held_through = 0

    @property
    def path(self) -> str:
        """The store's directory."""
        return self._store.path

    def store_info(self) -> dict[str, Any]:  # (never None: it has a store)
        """What the store holds: ``applied`` (the last command committed to
        it, as the Group counts them), ``pending`` (keys staged, not yet
        committed), ``resumed_from`` (where the log restarted when this
        dict resumed its store, or None), ``skipped`` (commands not applied
        again since, as the store held them), ``installed`` (snapshots
        installed since it was made), ``map_size`` and ``used`` (bytes)."""
        with self._lock:
            self._usable()
            env = self._store.live.env
            info, stat = env.info(), env.stat()
            return {"path": self.path, "applied": self._meta.applied,
                    "pending": len(self._pending.items), "resumed_from": self._resumed_from,
                    "skipped": self._skipped, "installed": self._installed,
                    "map_size": info["map_size"],
                    "used": (info["last_pgno"] + 1) * stat["psize"]}

    def __repr__(self) -> str:
        where = "" if self._name is None else f" {self._name!r}"
        return f"<ReplicatedDict{where} {self._len} keys in {self.path}>"

    # -- lifetime ---------------------------------------------------------------

    def _usable(self) -> None:
        """StoreError if it cannot be used; drop the refs of views gone (under the lock)."""
        if self._broken is not None:
            raise StoreError(self._broken)
        if self._released:
            for env in self._released:
                env.unref()
            self._released.clear()

    def _break(self, message: str) -> StoreError:
        self._broken = message
        self._pending = _Pending()
        log.error("%r: %s", self, message)
        return StoreError(message)

    def _fail(self, message: str) -> None:
        with self._lock:
            if self._broken is None:
                self._break(message)

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                if self._broken is None and self._pending.since:
                    self._flush()
            finally:
                self._closed = True
                self._drop_raft_txn()
                self._broken = f"closed: this ReplicatedDict's store {self.path} was closed"
                self._store.close()

    # -- reads (any thread) ------------------------------------------------------

    def _text(self, key: object) -> Optional[bytes]:
        if type(key) is not str:
            return None
        with self._lock:
            self._usable()
            p = self._pending
            entry = p.items.get(key, _UNSTAGED)
            if entry is not _UNSTAGED:
                return None if entry is None else entry[1]
            if p.cleared:
                return None
            env = self._store.live
            with env.env.begin() as txn:
                record = txn.get(item_key(_enc(key)), db=env.items)
        return None if record is None else record[8:]

    def __getitem__(self, key: Any) -> Any:
        text = self._text(key)
        if text is None:
            raise KeyError(key)
        return _load(text)

    def get(self, key: Any, default: Any = None, *, consistency: Consistency = "local") -> Any:
        self._read(consistency)
        text = self._text(key)
        return default if text is None else _load(text)

    def __contains__(self, key: object) -> bool:
        return self._text(key) is not None

    def __len__(self) -> int:
        if self._broken is not None:
            raise StoreError(self._broken)
        return self._len

    def _view(self) -> _View:
        with self._lock:
            self._usable()
            env = self._store.live
            txn = env.env.begin()
            env.refs += 1
            p = self._pending
            return _View(self, env, txn, dict(p.items), p.cleared, self._meta.next_order,
                         self._len)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._view())

    def keys(self) -> KeysView[Any]:
        return KeysView(self._view())

    def values(self) -> ValuesView[Any]:
        return ValuesView(self._view())

    def items(self) -> ItemsView[Any, Any]:
        return ItemsView(self._view())

    def copy(self, *, consistency: Consistency = "local") -> dict[Any, Any]:
        self._read(consistency)
        return dict(self._view().items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.copy() == (other.copy() if isinstance(other, ReplicatedDict)
                                   else dict(other.items()))
        return NotImplemented

    # -- apply (the raft thread) ---------------------------------------------------

    def _run(self, fn: Any, *args: Any) -> Any:
        """Apply one command's change under the lock, note the point of the
        log it brings the state to, commit the batch if it is due."""
        with self._lock:
            self._usable()
            result = fn(*args)
            group = self._group
            assert group is not None
            self._last = (group._seq, group._chain)
            if self._genesis is None:
                self._genesis = group._genesis
            p = self._pending
            if p.since and (len(p.items) >= FLUSH_ITEMS or p.size >= FLUSH_BYTES
                            or time.monotonic() - p.since >= FLUSH_SECONDS):
                self._flush()
        return result

    def _reader(self) -> lmdb.Transaction[bytes]:
        """The raft thread's read transaction, until the next commit."""
        txn = self._raft_txn
        if txn is None:
            txn = self._raft_txn = self._store.live.env.begin()
        return txn

    def _drop_raft_txn(self) -> None:
        txn, self._raft_txn = self._raft_txn, None
        if txn is not None:
            txn.abort()

    def _lookup(self, key: str) -> Entry:
        p = self._pending
        entry = p.items.get(key, _UNSTAGED)
        if entry is not _UNSTAGED:
            return entry
        if p.cleared:
            return None
        record = self._reader().get(item_key(_enc(key)), db=self._store.live.items)
        return None if record is None else (unpack_order(record), record[8:])

    def _stage(self, key: str, entry: Entry) -> None:
        p = self._pending
        if not p.since:
            p.since = time.monotonic()
        p.items[key] = entry
        if entry is not None:
            p.size += len(entry[1])

    def _put(self, key: str, value: Any) -> None:
        text = _enc(codec.dumps(value))
        old = self._lookup(key)
        if old is None:
            order = self._next_order
            self._next_order += 1
            self._len += 1
        else:
            order = old[0]
        self._stage(key, (order, text))

    def _remove(self, key: str) -> Optional[bytes]:
        old = self._lookup(key)
        if old is None:
            return None
        self._stage(key, None)
        self._len -= 1
        return old[1]

    @operation("set")
    def _apply_set(self, key: Any, value: Any) -> None:
        self._run(self._put, _check_key(key), value)

    @operation("del")
    def _apply_del(self, key: Any) -> bool:
        return self._run(self._remove, _check_key(key)) is not None

    @operation("pop")
    def _apply_pop(self, key: Any) -> list[Any]:
        text = self._run(self._remove, _check_key(key))
        return [False, None] if text is None else [True, _load(text)]

    @operation("popitem")
    def _apply_popitem(self) -> Optional[list[Any]]:
        item = self._run(self._popitem)
        return None if item is None else [item[0], _load(item[1])]

    def _popitem(self) -> Optional[tuple[str, bytes]]:
        # The most recently inserted key: the highest order among the staged
        # keys and the committed ones not staged since.
        p = self._pending
        best: Optional[tuple[int, str]] = None
        for key, entry in p.items.items():
            if entry is not None and (best is None or entry[0] > best[0]):
                best = (entry[0], key)
        if not p.cleared:
            with self._reader().cursor(db=self._store.live.order) as cursor:
                found = cursor.last()
                while found:
                    order, key = unpack_order(cursor.key()), _dec(cursor.value())
                    entry = p.items.get(key, _UNSTAGED)
                    if entry is _UNSTAGED or (entry is not None and entry[0] == order):
                        if best is None or order > best[0]:
                            best = (order, key)
                        break
                    found = cursor.prev()
        if best is None:
            return None
        text = self._remove(best[1])
        assert text is not None
        return best[1], text

    @operation("cas")
    def _apply_cas(self, key: Any, old_text: Any, store: Any, new: Any) -> bool:
        return self._run(self._cas, _check_key(key), old_text, store, new)  # type: ignore[no-any-return]

    def _cas(self, key: str, old_text: Any, store: Any, new: Any) -> bool:
        current = self._lookup(key)
        if old_text is None:
            matches = current is None
        elif type(old_text) is not str:
            raise TypeError(f"cas: old must be canonical JSON text, got {old_text!r}")
        else:
            matches = current is not None and codec.canonical(_load(current[1])) == old_text
        if not matches:
            return False
        if store is True:
            self._put(key, new)
        elif store is False:
            self._remove(key)
        else:
            raise TypeError(f"cas: the store flag must be a bool, got {store!r}")
        return True

    @operation("setdefault")
    def _apply_setdefault(self, key: Any, default: Any) -> Any:
        return self._run(self._setdefault, _check_key(key), default)

    def _setdefault(self, key: str, default: Any) -> Any:
        current = self._lookup(key)
        if current is not None:
            return _load(current[1])
        self._put(key, default)
        return default

    @operation("update")
    def _apply_update(self, values: Any) -> None:
        if type(values) is not dict:
            raise TypeError(f"update takes an object, got {type(values).__name__}")
        self._run(self._update, values)

    def _update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self._put(key, value)

    @operation("clear")
    def _apply_clear(self) -> None:
        self._run(self._clear)

    def _clear(self) -> None:
        self._pending = _Pending(cleared=True)
        self._len = 0

    # -- commits --------------------------------------------------------------------

    def _flush(self, snapshot: bool = False) -> None:
        """Commit the staged writes and the point of the log they reach, in
        one write transaction (under the lock)."""
        p = self._pending
        env = self._store.live
        self._drop_raft_txn()        # an open read transaction would pin the pages it frees
        seq, chain = self._last
        snapshots = self._meta.snapshots
        if snapshot and seq is not None:
            snapshots = record_snapshot(snapshots, seq)
        meta = Meta(-1 if seq is None else seq, None if seq is None else chain, self._genesis,
                    self._next_order, self._len, snapshots)
        try:
            with env.env.begin(write=True) as txn:
                if p.cleared:
                    txn.drop(env.items, delete=False)
                    txn.drop(env.order, delete=False)
                for key, entry in p.items.items():
                    raw = _enc(key)
                    ik = item_key(raw)
                    old = None if p.cleared else txn.get(ik, db=env.items)
                    old_order = None if old is None else old[:8]
                    if entry is None:
                        if old_order is not None:
                            txn.delete(ik, db=env.items)
                            txn.delete(old_order, db=env.order)
                        continue
                    order = pack_order(entry[0])
                    txn.put(ik, order + entry[1], db=env.items)
                    if order != old_order:
                        if old_order is not None:
                            txn.delete(old_order, db=env.order)
                        txn.put(order, raw, db=env.order)
                env.put_meta(txn, meta)
                if snapshot:
                    env.prune_marks(txn, keep_marks_from(snapshots))
        except lmdb.MapFullError:
            raise self._break(f"the LMDB store {self.path} is full (map_size "
                              f"{self._store.map_size} bytes): restart the node with a larger "
                              f"map_size; it resumes from what the store holds") from None
        except lmdb.Error as exc:
            raise self._break(f"the LMDB store {self.path} failed a commit ({exc}): restart "
                              f"the node; it resumes from what the store holds") from None
        self._meta = meta
        self._pending = _Pending()

    # -- snapshots ------------------------------------------------------------------

    def _freeze(self) -> _Frozen:  # type: ignore[override]
        group = self._group
        assert group is not None
        with self._lock:
            self._usable()
            self._last = (group._seq, group._chain)   # quiescent: the whole log so far
            self._flush(snapshot=True)
            env = self._store.live
            txn = env.env.begin()
            env.refs += 1
        return _Frozen(env, txn)

    def _dump(self, frozen: Any) -> Any:
        return dict(_View(None, frozen.env, frozen.txn, {}, False, 0, 0).items())

    def _dump_text(self, frozen: _Frozen) -> Iterator[bytes]:  # type: ignore[override]
        env, txn = frozen.env, frozen.txn
        get, items = txn.get, env.items

        def member(raw: bytes) -> bytes:
            record = get(item_key(raw), db=items)
            if record is None:          # both are written in one transaction
                raise StoreError(f"the LMDB store {self.path} is damaged: {raw!r} has an "
                                 f"insertion number and no value")
            return _json_key(raw) + b":" + record[8:]

        yield b"{"
        first = True
        with txn.cursor(db=env.order) as cursor:
            keys = cursor.iternext(keys=False, values=True)    # insertion order
            while True:
                chunk = list(itertools.islice(keys, codec.CHUNK))
                if not chunk:
                    break
                text = b",".join([member(raw) for raw in chunk])
                yield text if first else b"," + text
                first = False
        yield b"}"

    def _thaw(self, frozen: _Frozen) -> None:
        frozen.txn.abort()
        with self._lock:
            frozen.env.unref()

    # -- restarts and restores ----------------------------------------------------------

    def _keeps(self, point: LogPoint) -> bool:
        with self._lock:
            return self._holds(point)

    def _holds(self, point: LogPoint) -> bool:
        """Whether the store holds ``point`` or later of the same log: its
        chain there is known and equal (unknown: no, the snapshot is taken;
        known and different: another log, refused)."""
        self._usable()
        seq, chain, genesis = point
        held, held_chain = self._last
        differs = genesis is not None and self._genesis is not None and genesis != self._genesis
        if not differs:
            if held is None or held < 0 or seq is None or held < seq:
                return False
            if seq == 0:
                return True
            if held == seq:
                known = held_chain
            else:
                env = self._store.live
                with env.env.begin() as txn:
                    known = env.mark(txn, seq)
            if known is None or known == chain:
                return known is not None
        raise StoreError(
            f"the LMDB store {self.path} holds the state of another log (another cluster, or "
            f"a data dir wiped and bootstrapped anew since): its history differs from this "
            f"log's. Move it away (or delete it) and start the node again: the dict is "
            f"rebuilt from the node's snapshot and log")

    def _resume(self, point: LogPoint) -> bool:
        seq = point.seq
        assert seq is not None
        held, held_chain = self._last
        assert held is not None
        self._resumed_from = seq
        self._held_through = held
        if held <= seq:
            return False
        env = self._store.live
        with env.env.begin() as txn:
            marks = env.marks_between(txn, seq, held)
        if seq == 0 and self._genesis is not None:
            marks[1] = self._genesis             # the chain after the log's first command
        if held_chain is not None:
            marks[held] = held_chain
        self._marks = marks
        log.info("%r resumes at command %d: the store holds commands up to %d", self, seq, held)
        return True

    def _verify(self, seq: int, chain: bytes) -> bool:
        expected = self._marks.get(seq)
        if expected is not None and expected != chain and self._broken is None:
            self._break(f"the LMDB store {self.path} does not hold this log's state: after "
                        f"command {seq} it recorded another history (another cluster, or a data "
                        f"dir wiped and bootstrapped anew). Stop the node, move the store away "
                        f"(or delete it) and start the node again: the dict is rebuilt from the "
                        f"node's snapshot and log")
            self._held_through = 0               # its commands now fail, saying so
        if seq >= self._held_through:
            self._marks = {}
            return False
        return True

    def _prepare(self, state: Any) -> Env:  # type: ignore[override]
        # A decoded state (only when a caller has one): write it as a stream would.
        reader = None
        if state is not None:
            if type(state) is not dict:
                raise ValueError(f"a dict snapshot holds an object, not {type(state).__name__}")
            reader = codec.Reader(codec.dumps(state))
        group = self._group
        point = LogPoint(None, b"", None) if group is None else \
            LogPoint(group._seq, group._chain, group._genesis)
        return self._prepare_stream(reader, point)

    def _prepare_stream(self, reader: Optional[codec.Reader], point: LogPoint) -> Env:
        """A new environment holding the snapshot's state (not live yet)."""
        if reader is not None and not reader.at("{"):
            raise ValueError("a dict snapshot holds an object")
        with self._lock:
            self._usable()
            env = self._store.new_env()
        try:
            count = self._fill(env, reader, point)
        except lmdb.MapFullError:
            self._discard(env)
            raise StoreError(f"the snapshot does not fit in the LMDB store {self.path} (map_size "
                             f"{self._store.map_size} bytes): start the node with a larger "
                             f"map_size") from None
        except BaseException:
            self._discard(env)
            raise
        log.info("%r: a snapshot of %d keys written to %s", self, count, env.directory)
        return env

    @staticmethod
    def _fill(env: Env, reader: Optional[codec.Reader], point: LogPoint) -> int:
        count = 0
        txn = env.env.begin(write=True)
        try:
            if reader is not None:
                text = reader.text
                items, order_db = env.items, env.order
                for key in reader.members():
                    _, start, end = reader.span()
                    raw = _enc(key)
                    ik = item_key(raw)
                    value = _enc(text[start:end])
                    order = pack_order(count)
                    if not txn.put(ik, order + value, db=items, overwrite=False):
                        # A key twice: the later value, at the first's place (as json.loads).
                        old = txn.get(ik, db=items)
                        assert old is not None
                        txn.put(ik, old[:8] + value, db=items)
                        continue
                    txn.put(order, raw, db=order_db)
                    count += 1
                    if count % _RESTORE_BATCH == 0:
                        txn.commit()
                        txn = env.env.begin(write=True)
            seq = -1 if point.seq is None else point.seq
            env.put_meta(txn, Meta(seq, None if point.seq is None else point.chain, point.genesis,
                                   count, count, () if point.seq is None else (seq,)))
            txn.commit()
        except BaseException:
            txn.abort()
            raise
        return count

    def _install(self, prepared: Env) -> None:  # type: ignore[override]
        with self._lock:
            self._usable()
            self._drop_raft_txn()
            self._store.switch(prepared)
            self._load_meta()
            self._marks = {}
            self._installed += 1
            self._resumed_from = None

    def _discard(self, prepared: Env) -> None:
        with self._lock:
            self._store.discard(prepared)


class _Frozen:
    """A snapshot's read transaction on the environment it reads."""

    __slots__ = ("env", "txn")

    def __init__(self, env: Env, txn: lmdb.Transaction[bytes]) -> None:
        self.env, self.txn = env, txn


class _View(Mapping[str, Any]):
    """The dict as of one moment: a read transaction and the writes staged
    then. Lazy: nothing is copied but the staged writes (a batch at most)."""

    def __init__(self, owner: Optional[LMDBDict], env: Env, txn: lmdb.Transaction[bytes],
                 staged: dict[str, Entry], cleared: bool, committed_next: int,
                 length: int) -> None:
        self._owner, self._env, self._txn = owner, env, txn
        self._staged, self._cleared = staged, cleared
        self._committed_next = committed_next      # orders from here on are staged ones
        self._length = length

    def __del__(self) -> None:
        owner = self._owner
        if owner is None:
            return
        try:
            self._txn.abort()
        except lmdb.Error:
            pass
        owner._released.append(self._env)     # the owner drops the ref under its lock

    def __len__(self) -> int:
        return self._length

    def _text(self, key: object) -> Optional[bytes]:
        if type(key) is not str:
            return None
        entry = self._staged.get(key, _UNSTAGED)
        if entry is not _UNSTAGED:
            return None if entry is None else entry[1]
        if self._cleared:
            return None
        record = self._txn.get(item_key(_enc(key)), db=self._env.items)
        return None if record is None else record[8:]

    def __getitem__(self, key: str) -> Any:
        text = self._text(key)
        if text is None:
            raise KeyError(key)
        return _load(text)

    def __contains__(self, key: object) -> bool:
        return self._text(key) is not None

    def __iter__(self) -> Iterator[str]:
        staged = self._staged
        if not self._cleared:
            with self._txn.cursor(db=self._env.order) as cursor:
                for order_key, raw in cursor:
                    key = _dec(raw)
                    entry = staged.get(key, _UNSTAGED)
                    if entry is _UNSTAGED or (entry is not None and
                                             entry[0] == unpack_order(order_key)):
                        yield key
        fresh = [(entry[0], key) for key, entry in staged.items()
                 if entry is not None and (self._cleared or entry[0] >= self._committed_next)]
        for _, key in sorted(fresh):
            yield key
