"""The key-value endpoints: a ReplicatedDict over HTTP/JSON (docs/server.md).

    GET    /kv                 every key and value, {"key": value, ...} (?prefix=)
    GET    /kv/{key}           the value (the body is its JSON)
    PUT    /kv/{key}           store the body's JSON value
    DELETE /kv/{key}           remove it (404 if absent)
    POST   /cas/{key}          {"old": v, "new": v}: compare and set (409 on mismatch)

Reads take ``?consistency=local|linearizable``; writes go to the leader.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ..batteries import ABSENT, OutdatedReplicaError, codec
from ..errors import NotLeaderError, RaftError
from . import consistency, forward
from .context import CONTEXT, Context
from .errors import bad_request, conflict, not_found, too_large, unavailable
from .writes import commit

__all__ = ["routes", "MAX_KEY_BYTES", "KV_ROUTE_PREFIX"]

MAX_KEY_BYTES = 1024
#: Route names of the key-value endpoints start with it (the request
#: history counts those).
KV_ROUTE_PREFIX = "kv."

_NO_CONTENT = 204
_MISSING = object()


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=codec.dumps(value), content_type="application/json")


def _key(request: web.Request) -> str:
    key = request.match_info.get("key", "")
    if not key:
        raise bad_request("the key is empty: /kv/{key}")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise bad_request(f"the key is longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7f or 0xd800 <= ord(c) < 0xe000 for c in key):
        raise bad_request("the key holds a control character or a lone surrogate")
    return key


async def _body(request: web.Request, ctx: Context) -> bytes:
    size = request.content_length
    if size is not None and size > ctx.max_body:
        raise too_large(size, ctx.max_body)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(size or ctx.max_body + 1, ctx.max_body) from None


def _parse(body: bytes, what: str = "the body") -> Any:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise bad_request(f"{what} nests too deep") from None
    try:
        codec.check(value, what)
    except (TypeError, ValueError) as exc:
        raise bad_request(str(exc)) from None
    return value


def _kv(ctx: Context) -> Any:
    assert ctx.kv is not None, "the key-value routes are mounted by serve only"
    return ctx.kv


async def _read(request: web.Request, ctx: Context) -> web.Response | None:
    """Wait for the read point the query asks for; a Response (the
    leader's answer) when only the leader can give it."""
    wanted = consistency.parse(request.query.get("consistency", "local"))
    try:
        await consistency.read_point(ctx, wanted)
    except NotLeaderError:
        return await forward.relay(request, ctx, b"")
    except OutdatedReplicaError as exc:
        raise unavailable(str(exc)) from None
    except asyncio.TimeoutError:
        raise unavailable(f"no read point within {ctx.write_timeout:g} s (no quorum?)",
                          *forward.leader_url(ctx)) from None
    except RaftError as exc:
        raise unavailable(str(exc), *forward.leader_url(ctx)) from None
    return None


async def get_all(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    relayed = await _read(request, ctx)
    if relayed is not None:
        return relayed
    prefix = request.query.get("prefix", "")
    data = _kv(ctx).copy()
    return _json({k: v for k, v in data.items() if k.startswith(prefix)} if prefix else data)


async def get_key(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    key = _key(request)
    relayed = await _read(request, ctx)
    if relayed is not None:
        return relayed
    value = _kv(ctx).get(key, _MISSING)
    if value is _MISSING:
        raise not_found("no such key", key=key)
    return _json(value)


async def put_key(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    key = _key(request)
    body = await _body(request, ctx)
    value = _parse(body)
    return await commit(request, ctx, body, lambda: _kv(ctx).set(key, value),
                        lambda _: web.Response(status=_NO_CONTENT))


async def delete_key(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    key = _key(request)

    def answer(deleted: bool) -> web.Response:
        if not deleted:
            raise not_found("no such key", key=key)
        return web.Response(status=_NO_CONTENT)

    return await commit(request, ctx, b"", lambda: _kv(ctx).delete(key), answer)


async def cas_key(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    key = _key(request)
    body = await _body(request, ctx)
    doc = _parse(body)
    if type(doc) is not dict or not set(doc) <= {"old", "new"}:
        raise bad_request('a CAS body is {"old": value, "new": value}; leave "old" out to '
                          'create the key only if absent, "new" out to delete it')
    old, new = doc.get("old", ABSENT), doc.get("new", ABSENT)

    def answer(swapped: bool) -> web.Response:
        if not swapped:
            raise conflict("compare-and-set mismatch: the key does not hold the old value",
                           key=key, swapped=False)
        return _json({"key": key, "swapped": True})

    return await commit(request, ctx, body, lambda: _kv(ctx).cas(key, old, new), answer)


def routes() -> list[web.RouteDef]:
    p = KV_ROUTE_PREFIX
    return [
        web.get("/kv", get_all, name=p + "all"),
        web.get("/kv/{key:.*}", get_key, name=p + "get"),
        web.put("/kv/{key:.*}", put_key, name=p + "put"),
        web.delete("/kv/{key:.*}", delete_key, name=p + "delete"),
        web.post("/cas/{key:.*}", cas_key, name=p + "cas"),
    ]
