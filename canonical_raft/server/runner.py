"""Running an app on a TCP address: on the caller's event loop (``serve``)
or on an event loop of its own in a thread (``admin.serve`` in a user's
process)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import threading
from typing import Optional

from aiohttp import web

__all__ = ["start_site", "ThreadedServer", "SHUTDOWN_TIMEOUT", "START_TIMEOUT"]

SHUTDOWN_TIMEOUT = 5.0   # s open requests get to finish when the server stops
START_TIMEOUT = 30.0     # s a threaded server gets to bind


async def start_site(app: web.Application, host: str, port: int,
                     ssl_context: Optional[ssl.SSLContext] = None) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on host:port (0: any free port): (its runner, the port)."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return runner, int(bound)


class ThreadedServer:
    """``app`` served from a thread with its own event loop, until close()."""

    def __init__(self, app: web.Application, host: str, port: int,
                 ssl_context: Optional[ssl.SSLContext] = None, name: str = "http") -> None:
        self._loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True,
                                        args=(app, host, port, ssl_context, started))
        self._thread.start()
        try:
            self.port = started.result(START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def _run(self, app: web.Application, host: str, port: int,
             ssl_context: Optional[ssl.SSLContext],
             started: concurrent.futures.Future[int]) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            try:
                runner, bound = loop.run_until_complete(start_site(app, host, port, ssl_context))
            except BaseException as exc:
                started.set_exception(exc)
                return
            started.set_result(bound)
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self, timeout: float = SHUTDOWN_TIMEOUT + 5.0) -> None:
        """Stop serving and join the thread (idempotent)."""
        if self._thread.is_alive():
            try:
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:
                pass            # the loop already closed
            self._thread.join(timeout)
