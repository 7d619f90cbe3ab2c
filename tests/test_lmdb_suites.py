"""The core suites once more, every node with storage="lmdb": the same tests,
run in a child pytest with CANONICAL_RAFT_STORAGE=lmdb (which
canonical_raft.testing's FAST_TIMINGS, and so every LocalCluster and the
make_node fixture, pass on to each Node). About 60 s."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SUITES = ["test_cluster.py", "test_snapshots.py", "test_snapshot_bytes.py",
          "test_snapshot_format.py", "test_membership.py", "test_recovery.py",
          "test_persist.py", "test_removed.py", "test_leaks.py"]


@pytest.mark.skipif(os.environ.get("CANONICAL_RAFT_STORAGE") == "lmdb",
                    reason="already running over lmdb")
@pytest.mark.timeout(600)
def test_core_suites_pass_over_lmdb(tmp_path):
    env = {**os.environ, "CANONICAL_RAFT_STORAGE": "lmdb"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--basetemp", str(tmp_path / "t"), *(str(HERE / s) for s in SUITES)],
                         cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=580)
    tail = run.stdout[-6000:] + run.stderr[-3000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and " failed" not in run.stdout, tail
