"""``python -m canonical_raft serve``: three server processes driven over
HTTP: writes on every node, the leader killed, every acknowledged write
read back; every error status; SIGTERM, stop and restart."""

import subprocess
import sys
import time
from collections import Counter

import pytest

pytest.importorskip("aiohttp", reason="the server needs aiohttp: pip install 'canonical_raft[server]'")

from canonical_raft.testing import wait_until  # noqa: E402
from canonical_raft.testing.servers import ServerCluster  # noqa: E402

MAX_BODY = 4096


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ServerCluster(3, tmp_path_factory.mktemp("servers"), extra=("--max-body", str(MAX_BODY)))
    yield c
    c.close()


def follower_of(c):
    leader = c.wait_leader()
    return leader, next(i for i in c.procs if i != leader)


@pytest.mark.timeout(90)
def test_writes_on_every_node_survive_the_leader_killed(tmp_path):
    c = ServerCluster(3, tmp_path)
    try:
        acked = {}
        for i in range(30):                      # each node in turn: followers forward
            r = c.request("PUT", 1 + i % 3, f"/kv/before{i}", {"i": i})
            assert r.status == 204, r
            acked[f"before{i}"] = {"i": i}
        leader = c.wait_leader()
        c.procs[leader].kill()
        survivors = [i for i in c.procs if i != leader]
        statuses, n, after = Counter(), 0, 0
        deadline = time.monotonic() + 30
        while after < 20 and time.monotonic() < deadline:
            key = f"after{n}"
            r = c.request("PUT", survivors[n % 2], f"/kv/{key}", n)
            statuses[r.status] += 1
            if r.status == 204:
                acked[key], after = n, after + 1
            else:                                # during the election: 503, never a lie
                assert r.status == 503 and "leader" in r.json, r
                time.sleep(0.05)
            n += 1
        assert after == 20, statuses
        assert c.wait_leader(survivors) != leader

        restarted = c.procs[leader] = c.procs[leader].again()    # the same command line
        c.wait_serving(restarted)
        c.wait_leader()                          # it hears from the leader again
        for id in c.procs:
            r = c.request("GET", id, "/kv?consistency=linearizable")
            assert r.status == 200, r
            got = r.json
            assert {k: got.get(k) for k in acked} == acked, id
        # The restarted node catches up on its own (local reads).
        wait_until(lambda: all(c.request("GET", leader, f"/kv/{k}").json == v
                               for k, v in acked.items()), 20, 0.1, "the restarted node")

        # `stop --data-dir` and SIGTERM both close cleanly (exit 0).
        one = c.procs[survivors[0]]
        r = subprocess.run([sys.executable, "-m", "canonical_raft", "stop", "--data-dir",
                            str(one.data_dir)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and f"pid {one.pid} stopped" in r.stdout, r
        one.reap(5)
        assert one.returncode == 0
        for id in (survivors[1], leader):
            assert c.procs[id].terminate() == 0
            assert any("stopping: SIGTERM" in line for line in c.procs[id].log_tail(5))
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_error_statuses(cluster):
    leader, follower = follower_of(cluster)
    for id in (leader, follower):
        put = lambda path, **kw: cluster.request("PUT", id, path, **kw)  # noqa: E731
        assert put("/kv/x", raw=b"{not json").status == 400
        assert put("/kv/x", raw=b"NaN").status == 400              # not JSON by the codec
        assert put("/kv/", raw=b"1").status == 400                 # no key
        assert put("/kv/" + "k" * 1025, raw=b"1").status == 400    # key too long
        assert put("/kv/a%01b", raw=b"1").status == 400            # control character
        r = put("/kv/big", raw=b'"' + b"x" * MAX_BODY + b'"')
        assert r.status == 413 and r.json["limit"] == MAX_BODY, r
        r = cluster.request("GET", id, "/kv/x?consistency=strong")
        assert r.status == 400 and "consistency" in r.json["error"]
        assert cluster.request("GET", id, "/kv/absent").status == 404
        assert cluster.request("DELETE", id, "/kv/absent").status == 404
        assert cluster.request("GET", id, "/no/such/page").json["error"] == "Not Found"
        assert cluster.request("PATCH", id, "/kv/x").status == 405
        assert cluster.request("POST", id, "/cas/c", {"old": 1, "when": 2}).status == 400
        assert cluster.request("POST", id, "/members/remove", {"id": "two"}).status == 400

    # CAS: create if absent, swap, mismatch (409), delete.
    r = cluster.request("POST", follower, "/cas/c", {"new": 1})
    assert r.status == 200 and r.json["swapped"] is True
    r = cluster.request("POST", follower, "/cas/c", {"old": 2, "new": 3})
    assert r.status == 409 and r.json["swapped"] is False, r
    assert cluster.request("POST", leader, "/cas/c", {"old": 1, "new": 3}).status == 200
    assert cluster.request("GET", follower, "/kv/c?consistency=linearizable").json == 3
    assert cluster.request("POST", leader, "/cas/c", {"old": 3}).status == 200   # deleted
    assert cluster.request("GET", leader, "/kv/c").status == 404
    # A key with slashes and spaces, and GET /kv?prefix=.
    assert cluster.request("PUT", follower, "/kv/dir/a%20b", {"deep": [1, 2.5, None]}).status == 204
    r = cluster.request("GET", follower, "/kv?prefix=dir/&consistency=linearizable")
    assert r.json == {"dir/a b": {"deep": [1, 2.5, None]}}
    assert cluster.request("DELETE", leader, "/kv/dir/a%20b").status == 204


@pytest.mark.timeout(60)
def test_503_names_the_leader_when_it_cannot_answer(tmp_path):
    c = ServerCluster(2, tmp_path, extra=("--forward-timeout", "0.3", "--write-timeout", "1"))
    try:
        leader, follower = follower_of(c)
        leader_url = c.url(leader)
        c.procs[leader].pause()                  # SIGSTOP: the follower still names it
        try:
            r = c.request("PUT", follower, "/kv/a", 1)
            assert r.status == 503 and r.json["outcome"] == "unknown", r
            assert r.json["leader"] == {"id": leader, "address": c.peers[leader],
                                        "http": leader_url}
            assert r.headers["X-Raft-Leader"] == leader_url
            # Two voters, one paused: no quorum, no leader.
            wait_until(lambda: c.status(follower)["leader"] is None, 10, 0.05)
            r = c.request("PUT", follower, "/kv/a", 1)
            assert r.status == 503 and r.json["leader"] is None and "quorum" in r.json["error"]
            r = c.request("GET", follower, "/kv/a?consistency=linearizable")
            assert r.status == 503, r
            assert c.request("GET", follower, "/kv/a").status == 404      # local reads still work
        finally:
            c.procs[leader].resume()
        new = c.wait_leader()
        other = next(i for i in c.procs if i != new)
        c.procs[other].pause()                   # the leader loses its quorum
        try:
            r = c.request("PUT", new, "/kv/b", 1)
            assert r.status == 503, r
        finally:
            c.procs[other].resume()
    finally:
        c.close()
