"""What every handler of one server reads: the node, its structures, its
metrics and the HTTP client it forwards with. One per server (aiohttp app)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Optional

from aiohttp import ClientSession, web

from .history import History
from .limits import DEFAULT_FORWARD_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_WRITE_TIMEOUT

if TYPE_CHECKING:
    from ..batteries import Group, ReplicatedDict
    from ..metrics import NodeMetrics
    from ..node import Node
    from .directory import Directory, StaticDirectory

__all__ = ["Context", "CONTEXT"]



class Context:
    """One server's state. ``kv`` exists in ``serve`` only. ``directory``
    (the members' HTTP URLs) is replicated in ``serve``, given by the user
    to an embedded admin endpoint (or absent: it then answers 503 where it
    would have to forward)."""

    def __init__(self, node: Node, metrics: NodeMetrics, *, url: str,
                 group: Optional[Group] = None, kv: Optional[ReplicatedDict[str, object]] = None,
                 directory: Optional[Directory | StaticDirectory] = None,
                 client_ssl: Optional[ssl.SSLContext] = None,
                 max_body: int = DEFAULT_MAX_BODY,
                 forward_timeout: float = DEFAULT_FORWARD_TIMEOUT,
                 write_timeout: float = DEFAULT_WRITE_TIMEOUT) -> None:
        self.node = node
        self.metrics = metrics
        self.url = url                      # this server's own base URL
        self.group = group
        self.kv = kv
        self.directory = directory
        self.client_ssl = client_ssl
        self.max_body = max_body
        self.forward_timeout = forward_timeout
        self.write_timeout = write_timeout
        self.history = History(lambda: int(node.stats()["commit_index"]))
        self.session: Optional[ClientSession] = None   # made on the app's loop at startup

    def release(self) -> None:
        """The app has stopped: drop every reference to the node and its
        structures (something may keep the finished app alive)."""
        self.node = self.metrics = self.group = self.kv = self.directory = None  # type: ignore[assignment]
        self.history = None  # type: ignore[assignment]


CONTEXT = web.AppKey("canonical_raft.context", Context)
