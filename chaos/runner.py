"""One scenario from start to verdict, and the list of scenarios."""

import json
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from . import checks
from .checker import check, save_history
from .cluster import Cluster, NodeGone, NodeTimeout
from .nemesis import NEMESES, Schedule
from .net import Loopback, Netns
from .workload import History, Workload


@dataclass
class Scenario:
    name: str
    nemesis: str
    nodes: int = 3
    netns: bool = False             # each node in its own network namespace
    fallback: Optional[str] = None  # nemesis to use instead when netns is unavailable
    settings: dict = field(default_factory=dict)   # Cluster(...) keyword arguments
    disk_mb: int = 0                # a tmpfs of that size for the last node's data dir
    pad: int = 0                    # bytes of ballast in every write's log entry
    unsafe_reads: bool = False      # self-test: reads without barrier, on any node
    expect: str = "ok"              # the linearizability verdict that passes
    tls: bool = False               # mutual TLS between the nodes (the NAME+tls variants)
    any_node: bool = False          # forward=True, read_barrier(), clients on every node


SCENARIOS = [
    Scenario("kill-leader", "kill-leader"),
    Scenario("kill-follower", "kill-follower"),
    Scenario("kill-all", "kill-all"),
    Scenario("pause-leader", "pause-leader"),
    Scenario("pause-follower", "pause-follower"),
    Scenario("kill-leader-5", "kill-leader", nodes=5),
    Scenario("pause-leader-5", "pause-leader", nodes=5),
    Scenario("partition-leader", "partition-leader", netns=True, fallback="pause-leader"),
    Scenario("partition-halves-5", "partition-halves", nodes=5, netns=True),
    Scenario("partition-one-way", "partition-one-way", netns=True),
    Scenario("partition-flapping-5", "partition-flapping", nodes=5, netns=True),
    Scenario("lagging-snapshot", "lagging-snapshot",
             settings=dict(snapshot_threshold=64, snapshot_trailing=16)),
    Scenario("membership", "membership"),
    # Writes and reads on every node (forwarded, read_barrier()), the
    # leader killed and isolated in turn (paused, without namespaces).
    Scenario("any-node", "kill-or-partition-leader", netns=True,
             fallback="kill-or-partition-leader", any_node=True),
    # 8 MiB segments, two prepared ahead: the ballast makes the node go
    # through them within seconds once the tmpfs is full.
    Scenario("disk-full", "disk-full", disk_mb=64, pad=32 * 1024,
             settings=dict(snapshot_threshold=128, snapshot_trailing=32,
                           tuning=dict(segment_size=8 * 1024 * 1024))),
]

# Every scenario again over mutual TLS: the same faults and checks, plus
# "mutual TLS" (every member on its certificate, none refused).
TLS_SUFFIX = "+tls"
TLS_SCENARIOS = [replace(s, name=s.name + TLS_SUFFIX, tls=True) for s in SCENARIOS]

# The harness checking itself: reads served from any node's local state,
# without a barrier, must be caught as not linearizable.
SELFTESTS = [
    Scenario("selftest-stale-reads", "pause-follower", unsafe_reads=True, expect="violation"),
]

# The CI selection (tests/chaos/test_short.py, make chaos-short).
SHORT = ["kill-leader", "partition-leader", "pause-follower",
         "kill-leader+tls", "partition-leader+tls", "any-node"]

# The whole suite: each scenario in plaintext, then over TLS.
ALL = [name for s in SCENARIOS for name in (s.name, s.name + TLS_SUFFIX)]

BY_NAME = {s.name: s for s in SCENARIOS + TLS_SCENARIOS + SELFTESTS}


def over_tls(name):
    """The name of scenario ``name`` over TLS (itself if it is already)."""
    return name if name.endswith(TLS_SUFFIX) else name + TLS_SUFFIX


def in_plaintext(name):
    """The name of scenario ``name`` in plaintext (itself if it is already)."""
    return name[:-len(TLS_SUFFIX)] if name.endswith(TLS_SUFFIX) else name


@dataclass
class Options:
    duration: float = 60.0
    rate: float = 150.0
    clients: int = 10
    keys: int = 5
    op_timeout: float = 2.0
    warmup: float = 3.0
    tail: float = 8.0               # seconds of load after the last fault window
    check_budget: float = 60.0
    seed: int = 1
    workdir: Path = Path("/tmp/chaos")
    keep_data: bool = False


def _mount_tmpfs(path, mb):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m,mode=0700", "tmpfs",
                        str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs on {path}: {r.stderr.strip()}")


def _umount(path):
    r = subprocess.run(["umount", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)


def run_scenario(sc, opts, log=print, netns_reason=None):
    """Run one scenario; returns a result dict (see report.py)."""
    result = {"scenario": sc.name, "nodes": sc.nodes, "nemesis": sc.nemesis,
              "net": "loopback", "checks": [], "verdict": "FAIL", "errors": []}
    nemesis_name = sc.nemesis
    if sc.netns and netns_reason is not None:
        if sc.fallback is None:
            result.update(verdict="SKIP", errors=[f"network namespaces unavailable: {netns_reason}"])
            return result
        nemesis_name = sc.fallback
        result["nemesis"] = f"{sc.fallback} (no netns: {netns_reason})"
    workdir = Path(opts.workdir) / sc.name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    rng = random.Random(f"{opts.seed}/{sc.name}")
    t_begin = time.monotonic()
    net = None
    cluster = None
    mounted = None
    history = History()
    workload = schedule = None
    try:
        if sc.netns and netns_reason is None:
            net = Netns()
            result["net"] = "netns"
        else:
            net = Loopback()
        cluster = Cluster(sc.nodes, workdir, net, log=log, unsafe_reads=sc.unsafe_reads,
                          tls=sc.tls, any_node=sc.any_node, **sc.settings)
        if sc.disk_mb:
            mounted = cluster.data_dir(sc.nodes)
            _mount_tmpfs(mounted, sc.disk_mb)
        leader = cluster.start()
        log(f"   cluster of {sc.nodes} up ({result['net']}{', tls' if sc.tls else ''}), "
            f"leader {leader}")
        nemesis = NEMESES[nemesis_name](cluster, rng, log)
        workload = Workload(cluster, history, keys=opts.keys, clients=opts.clients,
                            rate=opts.rate, op_timeout=opts.op_timeout, pad=sc.pad,
                            reads_anywhere=sc.unsafe_reads, anywhere=sc.any_node,
                            seed=rng.randrange(1 << 30))
        t0 = time.monotonic()
        workload.start()
        end = t0 + opts.duration
        schedule = Schedule(nemesis, history, t0 + opts.warmup, end - opts.tail, rng, log)
        schedule.start()
        next_line = t0 + 10
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            if time.monotonic() >= next_line:
                c = history.counts()
                log(f"{time.monotonic() - t0:7.2f}s ops: ok {c['ok']} fail {c['fail']} "
                    f"unknown {c['unknown']}")
                next_line += 10
        if not schedule.stop(120):
            result["errors"].append("the nemesis did not stop in time")
        if not workload.stop():
            result["errors"].append("a client did not stop in time")
        t_end = time.monotonic()
        result["errors"] += schedule.errors + workload.errors

        # Heal everything, read every key, let the replicas converge.
        cluster.heal_all()
        final_heal = time.monotonic()
        cluster.wait_leader(30)
        finals_read = workload.final_reads(30)
        final_ok = min((op.complete for op in history.snapshot()
                        if op.process == "final" and op.status == "ok"), default=None)
        if len(finals_read) != len(workload.keys):
            result["errors"].append(f"final reads: only {len(finals_read)} of "
                                    f"{len(workload.keys)} keys could be read")
        finals = _converge(cluster, 30)
        ops = history.snapshot()
        save_history(ops, workdir / "history.jsonl")

        # Stop the nodes cleanly (their exit status is checked).
        for p in list(cluster.incarnations):
            p.stop()

        counts = {"ok": 0, "fail": 0, "unknown": 0}
        for op in ops:
            counts[op.status] += 1
        n_load = sum(1 for op in ops if op.process != "final")
        errs = {}
        for (node, err), n in history.errors().items():
            errs[f"n{node} {err}"] = n
        result["op_errors"] = dict(sorted(errs.items(), key=lambda kv: -kv[1])[:12])
        result.update(ops=len(ops), **counts, seconds=round(t_end - t0, 1),
                      rate=round(n_load / max(t_end - t0, 1e-9), 1),
                      faults=len(schedule.heals), nemesis_stats=nemesis.stats)

        lin = check(ops, budget=opts.check_budget)
        result["linearizable"] = lin.verdict
        if sc.expect == "ok":
            result["checks"].append(checks.Check(
                "linearizable", lin.verdict == "ok", lin.summary()))
        else:
            result["checks"].append(checks.Check(
                f"linearizability {sc.expect} detected", lin.verdict == sc.expect,
                lin.summary()[:300]))
        durable, acked, lost, dups = checks.writes_durable(ops, finals)
        result.update(acked=acked, lost=lost, dups=dups)
        result["checks"].append(durable)
        result["checks"].append(checks.converged(finals))
        result["checks"].append(checks.one_leader_per_term(cluster.events))
        result["checks"].append(checks.no_crashes(
            cluster.deaths, sorted(workdir.glob("n*.log"))))
        prog, worst = checks.progress(schedule.heals, history, final_heal, final_ok)
        result["recover"] = worst
        result["checks"].append(prog)
        result["gap"] = round(checks.max_gap(ops, t0, t_end), 2)
        result["failover"] = checks.failover(schedule.heals, ops)
        if sc.tls:
            result["checks"].append(checks.mutual_tls(finals))
        result["checks"] += _specific(sc, nemesis_name, nemesis, cluster, workdir, schedule,
                                      result["op_errors"], ops, finals)
        if schedule.heals == [] and nemesis_name != "none":
            result["checks"].append(checks.Check("faults injected", False, "no fault happened"))
        for e in result["errors"]:
            result["checks"].append(checks.Check("harness", False, e))
        ok = all(c.ok for c in result["checks"])
        result["verdict"] = "PASS" if ok else "FAIL"
    except Exception as e:
        result["errors"].append(f"{type(e).__name__}: {e}")
        result["checks"].append(checks.Check("harness", False, f"{type(e).__name__}: {e}"))
        log(f"!! {sc.name}: {type(e).__name__}: {e}")
        if history.ops:
            save_history(history.snapshot(), workdir / "history.jsonl")
    finally:
        if schedule is not None:
            schedule.stop(60)
        if workload is not None:
            workload.stop()
        if cluster is not None:
            for err in cluster.close():
                result["errors"].append(err)
        elif net is not None:
            net.cleanup()
        if mounted is not None:
            _umount(mounted)
        if not opts.keep_data:
            for d in [*workdir.glob("n*"), workdir / "tls"]:
                if d.is_dir():
                    shutil.rmtree(d, ignore_errors=True)
        result["wall"] = round(time.monotonic() - t_begin, 1)
        result["checks"] = [c.to_json() if isinstance(c, checks.Check) else c
                            for c in result["checks"]]
        with open(workdir / "result.json", "w") as f:
            json.dump(result, f, indent=1, default=str)
    return result


def _converge(cluster, timeout):
    """Wait until every member has applied the same commands; then fetch
    each member's final state. Returns {id: final reply}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = cluster.statuses(sorted(cluster.members))
        if len(st) == len(cluster.members) and \
                len({(s["count"], s["digest"], s["last_applied"]) for s in st.values()}) == 1:
            break
        time.sleep(0.2)
    finals = {}
    for i in sorted(cluster.members):
        p = cluster.nodes.get(i)
        if p is None or not p.alive:
            continue
        try:
            finals[i] = p.request("final", timeout=20)
        except (NodeTimeout, NodeGone):
            pass
    return finals


def _specific(sc, nemesis_name, nemesis, cluster, workdir, schedule, op_errors, ops, finals):
    out = []
    if sc.any_node:
        out.append(checks.every_node_served(ops, sc.nodes, finals))
    if nemesis_name == "lagging-snapshot":
        installs = [(nid, msg) for nid, _inc, msg in cluster.events
                    if msg.get("event") == "restore" and not msg.get("at_start")]
        out.append(checks.Check("snapshot installed", bool(installs),
                                f"{len(installs)} snapshot(s) installed from the leader "
                                f"on nodes {sorted({n for n, _ in installs})}"))
    if nemesis_name == "membership":
        added = nemesis.stats.get("added", 0)
        removed = nemesis.stats.get("removed", 0)
        out.append(checks.Check("membership changes", added > 0 and removed > 0,
                                f"{removed} removed, {added} added; members now "
                                f"{sorted(cluster.members)}"))
    if nemesis_name == "disk-full":
        victim = sc.nodes
        text = ""
        try:
            text = (workdir / f"n{victim}.log").read_text(errors="replace")
        except OSError:
            pass
        def about_disk(line):
            low = line.lower()
            return "space" in low or "enospc" in low or "i/o" in low or "ioerr" in low
        said = [line for line in text.splitlines() if about_disk(line)]
        said += [f"clients got {k!r} x{n}" for k, n in op_errors.items()
                 if k.startswith(f"n{victim} ") and about_disk(k)]
        out.append(checks.Check("disk full reported", bool(said),
                                (said[0][:160] if said else
                                 f"node {victim} said nothing about the full disk")
                                + f" ({nemesis.stats.get('fills', 0)} fills)"))
    return out
