"""Send the generator's inputs to a live cluster in batches and check it
after each batch.

Per mode (plaintext port, TLS port): a fresh 3-node cluster of node
processes, its term raised above the inputs' stale terms, then batches of
inputs, each to the leader or to one follower, over one short connection
each (the input's bytes, in pieces for some, then our FIN, then read until
the node closes), ``workers`` at a time. After every batch:

  - no node process died (a crash is a dead process and its signal);
  - no connection was left open by the node after our FIN (a hang);
  - each target counted at least one refusal in stats()["refused"] for every
    input that it was bound to refuse (Case.must_refuse);
  - every node's term, state and known leader are what they were;
  - a write on the leader commits, and its result says it is exactly the
    next command (no input got a command of its own applied);
  - every node's RSS stays within start + ``rss_margin``.

In rogue mode (gen.py) terms and leaders may move: instead, no node stops,
terms stay below 2^63, and a leader is back within REELECT_TIMEOUT and
commits a write. A batch that fails is saved (JSON lines, one case each) for
fuzz/live/minimize.py.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from canonical_raft.testing import wait_until

from .cluster import Cluster, tls_contexts
from .gen import MIN_CLUSTER_TERM, TERM_LIMIT, Case, Generator

MIB = 1024 * 1024
CONNECT_TIMEOUT = 5.0
CLOSE_TIMEOUT = 10.0    # our FIN -> the node's close; beyond is a hang
APPLY_TIMEOUT = 10.0    # a committed write, applied on every node
REELECT_TIMEOUT = 30.0  # rogue mode: a leader again after a batch
SETTLE_TIMEOUT = 10.0   # refusals counted (the TLS pump's close comes a moment later)
PER_ID = 2              # member connections open at once per (target, id): with
                        # libraft's own that stays below the per-peer cap (4), whose
                        # oldest-dropped rule would otherwise close the real one


@dataclass
class Options:
    inputs: int = 2000              # per mode
    seed: int = 1
    modes: tuple[str, ...] = ("plain", "tls")
    batch: int = 500
    workers: int = 4
    rss_margin: int = 64 * MIB
    time_limit: float = 1800.0      # per mode; stops after the batch that crosses it
    workdir: Path = Path("/tmp/live-fuzz")
    findings_dir: Optional[Path] = None
    reflect: bool = False           # member handshakes at members' addresses (gen.py)
    rogue: bool = False             # member messages at the current term (gen.py)
    log: Callable[[str], None] = print


@dataclass
class Report:
    mode: str
    inputs: int = 0
    seconds: float = 0.0
    batches: int = 0
    families: Counter = field(default_factory=Counter)
    credentials: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    member: int = 0
    must_refuse: int = 0
    refused: Counter = field(default_factory=Counter)   # by reason, all nodes
    rss_start: dict[int, int] = field(default_factory=dict)
    rss_growth: dict[int, int] = field(default_factory=dict)  # max over the batches
    writes: int = 0
    findings: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


# -- one input ----------------------------------------------------------------


def _pieces(case: Case) -> list[bytes]:
    bounds = [0, *case.cuts, len(case.data)]
    return [case.data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def send(case: Case, address: str, contexts: dict[str, ssl.SSLContext]) -> str:
    """One connection: TLS handshake if the case has credentials, its bytes,
    FIN, then read until the node closes. Returns what happened: closed,
    reset, tls_refused, hang, connect_failed."""
    host, port = address.rsplit(":", 1)
    try:
        raw = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT)
    except OSError:
        return "connect_failed"
    sock: socket.socket = raw
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if case.credentials in ("member", "nocert", "other_ca"):
            key = f"member-{case.cert_id}" if case.credentials == "member" else case.credentials
            try:
                sock = contexts[key].wrap_socket(raw, server_hostname=None)
            except (ssl.SSLError, OSError):
                return "tls_refused"
        try:
            for piece in _pieces(case):
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)   # an SSLSocket: plain FIN, no close_notify
        except (ssl.SSLError, OSError):
            return "reset"
        sock.settimeout(CLOSE_TIMEOUT)
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if not sock.recv(65536):
                    return "closed"
            except socket.timeout:
                break
            except (ssl.SSLError, OSError):
                return "reset"
        return "hang"
    finally:
        sock.close()
        if sock is not raw:
            raw.close()


# -- a mode's run -------------------------------------------------------------


def _refused_total(status: dict[str, Any]) -> int:
    return sum(status["refused"].values())


class Run:
    """One mode: its cluster, generator, baseline and checks."""

    def __init__(self, mode: str, opts: Options, ids: Optional[dict[str, int]] = None) -> None:
        """``ids``: the leader and follower to target (the leader is made so);
        by default the leader found and the lowest other id."""
        self.mode = mode
        self.opts = opts
        self.report = Report(mode)
        self.workdir = opts.workdir / mode
        self.cluster = Cluster(self.workdir, tls=mode == "tls")
        self.contexts = tls_contexts(self.cluster, self.workdir) if mode == "tls" else {}
        self.locks: dict[tuple[int, int], threading.Semaphore] = {}
        self.baseline(ids)
        self.gen = Generator(opts.seed, self.cluster.servers, self.ids, tls=mode == "tls",
                             reflect=opts.reflect, rogue=opts.rogue)
        self.gen.term = max(s["term"] for s in self.last.values())
        self.start_refused = {i: Counter(s["refused"]) for i, s in self.last.items()}
        self.report.rss_start = {i: self.cluster.rss(i) for i in self.cluster.servers}

    def close(self) -> None:
        self.cluster.close()

    def baseline(self, ids: Optional[dict[str, int]] = None) -> None:
        leader = self.cluster.raise_term(MIN_CLUSTER_TERM, ids["leader"] if ids else None)
        follower = ids["follower"] if ids else min(i for i in self.cluster.servers if i != leader)
        self.ids = {"leader": leader, "follower": follower}
        self.last = self.cluster.statuses()
        self.report.writes = self.last[leader]["count"]
        self.expect = {i: (s["term"], s["state"], s["leader"]) for i, s in self.last.items()}

    # -- sending

    def _one(self, case: Case) -> str:
        target = self.ids[case.target]
        lock = None
        if case.member:
            claimed = case.cert_id or int.from_bytes(case.data[8:16], "little")
            lock = self.locks.setdefault((target, claimed), threading.Semaphore(PER_ID))
            lock.acquire()
        try:
            return send(case, self.cluster.servers[target], self.contexts)
        finally:
            if lock is not None:
                lock.release()

    def batch(self, pool: Optional[ThreadPoolExecutor], indexes: range | list[int],
              cases: Optional[list[Case]] = None) -> list[str]:
        """Make and send these inputs (or ``cases`` as given; ``pool``: a few
        at a time, None: one by one), then check; returns the problems found."""
        if cases is None:
            cases = [self.gen.make(i) for i in indexes]
        outcomes = list(pool.map(self._one, cases) if pool else map(self._one, cases))
        r = self.report
        r.inputs += len(cases)
        r.batches += 1
        r.outcomes.update(outcomes)
        r.families.update(c.family for c in cases)
        r.credentials.update(c.credentials or "plain" for c in cases)
        r.member += sum(c.member for c in cases)
        r.must_refuse += sum(c.must_refuse for c in cases)
        problems = self.check(cases, outcomes)
        if problems:
            self.found(cases, problems)
        return problems

    # -- the checks

    def check(self, cases: list[Case], outcomes: list[str]) -> list[str]:
        c = self.cluster
        dead = c.deaths()
        if dead:
            return [f"node {i} (pid {c.pid(i)}) died: {how}; log: {c.log_tail(i)[-5:]}"
                    for i, how in dead.items()]
        problems = [f"input {case.index} ({case.family}): the node left the connection "
                    f"open {CLOSE_TIMEOUT:g} s after our FIN"
                    for case, out in zip(cases, outcomes) if out == "hang"]
        problems += self.refusals(cases)
        problems += self.serving() if self.opts.rogue else self.unchanged()
        for i in c.servers:
            growth = c.rss(i) - self.report.rss_start[i]
            self.report.rss_growth[i] = max(self.report.rss_growth.get(i, 0), growth)
            if growth > self.opts.rss_margin:
                problems.append(f"node {i}: RSS grew {growth / MIB:.1f} MiB "
                                f"(bound {self.opts.rss_margin / MIB:.0f} MiB)")
        self.last = c.statuses()
        return problems

    def refusals(self, cases: list[Case]) -> list[str]:
        """Each target counted a refusal for every input it had to refuse."""
        c, problems = self.cluster, []
        for role, target in self.ids.items():
            had = _refused_total(self.last[target])
            must = sum(case.must_refuse for case in cases if case.target == role)
            try:
                wait_until(lambda: _refused_total(c.status(target)) >= had + must,
                           SETTLE_TIMEOUT, interval=0.02)
            except TimeoutError:
                got = _refused_total(c.status(target)) - had
                problems.append(f"{role} {target}: {got} refusals counted, "
                                f"{must} inputs it must refuse")
        return problems

    def unchanged(self) -> list[str]:
        """Terms, states and leader as they were; the next write commits with
        exactly the next count and every node applies it."""
        c, problems = self.cluster, []
        for i, s in c.statuses().items():
            if (s["term"], s["state"], s["leader"]) != self.expect[i]:
                problems.append(f"node {i}: term/state/leader {self.expect[i]} -> "
                                f"{(s['term'], s['state'], s['leader'])}")
        n = self.report.writes + 1
        reply = self.write(self.ids["leader"], n)
        if not (reply.get("ok") and reply.get("result") == n):
            return problems + [f"write {n} on leader {self.ids['leader']}: {reply}"]
        self.report.writes = n
        try:
            wait_until(lambda: all(s["count"] == n for s in c.statuses().values()),
                       APPLY_TIMEOUT, interval=0.02)
        except TimeoutError:
            problems.append(f"write {n} not applied everywhere within {APPLY_TIMEOUT:g} s: "
                            f"(count, commit_index, last_applied) by node "
                            + str({i: (s["count"], s["commit_index"], s["last_applied"])
                                   for i, s in c.statuses().items()}))
        return problems

    def serving(self) -> list[str]:
        """Rogue mode: no node stopped, terms below 2^63, a leader within
        REELECT_TIMEOUT and a write commits on it; the targets follow it."""
        c, problems = self.cluster, []
        for i, s in c.statuses().items():
            if s["state"] == "UNAVAILABLE" or s["error"]:
                problems.append(f"node {i} stopped: {s['state']} {s['error']!r}")
            if s["term"] >= TERM_LIMIT:
                problems.append(f"node {i}: term {s['term']}")
        try:
            leader = c.leader(REELECT_TIMEOUT)
        except TimeoutError:
            return problems + [f"no leader within {REELECT_TIMEOUT:g} s: "
                               + str({i: (s["state"], s["term"], s["leader"])
                                      for i, s in c.statuses().items()})]
        n = self.report.writes + 1
        reply = self.write(leader, n)
        if reply.get("ok"):
            self.report.writes = n
        else:
            problems.append(f"write {n} on leader {leader}: {reply}")
        self.ids = {"leader": leader, "follower": min(i for i in c.servers if i != leader)}
        self.gen.ids = dict(self.ids)
        self.gen.term = max(s["term"] for s in c.statuses().values())
        return problems

    def write(self, leader: int, n: int) -> dict[str, Any]:
        try:
            return self.cluster.write(leader, f"fuzz-write-{n}")
        except Exception as exc:      # a timeout, a dead process
            return {"ok": False, "error": repr(exc)}

    def found(self, cases: list[Case], problems: list[str]) -> None:
        first, last = cases[0].index, cases[-1].index
        where = ""
        if self.opts.findings_dir is not None:
            self.opts.findings_dir.mkdir(parents=True, exist_ok=True)
            path = self.opts.findings_dir / f"{self.mode}-seed{self.opts.seed}-{first}.jsonl"
            save(path, cases, self.mode, self.opts.seed, self.opts.reflect, self.opts.rogue,
                 self.ids)
            where = f" (inputs saved to {path})"
        for p in problems:
            self.report.findings.append(f"{self.mode} inputs {first}..{last}: "
                                        f"{p}{where}")
            self.opts.log(f"FINDING {self.report.findings[-1]}")

    def finish(self, seconds: float) -> Report:
        r = self.report
        r.seconds = seconds
        if not self.cluster.deaths() and not self.opts.rogue:
            end = self.cluster.statuses()
            for i, s in end.items():
                r.refused.update(Counter(s["refused"]) - self.start_refused[i])
            try:
                wait_until(lambda: {s["count"] for s in self.cluster.statuses().values()}
                           == {r.writes}, 20, interval=0.1)
            except TimeoutError:
                counts = {i: (s["count"], s["commit_index"], s["last_applied"])
                          for i, s in self.cluster.statuses().items()}
                r.findings.append(f"{self.mode}: the nodes did not converge on {r.writes} "
                                  f"commands: (count, commit, applied) by node {counts}")
        return r


def save(path: Path, cases: list[Case], mode: str, seed: int, reflect: bool, rogue: bool,
         ids: dict[str, int]) -> None:
    """One JSON line per case: enough to make it again (mode, seed, index,
    the targets' ids: fuzz/live/minimize.py) and its bytes as sent."""
    with open(path, "w") as f:
        for c in cases:
            f.write(json.dumps({"mode": mode, "seed": seed, "reflect": reflect,
                                "rogue": rogue, "index": c.index,
                                "family": c.family, "target": c.target,
                                "credentials": c.credentials, "cert_id": c.cert_id,
                                "member": c.member, "must_refuse": c.must_refuse,
                                "cuts": c.cuts, "data": c.data.hex(), "ids": ids}) + "\n")


def load(path: Path) -> list[Case]:
    """The cases save() wrote, bytes as sent."""
    out = []
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            out.append(Case(d["index"], d["family"], d["target"], bytes.fromhex(d["data"]),
                            d["cuts"], d["credentials"], d["cert_id"], d["member"],
                            d["must_refuse"]))
    return out


def fuzz(opts: Options) -> list[Report]:
    """Every mode of ``opts``, one fresh cluster each; a report per mode."""
    reports = []
    for mode in opts.modes:
        run = Run(mode, opts)
        t0 = time.monotonic()
        try:
            with ThreadPoolExecutor(opts.workers, thread_name_prefix="fuzz") as pool:
                done = 0
                while done < opts.inputs:
                    n = min(opts.batch, opts.inputs - done)
                    problems = run.batch(pool, range(done, done + n))
                    done += n
                    elapsed = time.monotonic() - t0
                    opts.log(f"{mode}: {done} inputs, {elapsed:.0f} s, "
                             f"{done / elapsed:.0f}/s, findings {len(run.report.findings)}")
                    if run.cluster.deaths():
                        break
                    if problems and not opts.rogue:
                        run.baseline()      # go on from the new state
                    if elapsed > opts.time_limit:
                        opts.log(f"{mode}: time limit reached")
                        break
            reports.append(run.finish(time.monotonic() - t0))
        finally:
            run.close()
    return reports


def summary(reports: list[Report]) -> str:
    lines = []
    for r in reports:
        growth = ", ".join(f"node {i} {g / MIB:+.1f} MiB" for i, g in sorted(r.rss_growth.items()))
        start = ", ".join(f"{v / MIB:.0f}" for _, v in sorted(r.rss_start.items()))
        lines += [
            f"== {r.mode}: {r.inputs} inputs in {r.seconds:.1f} s ({r.rate:.0f} inputs/s), "
            f"{r.batches} batches, {r.writes} writes checked",
            f"   families: {dict(sorted(r.families.items()))}",
            f"   credentials: {dict(sorted(r.credentials.items()))}",
            f"   members' streams (stale terms): {r.member}; bound to be refused: {r.must_refuse}",
            f"   connections: {dict(sorted(r.outcomes.items()))}",
            f"   refusals ({sum(r.refused.values())}): "
            f"{dict(sorted(r.refused.items(), key=lambda kv: -kv[1]))}",
            f"   RSS at start (MiB): {start}; max growth: {growth}",
            f"   findings: {len(r.findings)}",
            *(f"     - {f}" for f in r.findings),
        ]
    total = sum(r.inputs for r in reports)
    secs = sum(r.seconds for r in reports)
    found = sum(len(r.findings) for r in reports)
    lines.append(f"== total: {total} inputs in {secs:.1f} s "
                 f"({total / secs if secs else 0:.0f} inputs/s), findings: {found}")
    return "\n".join(lines)
