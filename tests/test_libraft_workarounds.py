"""Regression tests for libraft bugs the binding works around."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@pytest.mark.timeout(150)
def test_install_snapshot_during_own_snapshot_does_not_crash():
    # libraft 0.22.1 dereferences NULL in takeSnapshotCb when an
    # InstallSnapshot arrives while the node writes its own snapshot. Run the
    # load that provokes it in a child process, so that a crash is a failed
    # test and not a dead test runner.
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "scripts", "snapshot_race.py"), "90"],
        capture_output=True, text=True, timeout=140, env=env)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # The scenario really happened (the guard held a message back) ...
    assert report["installs_deferred"] >= 1, report
    # ... and nothing leaked.
    assert report["requests"] == 0 and report["handles"] == 0, report
