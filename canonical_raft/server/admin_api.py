"""The admin endpoints, served by ``serve`` and mountable in any process
that embeds a Node (canonical_raft.admin):

    GET  /status                this node: state, term, indexes, leader (?history=1: the chart's)
    GET  /members               the configuration, each member's HTTP URL and live status
    POST /members/add           {"id": 4, "address": "host:port", "role": "voter"}
    POST /members/remove        {"id": 4}
    POST /members/assign        {"id": 4, "role": "standby"}
    POST /members/transfer      {"id": 2} (or {}: the leader picks)
    POST /members/register      {"id": 2, "http": url}: a server publishing its URL
    GET  /metrics               Prometheus text format
    POST /snapshot              this node takes a snapshot now: {"ok": true, "id": 1, "index": 42}
    GET  /backup                a backup of this node's state (application/octet-stream;
                                X-Raft-Node, X-Raft-Backup-Index): the file node.backup() writes

Changes run on the leader (forwarded there from a follower's server);
snapshots and backups on the node asked (any node).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import Future
from typing import Any, Optional

import aiohttp
from aiohttp import web

from .. import _version
from ..errors import RaftError, ShutdownError
from ..types import Role, Server
from .context import CONTEXT, Context
from .directory import REGISTER_PATH, Directory
from .errors import bad_request, http_error, leader_info, unavailable
from .writes import commit

__all__ = ["routes", "status_of", "STATUS_TIMEOUT"]

STATUS_TIMEOUT = 1.0      # s: GET /members waits this long for each member's status
MAX_ADMIN_BODY = 64 * 1024
BACKUP_CHUNK = 1 << 20    # bytes read and sent at a time
BACKUP_NODE_HEADER = "X-Raft-Node"
BACKUP_INDEX_HEADER = "X-Raft-Backup-Index"

_STATUS_KEYS = ("term", "commit_index", "last_applied", "last_index", "snapshot_index",
                "last_contact", "pending_applies", "servers", "voters", "refused", "error")


def _server(s: Server, ctx: Context) -> dict[str, Any]:
    url = ctx.directory.http_of(s.id) if ctx.directory is not None else None
    if url is None and s.id == ctx.node.id:
        url = ctx.url
    return {"id": s.id, "address": s.address, "role": s.role.name.lower(), "http": url}


def status_of(ctx: Context, history: bool = False) -> dict[str, Any]:
    """This node's status (GET /status)."""
    node = ctx.node
    stats = node.stats()
    leader = node.leader
    leader_url = None
    if leader is not None:
        leader_url = ctx.directory.http_of(leader.id) if ctx.directory is not None else None
        if leader_url is None and leader.id == node.id:
            leader_url = ctx.url
    doc: dict[str, Any] = {
        "id": node.id, "address": node.address, "http": ctx.url,
        "state": stats["state"].name.lower(),
        "leader": leader_info(leader, leader_url),
        **{key: stats.get(key) for key in _STATUS_KEYS},
        "configuration": [_server(s, ctx) for s in node.configuration],
        "version": _version.__version__,
        "time": time.time(),
    }
    if history:
        doc["history"] = ctx.history.as_json()
    return doc


async def get_status(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    return web.json_response(status_of(ctx, history=request.query.get("history") == "1"))


async def _fetch_status(ctx: Context, url: Optional[str]) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    if url is None:
        return None, "no HTTP address published"
    assert ctx.session is not None
    try:
        async with ctx.session.get(url + "/status", ssl=ctx.client_ssl or True,
                                   timeout=aiohttp.ClientTimeout(total=STATUS_TIMEOUT)) as resp:
            if resp.status != 200:
                return None, f"HTTP {resp.status}"
            doc = await resp.json()
            return (doc, None) if isinstance(doc, dict) else (None, "not a status")
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        return None, f"unreachable ({type(exc).__name__})"


async def get_members(request: web.Request) -> web.Response:
    """The configuration, with each member's status fetched from its own
    server (concurrently, within STATUS_TIMEOUT); ?status=0 skips that."""
    ctx = request.app[CONTEXT]
    members = [_server(s, ctx) for s in ctx.node.configuration]
    if request.query.get("status", "1") != "0":
        own = status_of(ctx)
        fetched = await asyncio.gather(*(
            _fetch_status(ctx, m["http"]) if m["id"] != ctx.node.id else _done(own)
            for m in members))
        for member, (status, error) in zip(members, fetched):
            if status is not None:
                status.pop("configuration", None)     # the list itself says it
            member["status"] = status
            member["status_error"] = error
    leader = ctx.node.leader
    return web.json_response({"leader": leader.id if leader is not None else None,
                              "members": members})


async def _done(status: dict[str, Any]) -> tuple[dict[str, Any], None]:
    return status, None


async def _args(request: web.Request) -> tuple[bytes, dict[str, Any]]:
    body = await request.content.read(MAX_ADMIN_BODY + 1)
    if len(body) > MAX_ADMIN_BODY:
        raise bad_request("the body is too large for an admin request")
    try:
        doc = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not JSON: {exc}") from None
    if type(doc) is not dict:
        raise bad_request("the body is a JSON object")
    return body, doc


def _id(doc: dict[str, Any], required: bool = True) -> int:
    value = doc.get("id", None if required else 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < (1 if required else 0):
        raise bad_request(f'"id" must be a server id (an int >= 1), got {value!r}')
    return value


def _role(doc: dict[str, Any], default: Optional[str] = None) -> Role:
    name = doc.get("role", default)
    try:
        return Role[str(name).upper()]
    except KeyError:
        raise bad_request(f'"role" must be one of voter, standby, spare; got {name!r}') from None


def _config(ctx: Context) -> web.Response:
    return web.json_response({"ok": True, "members": [_server(s, ctx)
                                                      for s in ctx.node.configuration]})


async def post_add(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body, doc = await _args(request)
    id, role, address = _id(doc), _role(doc, "voter"), doc.get("address")
    if not isinstance(address, str):
        raise bad_request('"address" must be "host:port"')
    return await commit(request, ctx, body, lambda: ctx.node.add(id, address, role),
                        lambda _: _config(ctx))


async def post_remove(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body, doc = await _args(request)
    id = _id(doc)

    def answer(_: object) -> web.Response:
        if isinstance(ctx.directory, Directory) and ctx.node.is_leader:
            ctx.directory.forget(id)      # its URL goes with it (best effort)
        return _config(ctx)

    return await commit(request, ctx, body, lambda: ctx.node.remove(id), answer)


async def post_assign(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body, doc = await _args(request)
    id, role = _id(doc), _role(doc)
    return await commit(request, ctx, body, lambda: ctx.node.assign(id, role),
                        lambda _: _config(ctx))


async def post_transfer(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body, doc = await _args(request)
    id = _id(doc, required=False)

    def answer(leader: Optional[Server]) -> web.Response:
        if leader is None:
            raise unavailable("the transfer did not complete in time: retry")
        return web.json_response({"ok": True, "leader": leader_info(leader, (
            ctx.directory.http_of(leader.id) if ctx.directory is not None else None))})

    def submit() -> Future[Optional[Server]]:
        if id == ctx.node.id:               # it leads already (commit runs this on the leader)
            done: Future[Optional[Server]] = Future()
            done.set_result(ctx.node.leader)
            return done
        return ctx.node.transfer(id)

    return await commit(request, ctx, body, submit, answer)


async def post_register(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if not isinstance(ctx.directory, Directory):
        raise bad_request("this server keeps no replicated directory of HTTP addresses")
    body, doc = await _args(request)
    id, url = _id(doc), doc.get("http")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 300:
        raise bad_request('"http" must be an http:// or https:// URL')
    directory = ctx.directory
    return await commit(request, ctx, body, lambda: directory.publish(id, url),
                        lambda _: web.json_response({"ok": True}))


async def _settled(future: Future[Any]) -> Any:
    """The result of a node's future; 503 if the node is not running, 500
    with the error otherwise."""
    try:
        return await asyncio.wrap_future(future)
    except ShutdownError as exc:
        raise unavailable(f"this node is not running: {exc}") from None
    except (RaftError, OSError) as exc:
        raise http_error(500, f"{type(exc).__name__}: {exc}") from None


async def post_snapshot(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    await _args(request)
    index = await _settled(ctx.node.snapshot())
    return web.json_response({"ok": True, "id": ctx.node.id, "index": index})


async def get_backup(request: web.Request) -> web.StreamResponse:
    """node.backup() into a private temporary dir, streamed, then removed."""
    ctx = request.app[CONTEXT]
    loop = asyncio.get_running_loop()
    directory = await loop.run_in_executor(None, tempfile.mkdtemp, ".backup", "canonical_raft.")
    try:
        path = os.path.join(directory, f"node{ctx.node.id}.backup")
        index = await _settled(ctx.node.backup(path))
        response = web.StreamResponse(headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="node{ctx.node.id}-{index}.backup"',
            BACKUP_NODE_HEADER: str(ctx.node.id), BACKUP_INDEX_HEADER: str(index)})
        response.content_length = os.path.getsize(path)
        await response.prepare(request)
        with open(path, "rb") as f:
            while chunk := await loop.run_in_executor(None, f.read, BACKUP_CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        await loop.run_in_executor(None, shutil.rmtree, directory, True)


async def get_metrics(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body, content_type = ctx.metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def routes() -> list[web.RouteDef]:
    return [
        web.get("/status", get_status, name="admin.status"),
        web.get("/members", get_members, name="admin.members"),
        web.post("/members/add", post_add, name="admin.add"),
        web.post("/members/remove", post_remove, name="admin.remove"),
        web.post("/members/assign", post_assign, name="admin.assign"),
        web.post("/members/transfer", post_transfer, name="admin.transfer"),
        web.post(REGISTER_PATH, post_register, name="admin.register"),
        web.get("/metrics", get_metrics, name="admin.metrics"),
        web.post("/snapshot", post_snapshot, name="admin.snapshot"),
        web.get("/backup", get_backup, name="admin.backup"),
    ]
