"""Medians over runs, ratios to the C driver (and TLS to plaintext), and the tables."""

import statistics

from .common import IMPL_BINDING, IMPL_C, IMPL_PSO, IMPL_PSO_DEFAULT, IMPL_PSO_NOBATCH, PYSYNCOBJ_IMPLS, rows_for
from .tls import IMPL_TLS


def summarize(all_rows, impls, args):
    """Medians over runs per (impl, size, window), and per-run ratios to C
    (and, for the TLS row, to the plaintext binding)."""
    by_key, failed = {}, {}
    for row in all_rows:
        key = (row["impl"], row["size"], row["window"])
        if "error" not in row:
            by_key.setdefault(key, []).append(row)
        else:
            failed.setdefault(key, []).append(row["error"])
    summaries = []
    for impl in impls:
        for size, window in rows_for(impl if not impl.startswith(IMPL_BINDING) else IMPL_BINDING,
                                     args.size, args.window):
            rows = by_key.get((impl, size, window), [])
            if not rows:
                errors = failed.get((impl, size, window), [])
                summaries.append(dict(type="summary", impl=impl, size=size, window=window,
                                      runs=0, error="no successful run"
                                      + (f" ({errors[0][:100]})" if errors else "")))
                continue

            def med(key):
                values = [r[key] for r in rows if r.get(key) is not None]
                return round(statistics.median(values), 3) if values else None

            node_ids = sorted(rows[0]["cpu_s"])
            summary = dict(type="summary", impl=impl, size=size, window=window, runs=len(rows),
                           ops_per_s=med("ops_per_s"), p50_ms=med("p50_ms"), p99_ms=med("p99_ms"),
                           max_ms=med("max_ms"), mean_ms=med("mean_ms"),
                           cpu_us_per_op=med("cpu_us_per_op"), errors=sum(r["errors"] for r in rows))
            # CPU and RSS: the leader's first, then the followers', each a median
            summary["cpu_s_leader"], summary["cpu_s_followers"] = _role_medians(rows, "cpu_s")
            summary["rss_mb_leader"], summary["rss_mb_followers"] = _role_medians(rows, "rss_mb")
            summary["node_ids"] = node_ids
            if failed.get((impl, size, window)):
                summary["failed_runs"] = len(failed[(impl, size, window)])
                summary["failure"] = failed[(impl, size, window)][0]
            if impl != IMPL_C:
                summary.update(_ratios(rows, by_key.get((IMPL_C, size, window), []), "vs_c",
                                       ("ops_per_s", "p50_ms")))
            if impl == IMPL_TLS:
                summary.update(_ratios(rows, by_key.get((IMPL_BINDING, size, window), []),
                                       "vs_plain", ("ops_per_s", "p50_ms", "p99_ms")))
            if impl in PYSYNCOBJ_IMPLS:
                summary["durability"] = "never fsyncs (in-memory log)"
            summaries.append(summary)
    return summaries


_RATIO_NAMES = {"ops_per_s": "ops", "p50_ms": "p50", "p99_ms": "p99"}


def _ratios(rows, ref_rows, suffix, keys):
    """Median over runs of row / reference row of the same run, per key:
    {"ops_ratio_<suffix>": ..., "p50_ratio_<suffix>": ...} (the keys that have one)."""
    ref = {r["run"]: r for r in ref_rows}
    out = {}
    for key in keys:
        ratios = [r[key] / ref[r["run"]][key] for r in rows
                  if r["run"] in ref and r.get(key) is not None and (ref[r["run"]].get(key) or 0) > 0]
        if ratios:
            out[f"{_RATIO_NAMES[key]}_ratio_{suffix}"] = round(statistics.median(ratios), 3)
    return out


def _role_medians(rows, key):
    leaders, followers = [], []
    for r in rows:
        values = r[key]
        lead = values.get(str(r["leader"]))
        if lead is not None:
            leaders.append(lead)
        followers.extend(v for i, v in values.items() if i != str(r["leader"]) and v is not None)
    return (round(statistics.median(leaders), 2) if leaders else None,
            round(statistics.median(followers), 2) if followers else None)


def format_table(summaries, args):
    head = (f"{'impl':<20} {'size':>6} {'window':>6} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'CPU s L/F':>11} {'RSS MB L/F':>11} {'us CPU/op':>9} "
            f"{'ops/C':>6} {'p50/C':>6}")
    lines = [head, "-" * len(head)]

    def num(v, fmt):
        return format(v, fmt) if v is not None else "-"

    last_size = None
    order = sorted(summaries, key=lambda s: (s["size"], s["window"], _impl_rank(s["impl"])))
    for s in order:
        if last_size is not None and s["size"] != last_size:
            lines.append("")
        last_size = s["size"]
        if s.get("error"):
            lines.append(f"{s['impl']:<20} {s['size']:>6} {s['window']:>6}  {s['error']}")
            continue
        cpu = f"{num(s['cpu_s_leader'], '.1f')}/{num(s['cpu_s_followers'], '.1f')}"
        rss = f"{num(s['rss_mb_leader'], '.0f')}/{num(s['rss_mb_followers'], '.0f')}"
        lines.append(
            f"{s['impl']:<20} {s['size']:>6} {s['window']:>6} {num(s['ops_per_s'], '.0f'):>9} "
            f"{num(s['p50_ms'], '.3f'):>8} {num(s['p99_ms'], '.3f'):>8} {num(s['max_ms'], '.2f'):>8} "
            f"{cpu:>11} {rss:>11} {num(s['cpu_us_per_op'], '.0f'):>9} "
            f"{num(s.get('ops_ratio_vs_c'), '.2f'):>6} {num(s.get('p50_ratio_vs_c'), '.2f'):>6}"
            + (f"  ({s['errors']} errors)" if s.get("errors") else "")
            + (f"  ({s['failed_runs']} run(s) failed)" if s.get("failed_runs") else ""))
    return "\n".join(lines)


def format_plain_ratios(summaries):
    """The TLS row against the plaintext binding: medians of per-run ratios."""
    head = f"{'TLS / plaintext':<20} {'size':>6} {'window':>6} {'ops/s':>7} {'p50':>7} {'p99':>7}"
    lines = [head, "-" * len(head)]
    for s in sorted((s for s in summaries if s["impl"] == IMPL_TLS and not s.get("error")),
                    key=lambda s: (s["size"], s["window"])):
        cells = [s.get(f"{name}_ratio_vs_plain") for name in ("ops", "p50", "p99")]
        lines.append(f"{s['impl']:<20} {s['size']:>6} {s['window']:>6} "
                     + " ".join(f"{format(v, '.2f') + 'x' if v is not None else '-':>7}" for v in cells))
    return "\n".join(lines)


def _impl_rank(impl):
    order = [IMPL_BINDING, IMPL_TLS, IMPL_C, IMPL_PSO, IMPL_PSO_DEFAULT, IMPL_PSO_NOBATCH]
    return (order.index(impl) if impl in order else 1.5, impl)   # variants after the TLS row

