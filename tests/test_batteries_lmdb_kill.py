"""batteries, issue 14 item 5: a node process whose dicts are in LMDB,
killed with SIGKILL at random points under load and restarted, rounds on
end: its dicts always equal their in-memory twin (restored by the node from
its snapshot and log), so no command was applied twice or lost, and every
acknowledged write is there (tests/lmdb_dict_child.py)."""

import random
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("lmdb")

from canonical_raft.testing import free_address, procs, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(120)

TESTS_DIR = Path(__file__).resolve().parent
CHILD = str(TESTS_DIR / "lmdb_dict_child.py")
ROUNDS = 8


def test_sigkill_at_random_points_loses_nothing_and_applies_nothing_twice(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    address = free_address()
    acked = set()
    started = []

    def spawn(first):
        argv = [sys.executable, CHILD, "--id", "1", "--address", address,
                "--data-dir", str(tmp_path / "data"), "--store", str(tmp_path / "stores")]
        if first:
            argv += ["--bootstrap", procs.format_servers({1: address})]
        child = procs.Process(argv, name="node 1", log_path=tmp_path / "node.log",
                              env=procs.child_env(TESTS_DIR),
                              on_event=lambda p, name, msg: acked.update(msg.get("keys", ())))
        started.append(child)
        child.wait_ready(30)
        wait_until(lambda: child.call("status")["is_leader"], 20, message="node 1 to lead")
        return child

    def check(child):
        report = child.call("check", 30, acked=sorted(acked))
        assert report["same"] and not report["missing"], (seed, report)
        return report

    try:
        resumed = 0
        for round in range(ROUNDS):
            child = spawn(round == 0)
            report = check(child)
            resumed += report["info"]["d"]["skipped"] > 0
            child.call("load")
            time.sleep(rng.uniform(0.1, 1.2))      # then SIGKILL: no goodbye, no flush
            child.kill()
            assert not child.alive
        child = spawn(False)
        report = check(child)
        assert len(acked) > 1000, (seed, len(acked))
        # Most restarts resumed from the store, skipping what it held.
        assert resumed + (report["info"]["d"]["skipped"] > 0) >= ROUNDS // 2, (seed, resumed)
        child.stop()
    finally:
        procs.stop_all(started, 15)            # every process, by pid
