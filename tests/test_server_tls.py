"""serve --tls-dir: mutual TLS on the peer port and HTTPS on the API with
the cluster's certificates; followers forward over HTTPS; the CLI verifies
the server against the cluster's CA."""

import json
import ssl
import subprocess
import sys

import pytest

pytest.importorskip("aiohttp", reason="the server needs aiohttp: pip install 'canonical_raft[server]'")
pytest.importorskip("cryptography", reason="certificates need cryptography")

from canonical_raft import certs  # noqa: E402
from canonical_raft.testing import wait_until  # noqa: E402
from canonical_raft.testing.servers import ServerCluster, http  # noqa: E402


@pytest.mark.timeout(90)
def test_https_cluster_with_the_cluster_certificates(tmp_path):
    tls_dir = tmp_path / "tls"
    certs.init(str(tls_dir))
    for id in (1, 2, 3):
        certs.node(str(tls_dir), id, ["127.0.0.1"])
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    c = ServerCluster(3, tmp_path, tls_dir=tls_dir, context=context)
    try:
        leader = c.wait_leader()
        follower = next(i for i in c.procs if i != leader)
        assert c.url(follower).startswith("https://")
        assert c.status(leader)["leader"]["http"] == c.url(leader)
        # A follower forwards the write to the leader's HTTPS server (verified, with its
        # own certificate), and a linearizable read too.
        assert c.request("PUT", follower, "/kv/secret", {"s": 1}).status == 204
        assert c.request("GET", follower, "/kv/secret?consistency=linearizable").json == {"s": 1}
        # Each server publishes its URL a moment after it starts; then the
        # follower reaches every one over HTTPS for its status.
        wait_until(lambda: all(m["status"] is not None for m in
                               c.request("GET", follower, "/members").json["members"]),
                   10, 0.1, "the follower reaches every member")

        # Plain HTTP to the HTTPS port, or HTTPS without the CA: refused.
        with pytest.raises(OSError):
            http("GET", f"http://{c.procs[leader].http_address}/status", timeout=5)
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            http("GET", c.url(leader) + "/status", timeout=5,
                 context=ssl.create_default_context())

        r = subprocess.run([sys.executable, "-m", "canonical_raft", "members", "--json",
                            "--server", c.procs[follower].http_address, "--tls-dir", str(tls_dir)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        assert json.loads(r.stdout)["leader"] == leader
    finally:
        c.close()
