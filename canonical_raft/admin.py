"""The admin endpoints in your own process: the status page (``/``),
``/status``, ``/members`` and ``/metrics`` of a Node you embed, the same
endpoints ``python -m canonical_raft serve`` has (docs/server.md)::

    admin = canonical_raft.admin.serve(node, "127.0.0.1:9100")   # its own thread and loop
    ...
    admin.close()

or, in your own aiohttp application, ``app.add_subapp("/raft/",
canonical_raft.admin.app(node))``. Needs ``pip install
'canonical_raft[server]'`` (aiohttp and prometheus_client).

Membership changes (POST /members/...) run where the node leads. An
embedded endpoint knows the other processes' admin URLs only if you give
them (``peers={id: url}``): then /members shows their status too and a
follower forwards changes to the leader's endpoint; else a follower answers
503 naming the leader.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Optional

from aiohttp import web

from .metrics import NodeMetrics
from .server import ssl_contexts
from .server.app import make_app
from .server.context import Context
from .server.directory import StaticDirectory
from .server.runner import ThreadedServer

if TYPE_CHECKING:
    from .node import Node
    from .tls import TLS

__all__ = ["serve", "app", "AdminServer"]


def app(node: Node, *, metrics: Optional[NodeMetrics] = None, url: str = "",
        peers: Optional[Mapping[int, str]] = None) -> web.Application:
    """The admin endpoints as an aiohttp application (mount it with
    ``add_subapp``). ``metrics``: the node's NodeMetrics, if you made one
    (to meter your applies); else one is made. ``url``: where it is
    reached, shown on /status. ``peers``: the other members' admin URLs."""
    if metrics is None:
        metrics = NodeMetrics(node)
    return make_app(Context(node, metrics, url=url, directory=_directory(peers)), kv=False)


def _directory(peers: Optional[Mapping[int, str]]) -> Optional[StaticDirectory]:
    return StaticDirectory(peers) if peers else None


class AdminServer:
    """The admin endpoints served from a thread of their own; ``close()``
    (or a ``with`` block) stops them. The node is yours: it stays open."""

    def __init__(self, node: Node, host: str, port: int, tls: Optional[TLS],
                 metrics: Optional[NodeMetrics], peers: Optional[Mapping[int, str]]) -> None:
        self.metrics = metrics if metrics is not None else NodeMetrics(node)
        self._own_metrics = metrics is None
        self._ctx = Context(node, self.metrics, url="", directory=_directory(peers),
                            client_ssl=ssl_contexts.client_context(tls.cafile, tls)
                            if tls is not None else None)
        ssl_context = ssl_contexts.server_context(tls) if tls is not None else None
        try:
            self._server = ThreadedServer(make_app(self._ctx, kv=False), host, port,
                                          ssl_context, name=f"raft-admin-{node.id}")
        except BaseException:
            self._close_metrics()
            raise
        self.port = self._server.port
        self.url = f"{'https' if tls is not None else 'http'}://{host}:{self.port}"
        self._ctx.url = self.url

    def _close_metrics(self) -> None:
        if self._own_metrics:
            self.metrics.close()

    def close(self) -> None:
        """Stop serving (idempotent); the node is left as it is."""
        self._server.close()
        self._close_metrics()

    def __enter__(self) -> AdminServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AdminServer {self.url}>"


def serve(node: Node, address: str = "127.0.0.1:9100", *, tls: Optional[TLS] = None,
          metrics: Optional[NodeMetrics] = None,
          peers: Optional[Mapping[int, str]] = None) -> AdminServer:
    """Serve ``node``'s admin endpoints on ``address`` ("host:port"; port 0:
    a free one, see ``.port`` and ``.url``), HTTPS with ``tls``'s
    certificate if given, from a thread with its own event loop. ``peers``:
    the other members' admin URLs ({id: "http://host:port"}), if known.
    Returns once it listens (OSError if it cannot)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"address must be 'host:port', got {address!r}")
    return AdminServer(node, host, int(port), tls, metrics, peers)
