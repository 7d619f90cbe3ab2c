"""ReplicatedDict: a MutableMapping of str keys to codec values."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import ItemsView, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from typing import Any, Final, Optional, TypeVar, Union, overload

from . import codec
from .structure import Consistency, Structure, operation

__all__ = ["ReplicatedDict", "ABSENT"]

K = TypeVar("K", bound=str)
V = TypeVar("V")
T = TypeVar("T")
_D = TypeVar("_D", bound="ReplicatedDict[Any, Any]")


class _Absent:
    """The type of ABSENT."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __reduce__(self) -> str:
        return "ABSENT"


#: For ``cas()``: "the key is not there" (as ``old``: create it only if it
#: is absent; as ``new``: delete it).
ABSENT: Final = _Absent()

_MISSING = object()
_PLAIN = frozenset({str, int, bool, type(None)})    # what codec.check passes as it is


def _check_key(key: object) -> str:
    if type(key) is not str:
        raise TypeError(f"ReplicatedDict keys are str, got {type(key).__name__} {key!r}")
    return key


class ReplicatedDict(Structure, MutableMapping[K, V]):
    """A dict replicated by the node: ``str`` keys, codec values (JSON types).

    Writes go through the log: ``set``/``delete``/``cas``/``set_many``
    return a Future (the command's outcome on this node once committed and
    applied), and the MutableMapping forms (``d[k] = v``, ``del d[k]``,
    ``update``, ``pop``, ``setdefault``, ``clear``) submit one command each
    and wait up to ``timeout``, raising the command's error (or
    TimeoutError: outcome unknown). On a follower writes fail with
    ``raft.NotLeaderError``.

    Reads are local by default (this node's state, which may lag the
    leader); ``get(k, consistency="linearizable")`` first waits for
    ``node.barrier()``. Values read are copies: mutating one changes
    nothing. Iteration and views work on a copy taken at the call.

    ``path``: keep the state in LMDB in that directory (py-lmdb:
    ``pip install canonical_raft[lmdb]``), not in memory; ``map_size``
    bounds its size in bytes (1 GiB by default). The same semantics; a
    restart resumes from what the store holds instead of replaying it
    (see lmdb_dict.LMDBDict, which is what ``ReplicatedDict(path=...)``
    makes). ``close()`` lets the store go, once the node is closed.
    """

    kind = "dict"

    def __new__(cls: type[_D], *args: Any, path: Optional[Union[str, os.PathLike[str]]] = None,
                **kwargs: Any) -> _D:
        if path is not None and cls is ReplicatedDict:
            try:
                from .lmdb_dict import LMDBDict
            except ImportError as exc:
                raise ImportError(f"ReplicatedDict(path=...) keeps its state in LMDB, which needs "
                                  f"py-lmdb: pip install 'canonical_raft[lmdb]' ({exc})") from exc
            return super().__new__(LMDBDict)  # type: ignore[return-value]
        return super().__new__(cls)

    def __init__(self, *, version: int = 1, timeout: float = 10.0,
                 path: Optional[Union[str, os.PathLike[str]]] = None,
                 map_size: Optional[int] = None) -> None:
        if path is not None:
            raise TypeError(f"path=: {type(self).__name__} keeps its state in memory; only "
                            f"ReplicatedDict itself keeps it in LMDB")
        if map_size is not None:
            raise ValueError("map_size is for a ReplicatedDict with a path (kept in LMDB)")
        super().__init__(version=version, timeout=timeout)
        self._data: dict[str, Any] = {}

    def close(self) -> None:
        """Let go of the LMDB store (``path=...``), once the node is
        closed; nothing to do for a dict in memory."""
        self._close()

    @property
    def path(self) -> Optional[str]:
        """The directory of its LMDB store (None: in memory)."""
        return None

    def store_info(self) -> Optional[dict[str, Any]]:
        """What its LMDB store holds (see LMDBDict.store_info); None in memory."""
        return None

    # -- writes: futures ----------------------------------------------------------

    def set(self, key: K, value: V) -> concurrent.futures.Future[None]:
        """Store ``value`` under ``key``."""
        if type(key) is not str:
            _check_key(key)
        if type(value) not in _PLAIN:
            codec.check(value)
        return self._submit("set", [key, value])

    def delete(self, key: K) -> concurrent.futures.Future[bool]:
        """Remove ``key``; the future says whether it was there."""
        _check_key(key)
        return self._submit("del", [key])

    def cas(self, key: K, old: V | _Absent, new: V | _Absent) -> concurrent.futures.Future[bool]:
        """Compare and set, atomically: if ``key`` holds a value equal to
        ``old`` (or is absent, for ``old=ABSENT``), store ``new`` (or delete
        the key, for ``new=ABSENT``). The future says whether it did.
        Equal means the same JSON (``1`` and ``1.0`` differ, dict order
        does not matter)."""
        _check_key(key)
        old_text = None
        if old is not ABSENT:
            codec.check(old, "old")
            old_text = codec.canonical(old)
        if new is ABSENT:
            return self._submit("cas", [key, old_text, False, None])
        codec.check(new, "new")
        return self._submit("cas", [key, old_text, True, new])

    def set_many(self, mapping: Mapping[K, V] = {}, /, **items: V) -> concurrent.futures.Future[None]:
        """Store every item of ``mapping`` (and ``items``) in one command:
        all of them or none."""
        values: dict[Any, Any] = {**mapping, **items}
        for key in values:
            _check_key(key)
        codec.check(values)
        return self._submit("update", [values])

    def clear_all(self) -> concurrent.futures.Future[None]:
        """Remove every key (one command)."""
        return self._submit("clear", [])

    # -- writes: blocking (MutableMapping) ------------------------------------------

    def __setitem__(self, key: K, value: V) -> None:
        self._wait(self.set(key, value))

    def __delitem__(self, key: K) -> None:
        found, _ = self._wait(self._pop(key))
        if not found:
            raise KeyError(key)

    def _pop(self, key: K) -> concurrent.futures.Future[list[Any]]:
        _check_key(key)
        return self._submit("pop", [key])

    @overload
    def pop(self, key: K) -> V: ...
    @overload
    def pop(self, key: K, default: V | T) -> V | T: ...

    def pop(self, key: K, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (one command)."""
        found, value = self._wait(self._pop(key))
        if found:
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def setdefault(self, key: K, default: V = None) -> V:  # type: ignore[assignment]
        """The value of ``key``, storing ``default`` first if it is absent
        (one command)."""
        _check_key(key)
        codec.check(default, "default")
        return codec.copy(self._wait(self._submit("setdefault", [key, default])))  # type: ignore[no-any-return]

    def popitem(self) -> tuple[K, V]:
        """Remove the most recently inserted item and return it (one
        command); KeyError if the dict is empty."""
        item = self._wait(self._submit("popitem", []))
        if item is None:
            raise KeyError("popitem(): the dict is empty")
        return item[0], item[1]

    def update(self, other: Any = (), /, **items: V) -> None:
        """Store every item, in one command (see ``set_many``)."""
        mapping = dict(other.items() if isinstance(other, Mapping) else other)
        self._wait(self.set_many(mapping, **items))

    def clear(self) -> None:
        self._wait(self.clear_all())

    # -- reads ------------------------------------------------------------------

    def __getitem__(self, key: K) -> V:
        return codec.copy(self._data[key])  # type: ignore[no-any-return]

    @overload
    def get(self, key: K, *, consistency: Consistency = ...) -> V | None: ...
    @overload
    def get(self, key: K, default: V | T, *, consistency: Consistency = ...) -> V | T: ...

    def get(self, key: K, default: Any = None, *, consistency: Consistency = "local") -> Any:
        """The value of ``key`` (a copy), or ``default``; with
        ``consistency="linearizable"``, as of after every write committed
        before the call (on the leader)."""
        self._read(consistency)
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else codec.copy(value)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._data))  # type: ignore[arg-type]

    def keys(self) -> KeysView[K]:
        return self._data.copy().keys()  # type: ignore[return-value]

    def values(self) -> ValuesView[V]:
        return self.copy().values()

    def items(self) -> ItemsView[K, V]:
        return self.copy().items()

    def copy(self, *, consistency: Consistency = "local") -> dict[K, V]:
        """A plain dict of the whole state (values copied)."""
        self._read(consistency)
        data = self._data.copy()
        return {k: codec.copy(v) for k, v in data.items()}  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        if type(other) is ReplicatedDict:
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        where = "" if self._name is None else f" {self._name!r}"
        return f"<ReplicatedDict{where} {len(self._data)} keys>"

    # -- apply (the raft thread) -------------------------------------------------

    @operation("set")
    def _apply_set(self, key: Any, value: Any) -> None:
        if type(key) is not str:    # _check_key, inline: every node runs this for every set
            _check_key(key)
        self._data[key] = value

    @operation("del")
    def _apply_del(self, key: Any) -> bool:
        return self._data.pop(_check_key(key), _MISSING) is not _MISSING

    @operation("pop")
    def _apply_pop(self, key: Any) -> list[Any]:
        value = self._data.pop(_check_key(key), _MISSING)
        return [False, None] if value is _MISSING else [True, value]

    @operation("popitem")
    def _apply_popitem(self) -> list[Any] | None:
        return list(self._data.popitem()) if self._data else None

    @operation("cas")
    def _apply_cas(self, key: Any, old_text: Any, store: Any, new: Any) -> bool:
        current = self._data.get(_check_key(key), _MISSING)
        if old_text is None:
            matches = current is _MISSING
        elif type(old_text) is not str:
            raise TypeError(f"cas: old must be canonical JSON text, got {old_text!r}")
        else:
            matches = current is not _MISSING and codec.canonical(current) == old_text
        if not matches:
            return False
        if store is True:
            self._data[key] = new
        elif store is False:
            self._data.pop(key, None)
        else:
            raise TypeError(f"cas: the store flag must be a bool, got {store!r}")
        return True

    @operation("setdefault")
    def _apply_setdefault(self, key: Any, default: Any) -> Any:
        return self._data.setdefault(_check_key(key), default)

    @operation("update")
    def _apply_update(self, values: Any) -> None:
        if type(values) is not dict:
            raise TypeError(f"update takes an object, got {type(values).__name__}")
        self._data.update(values)

    @operation("clear")
    def _apply_clear(self) -> None:
        self._data = {}

    # -- snapshots --------------------------------------------------------------

    def _freeze(self) -> dict[str, Any]:
        return self._data.copy()    # values are never changed in place: a shallow copy is enough

    def _dump(self, frozen: dict[str, Any]) -> dict[str, Any]:
        return frozen

    def _dump_text(self, frozen: dict[str, Any]) -> Iterator[str]:
        return codec.dumps_object(iter(frozen.items()))

    def _prepare(self, state: Any) -> dict[str, Any]:
        if state is None:
            return {}
        if type(state) is not dict:
            raise ValueError(f"a dict snapshot holds an object, not {type(state).__name__}")
        return state

    def _install(self, prepared: dict[str, Any]) -> None:
        self._data = prepared
