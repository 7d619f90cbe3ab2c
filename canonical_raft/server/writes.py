"""A command that only the leader can run (a write, a membership change):
run it here if this node leads, else forward the request; wait for the
outcome within the write timeout; map raft's errors to HTTP statuses."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

from ..batteries import OutdatedReplicaError
from ..errors import (BADID, BADROLE, DUPLICATEADDRESS, DUPLICATEID, CantChangeError,
                      LeadershipLostError, NotLeaderError, RaftError, ShutdownError)
from . import forward
from .errors import bad_request, conflict, unavailable

if TYPE_CHECKING:
    from .context import Context

__all__ = ["commit"]

# libraft's errors that mean "the request names a bad server": the caller's fault.
_BAD_REQUEST_CODES = frozenset({BADID, BADROLE, DUPLICATEADDRESS, DUPLICATEID})


async def commit(request: web.Request, ctx: Context, body: bytes,
                 submit: Callable[[], Future[Any]],
                 answer: Callable[[Any], web.Response]) -> web.Response:
    """``answer(result)`` of ``submit()``'s future on the leader, or the
    leader's answer to the same request when this node does not lead."""
    if not ctx.node.is_leader:
        return await forward.relay(request, ctx, body)
    try:
        future = submit()
        result = await asyncio.wait_for(asyncio.wrap_future(future), ctx.write_timeout)
    except NotLeaderError:
        return await forward.relay(request, ctx, body)      # it lost the lead just now
    except OutdatedReplicaError as exc:
        raise unavailable(str(exc)) from None
    except (TypeError, ValueError) as exc:      # the arguments, or the command refused
        raise bad_request(str(exc)) from None
    except LeadershipLostError:
        raise unavailable("leadership was lost before the command committed: its outcome "
                          "is unknown", *forward.leader_url(ctx), outcome="unknown") from None
    except asyncio.TimeoutError:
        raise unavailable(f"not committed within {ctx.write_timeout:g} s (no quorum?): the "
                          f"outcome is unknown", *forward.leader_url(ctx),
                          outcome="unknown") from None
    except CantChangeError as exc:
        raise conflict(str(exc)) from None
    except ShutdownError:
        raise unavailable("this node is shutting down") from None
    except RaftError as exc:
        if exc.code in _BAD_REQUEST_CODES:
            raise bad_request(str(exc)) from None
        raise unavailable(str(exc), *forward.leader_url(ctx)) from None
    return answer(result)
