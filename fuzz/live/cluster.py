"""Three node processes (fuzz/live/node.py) of one cluster, plaintext or
mutual TLS, and what the fuzzer reads of them: status, a write on the
leader, RSS (/proc/PID/status), and how a dead one died."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from canonical_raft.testing import free_ports, procs, wait_until

from . import ROOT


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Cluster:
    """``n`` node processes on free ports of 127.0.0.1, bootstrapped as one
    cluster; with ``tls``, certificates in ``workdir/certs`` (a CA and one
    per node, canonical_raft.certs). The election timeout is generous: the
    fuzzer checks that the term never moves, and a node starved of CPU on a
    busy machine must not look like one an input deposed. Close it: every
    process is stopped by pid."""

    def __init__(self, workdir: Path, *, n: int = 3, tls: bool = False,
                 election_timeout: float = 2.0, heartbeat_timeout: float = 0.1) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls_dir: Optional[Path] = None
        if tls:
            from canonical_raft import certs
            self.tls_dir = self.workdir / "certs"
            certs.init(str(self.tls_dir))
            for i in range(1, n + 1):
                certs.node(str(self.tls_dir), i, ["127.0.0.1"])
        self.servers = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(free_ports(n))}
        self.procs: dict[int, procs.Process] = {}
        bootstrap = procs.format_servers(self.servers)
        try:
            for i, address in self.servers.items():
                argv = procs.python_argv(
                    "fuzz.live.node", "--id", str(i), "--address", address,
                    "--data-dir", str(self.workdir / f"node{i}"), "--bootstrap", bootstrap,
                    "--election-timeout", str(election_timeout),
                    "--heartbeat-timeout", str(heartbeat_timeout),
                    *(["--tls-dir", str(self.tls_dir)] if self.tls_dir else []))
                self.procs[i] = procs.Process(argv, name=f"node {i}",
                                              log_path=self.workdir / f"node{i}.log",
                                              env=procs.child_env(ROOT), cwd=ROOT)
            for p in self.procs.values():
                p.wait_ready()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        procs.stop_all(self.procs.values())

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------

    def pid(self, id: int) -> int:
        return self.procs[id].pid

    def status(self, id: int, timeout: float = 10.0) -> dict[str, Any]:
        return self.procs[id].call("status", timeout)

    def statuses(self) -> dict[int, dict[str, Any]]:
        return {i: self.status(i) for i in self.procs}

    def rss(self, id: int) -> int:
        return rss_bytes(self.pid(id))

    def deaths(self) -> dict[int, str]:
        """id -> how it ended, for every node process that is not running."""
        return {i: p.exit_status() for i, p in self.procs.items() if not p.alive}

    def leader(self, timeout: float = 20.0) -> int:
        """The id every node names as leader (the leader itself included)."""
        def agreed() -> Optional[int]:
            leaders = {s["leader"] for s in self.statuses().values()}
            lead = leaders.pop() if len(leaders) == 1 else None
            if lead is not None and self.status(lead)["state"] == "LEADER":
                return lead
            return None
        return wait_until(agreed, timeout, interval=0.05, message="an agreed leader")

    def write(self, leader: int, command: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.procs[leader].call("write", timeout + 5, command=command)

    def raise_term(self, at_least: int, leader: Optional[int] = None,
                   timeout: float = 60.0) -> int:
        """Leadership transfers (each one an election) until the term is at
        least ``at_least`` and, if given, ``leader`` leads; returns the leader."""
        deadline = time.monotonic() + timeout
        lead = self.leader()
        while self.status(lead)["term"] < at_least or leader not in (None, lead):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no term >= {at_least} with leader {leader} "
                                   f"after {timeout:g} s")
            next_id = leader if leader not in (None, lead) else 0
            self.procs[lead].call("transfer", 15, id=next_id)
            lead = self.leader()
        return lead

    def log_tail(self, id: int, lines: int = 20) -> list[str]:
        return self.procs[id].log_tail(lines)


def tls_contexts(cluster: Cluster, workdir: Path) -> dict[str, Any]:
    """The fuzzer's TLS client contexts: one per member certificate
    (``member-<id>``), one without a certificate, one of another CA."""
    import peerwire as w

    from canonical_raft import certs
    assert cluster.tls_dir is not None
    d = cluster.tls_dir
    ca = str(d / "ca.crt")
    out: dict[str, Any] = {f"member-{i}": w.client_context(str(d / f"node-{i}.crt"),
                                                           str(d / f"node-{i}.key"), ca)
                           for i in cluster.servers}
    out["nocert"] = w.client_context(None, None, ca)
    other = Path(workdir) / "other-ca"
    if not (other / "ca.crt").exists():
        certs.init(str(other))
        certs.node(str(other), 2, ["127.0.0.1"])
    # Trusts the cluster's CA (so the client side completes), presents the other CA's.
    out["other_ca"] = w.client_context(str(other / "node-2.crt"), str(other / "node-2.key"), ca)
    return out

