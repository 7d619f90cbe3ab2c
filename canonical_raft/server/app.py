"""The aiohttp application of one server: the routes, the JSON errors, the
per-request history and the background tasks (the chart's clock, publishing
this server's URL), all bound to one Context."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Callable

import aiohttp
from aiohttp import web

from . import admin_api, kv_api, page
from .context import CONTEXT, Context
from .directory import Directory
from .errors import http_error

__all__ = ["make_app"]

log = logging.getLogger("canonical_raft.server")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(ctx: Context, *, kv: bool = True) -> web.Application:
    """The application: admin endpoints and status page, plus the
    key-value endpoints if ``kv`` (``ctx.kv`` must then be set)."""
    app = web.Application(middlewares=[_json_errors], client_max_size=ctx.max_body)
    app[CONTEXT] = ctx
    app.add_routes(page.routes())
    app.add_routes(admin_api.routes())
    if kv:
        app.add_routes(kv_api.routes())
    app.cleanup_ctx.append(_background)
    return app


@web.middleware
async def _json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every error as JSON (the router's 404 and 405 included); the
    key-value requests' latencies into the history."""
    start = time.monotonic()
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        raise http_error(exc.status, exc.reason, headers) from None
    except Exception:
        log.exception("%s %s", request.method, request.rel_url)
        raise http_error(500, "internal error: see the server's log") from None
    finally:
        name = request.match_info.route.name
        if name is not None and name.startswith(kv_api.KV_ROUTE_PREFIX):
            request.app[CONTEXT].history.record(time.monotonic() - start)


async def _tick(ctx: Context) -> None:
    while True:
        await asyncio.sleep(1.0)
        ctx.history.tick()


async def _background(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CONTEXT]
    ctx.session = aiohttp.ClientSession()
    tasks = [asyncio.ensure_future(_tick(ctx))]
    if isinstance(ctx.directory, Directory):
        tasks.append(asyncio.ensure_future(ctx.directory.keep_published(ctx)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.session.close()
        ctx.session = None
        # aiohttp's caches keep finished applications (web_app's lru_cache of
        # middleware chains): let go of the node and its structures now.
        ctx.release()
