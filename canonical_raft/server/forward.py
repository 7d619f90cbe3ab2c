"""How a request that only the leader can answer gets there: a follower's
server sends it on to the leader's HTTP server, with a bounded timeout, and
returns the leader's answer as it is (rqlite's way). Writes and, while
reads need node.barrier(), linearizable reads go through here; this is the
one place to change once raft-level forwarding (``Node(forward=True)``)
carries writes instead."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

import aiohttp
from aiohttp import web

from .errors import FORWARDED_HEADER, LEADER_HEADER, unavailable

if TYPE_CHECKING:
    from ..types import Server
    from .context import Context

__all__ = ["leader_url", "relay", "call_leader"]


def leader_url(ctx: Context) -> tuple[Optional[Server], Optional[str]]:
    """The leader this node knows, and its HTTP URL if it published one."""
    leader = ctx.node.leader
    if leader is None or ctx.directory is None:
        return leader, None
    return leader, ctx.directory.http_of(leader.id)


def _check_route(ctx: Context, forwarded: bool) -> tuple[Server, str]:
    leader, url = leader_url(ctx)
    if forwarded:
        # The sender thought we lead; we do not (any more): no second hop.
        raise unavailable("this node is not the leader either (leadership moved while the "
                          "request was forwarded): retry", leader, url)
    if leader is None:
        raise unavailable("no leader: the cluster has no quorum or is electing one; retry")
    if url is None or leader.id == ctx.node.id:
        raise unavailable(f"the leader (id {leader.id}) has not published its HTTP address "
                          f"yet; retry", leader)
    return leader, url


async def call_leader(ctx: Context, method: str, path_qs: str, body: bytes,
                      content_type: str = "application/json",
                      forwarded: bool = False) -> tuple[int, bytes, str, str]:
    """Send one request to the leader's server: (status, body, its
    Content-Type, the leader's URL). 503 (raised) if there is no leader to
    send it to or it does not answer within the forward timeout."""
    leader, url = _check_route(ctx, forwarded)
    assert ctx.session is not None, "the app's startup makes the session"
    timeout = aiohttp.ClientTimeout(total=ctx.forward_timeout)
    headers = {FORWARDED_HEADER: str(ctx.node.id), "Content-Type": content_type}
    try:
        async with ctx.session.request(method, url + path_qs, data=body, headers=headers,
                                       timeout=timeout, ssl=ctx.client_ssl or True) as resp:
            data = await resp.read()
            return resp.status, data, resp.headers.get("Content-Type", content_type), url
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        what = (f"no answer within {ctx.forward_timeout:g} s"
                if isinstance(exc, asyncio.TimeoutError) else str(exc) or type(exc).__name__)
        raise unavailable(f"the leader (id {leader.id}) at {url} did not answer ({what}): "
                          f"a write's outcome is unknown", leader, url,
                          outcome="unknown") from None


async def relay(request: web.Request, ctx: Context, body: bytes) -> web.Response:
    """Answer ``request`` with the leader's answer to the same request."""
    status, data, content_type, url = await call_leader(
        ctx, request.method, request.rel_url.path_qs, body,
        request.headers.get("Content-Type", "application/json"),
        forwarded=FORWARDED_HEADER in request.headers)
    return web.Response(status=status, body=data,
                        headers={"Content-Type": content_type, LEADER_HEADER: url})
