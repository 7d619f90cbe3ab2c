"""The admin side of running servers: the CLI against them, /metrics
scraped and parsed, and the status page in a real headless browser."""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("aiohttp", reason="the server needs aiohttp: pip install 'canonical_raft[server]'")
parser = pytest.importorskip("prometheus_client.parser",
                             reason="metrics need prometheus_client: pip install 'canonical_raft[server]'")

from canonical_raft.testing import wait_until  # noqa: E402
from canonical_raft.testing.servers import ServerCluster, ServerProc  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ServerCluster(3, tmp_path_factory.mktemp("servers"))
    yield c
    c.close()


def cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "canonical_raft", *args], capture_output=True,
                       text=True, timeout=60)
    if check:
        assert r.returncode == 0, r
    return r


def server_arg(c, id):
    return ("--server", c.procs[id].http_address)


@pytest.mark.timeout(90)
def test_cli_against_the_servers(cluster, tmp_path):
    c = cluster
    leader = c.wait_leader()
    follower = next(i for i in c.procs if i != leader)

    table = cli("members", *server_arg(c, follower)).stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "ADDRESS", "ROLE", "STATE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {f"{leader}*", *(str(i) for i in c.procs if i != leader)}, table
    assert rows[f"{leader}*"][3] == "leader" and rows[str(follower)][3] == "follower"
    doc = json.loads(cli("members", "--json", *server_arg(c, follower)).stdout)
    assert doc["leader"] == leader and len(doc["members"]) == 3
    assert all(m["status"]["term"] >= 1 for m in doc["members"])

    status = cli("status", *server_arg(c, follower)).stdout
    assert "state            follower" in status and f"leader           {leader} (" in status
    assert json.loads(cli("status", "--json", *server_arg(c, leader)).stdout)["state"] == "leader"

    # transfer, through a follower's server: leadership moves to that follower.
    out = cli("transfer", str(follower), *server_arg(c, leader)).stdout
    assert out == f"leader: {follower} at {c.peers[follower]}\n"
    assert c.wait_leader() == follower

    # add a fourth server (started with an empty data dir and no --peers),
    # make it a standby, then remove it: it stops by itself.
    from canonical_raft.testing import free_ports
    peer, http_port = free_ports(2)
    four = ServerProc(4, f"127.0.0.1:{peer}", f"127.0.0.1:{http_port}", tmp_path / "data4",
                      tmp_path / "server4.log")
    try:
        c.wait_serving(four)
        out = cli("add", "4", four.peer, *server_arg(c, leader)).stdout   # leader no more: forwarded
        assert any(line.split()[:3] == ["4", four.peer, "voter"] for line in out.splitlines()), out
        wait_until(lambda: _status(four)["state"] == "follower", 20, 0.05,
                   "the new server to follow")
        out = cli("assign", "4", "standby", *server_arg(c, follower)).stdout
        assert any(line.split()[:3] == ["4", four.peer, "standby"] for line in out.splitlines())
        wait_until(lambda: _member(c, follower, 4).get("http") == four.url, 20, 0.05,
                   "server 4 to publish its URL")
        out = cli("remove", "4", *server_arg(c, follower)).stdout
        assert "standby" not in out and four.peer not in out
        four.proc.wait(20)                           # removed: it stops by itself
        assert four.returncode == 0
    finally:
        four.terminate()

    bad = cli("remove", "99", *server_arg(c, follower), check=False)
    assert bad.returncode == 1 and "HTTP 400" in bad.stderr, bad
    gone = cli("status", "--server", "127.0.0.1:1", check=False)
    assert gone.returncode == 1 and "cannot reach http://127.0.0.1:1" in gone.stderr


def _status(proc):
    from canonical_raft.testing.servers import http
    return http("GET", proc.url + "/status").json


def _member(c, via, id):
    doc = c.request("GET", via, "/members?status=0").json
    return next((m for m in doc["members"] if m["id"] == id), {})


def _families(text):
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def _value(families, name, **labels):
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise KeyError(name, labels)


@pytest.mark.timeout(60)
def test_metrics_scraped_and_parsed(cluster):
    c = cluster
    leader = c.wait_leader()
    follower = next(i for i in c.procs if i != leader)
    for i in range(5):
        assert c.request("PUT", leader, f"/kv/m{i}", "x" * i).status == 204
    r = c.request("GET", leader, "/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    on_leader = _families(r.body.decode())
    status = c.status(leader)
    assert _value(on_leader, "canonical_raft_term") == status["term"]
    assert _value(on_leader, "canonical_raft_applies_total", result="ok") >= 5
    assert _value(on_leader, "canonical_raft_apply_bytes_total") > 0
    assert _value(on_leader, "canonical_raft_apply_latency_seconds_count") >= 5
    assert _value(on_leader, "canonical_raft_state", state="leader") == 1
    assert _value(on_leader, "canonical_raft_leader_changes_total") >= 1
    assert _value(on_leader, "canonical_raft_elections_total") >= 1      # it stood
    assert _value(on_leader, "canonical_raft_snapshots_total", kind="installed") == 0
    assert _value(on_leader, "canonical_raft_node_info", id=str(leader)) == 1
    assert "canonical_raft_refused_connections" in on_leader
    assert on_leader["canonical_raft_apply_latency_seconds"].type == "histogram"

    on_follower = _families(c.request("GET", follower, "/metrics").body.decode())
    assert _value(on_follower, "canonical_raft_state", state="follower") == 1
    assert _value(on_follower, "canonical_raft_leader_id") == leader
    wait_until(lambda: _value(_families(c.request("GET", follower, "/metrics").body.decode()),
                              "canonical_raft_last_applied") >= status["commit_index"], 10)


@pytest.mark.timeout(90)
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `apt-get install -y chromium` "
                    "(sh scripts/install-chromium.sh) to run the status page in a browser")
def test_status_page_in_headless_chromium(cluster, tmp_path):
    c = cluster
    leader = c.wait_leader()
    for i in range(20):
        c.request("PUT", 1 + i % 3, f"/kv/page{i}", i)
    wait_until(lambda: len(c.request("GET", leader, "/status?history=1").json["history"]["time"])
               >= 2, 10, 0.1, "two samples of history")
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run([*base, "--dump-dom", c.url(leader) + "/"], capture_output=True,
                         text=True, timeout=60, env=env).stdout
    assert 'data-loaded="1"' in dom, dom[-2000:]
    for id in c.procs:
        assert f'<tr data-id="{id}"' in dom
    assert f'<tr data-id="{leader}" class="leader">' in dom
    assert dom.count("state-follower") == 2 and dom.count('"text state-leader"') == 1
    assert "3/3 members answering" in dom
    samples = int(dom.split('data-samples="', 1)[1].split('"', 1)[0])
    assert samples >= 2
    shot = tmp_path / "status.png"
    subprocess.run([*base, "--window-size=1100,600", f"--screenshot={shot}",
                    c.url(leader) + "/"], capture_output=True, timeout=60, env=env)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
