"""ReplicatedCounter: an int that every node adds to in log order."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from .structure import Consistency, Structure, operation

__all__ = ["ReplicatedCounter"]


def _check_int(n: object, what: str = "n") -> int:
    if type(n) is not int:
        raise TypeError(f"{what} must be an int, got {type(n).__name__} {n!r}")
    return n


class ReplicatedCounter(Structure):
    """An integer (arbitrary precision), starting at 0.

    ``add``/``incr``/``decr``/``set`` return a Future of the value just
    after the command, on this node; ``get()`` / ``value`` read locally
    (``get(consistency="linearizable")`` waits for ``node.barrier()``).
    """

    kind = "counter"

    def __init__(self, *, version: int = 1, timeout: float = 10.0) -> None:
        super().__init__(version=version, timeout=timeout)
        self._value = 0

    def add(self, n: int) -> concurrent.futures.Future[int]:
        """Add ``n`` (may be negative); the future gives the new value."""
        return self._submit("add", [_check_int(n)])

    def incr(self) -> concurrent.futures.Future[int]:
        return self.add(1)

    def decr(self) -> concurrent.futures.Future[int]:
        return self.add(-1)

    def set(self, value: int) -> concurrent.futures.Future[int]:
        """Set the value; the future gives it back."""
        return self._submit("set", [_check_int(value, "value")])

    def get(self, *, consistency: Consistency = "local") -> int:
        self._read(consistency)
        return self._value

    @property
    def value(self) -> int:
        """The local value (``get()``)."""
        return self.get()

    def __int__(self) -> int:
        return self.get()

    def __repr__(self) -> str:
        where = "" if self._name is None else f" {self._name!r}"
        return f"<ReplicatedCounter{where} {self._value}>"

    @operation("add")
    def _apply_add(self, n: Any) -> int:
        self._value += _check_int(n)
        return self._value

    @operation("set")
    def _apply_set(self, value: Any) -> int:
        self._value = _check_int(value, "value")
        return self._value

    def _freeze(self) -> int:
        return self._value

    def _dump(self, frozen: int) -> int:
        return frozen

    def _prepare(self, state: Any) -> int:
        if state is None:
            return 0
        return _check_int(state, "a counter snapshot")

    def _install(self, prepared: int) -> None:
        self._value = prepared
