"""`python -m canonical_raft demo`: a real cluster of node processes, end to end."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, timeout):
    return subprocess.run([sys.executable, "-m", "canonical_raft", *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


@pytest.mark.timeout(120)
def test_demo_kills_the_leader_and_loses_no_acknowledged_write():
    result = run_cli("demo", "--duration", "6", timeout=110)
    out = result.stdout
    assert result.returncode == 0, out
    assert "SIGKILL leader node" in out, out
    assert "new leader: node" in out, out
    assert "verified: all" in out, out
    assert "verification         OK" in out, out
    assert "cleaned up" in out, out


@pytest.mark.timeout(60)
def test_no_command_prints_help_and_exits_2():
    result = run_cli(timeout=50)
    assert result.returncode == 2
    assert "demo" in result.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("option", [["--nodes", "2"], ["--duration", "0"], ["--window", "0"]])
def test_demo_rejects_bad_options(option):
    result = run_cli("demo", *option, timeout=50)
    assert result.returncode == 2
    assert "must be >=" in result.stdout
