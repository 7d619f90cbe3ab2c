"""Where each member's HTTP server is: ``{str(id): {"http": url}}`` in a
ReplicatedDict of the node's own Group, so that any node can find the
leader's server to forward to. Each server publishes its own URL (on the
leader directly, from a follower through the leader's server) and keeps it
published; the leader drops the entry of a server it removes."""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import Future
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

from .forward import call_leader

if TYPE_CHECKING:
    from ..batteries import ReplicatedDict
    from .context import Context

__all__ = ["Directory", "StaticDirectory", "REGISTER_PATH"]

log = logging.getLogger("canonical_raft.server")

#: What a follower's server posts to the leader's to publish its URL.
REGISTER_PATH = "/members/register"
_RETRY = 0.2      # s between attempts while unpublished
_CHECK = 2.0      # s between checks once published (a restore may drop it)


class Directory:
    def __init__(self, members: ReplicatedDict[str, Any], node_id: int, url: str) -> None:
        self._members = members
        self._id = node_id
        self.url = url

    def http_of(self, id: int) -> Optional[str]:
        """The HTTP URL member ``id`` published, if any."""
        info = self._members.get(str(id))
        url = info.get("http") if isinstance(info, dict) else None
        return url if isinstance(url, str) else None

    def published(self) -> bool:
        return self.http_of(self._id) == self.url

    def publish(self, id: int, url: str) -> Future[None]:
        """Record ``url`` for member ``id`` (on the leader)."""
        return self._members.set(str(id), {"http": url})

    def forget(self, id: int) -> Future[bool]:
        """Drop member ``id``'s entry (on the leader)."""
        return self._members.delete(str(id))

    async def keep_published(self, ctx: Context) -> None:
        """Publish this server's URL whenever it is not: runs until cancelled."""
        while True:
            if not self.published() and ctx.node.leader is not None:
                try:
                    if ctx.node.is_leader:
                        await asyncio.wait_for(asyncio.wrap_future(
                            self.publish(self._id, self.url)), ctx.write_timeout)
                    else:
                        body = json.dumps({"id": self._id, "http": self.url}).encode()
                        status, data, _, _ = await call_leader(ctx, "POST", REGISTER_PATH, body)
                        if status != 200:
                            log.debug("publishing %s: %d %s", self.url, status, data[:200])
                except Exception as exc:    # no leader yet, a timeout: try again soon
                    log.debug("publishing %s: %r", self.url, exc)
            await asyncio.sleep(_CHECK if self.published() else _RETRY)


class StaticDirectory:
    """Members' HTTP URLs given up front (``admin.serve(node, peers=...)``):
    nothing replicated, nothing published."""

    def __init__(self, urls: Mapping[int, str]) -> None:
        self._urls = {int(id): str(url).rstrip("/") for id, url in urls.items()}

    def http_of(self, id: int) -> Optional[str]:
        return self._urls.get(id)
