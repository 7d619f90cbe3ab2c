"""The admin CLI: ``python -m canonical_raft status|members|add|remove|
assign|transfer|snapshot|backup --server HOST:PORT``, one module per command, each a
client of a server's HTTP API (the standard library's urllib only).
Human-readable tables by default, the server's JSON with ``--json``."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Optional

__all__ = ["add_client_arguments", "call", "request", "print_table", "show", "SERVER_ENV"]

#: The server to talk to when --server is not given.
SERVER_ENV = "CANONICAL_RAFT_SERVER"
DEFAULT_TIMEOUT = 15.0
_RETRY = 0.2        # s between tries while the cluster elects a leader


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=os.environ.get(SERVER_ENV, "127.0.0.1:8001"),
                        help=f"a server's HTTP API, host:port or a URL (${SERVER_ENV}; "
                             f"default 127.0.0.1:8001)")
    parser.add_argument("--tls-dir", help="the cluster's certificates: HTTPS, verified "
                                          "against DIR/ca.crt")
    parser.add_argument("--cacert", help="verify the server's HTTPS certificate against FILE")
    parser.add_argument("--json", action="store_true", help="print the server's JSON")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)


def _base(args: argparse.Namespace) -> tuple[str, Optional[ssl.SSLContext]]:
    cafile = args.cacert or (os.path.join(args.tls_dir, "ca.crt") if args.tls_dir else None)
    server = args.server
    if "://" not in server:
        server = f"{'https' if cafile else 'http'}://{server}"
    context = ssl.create_default_context(cafile=cafile) if server.startswith("https") else None
    return server.rstrip("/"), context


def call(args: argparse.Namespace, method: str, path: str,
         body: Optional[dict[str, Any]] = None) -> Any:
    """The JSON the server answers; SystemExit (status 1) with its error.
    A 503 that ran nothing (no leader yet, an election) is retried until
    ``--timeout``; one whose outcome is unknown is not."""
    with request(args, method, path, body) as resp:
        return json.loads(resp.read() or b"null")


def request(args: argparse.Namespace, method: str, path: str,
            body: Optional[dict[str, Any]] = None) -> Any:
    """The server's answer, open (read it, then close it: a ``with``);
    errors and retries as ``call()``'s."""
    base, context = _base(args)
    data = None if body is None else json.dumps(body).encode()
    deadline = time.monotonic() + args.timeout
    while True:
        req = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            return urllib.request.urlopen(req, timeout=args.timeout, context=context)
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read().decode(errors="replace")
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            doc = doc if isinstance(doc, dict) else {"error": text}
            if exc.code == 503 and doc.get("outcome") != "unknown" and \
                    time.monotonic() + _RETRY < deadline:
                time.sleep(_RETRY)
                continue
            leader = doc.get("leader")
            hint = f" (leader: {leader['id']} at {leader.get('http') or leader['address']})" \
                if isinstance(leader, dict) else ""
            raise SystemExit(f"{args.command}: HTTP {exc.code}: {doc.get('error')}{hint}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SystemExit(f"{args.command}: cannot reach {base}: {reason}") from None


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def show(args: argparse.Namespace, doc: Any, human: Optional[str] = None) -> int:
    """Print ``doc`` as JSON (--json) or ``human``'s text."""
    if args.json or human is None:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print(human)
    return 0
