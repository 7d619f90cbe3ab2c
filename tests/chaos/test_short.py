"""The CI chaos run: kill the leader, partition the leader (pause it when
network namespaces are unavailable), pause a follower; 15 s of load each,
then every checker. The first two again over mutual TLS, 15 s each. Then
any-node for 20 s: writes and read_barrier() reads on every node while the
leader is killed and isolated in turn. Plus the harness's self-test: reads
that skip the barrier must be caught as not linearizable. And kill-leader
once more with every node on storage="lmdb", 15 s. About 3.5 minutes in all.

The full matrix (every scenario in plaintext and over TLS, then in
plaintext on lmdb, 60 s each) is `make chaos`."""

import pytest

from chaos import net, report
from chaos.cluster import cleanup_stale_processes
from chaos.runner import BY_NAME, SHORT, Options, run_scenario

DURATION = 15.0
TLS_DURATION = 15.0             # the same faults again: a shorter run says enough
DURATIONS = {"any-node": 20.0}  # two or three faults: a kill and a partition at least
LMDB_DURATION = 15.0
SELFTEST = "selftest-stale-reads"


@pytest.fixture(scope="module")
def netns_reason():
    net.cleanup_stale()
    cleanup_stale_processes()
    return net.netns_available()


@pytest.mark.timeout(150)
@pytest.mark.parametrize("name", SHORT + [SELFTEST])
def test_short(name, tmp_path, netns_reason):
    duration = (12.0 if name == SELFTEST else
                TLS_DURATION if BY_NAME[name].tls else DURATIONS.get(name, DURATION))
    run(name, duration, tmp_path, netns_reason)


@pytest.mark.timeout(150)
def test_kill_leader_on_lmdb(tmp_path, netns_reason, monkeypatch):
    monkeypatch.setenv("CANONICAL_RAFT_STORAGE", "lmdb")     # chaos/node.py passes it on
    run("kill-leader", LMDB_DURATION, tmp_path, netns_reason, keep_data=True)
    dirs = sorted(d for d in (tmp_path / "kill-leader").glob("n*") if d.is_dir())
    assert dirs and all((d / "lmdb" / "data.mdb").exists() and not list(d.glob("open-*"))
                        for d in dirs), [sorted(p.name for p in d.iterdir()) for d in dirs]


def run(name, duration, tmp_path, netns_reason, keep_data=False):
    opts = Options(duration=duration, workdir=tmp_path, warmup=3.0, tail=min(8.0, duration / 4),
                   check_budget=30.0, keep_data=keep_data)
    result = run_scenario(BY_NAME[name], opts, log=print, netns_reason=netns_reason)
    print(report.table([result]))
    assert result["verdict"] == "PASS", (
        report.details([result]) + f"\n(logs and history in {tmp_path / name})")
    if name != SELFTEST:
        assert result["rate"] >= 100, f"only {result['rate']} operations per second"
