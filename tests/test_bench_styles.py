"""A few-seconds smoke of the client-style benchmark (``python -m bench
--styles``): every style named runs and reports its ratio to the window loop
of the same run. Benchmarks are not tests; this keeps the harness working."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(120)
def test_styles_smoke(tmp_path):
    out = tmp_path / "styles.jsonl"
    styles = ["callbacks", "threads8", "asyncio", "many_async"]
    cmd = [sys.executable, "-m", "bench", "--styles", *styles, "--duration", "0.5",
           "--warmup", "0.2", "--runs", "1", "--data-root", str(tmp_path), "--tmpfs",
           "--json", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["type"] == "header" and records[0]["styles"] == ["window"] + styles
    rows = [r for r in records if r["type"] == "row"]
    assert [r["style"] for r in rows] == ["window"] + styles
    for row in rows:
        assert "error" not in row, row
        assert row["ops"] > 0 and row["errors"] == 0 and row["pending"] == 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
    summaries = {s["style"]: s for s in records if s["type"] == "summary"}
    assert summaries["window"]["ratio"] == 1.0
    assert all(summaries[s]["ratio"] > 0 for s in styles)
    assert "vs window" in proc.stdout
    # every node process is gone and the data dirs are cleaned up
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("canonical-raft-styles-")]
