"""The HTTP errors of the server's JSON API: every one is a JSON object
``{"error": "...", ...}`` with the status that says what went wrong."""

from __future__ import annotations

import json
from typing import Any, Optional

from aiohttp import web

from ..types import Server

__all__ = ["http_error", "bad_request", "not_found", "conflict", "too_large", "unavailable",
           "leader_info", "FORWARDED_HEADER", "LEADER_HEADER"]

#: Set on a request one server forwards to the leader's: never forwarded again.
FORWARDED_HEADER = "X-Raft-Forwarded-By"
#: On a 503: the leader's HTTP URL, when known (Location-like, for clients that retry there).
LEADER_HEADER = "X-Raft-Leader"


def http_error(status: int, message: str, headers: Optional[dict[str, str]] = None,
               **extra: Any) -> web.HTTPException:
    """An aiohttp exception (raise it) whose body is ``{"error": message, **extra}``."""
    exc = web.HTTPException(text=json.dumps({"error": message, **extra}),
                            content_type="application/json", headers=headers)
    exc.set_status(status)
    return exc


def bad_request(message: str, **extra: Any) -> web.HTTPException:
    return http_error(400, message, **extra)


def not_found(message: str, **extra: Any) -> web.HTTPException:
    return http_error(404, message, **extra)


def conflict(message: str, **extra: Any) -> web.HTTPException:
    return http_error(409, message, **extra)


def too_large(size: int, limit: int) -> web.HTTPException:
    return http_error(413, f"the body is {size} bytes, over the limit of {limit} "
                      f"(serve --max-body)", limit=limit)


def leader_info(leader: Optional[Server], url: Optional[str]) -> Optional[dict[str, Any]]:
    if leader is None:
        return None
    return {"id": leader.id, "address": leader.address, "http": url}


def unavailable(message: str, leader: Optional[Server] = None, url: Optional[str] = None,
                **extra: Any) -> web.HTTPException:
    """503: no leader, no quorum, or the leader did not answer; names the
    leader (its raft and HTTP addresses) when one is known."""
    headers = {LEADER_HEADER: url} if url else None
    return http_error(503, message, headers, leader=leader_info(leader, url), **extra)
