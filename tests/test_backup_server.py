"""snapshot and backup through the admin HTTP endpoints and the CLI against
running servers, and a backup restored (`restore`) into a new cluster of
servers that serves the same keys."""

import json

import pytest

pytest.importorskip("aiohttp", reason="the server needs aiohttp: pip install 'canonical_raft[server]'")

import canonical_raft as raft  # noqa: E402
from canonical_raft.testing import free_ports  # noqa: E402
from canonical_raft.testing import procs as procs_module  # noqa: E402
from canonical_raft.testing.servers import ServerCluster, ServerProc  # noqa: E402
from test_server_admin import cli  # noqa: E402  (python -m canonical_raft, checked)

pytestmark = pytest.mark.timeout(120)


class Restored(ServerCluster):
    """ServerCluster's waits, requests and close, for servers it did not
    start (started on seeded data dirs)."""

    def __init__(self):
        self.context = None
        self.procs = {}


def test_snapshot_backup_and_restore_through_http_and_the_cli(tmp_path):
    (tmp_path / "orig").mkdir()
    c = ServerCluster(3, tmp_path / "orig")
    try:
        leader = c.wait_leader()
        follower = next(i for i in c.procs if i != leader)
        for i in range(30):
            assert c.request("PUT", follower, f"/kv/k{i}", {"n": i}).status == 204
        expected = c.request("GET", leader, "/kv").json
        assert len(expected) == 30

        # POST /snapshot, on a follower, and the CLI's form of it.
        reply = c.request("POST", follower, "/snapshot", {})
        assert reply.status == 200 and reply.json["ok"] and reply.json["id"] == follower
        assert c.status(follower)["snapshot_index"] >= reply.json["index"] > 0
        out = cli("snapshot", "--server", c.procs[leader].http_address).stdout
        assert out.startswith(f"node {leader}: snapshot at index ")
        doc = json.loads(cli("snapshot", "--json", "--server",
                             c.procs[follower].http_address).stdout)
        assert doc["id"] == follower and doc["index"] >= reply.json["index"]

        # GET /backup: the file node.backup() writes, streamed.
        reply = c.request("GET", follower, "/backup", timeout=30)
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "application/octet-stream"
        assert int(reply.headers["X-Raft-Node"]) == follower
        (tmp_path / "http.bak").write_bytes(reply.body)
        info = raft.Node.read_backup(tmp_path / "http.bak")
        assert info.index == int(reply.headers["X-Raft-Backup-Index"])
        assert sorted(s.id for s in info.servers) == [1, 2, 3]

        # The CLI: a download checked before it lands.
        out = cli("backup", str(tmp_path / "cli.bak"), "--server",
                  c.procs[follower].http_address).stdout
        assert out.startswith(f"backup of node {follower} at index ")
        assert raft.Node.read_backup(tmp_path / "cli.bak").index >= info.index
        assert list(tmp_path.glob("*.tmp")) == []
    finally:
        c.close()

    # restore into three new servers (new ports, new dirs), then serve.
    ports = free_ports(6)
    peers = {i: f"127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3)}
    boot = procs_module.format_servers(peers)
    for i in peers:
        out = cli("restore", str(tmp_path / "cli.bak"), "--data-dir", str(tmp_path / f"new{i}"),
                  "--peers", boot).stdout
        assert out.startswith(f"seeded {tmp_path / f'new{i}'} from ")
    checked = json.loads(cli("restore", str(tmp_path / "cli.bak"), "--check", "--json",
                             "--data-dir", "-").stdout)
    assert checked["index"] > 0 and len(checked["servers"]) == 3
    new = Restored()
    try:
        for i in peers:
            new.procs[i] = ServerProc(i, peers[i], f"127.0.0.1:{ports[2 + i]}",
                                      tmp_path / f"new{i}", tmp_path / f"new{i}.log", peers=boot)
        for proc in new.procs.values():
            new.wait_serving(proc)
        lead = new.wait_leader()
        for i in peers:
            assert new.request("GET", i, "/kv?consistency=linearizable").json == expected
        assert new.request("PUT", lead, "/kv/after", {"n": -1}).status == 204
    finally:
        new.close()


def test_a_damaged_backup_is_refused_by_restore(tmp_path):
    (tmp_path / "bad.bak").write_bytes(b"CRBK" + bytes(100))
    r = cli("restore", str(tmp_path / "bad.bak"), "--data-dir", str(tmp_path / "d"), check=False)
    assert r.returncode == 1
    assert "CorruptError" not in r.stderr and str(tmp_path / "bad.bak") in r.stderr
    assert "cannot be restored" in r.stderr
    assert not (tmp_path / "d").exists()
