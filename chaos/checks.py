"""The checkers besides linearizability, over what a run left behind: the
history, each member's final state, the nodes' events and logs."""

import re

from .checker import CAS, FAIL, OK, READ, UNKNOWN, WRITE

PROGRESS_LIMIT = 10.0          # seconds after a heal by which an operation must succeed

# In a node's log: a crash, not an error the node handled.
CRASH = re.compile(r"Assertion .*failed|Fatal Python error|Segmentation fault|Aborted|"
                   r"core dumped|double free|malloc\(\)|free\(\): |corrupted (size|double|top)|"
                   r"AddressSanitizer")


class Check:
    def __init__(self, name, ok, detail=""):
        self.name = name
        self.ok = ok
        self.detail = detail

    def to_json(self):
        return {"name": self.name, "ok": self.ok, "detail": self.detail}

    def __repr__(self):
        return f"{self.name}: {'ok' if self.ok else 'FAIL'} {self.detail}"


def writes_durable(ops, finals):
    """No acknowledged write or CAS is missing from any member's applied
    commands; none that failed (NotLeaderError) is there; none twice.
    Returns the check, the acknowledged count, and the most any member
    lacks and applied twice."""
    acked = {op.id for op in ops if op.f in (WRITE, CAS) and op.status == OK}
    failed = {op.id for op in ops if op.f in (WRITE, CAS) and op.status == FAIL}
    unknown = {op.id for op in ops if op.f in (WRITE, CAS) and op.status == UNKNOWN}
    problems = []
    lost_total = dups_total = 0
    applied_unknown = None
    for nid, fin in sorted(finals.items()):
        ids = [i for i in fin["ids"] if i is not None]
        seen = set(ids)
        if len(seen) != len(ids):
            dups = len(ids) - len(seen)
            dups_total = max(dups_total, dups)
            problems.append(f"node {nid} applied {dups} command(s) twice")
        lost = acked - seen
        if lost:
            lost_total = max(lost_total, len(lost))
            problems.append(f"node {nid} lacks {len(lost)} acknowledged op(s), "
                            f"e.g. {sorted(lost)[:5]}")
        bad = failed & seen
        if bad:
            problems.append(f"node {nid} applied {len(bad)} op(s) reported failed "
                            f"(NotLeaderError), e.g. {sorted(bad)[:5]}")
        applied_unknown = len(unknown & seen)
    detail = "; ".join(problems) if problems else (
        f"{len(acked)} acknowledged, all on {len(finals)} members"
        + (f"; {applied_unknown}/{len(unknown)} unknown ones applied"
           if applied_unknown is not None else ""))
    return (Check("no lost writes", not problems and bool(finals), detail),
            len(acked), lost_total, dups_total)


def converged(finals):
    """Every member ends with the same command count and digest, and their
    digest histories agree wherever they overlap."""
    if not finals:
        return Check("replicas converge", False, "no member answered")
    ends = {(f["count"], f["digest"], f["status"]["last_applied"]) for f in finals.values()}
    problems = []
    if len(ends) != 1:
        problems.append("final states differ (commands/digest/applied index): " + ", ".join(
            f"n{i}: {f['count']}/{f['digest']}/{f['status']['last_applied']}"
            for i, f in sorted(finals.items())))
    items = sorted(finals.items())
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            (ia, fa), (ib, fb) = items[a], items[b]
            ha, hb = fa["history"], fb["history"]
            common = set(ha) & set(hb)
            diff = [c for c in common if ha[c] != hb[c]]
            if diff:
                c = min(diff, key=int)
                problems.append(f"n{ia} and n{ib} differ after {c} commands")
            la, lb = fa["ids"], fb["ids"]
            n = min(len(la), len(lb))
            if la[:n] != lb[:n]:
                first = next(k for k in range(n) if la[k] != lb[k])
                problems.append(f"n{ia} and n{ib} applied different commands at #{first + 1}")
    count, digest, applied = next(iter(ends))
    return Check("replicas converge", not problems,
                 "; ".join(problems) if problems else
                 f"{len(finals)} members at index {applied}, {count} commands, digest {digest}")


# Refusals (node.stats()["refused"]) that mean a member's certificate or the
# id it claimed was not accepted: never for the harness's own nodes.
IDENTITY_REFUSALS = ("tls_nocert", "tls_verify", "tls_expired", "tls_notyetvalid", "tls_noid",
                     "tls_idmismatch", "fw_handshake_id_mismatch")


def mutual_tls(finals):
    """Over TLS: every member ran with its certificate, and no member
    refused another's (the peer transport's counters since its last start)."""
    problems = [f"node {i} ran without tls" for i, f in sorted(finals.items())
                if not f["status"].get("tls")]
    refused = {}
    for f in finals.values():
        for reason, n in f["status"].get("refused", {}).items():
            refused[reason] = refused.get(reason, 0) + n
    bad = {r: n for r, n in refused.items() if r in IDENTITY_REFUSALS}
    if bad:
        problems.append(f"members refused as impostors: {bad}")
    return Check("mutual TLS", bool(finals) and not problems,
                 "; ".join(problems) if problems else
                 f"{len(finals)} members on TLS; connections dropped: "
                 f"{dict(sorted(refused.items())) or 'none'}")


def one_leader_per_term(events):
    leaders = {}
    for nid, _inc, msg in events:
        if msg.get("event") == "state" and msg.get("state") == "LEADER":
            leaders.setdefault(msg.get("term"), set()).add(nid)
    bad = {t: sorted(ids) for t, ids in leaders.items() if len(ids) > 1}
    return Check("one leader per term", not bad,
                 f"terms with two leaders: {bad}" if bad else
                 f"{len(leaders)} terms with a leader")


def no_crashes(deaths, log_paths):
    problems = list(deaths)
    for path in log_paths:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if CRASH.search(line):
                        problems.append(f"{path.name}: {line.strip()[:200]}")
                        break
        except OSError:
            pass
    return Check("no unexpected deaths", not problems, "; ".join(problems[:5]))


def progress(heals, history, final_heal=None, final_ok=None):
    """After every heal an operation succeeds within PROGRESS_LIMIT seconds.
    Returns the check and the worst recovery time."""
    worst = 0.0
    problems = []
    for at, healed, what in heals:
        first = history.first_ok_after(healed)
        if first is None:
            problems.append(f"nothing succeeded after healing '{what}'")
            worst = float("inf")
            continue
        rec = first - healed
        worst = max(worst, rec)
        if rec > PROGRESS_LIMIT:
            problems.append(f"{rec:.1f}s to recover from '{what}'")
    if final_heal is not None:
        if final_ok is None:
            problems.append("no final read succeeded after the last heal")
            worst = float("inf")
        else:
            rec = final_ok - final_heal
            worst = max(worst, rec)
            if rec > PROGRESS_LIMIT:
                problems.append(f"{rec:.1f}s to recover after the final heal")
    return Check("progress after healing", not problems,
                 "; ".join(problems) if problems else
                 f"{len(heals)} heals, worst {worst:.2f}s"), worst


def max_gap(ops, start, end):
    """The longest time without an ok operation completing, in [start, end]."""
    times = sorted(op.complete for op in ops
                   if op.status == OK and op.complete is not None and start <= op.complete <= end)
    points = [start] + times + [end]
    return max((b - a for a, b in zip(points, points[1:])), default=end - start)


def failover(heals, ops):
    """The longest time from a fault to the first ok operation invoked after
    it (the unavailability a client sees); None without faults."""
    worst = None
    for at, healed, what in heals:
        firsts = [op.complete for op in ops if op.status == OK and op.invoke >= at
                  and op.complete is not None]
        if not firsts:
            continue
        t = min(firsts) - at
        worst = t if worst is None else max(worst, t)
    return None if worst is None else round(worst, 2)


def every_node_served(ops, nodes, finals):
    """Any-node scenarios: each of the first ``nodes`` nodes acknowledged
    writes and reads of its own clients (followers' forwarded, read
    barriers answered on followers); the detail has the members' final
    forwarding counters (of their last incarnation)."""
    served = {i: {"w": 0, "r": 0} for i in range(1, nodes + 1)}
    for op in ops:
        if op.status == OK and op.process != "final" and op.node in served:
            served[op.node]["r" if op.f == READ else "w"] += 1
    idle = [i for i, n in served.items() if not n["w"] or not n["r"]]
    counters = "; ".join(
        f"n{i} forwarded {fw['forwarded']} resent {fw['resent']} appended {fw['appended']} "
        f"duplicates {fw['duplicates']} read rounds {fw['read_rounds']}"
        for i, fw in ((i, f["status"].get("forwarding") or {}) for i, f in sorted(finals.items()))
        if fw)
    detail = (", ".join(f"n{i}: {n['w']} writes {n['r']} reads" for i, n in served.items())
              + (f" (none of one kind on {idle})" if idle else "") + "; " + counters)
    return Check("every node served", not idle, detail)
