"""The table `python -m chaos` prints."""

import math

COLUMNS = [
    ("scenario", "scenario", "<"),
    ("net", "net", "<"),
    ("sec", "seconds", ">"),
    ("ops", "ops", ">"),
    ("ops/s", "rate", ">"),
    ("ok", "ok", ">"),
    ("fail", "fail", ">"),
    ("unk", "unknown", ">"),
    ("faults", "faults", ">"),
    ("linearizable", "linearizable", "<"),
    ("acked", "acked", ">"),
    ("lost", "lost", ">"),
    ("dup", "dups", ">"),
    ("failover s", "failover", ">"),
    ("recover s", "recover", ">"),
    ("max gap s", "gap", ">"),
    ("verdict", "verdict", "<"),
]


def _fmt(key, value):
    if value is None:
        return "-"
    if key == "recover":
        return "inf" if math.isinf(value) else f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def table(results):
    rows = [[h for h, _, _ in COLUMNS]]
    for r in results:
        rows.append([_fmt(k, r.get(k)) for _, k, _ in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(rows):
        cells = [(c.ljust(w) if a == "<" else c.rjust(w))
                 for c, w, (_, _, a) in zip(row, widths, COLUMNS)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def failures(results):
    """The failed checks, one line each."""
    out = []
    for r in results:
        for c in r.get("checks", []):
            if not c["ok"]:
                out.append(f"{r['scenario']}: {c['name']}: {c['detail']}")
        if r.get("verdict") == "SKIP":
            out.append(f"{r['scenario']}: skipped: {'; '.join(r.get('errors', []))}")
    return out


def details(results):
    """Every check of every scenario (for the log)."""
    out = []
    for r in results:
        out.append(f"{r['scenario']} ({r.get('nemesis')}, {r.get('nodes')} nodes): "
                   f"{r.get('verdict')}")
        for c in r.get("checks", []):
            out.append(f"    {'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}")
        errs = r.get("op_errors") or {}
        if errs:
            out.append("    errors seen by clients: " + "; ".join(
                f"{k} x{n}" for k, n in list(errs.items())[:6]))
    return "\n".join(out)
