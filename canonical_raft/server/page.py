"""The status page at ``/``: one HTML page and its script and style, all
served from this package (no CDN). The script polls /members and /status
and draws the chart itself on a canvas."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from aiohttp import web

__all__ = ["routes", "STATIC"]

STATIC = Path(__file__).with_name("static")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


@lru_cache(maxsize=None)
def _file(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _serve(name: str) -> web.Response:
    return web.Response(body=_file(name), content_type=_TYPES[Path(name).suffix],
                        charset="utf-8", headers={"Cache-Control": "no-cache"})


async def index(request: web.Request) -> web.Response:
    return _serve("index.html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in {"status.js", "status.css"}:
        raise web.HTTPNotFound()
    return _serve(name)


def routes() -> list[web.RouteDef]:
    return [web.get("/", index, name="page.index"),
            web.get("/static/{name}", static, name="page.static")]
