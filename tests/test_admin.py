"""canonical_raft.admin: the admin endpoints in the process that embeds the
nodes (a thread and an event loop of their own; close() stops them), and
canonical_raft.metrics counting what it observes."""

import asyncio
import threading

import pytest

pytest.importorskip("aiohttp", reason="admin needs aiohttp: pip install 'canonical_raft[server]'")
parser = pytest.importorskip("prometheus_client.parser",
                             reason="metrics need prometheus_client: pip install 'canonical_raft[server]'")

import canonical_raft as raft  # noqa: E402
from canonical_raft import admin  # noqa: E402
from canonical_raft.metrics import NodeMetrics  # noqa: E402
from canonical_raft.testing import (LocalCluster, RecordingFSM, free_ports, port_is_free,  # noqa: E402
                                    wait_until)
from canonical_raft.testing.servers import http  # noqa: E402


def samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in parser.text_string_to_metric_families(text) for s in f.samples}


def admin_threads():
    return [t for t in threading.enumerate() if t.name.startswith("raft-admin-")]


@pytest.mark.timeout(60)
def test_admin_serve_in_process(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path) as cluster:
        servers = {n.id: admin.serve(n, "127.0.0.1:0") for n in cluster.nodes}
        try:
            leader = cluster.leader()
            follower = next(n for n in cluster.nodes if n is not leader)
            lead_admin, follow_admin = servers[leader.id], servers[follower.id]
            doc = http("GET", follow_admin.url + "/status").json
            assert doc["state"] == "follower" and doc["leader"]["id"] == leader.id
            assert doc["http"] == follow_admin.url
            assert doc["commit_index"] == follower.stats()["commit_index"]
            # Without peers, the other members' status is unknown, and a
            # follower cannot forward a change: 503 naming the leader.
            members = http("GET", follow_admin.url + "/members").json["members"]
            assert [m["status"] is not None for m in members] == \
                [m["id"] == follower.id for m in members]
            r = http("POST", follow_admin.url + "/members/transfer", {"id": follower.id})
            assert r.status == 503 and r.json["leader"]["id"] == leader.id, r
            # The leader runs it.
            r = http("POST", lead_admin.url + "/members/transfer", {"id": follower.id})
            assert r.status == 200 and r.json["leader"]["id"] == follower.id, r
            assert http("GET", lead_admin.url + "/members/nothing").status == 404
            metrics = samples(http("GET", follow_admin.url + "/metrics").body.decode())
            assert metrics[("canonical_raft_term", ())] == follower.stats()["term"]
            assert http("GET", lead_admin.url + "/").body.startswith(b"<!doctype html>")
        finally:
            for server in servers.values():
                server.close()
        assert not admin_threads()
        for server in servers.values():
            assert port_is_free(server.port)
            server.close()                               # idempotent


@pytest.mark.timeout(60)
def test_admin_with_peers_forwards_and_shows_everyone(tmp_path):
    with LocalCluster(3, RecordingFSM, tmp_path) as cluster:
        ports = dict(zip((n.id for n in cluster.nodes), free_ports(3)))
        urls = {id: f"http://127.0.0.1:{port}" for id, port in ports.items()}
        servers = {}
        try:
            for n in cluster.nodes:
                servers[n.id] = admin.serve(n, f"127.0.0.1:{ports[n.id]}", peers=urls)
            leader = cluster.leader()
            follower = next(n for n in cluster.nodes if n is not leader)
            members = http("GET", servers[follower.id].url + "/members").json["members"]
            assert all(m["status"]["id"] == m["id"] for m in members), members
            r = http("POST", servers[follower.id].url + "/members/transfer", {"id": follower.id})
            assert r.status == 200 and r.json["leader"]["id"] == follower.id, r
        finally:
            for server in servers.values():
                server.close()


@pytest.mark.timeout(60)
def test_admin_app_mounts_in_a_users_aiohttp_app(tmp_path):
    from aiohttp import ClientSession, web
    with LocalCluster(1, RecordingFSM, tmp_path) as cluster:
        node = cluster.nodes[0]

        async def main():
            app = web.Application()
            app.add_subapp("/raft/", admin.app(node))
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            try:
                async with ClientSession() as session:
                    async with session.get(f"http://127.0.0.1:{port}/raft/status") as resp:
                        return resp.status, await resp.json()
            finally:
                await runner.cleanup()

        status, doc = asyncio.run(main())
        assert status == 200 and doc["state"] == "leader" and doc["id"] == node.id


@pytest.mark.timeout(60)
def test_node_metrics_count_elections_leader_changes_and_applies(tmp_path):
    metrics = {}
    with LocalCluster(3, RecordingFSM, tmp_path) as cluster:
        for n in cluster.nodes:
            metrics[n.id] = NodeMetrics(n)
        first = cluster.leader()
        meter = metrics[first.id].meter(first)
        for _ in range(3):
            meter.apply(b"abcd").result(10)
        assert meter.barrier is not None                # the rest passes through to the node
        cluster.kill(first.id)
        second = cluster.leader()
        wait_until(lambda: metrics[second.id].registry.get_sample_value(
            "canonical_raft_elections_total") >= 1, 10)
        text = metrics[second.id].render()[0].decode()
        got = samples(text)
        assert got[("canonical_raft_elections_total", ())] >= 1
        assert got[("canonical_raft_leader_changes_total", ())] >= 2      # the first, then it
        assert got[("canonical_raft_state", (("state", "leader"),))] == 1
        on_first = samples(metrics[first.id].render()[0].decode())
        assert on_first[("canonical_raft_applies_total", (("result", "ok"),))] == 3
        assert on_first[("canonical_raft_apply_bytes_total", ())] == 12
        assert on_first[("canonical_raft_apply_latency_seconds_count", ())] == 3
        follower = next(n for n in cluster.running if n is not second)
        failed = metrics[follower.id].meter(follower).apply(b"x")        # NotLeaderError
        with pytest.raises(raft.NotLeaderError):
            failed.result(10)
        wait_until(lambda: metrics[follower.id].registry.get_sample_value(
            "canonical_raft_applies_total", {"result": "error"}) == 1, 5)
        for m in metrics.values():
            m.close()
