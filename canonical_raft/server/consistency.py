"""The read point of ``?consistency=``: the one place that knows how a
linearizable read is made (node.barrier() on the leader today; the node's
read_barrier(), which works on followers too, once it has one)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .errors import bad_request

if TYPE_CHECKING:
    from .context import Context

__all__ = ["CONSISTENCIES", "parse", "read_point"]

CONSISTENCIES = ("local", "linearizable")


def parse(value: str) -> str:
    """The ``consistency`` query parameter, checked (400 otherwise)."""
    if value not in CONSISTENCIES:
        raise bad_request(f"consistency must be one of {', '.join(CONSISTENCIES)}, "
                          f"got {value!r}")
    return value


async def read_point(ctx: Context, consistency: str) -> None:
    """Return once a read of this node's state has ``consistency``; raises
    NotLeaderError where only the leader can give it (the caller forwards),
    OutdatedReplicaError if this replica no longer follows the cluster."""
    if ctx.group is not None:
        ctx.group.read_point("local")       # the outdated-replica check, no wait
    if consistency == "local":
        return
    node: Any = ctx.node
    read_barrier = getattr(node, "read_barrier", None)
    future = read_barrier() if callable(read_barrier) else node.barrier()
    await asyncio.wait_for(asyncio.wrap_future(future), ctx.write_timeout)
