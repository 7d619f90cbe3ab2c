"""Key-value server processes (``python -m canonical_raft serve`` children,
spawned and stopped through :mod:`canonical_raft.testing.procs`) for tests
and benchmarks, and a small blocking HTTP client (the standard library's)::

    cluster = ServerCluster(3, tmp_path)        # serving, a leader elected
    cluster.request("PUT", 2, "/kv/a", {"x": 1})   # on server 2 (forwarded)
    cluster.close()                             # SIGTERM each, reaped by pid
"""

from __future__ import annotations

import json
import signal
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

from . import free_ports, procs, wait_until

__all__ = ["ServerCluster", "ServerProc", "Reply", "http", "TIMINGS"]

#: Test timings: elections within about a second.
TIMINGS = ("--election-timeout", "0.5", "--heartbeat-timeout", "0.05")


class Reply:
    """An HTTP answer: status, headers, body (and ``json``, the body decoded)."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:300]!r}>"


def http(method: str, url: str, body: Any = None, *, raw: Optional[bytes] = None,
         timeout: float = 15.0, context: Optional[ssl.SSLContext] = None) -> Reply:
    """One request; any status comes back as a Reply (OSError if no answer)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.headers, exc.read())


class ServerProc(procs.Process):
    """One server process; ``url`` is its HTTP API."""

    def __init__(self, id: int, peer: str, http_address: str, data_dir: Path, log_path: Path,
                 peers: str = "", tls_dir: Optional[Path] = None, extra: tuple[str, ...] = (),
                 timings: tuple[str, ...] = TIMINGS) -> None:
        self.id, self.peer, self.http_address = id, peer, http_address
        self.data_dir, self.peers, self.tls_dir, self.extra = data_dir, peers, tls_dir, extra
        self.timings = timings
        self.url = f"{'https' if tls_dir else 'http'}://{http_address}"
        argv = ["--id", str(id), "--address", peer, "--data-dir", str(data_dir),
                "--http", http_address, *timings, *extra]
        if peers:
            argv += ["--peers", peers]
        if tls_dir:
            argv += ["--tls-dir", str(tls_dir)]
        super().__init__(procs.python_argv("canonical_raft", "serve", *argv),
                         name=f"server {id}", log_path=log_path)

    def again(self) -> ServerProc:
        """The same command line, started again (a restart)."""
        return ServerProc(self.id, self.peer, self.http_address, self.data_dir,
                          Path(self.log_path), self.peers, self.tls_dir, self.extra, self.timings)

    def terminate(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM (a clean close), then reaped (SIGKILL only past ``timeout``)."""
        self.signal(signal.SIGTERM)
        self.reap(timeout)
        return self.returncode


class ServerCluster:
    """``n`` servers of one new cluster on free loopback ports, serving;
    server ``i`` keeps its data in ``tmp_path / f"data{i}"`` and its log in
    ``tmp_path / f"server{i}.log"``. ``timings``: the servers' election and
    heartbeat options (fast for tests; ``()`` for the defaults)."""

    def __init__(self, n: int, tmp_path: Path, tls_dir: Optional[Path] = None,
                 context: Optional[ssl.SSLContext] = None, extra: tuple[str, ...] = (),
                 timings: tuple[str, ...] = TIMINGS) -> None:
        ports = free_ports(2 * n)
        self.context = context
        self.peers = {i: f"127.0.0.1:{ports[i - 1]}" for i in range(1, n + 1)}
        boot = procs.format_servers(self.peers)
        self.procs: dict[int, ServerProc] = {}
        try:
            for i in range(1, n + 1):
                self.procs[i] = ServerProc(i, self.peers[i], f"127.0.0.1:{ports[n + i - 1]}",
                                           tmp_path / f"data{i}", tmp_path / f"server{i}.log",
                                           peers=boot, tls_dir=tls_dir, extra=extra,
                                           timings=timings)
            for proc in self.procs.values():
                self.wait_serving(proc)
            self.wait_leader()
        except BaseException:
            self.close()
            raise

    def url(self, id: int) -> str:
        return self.procs[id].url

    def request(self, method: str, id: int, path: str, body: Any = None, **kw: Any) -> Reply:
        return http(method, self.url(id) + path, body, context=self.context, **kw)

    def wait_serving(self, proc: ServerProc, timeout: float = 30.0) -> None:
        def serving() -> bool:
            if not proc.alive:
                raise AssertionError(f"{proc.name} exited ({proc.exit_status()}):\n"
                                     + "\n".join(proc.log_tail(30)))
            try:
                return http("GET", proc.url + "/status", timeout=2,
                            context=self.context).status == 200
            except OSError:
                return False
        wait_until(serving, timeout, 0.05, f"{proc.name} to serve HTTP")

    def status(self, id: int) -> dict[str, Any]:
        return self.request("GET", id, "/status").json  # type: ignore[no-any-return]

    def wait_leader(self, among: Optional[list[int]] = None, timeout: float = 20.0) -> int:
        """The leader every live server of ``among`` names, once they agree
        and it has published its HTTP URL."""
        ids = among or [i for i, p in self.procs.items() if p.alive]

        def agreed() -> Optional[int]:
            try:
                leaders = [self.status(i)["leader"] for i in ids]
            except OSError:
                return None
            if any(lead is None or lead["http"] is None for lead in leaders):
                return None
            named = {lead["id"] for lead in leaders}
            return named.pop() if len(named) == 1 else None
        return wait_until(agreed, timeout, 0.05, f"one leader among servers {ids}")

    def close(self) -> None:
        """SIGTERM to every live server, then each reaped (bounded, by pid)."""
        live = [p for p in self.procs.values() if p.alive]
        for proc in live:
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            proc.reap(max(0.5, deadline - time.monotonic()))
