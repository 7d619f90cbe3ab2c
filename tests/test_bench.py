"""A few-seconds smoke of the comparative benchmark (``python -m bench``, from
the checkout) and of the users' check (``python -m canonical_raft bench``):
they run, and their numbers are sane. Benchmarks are not tests; this only
keeps the harnesses working."""

import json
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _c_driver_built():
    # `make bench-c` (or `make bench`) builds it; the benchmark never compiles.
    return os.access(os.path.join(ROOT, "bench", "c", "raft_bench"), os.X_OK)


@pytest.mark.timeout(120)
def test_bench_smoke(tmp_path):
    out = tmp_path / "bench.jsonl"
    cmd = [sys.executable, "-m", "bench", "--duration", "1",
           "--warmup", "0.3", "--size", "16", "--window", "64", "--runs", "1",
           "--variant", "cb:api=callback", "--tls",
           "--data-root", str(tmp_path), "--tmpfs", "--json", str(out)]
    if not _c_driver_built():
        cmd.append("--no-c")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])

    records = [json.loads(line) for line in out.read_text().splitlines()]
    header = records[0]
    assert header["type"] == "header" and header["nodes"] == 3
    rows = [r for r in records if r["type"] == "row"]
    summaries = [r for r in records if r["type"] == "summary"]
    impls = {r["impl"] for r in rows}
    assert {"binding", "binding[cb]", "binding[tls]"} <= impls
    # the variant submitted from done callbacks (the C driver's shape)
    assert {r["api"] for r in rows if r["impl"] == "binding[cb]"} == {"callback"}
    # the TLS row ran over TLS (certificates the harness made), the others in plaintext
    assert {r["transport"] for r in rows if r["impl"] == "binding[tls]"} == {"tls"}
    assert {r["transport"] for r in rows if r["impl"] == "binding"} == {"tcp"}
    tls = next(s for s in summaries if s["impl"] == "binding[tls]")
    for key in ("ops_ratio_vs_plain", "p50_ratio_vs_plain", "p99_ratio_vs_plain"):
        assert 0 < tls[key] < 100, tls
    assert len(summaries) == len(impls)
    for row in rows:
        assert "error" not in row, row
        assert row["ops_per_s"] > 0 and row["ops"] > 0, row
        assert row["errors"] == 0 and row["pending"] == 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"] < 10_000, row
        assert len(row["cpu_s"]) == 3 and all(v is not None and v >= 0 for v in row["cpu_s"].values()), row
        assert sum(row["cpu_s"].values()) > 0, row
        assert all(v is not None and v > 1 for v in row["rss_mb"].values()), row
    if "c" in impls:
        binding = next(s for s in summaries if s["impl"] == "binding")
        assert binding["ops_ratio_vs_c"] > 0
    # the table went to stdout, with a row per implementation
    assert "ops/s" in proc.stdout
    assert any(line.startswith("binding ") for line in proc.stdout.splitlines())
    assert re.search(r"^binding\[tls\] +16 +64 +[\d.]+x +[\d.]+x +[\d.]+x$", proc.stdout, re.M), \
        proc.stdout
    # every node process is gone and the data dirs are cleaned up
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("canonical-raft-bench-")]


@pytest.mark.timeout(120)
def test_user_bench_smoke(tmp_path):
    cmd = [sys.executable, "-m", "canonical_raft", "bench", "--seconds", "0.5",
           "--window", "1", "8", "--data-dir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    rows = re.findall(r"window +(\d+): +(\d+) writes/s .* p50 ([\d.]+) ms, p99 ([\d.]+) ms",
                      proc.stdout)
    assert [int(w) for w, *_ in rows] == [1, 8], proc.stdout
    for _, rate, p50, p99 in rows:
        assert int(rate) > 0 and 0 < float(p50) <= float(p99) < 10_000, proc.stdout
    # its data directory is removed
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_vs_pysyncobj_smoke(tmp_path):
    # ReplicatedDict against PySyncObj's ReplDict (bench/vs_pysyncobj.py): one
    # short run, one PySyncObj configuration; PySyncObj from bench/requirements.txt.
    pytest.importorskip("pysyncobj")
    out = tmp_path / "vs.jsonl"
    cmd = [sys.executable, "-m", "bench.batteries", "--vs-pysyncobj", "--runs", "1",
           "--duration", "0.3", "--warmup", "0.1", "--window", "8", "--keys", "100", "--no-tmpfs",
           "--pysyncobj-conf", "nobatch:appendEntriesUseBatch=false,connectionRetryTime=0.5",
           "--data-root", str(tmp_path), "--tmpfs", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=55)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    rows = [r for r in records if r["type"] == "row"]
    assert {(r["impl"], r["client"]) for r in rows} == {
        ("canonical_raft", "blocking"), ("canonical_raft", "window"),
        ("canonical_raft", "callbacks"), ("pysyncobj[nobatch]", "blocking"),
        ("pysyncobj[nobatch]", "callbacks")}
    for row in rows:
        assert row["ops"] > 0 and row["errors"] == 0 and row["pending"] == 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"] < 10_000, row
    ratios = {(r["client"], r["vs_client"]): r for r in records
              if r["type"] == "ratio" and r["against"] == "best"}
    assert set(ratios) == {("blocking", "blocking"), ("window", "callbacks"),
                           ("callbacks", "callbacks")}
    assert all(r["ratio"] > 0 and r["vs"] == ["pysyncobj[nobatch]"] for r in ratios.values())
    assert re.search(r"canonical_raft window +vs callbacks +[\d.]+x", proc.stdout), proc.stdout
    assert "never fsyncs" in proc.stdout
    # every node process stopped, the data dirs removed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("bench-vs-pysyncobj-")]
