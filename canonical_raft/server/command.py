"""``python -m canonical_raft serve``: a replicated key-value server.

    serve --id 1 --address 127.0.0.1:9001 --data-dir /var/lib/kv1 \\
          --peers 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003 \\
          --http 127.0.0.1:8001 [--tls-dir DIR]

The first start with --peers bootstraps the cluster; later starts (restarts)
are the same command and keep the data dir's state. A node started without
--peers on an empty data dir waits to be added (`add` on any server).
SIGTERM or SIGINT (or `stop --data-dir DIR`) closes it cleanly. With
--tls-dir (the files of `certs init|node`), the peer port uses mutual TLS
and the HTTP API is HTTPS with the same certificates. docs/server.md has
the API.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any, Optional

__all__ = ["add_arguments", "run", "serve"]

log = logging.getLogger("canonical_raft.server")

_WATCH = 0.5        # s between checks that the node still runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..testing.procs import at_least
    from .limits import DEFAULT_FORWARD_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_WRITE_TIMEOUT
    parser.add_argument("--id", type=int, required=True, help="this node's raft id (>= 1)")
    parser.add_argument("--address", required=True, help="the peer port, host:port")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--peers", default="",
                        help="id=host:port,... of the whole cluster, this node included: "
                             "bootstraps a new cluster on the first start only")
    parser.add_argument("--http", required=True, help="the HTTP API's host:port")
    parser.add_argument("--tls-dir", help="certificates of `certs init|node`: mutual TLS on "
                                          "the peer port, HTTPS on the API")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback peer address without --tls-dir")
    parser.add_argument("--max-body", type=at_least(64), default=DEFAULT_MAX_BODY,
                        help="the largest request body in bytes (413 beyond)")
    parser.add_argument("--write-timeout", type=at_least(0.01, float),
                        default=DEFAULT_WRITE_TIMEOUT, help="seconds a write waits to commit")
    parser.add_argument("--forward-timeout", type=at_least(0.01, float),
                        default=DEFAULT_FORWARD_TIMEOUT,
                        help="seconds a follower waits for the leader's answer")
    parser.add_argument("--election-timeout", type=at_least(0.01, float), default=1.0)
    parser.add_argument("--heartbeat-timeout", type=at_least(0.001, float), default=0.1)
    parser.add_argument("--snapshot-threshold", type=at_least(1), default=8192)
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format=f"node {args.id} %(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return asyncio.run(serve(args))
    except ImportError as exc:
        raise SystemExit(f"serve: {exc} (pip install 'canonical_raft[server]')") from None
    except (OSError, ValueError) as exc:
        raise SystemExit(f"serve: {exc}") from None


def _url(http: str, tls: bool) -> tuple[str, int, str]:
    from ..types import parse_address
    parse_address(http)
    host, _, port = http.rpartition(":")
    return host, int(port), f"{'https' if tls else 'http'}://{http}"


async def serve(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM/SIGINT or until the node stops by itself."""
    from .. import Node, State
    from ..batteries import Group, ReplicatedDict
    from ..errors import CantBootstrapError
    from ..metrics import NodeMetrics
    from ..testing.procs import parse_servers
    from ..tls import TLS
    from . import ssl_contexts
    from .app import make_app
    from .context import Context
    from .directory import Directory
    from .runner import start_site

    tls = TLS.from_dir(args.tls_dir, args.id) if args.tls_dir else None
    host, port, url = _url(args.http, tls is not None)
    kv: ReplicatedDict[str, Any] = ReplicatedDict(timeout=args.write_timeout)
    members: ReplicatedDict[str, Any] = ReplicatedDict(timeout=args.write_timeout)
    group = Group(kv=kv, members=members)
    settings = {"election_timeout": args.election_timeout,
                "heartbeat_timeout": args.heartbeat_timeout,
                "snapshot_threshold": args.snapshot_threshold}
    node = Node(args.id, args.address, args.data_dir, group,
                tls=tls, insecure=args.insecure, **settings)
    try:
        # Watching before start() counts the first leader; the group submits
        # through the meter.
        metrics = NodeMetrics(node)
        group.attach(metrics.meter(node))
        if args.peers:
            try:
                node.bootstrap(parse_servers(args.peers))
                log.info("bootstrapped a new cluster: %s", args.peers)
            except CantBootstrapError:
                log.info("the data dir has state: restarting (--peers ignored)")
        node.start()
        ctx = Context(node, metrics, url=url, group=group, kv=kv,
                      directory=Directory(members, node.id, url),
                      client_ssl=ssl_contexts.client_context(tls.cafile, tls) if tls else None,
                      max_body=args.max_body, forward_timeout=args.forward_timeout,
                      write_timeout=args.write_timeout)
        server_ssl = ssl_contexts.server_context(tls) if tls else None
        runner, _ = await start_site(make_app(ctx), host, port, server_ssl)
        try:
            log.info("serving %s (node %d, peer port %s)", url, node.id, node.address)
            print(f"canonical_raft serve: node {node.id} at {node.address}, API {url}",
                  flush=True)
            why = await _until_stopped(node, State)
            log.info("stopping: %s", why)
        finally:
            await runner.cleanup()
    finally:
        node.close()
    error = node.stats().get("error")
    return 0 if error is None or "removed" in str(error) else 1


async def _until_stopped(node: Any, State: Any) -> str:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reason: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        reason.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        while not stop.is_set():
            if node.state == State.UNAVAILABLE:
                return f"the node stopped: {node.stats().get('error')}"
            try:
                await asyncio.wait_for(stop.wait(), _WATCH)
            except asyncio.TimeoutError:
                pass
        return reason[0]
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="serve")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)
