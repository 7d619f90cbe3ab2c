"""ReplicatedQueue: a FIFO of codec values."""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Iterable, Iterator
from typing import Any, Generic, Optional, TypeVar

from . import codec
from .structure import Consistency, Structure, operation

__all__ = ["ReplicatedQueue"]

T = TypeVar("T")


class ReplicatedQueue(Structure, Generic[T]):
    """A first-in first-out queue of codec values (JSON types).

    ``put``/``put_many`` return a Future of the queue's length after;
    ``get()`` (alias ``pop()``) a Future of the item taken from the head,
    or ``None`` if the queue was empty (so do not queue ``None`` itself if
    you need to tell the two apart). Each item is taken once, cluster-wide:
    the log orders the gets. ``len()``, ``peek()`` read locally.
    """

    kind = "queue"

    def __init__(self, *, version: int = 1, timeout: float = 10.0) -> None:
        super().__init__(version=version, timeout=timeout)
        self._items: collections.deque[Any] = collections.deque()

    def put(self, item: T) -> concurrent.futures.Future[int]:
        """Append ``item`` at the tail."""
        codec.check(item, "item")
        return self._submit("put", [[item]])

    def put_many(self, items: Iterable[T]) -> concurrent.futures.Future[int]:
        """Append every item, in order, in one command."""
        values = list(items)
        codec.check(values, "items")
        return self._submit("put", [values])

    def get(self) -> concurrent.futures.Future[Optional[T]]:
        """Take the item at the head; ``None`` if the queue is empty."""
        return self._submit("get", [])

    pop = get

    def peek(self, *, consistency: Consistency = "local") -> Optional[T]:
        """The item at the head (a copy), without taking it; ``None`` if empty."""
        self._read(consistency)
        try:
            return codec.copy(self._items[0])  # type: ignore[no-any-return]
        except IndexError:
            return None

    def size(self, *, consistency: Consistency = "local") -> int:
        self._read(consistency)
        return len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def to_list(self, *, consistency: Consistency = "local") -> list[T]:
        """Every item, head first (copies)."""
        self._read(consistency)
        return [codec.copy(item) for item in self._items.copy()]

    def __repr__(self) -> str:
        where = "" if self._name is None else f" {self._name!r}"
        return f"<ReplicatedQueue{where} {len(self._items)} items>"

    @operation("put")
    def _apply_put(self, items: Any) -> int:
        if type(items) is not list:
            raise TypeError(f"put takes a list of items, got {type(items).__name__}")
        self._items.extend(items)
        return len(self._items)

    @operation("get")
    def _apply_get(self) -> Any:
        return self._items.popleft() if self._items else None

    def _freeze(self) -> list[Any]:
        return list(self._items)     # items are never changed in place

    def _dump(self, frozen: list[Any]) -> list[Any]:
        return frozen

    def _dump_text(self, frozen: list[Any]) -> Iterator[str]:
        return codec.dumps_array(frozen)

    def _prepare(self, state: Any) -> collections.deque[Any]:
        if state is None:
            return collections.deque()
        if type(state) is not list:
            raise ValueError(f"a queue snapshot holds a list, not {type(state).__name__}")
        return collections.deque(state)

    def _install(self, prepared: collections.deque[Any]) -> None:
        self._items = prepared
