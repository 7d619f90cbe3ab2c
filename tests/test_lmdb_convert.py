"""python -m canonical_raft convert-storage: a stopped node's data dir from
storage="uv" to "lmdb" and back, in place, its state whole."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import canonical_raft as raft
from canonical_raft import convert, storage
from canonical_raft.testing import LocalCluster

from fsms import Counter

SETTINGS = {"snapshot_threshold": 16, "snapshot_trailing": 4}


def restart_all(c, kind):
    for i in (1, 2, 3):
        c.restart(i, storage=kind, **SETTINGS)
    leader = c.leader()
    c.wait_converged()
    return leader


@pytest.mark.timeout(120)
def test_a_cluster_converted_to_lmdb_and_back_keeps_its_state(tmp_path):
    with LocalCluster(3, Counter, tmp_path, storage="uv", timeout=20, **SETTINGS) as c:
        leader = c.leader()
        for _ in range(50):
            leader.apply(b"1").result(20)
        c.wait_converged()
        for i in (1, 2, 3):
            c.kill(i)
        # One node with the command itself, the others with the function.
        run = subprocess.run([sys.executable, "-m", "canonical_raft", "convert-storage",
                              str(c.data_dir(1)), "--to", "lmdb"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "converted from storage='uv' to storage='lmdb'" in run.stdout
        for i in (2, 3):
            convert.convert(str(c.data_dir(i)), "lmdb")
        for i in (1, 2, 3):
            d = c.data_dir(i)
            assert storage.recorded(str(d)) == "lmdb"
            assert not [n for n in os.listdir(d) if storage._UV_FILE.match(n)]
            assert os.listdir(d / "converted-from-uv")
        leader = restart_all(c, "lmdb")
        assert [c.fsm(i).value for i in (1, 2, 3)] == [50, 50, 50]
        assert leader.apply(b"1").result(20) == 51
        c.wait_converged()

        for i in (1, 2, 3):
            c.kill(i)
            convert.convert(str(c.data_dir(i)), "uv")
            assert storage.recorded(str(c.data_dir(i))) == "uv"
        leader = restart_all(c, "uv")
        assert [c.fsm(i).value for i in (1, 2, 3)] == [51, 51, 51]
        assert leader.apply(b"1").result(20) == 52


@pytest.mark.timeout(60)
def test_conversion_refuses_a_running_node_an_empty_dir_and_says_when_done(tmp_path):
    with LocalCluster(1, Counter, tmp_path, storage="lmdb", timeout=20) as c:
        c.leader().apply(b"1").result(20)
        with pytest.raises(raft.DataDirInUseError):
            convert.convert(str(c.data_dir(1)), "uv")
        c.kill(1)
        assert "already storage='lmdb'" in convert.convert(str(c.data_dir(1)), "lmdb")
    (tmp_path / "empty").mkdir()
    with pytest.raises(raft.RaftError, match="nothing to convert"):
        convert.convert(str(tmp_path / "empty"), "lmdb")
