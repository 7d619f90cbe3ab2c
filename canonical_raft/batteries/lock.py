"""ReplicatedLock: a lease with a TTL judged by log time, and fencing tokens."""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Optional

from .structure import Consistency, Structure, operation

__all__ = ["ReplicatedLock", "Lease"]


class Lease(NamedTuple):
    """Who holds the lock: ``owner``, its fencing ``token``, and the log
    time at which the lease ends unless renewed."""
    owner: str
    token: int
    expires: float


def _check_owner(owner: object) -> str:
    if type(owner) is not str or not owner:
        raise TypeError(f"owner must be a non-empty str, got {owner!r}")
    return owner


def _check_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{what} must be a finite number of seconds, got {value!r}")
    if value <= 0 and what == "ttl":
        raise ValueError(f"ttl must be > 0, got {value!r}")
    return float(value)


def _check_token(token: object) -> int:
    if type(token) is not int:
        raise TypeError(f"token must be an int, got {token!r}")
    return token


class ReplicatedLock(Structure):
    """A mutual-exclusion lease, replicated: one owner at a time.

    **Time.** Every command carries a reading of the submitting node's
    ``clock`` (``time.time`` by default: the leader's wall clock, since
    writes are submitted on the leader). The lock's *log time* is the
    highest reading applied so far, so it never goes back, and a lease
    expires when the log time passes its end. Every node judges expiry by
    log time, never by its own clock, so every node decides the same.

    **Fencing.** Each grant returns a *fencing token*, an int that increases
    with every grant (a counter in the replicated state: the raft log index
    is not visible to a Python FSM, and the counter is as good: it is
    totally ordered by the log, survives snapshots and leader changes).
    A lease can end without its holder knowing (a pause, a clock jump on
    a new leader), so the holder must pass its token to whatever it
    protects, and that resource must refuse any token lower than the
    highest it has seen. Without that, a lock is unsafe.
    """

    kind = "lock"

    def __init__(self, *, version: int = 1, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(version=version, timeout=timeout)
        self.clock = clock
        self._lease: Optional[Lease] = None
        self._log_time = 0.0
        self._last_token = 0

    # -- commands -------------------------------------------------------------

    def _stamp(self) -> float:
        return _check_seconds(self.clock(), "the clock's reading")

    def acquire(self, owner: str, ttl: float) -> concurrent.futures.Future[Optional[int]]:
        """Take the lock for ``ttl`` seconds of log time. The future gives
        the fencing token, or ``None`` if another owner holds it. If
        ``owner`` already holds it, the lease is extended and the same
        token returned (so retrying an acquire whose outcome is unknown is
        safe)."""
        return self._submit("acquire", [_check_owner(owner), _check_seconds(ttl, "ttl"),
                                        self._stamp()])

    def renew(self, owner: str, token: int, ttl: float) -> concurrent.futures.Future[bool]:
        """Extend the lease to ``ttl`` seconds from now (log time) if
        ``owner`` still holds it with ``token``; the future says whether."""
        return self._submit("renew", [_check_owner(owner), _check_token(token),
                                      _check_seconds(ttl, "ttl"), self._stamp()])

    def release(self, owner: str, token: int) -> concurrent.futures.Future[bool]:
        """Give the lock up; the future says whether ``owner`` still held it
        with ``token`` (False: it had expired, or was never held)."""
        return self._submit("release", [_check_owner(owner), _check_token(token),
                                        self._stamp()])

    def wait_acquire(self, owner: str, ttl: float, timeout: Optional[float] = None,
                     interval: float = 0.05) -> int:
        """Block until ``acquire`` grants the lock (retrying every
        ``interval``); the fencing token. TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            token = self._wait(self.acquire(owner, ttl))
            if token is not None:
                return int(token)
            if deadline is not None and time.monotonic() + interval > deadline:
                raise TimeoutError(f"the lock is still held after {timeout:g} s")
            time.sleep(interval)

    # -- reads ----------------------------------------------------------------

    def lease(self, *, consistency: Consistency = "local") -> Optional[Lease]:
        """The current lease as of the log time, or ``None`` if the lock is
        free. (A lease may have ended in real time since the last lock
        command; the next command decides, by its stamp.)"""
        self._read(consistency)
        lease, now = self._lease, self._log_time
        return lease if lease is not None and lease.expires > now else None

    @property
    def log_time(self) -> float:
        """The highest clock reading applied so far (0.0 at first)."""
        return self._log_time

    @property
    def last_token(self) -> int:
        """The token of the latest grant (0: never granted)."""
        return self._last_token

    def __repr__(self) -> str:
        where = "" if self._name is None else f" {self._name!r}"
        return f"<ReplicatedLock{where} {self.lease()}>"

    # -- apply (the raft thread) ---------------------------------------------------

    def _advance(self, stamp: Any) -> float:
        if type(stamp) not in (int, float) or not math.isfinite(stamp):
            raise TypeError(f"a lock command's stamp must be a finite number, got {stamp!r}")
        if stamp > self._log_time:
            self._log_time = float(stamp)
        return self._log_time

    def _held(self, owner: Any, token: Any, now: float) -> bool:
        lease = self._lease
        return (lease is not None and lease.expires > now
                and lease.owner == _check_owner(owner) and lease.token == _check_token(token))

    @operation("acquire")
    def _apply_acquire(self, owner: Any, ttl: Any, stamp: Any) -> Optional[int]:
        _check_owner(owner)
        ttl = _check_seconds(ttl, "ttl")
        now = self._advance(stamp)
        lease = self._lease
        if lease is not None and lease.expires > now:
            if lease.owner != owner:
                return None
            token = lease.token                      # the holder again: extend
        else:
            self._last_token += 1
            token = self._last_token
        self._lease = Lease(owner, token, now + ttl)
        return token

    @operation("renew")
    def _apply_renew(self, owner: Any, token: Any, ttl: Any, stamp: Any) -> bool:
        ttl = _check_seconds(ttl, "ttl")
        now = self._advance(stamp)
        if not self._held(owner, token, now):
            return False
        self._lease = Lease(owner, token, now + ttl)
        return True

    @operation("release")
    def _apply_release(self, owner: Any, token: Any, stamp: Any) -> bool:
        now = self._advance(stamp)
        if not self._held(owner, token, now):
            return False
        self._lease = None
        return True

    # -- snapshots ------------------------------------------------------------

    def _freeze(self) -> Any:
        return (self._lease, self._log_time, self._last_token)

    def _dump(self, frozen: Any) -> Any:
        lease, log_time, last_token = frozen
        return {"lease": None if lease is None else list(lease),
                "log_time": log_time, "last_token": last_token}

    def _prepare(self, state: Any) -> Any:
        if state is None:
            return (None, 0.0, 0)
        try:
            raw, log_time, last_token = state["lease"], state["log_time"], state["last_token"]
            lease = None
            if raw is not None:
                owner, token, expires = raw
                lease = Lease(_check_owner(owner), _check_token(token),
                              _check_seconds(expires, "expires"))
            return (lease, _check_seconds(log_time, "log_time") if log_time else 0.0,
                    _check_token(last_token))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed lock snapshot: {exc}") from None

    def _install(self, prepared: Any) -> None:
        self._lease, self._log_time, self._last_token = prepared
