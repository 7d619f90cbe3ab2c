"""Every script in examples/ runs, as a user would run it, on 127.0.0.1."""

import json
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canonical_raft.testing import free_ports, wait_until
from canonical_raft.testing.procs import child_env

TESTS_DIR = Path(__file__).resolve().parent

EXAMPLES = TESTS_DIR.parent / "examples"


def start(procs, script, *args, stdin=subprocess.DEVNULL, log=None):
    p = subprocess.Popen([sys.executable, str(EXAMPLES / script), *map(str, args)],
                         stdin=stdin, stdout=subprocess.PIPE if stdin == subprocess.PIPE else log,
                         stderr=log, env=child_env(TESTS_DIR))
    procs.append(p)
    return p


def tcp_request(port, line, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(line.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


def pipe_request(proc, line, timeout=5.0):
    """One line to the process's stdin, its one-line reply from stdout (bounded)."""
    proc.stdin.write(line.encode() + b"\n")
    proc.stdin.flush()
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError(f"no reply to {line!r} within {timeout} s")
    return proc.stdout.readline().decode().strip()


def peers_arg(addresses):
    return ",".join(f"{i}={a}" for i, a in addresses.items())


def stop_all(procs, timeout=15):
    """SIGTERM every process by its PID; each must exit 0 on its own."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return [p.wait(timeout=timeout) for p in procs]


@pytest.mark.timeout(90)
def test_counter(procs):
    p = subprocess.Popen([sys.executable, str(EXAMPLES / "counter.py"), "--increments", "40"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env(TESTS_DIR))
    procs.append(p)
    out, _ = p.communicate(timeout=60)
    out = out.decode()
    assert p.returncode == 0, out
    assert "OK: all three nodes agree on 820" in out, out
    assert "new leader: node" in out


@pytest.mark.timeout(120)
def test_replicated_dict(procs, tmp_path):
    raft_ports = free_ports(3)
    client_ports = {1: free_ports(1)[0], 2: free_ports(1)[0]}
    addresses = {i: f"127.0.0.1:{raft_ports[i - 1]}" for i in (1, 2, 3)}
    logs = {}
    nodes = {}

    def launch(i):
        args = ["--id", i, "--address", addresses[i], "--peers", peers_arg(addresses),
                "--data-dir", tmp_path / f"data{i}"]
        logs[i] = open(tmp_path / f"node{i}.log", "ab")
        if i in client_ports:  # nodes 1 and 2 on TCP, node 3 on stdin/stdout
            nodes[i] = start(procs, "replicated_dict.py", *args, "--port", client_ports[i],
                             log=logs[i])
        else:
            nodes[i] = start(procs, "replicated_dict.py", *args, stdin=subprocess.PIPE,
                             log=logs[i])

    def ask(i, line):
        if i in client_ports:
            return tcp_request(client_ports[i], line)
        return pipe_request(nodes[i], line)

    def log(i):
        return (tmp_path / f"node{i}.log").read_text()

    def answering(i):
        try:
            return ask(i, "status").startswith("STATUS")
        except OSError:
            return False

    def leader_among(ids):
        def find():
            statuses = {i: ask(i, "status").split() for i in ids}
            leaders = [i for i, s in statuses.items() if s[3] == "LEADER"]
            if len(leaders) == 1 and all(s[5] == str(leaders[0]) for s in statuses.values()):
                return leaders[0]
            return None
        return wait_until(find, 30, interval=0.1, message=f"a leader among {ids}")

    try:
        for i in (1, 2, 3):
            launch(i)
        for i in (1, 2, 3):
            wait_until(lambda: answering(i), 30, interval=0.1, message=f"node {i} to answer")
            assert "new cluster, bootstrapped" in log(i)
        leader = leader_among([1, 2, 3])
        follower = next(i for i in (1, 2, 3) if i != leader)

        assert ask(leader, "set greeting hello replicated world") == "OK"
        assert ask(leader, "set gone soon") == "OK"
        assert ask(leader, "del gone") == "OK"
        assert ask(leader, "del gone") == "MISSING"
        assert ask(follower, "set x 1") == \
            f"ERR not leader; the leader is node {leader} at {addresses[leader]}"
        assert ask(follower, "bogus").startswith("ERR bad command")
        for i in (1, 2, 3):
            wait_until(lambda: ask(i, "get greeting") == "VALUE hello replicated world", 20,
                       message=f"node {i} to apply the write")
            assert ask(i, "keys") == "KEYS greeting"
            assert ask(i, "get gone") == "MISSING"

        # The leader dies without warning; the two others go on.
        nodes[leader].send_signal(signal.SIGKILL)
        nodes[leader].wait(timeout=10)
        survivors = [i for i in (1, 2, 3) if i != leader]
        new_leader = leader_among(survivors)
        assert ask(new_leader, "set after the crash") == "OK"

        # Restarted with the same command line: no bootstrap, state from disk,
        # then the writes it missed from the new leader.
        launch(leader)
        wait_until(lambda: answering(leader), 30, interval=0.1, message="the restarted node")
        assert "restarted from its data" in log(leader)
        wait_until(lambda: ask(leader, "get after") == "VALUE the crash", 20,
                   message="the restarted node to catch up")
        assert ask(leader, "get greeting") == "VALUE hello replicated world"
        assert ask(leader, "keys") == "KEYS after greeting"

        running = [nodes[i] for i in (1, 2, 3)]
        assert stop_all(running) == [0, 0, 0]
        for i in (1, 2, 3):
            assert f"node {i}: closed" in log(i)
    finally:
        for f in logs.values():
            f.close()


@pytest.mark.timeout(120)
def test_asyncio_service(procs, tmp_path):
    raft_ports = free_ports(3)
    client_ports = dict(zip((1, 2, 3), free_ports(3)))
    addresses = {i: f"127.0.0.1:{raft_ports[i - 1]}" for i in (1, 2, 3)}
    logs = {i: open(tmp_path / f"node{i}.log", "wb") for i in (1, 2, 3)}
    try:
        nodes = [start(procs, "asyncio_service.py", "--id", i, "--address", addresses[i],
                       "--peers", peers_arg(addresses), "--data-dir", tmp_path / f"data{i}",
                       "--port", client_ports[i], log=logs[i])
                 for i in (1, 2, 3)]

        def ask(i, line):
            return json.loads(tcp_request(client_ports[i], line))

        def status(i):
            try:
                return ask(i, "STATUS")
            except OSError:
                return None

        def find_leader():
            statuses = [status(i) for i in (1, 2, 3)]
            leaders = [s["id"] for s in statuses if s and s["state"] == "LEADER"]
            if len(leaders) == 1 and all(s and s["leader"] == leaders[0] for s in statuses):
                return leaders[0]
            return None

        leader = wait_until(find_leader, 30, interval=0.1, message="a leader")
        follower = next(i for i in (1, 2, 3) if i != leader)

        assert ask(leader, "SET colour blue") == {"ok": True, "previous": None}
        assert ask(leader, "SET colour dark green") == {"ok": True, "previous": "blue"}
        # A read on the leader follows a barrier: it sees the acknowledged write.
        assert ask(leader, "GET colour") == {"ok": True, "value": "dark green"}
        assert ask(follower, "SET colour red") == \
            {"ok": False, "error": "not leader", "leader": [leader, addresses[leader]]}

        # Many clients at once, each on its own connection, all served by one loop.
        def one_client(n):
            return tcp_request(client_ports[leader], f"SET k{n} v{n}")

        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(one_client, range(64)))
        assert all(json.loads(r) == {"ok": True, "previous": None} for r in replies)
        assert ask(leader, "DEL k0") == {"ok": True, "previous": "v0"}

        for i in (1, 2, 3):
            wait_until(lambda: status(i)["keys"] == 64, 20, message=f"node {i} to catch up")
            assert ask(i, "GET k63") == {"ok": True, "value": "v63"}
            assert ask(i, "GET k0") == {"ok": True, "value": None}
        assert ask(follower, "NONSENSE")["ok"] is False

        started = time.monotonic()
        assert stop_all(nodes) == [0, 0, 0]
        assert time.monotonic() - started < 15
    finally:
        for f in logs.values():
            f.close()
    for i in (1, 2, 3):
        assert f"node {i}: closed" in (tmp_path / f"node{i}.log").read_text()
