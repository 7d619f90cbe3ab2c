"""ReplicatedLock: leases with a TTL judged by log time, and fencing tokens."""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Optional

from .structure import Consistency, Structure, operation

__all__ = ["ReplicatedLock", "Lease"]

# Expired leases dropped per lock command (oldest first): keeps the table
# bounded without a scan of it per command. The same on every node.
_PURGE = 4


class Lease(NamedTuple):
    """Who holds a lock: ``owner``, its fencing ``token``, and the log
    time at which the lease ends unless renewed."""
    owner: str
    token: int
    expires: float


def _check_str(value: object, what: str, empty_ok: bool = False) -> str:
    if type(value) is not str or (not value and not empty_ok):
        raise TypeError(f"{what} must be a {'' if empty_ok else 'non-empty '}str, got {value!r}")
    return value


def _check_owner(owner: object) -> str:
    return _check_str(owner, "owner")


def _check_resource(resource: object) -> str:
    return _check_str(resource, "resource", empty_ok=True)


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
    """Mutual-exclusion leases, replicated: one owner at a time per
    ``resource`` (a str; ``""``, the default, when one lock is all you need).

    **Time.** Every command carries a reading of the submitting node's
    ``clock`` (``time.time`` by default: the leader's wall clock, since
    writes are submitted on the leader). The structure's *log time* is the
    highest reading applied so far, so it never goes back, and a lease
    expires when the log time passes its end. Every node judges expiry by
    log time, never by its own clock, so every node decides the same.

    **Fencing.** Each grant returns a *fencing token*, an int that increases
    with every grant, of any resource (a counter in the replicated state:
    the raft log index is not visible to a Python FSM, and the counter is
    as good: totally ordered by the log, kept in snapshots, unaffected by
    leader changes). A lease can end without its holder knowing (a pause,
    a clock jump on a new leader), so the holder must pass its token to
    whatever it protects, and that resource must refuse any token lower
    than the highest it has seen. Without that, a lock is unsafe.
    """

    kind = "lock"

    def __init__(self, *, version: int = 1, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(version=version, timeout=timeout)
        self.clock = clock
        self._leases: dict[str, Lease] = {}   # oldest grant or renewal first
        self._log_time = 0.0
        self._last_token = 0

    # -- commands -------------------------------------------------------------

    def _stamp(self) -> float:
        return _check_seconds(self.clock(), "the clock's reading")

    def acquire(self, owner: str, ttl: float, *,
                resource: str = "") -> concurrent.futures.Future[Optional[int]]:
        """Take the lock of ``resource`` for ``ttl`` seconds of log time.
        The future gives the fencing token, or ``None`` if another owner
        holds it. If ``owner`` already holds it, the lease is extended and
        the same token returned (so retrying an acquire whose outcome is
        unknown is safe)."""
        return self._submit("acquire", [_check_owner(owner), _check_seconds(ttl, "ttl"),
                                        self._stamp(), _check_resource(resource)])

    def renew(self, owner: str, token: int, ttl: float, *,
              resource: str = "") -> concurrent.futures.Future[bool]:
        """Extend the lease to ``ttl`` seconds from now (log time) if
        ``owner`` still holds it with ``token``; the future says whether."""
        return self._submit("renew", [_check_owner(owner), _check_token(token),
                                      _check_seconds(ttl, "ttl"), self._stamp(),
                                      _check_resource(resource)])

    def release(self, owner: str, token: int, *,
                resource: str = "") -> concurrent.futures.Future[bool]:
        """Give the lock up; the future says whether ``owner`` still held it
        with ``token`` (False: it had expired, or was never held)."""
        return self._submit("release", [_check_owner(owner), _check_token(token),
                                        self._stamp(), _check_resource(resource)])

    def wait_acquire(self, owner: str, ttl: float, timeout: Optional[float] = None,
                     interval: float = 0.05, *, resource: str = "") -> int:
        """Block until ``acquire`` grants the lock (retrying every
        ``interval``); the fencing token. TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            token = self._wait(self.acquire(owner, ttl, resource=resource))
            if token is not None:
                return int(token)
            if deadline is not None and time.monotonic() + interval > deadline:
                raise TimeoutError(f"the lock is still held after {timeout:g} s")
            time.sleep(interval)

    # -- reads ----------------------------------------------------------------

    def lease(self, resource: str = "", *,
              consistency: Consistency = "local") -> Optional[Lease]:
        """The lease of ``resource`` as of the log time, or ``None`` if it is
        free. (A lease may have ended in real time since the last lock
        command; the next command decides, by its stamp.)"""
        self._read(consistency)
        lease, now = self._leases.get(resource), self._log_time
        return lease if lease is not None and lease.expires > now else None

    def leases(self, *, consistency: Consistency = "local") -> dict[str, Lease]:
        """Every lease held as of the log time, by resource."""
        self._read(consistency)
        now = self._log_time
        return {r: lease for r, lease in self._leases.copy().items() if lease.expires > now}

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
        return f"<ReplicatedLock{where} {len(self.leases())} held>"

    # -- apply (the raft thread) ---------------------------------------------------

    def _advance(self, stamp: Any) -> float:
        if type(stamp) not in (int, float) or not math.isfinite(stamp):
            raise TypeError(f"a lock command's stamp must be a finite number, got {stamp!r}")
        if stamp > self._log_time:
            self._log_time = float(stamp)
        now = self._log_time
        leases = self._leases
        for _ in range(_PURGE):
            oldest = next(iter(leases), None)
            if oldest is None or leases[oldest].expires > now:
                break
            del leases[oldest]
        return now

    def _held(self, resource: str, owner: Any, token: Any, now: float) -> bool:
        lease = self._leases.get(resource)
        return (lease is not None and lease.expires > now
                and lease.owner == _check_owner(owner) and lease.token == _check_token(token))

    def _grant(self, resource: str, lease: Lease) -> None:
        self._leases.pop(resource, None)          # to the end: renewed last
        self._leases[resource] = lease

    @operation("acquire")
    def _apply_acquire(self, owner: Any, ttl: Any, stamp: Any, resource: Any) -> Optional[int]:
        _check_owner(owner)
        _check_resource(resource)
        ttl = _check_seconds(ttl, "ttl")
        now = self._advance(stamp)
        lease = self._leases.get(resource)
        if lease is not None and lease.expires > now:
            if lease.owner != owner:
                return None
            token = lease.token                      # the holder again: extend
        else:
            self._last_token += 1
            token = self._last_token
        self._grant(resource, Lease(owner, token, now + ttl))
        return token

    @operation("renew")
    def _apply_renew(self, owner: Any, token: Any, ttl: Any, stamp: Any, resource: Any) -> bool:
        _check_resource(resource)
        ttl = _check_seconds(ttl, "ttl")
        now = self._advance(stamp)
        if not self._held(resource, owner, token, now):
            return False
        self._grant(resource, Lease(owner, token, now + ttl))
        return True

    @operation("release")
    def _apply_release(self, owner: Any, token: Any, stamp: Any, resource: Any) -> bool:
        _check_resource(resource)
        now = self._advance(stamp)
        if not self._held(resource, owner, token, now):
            return False
        del self._leases[resource]
        return True

    # -- snapshots ------------------------------------------------------------

    def _freeze(self) -> Any:
        return (self._leases.copy(), self._log_time, self._last_token)

    def _dump(self, frozen: Any) -> Any:
        leases, log_time, last_token = frozen
        return {"leases": [[r, *lease] for r, lease in leases.items()],
                "log_time": log_time, "last_token": last_token}

    def _prepare(self, state: Any) -> Any:
        if state is None:
            return ({}, 0.0, 0)
        try:
            raw, log_time, last_token = state["leases"], state["log_time"], state["last_token"]
            leases = {}
            for resource, owner, token, expires in raw:
                leases[_check_resource(resource)] = Lease(
                    _check_owner(owner), _check_token(token), _check_seconds(expires, "expires"))
            return (leases, _check_seconds(log_time, "log_time") if log_time else 0.0,
                    _check_token(last_token))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed lock snapshot: {exc}") from None

    def _install(self, prepared: Any) -> None:
        self._leases, self._log_time, self._last_token = prepared
