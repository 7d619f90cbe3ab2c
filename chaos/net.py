"""Where the node processes live: loopback, or one network namespace each.

Loopback: every node on 127.0.0.1 with its own free port; no partitions.

Netns: a namespace holding a bridge, and one namespace per node with a veth
pair to that bridge; node i is 10.231.0.(10+i):9000, an address that exists
only inside those namespaces. Partitions are iptables rules in the nodes'
own namespaces (INPUT drops by source address), so nothing outside the
namespaces this module creates is ever touched. Namespace names carry the
harness's pid; the ones left behind by a harness that died are removed the
next time (`cleanup_stale`).
"""

import os
import random
import re
import shutil
import socket
import subprocess

SUBNET = "10.231.0"
PORT = 9000
PREFIX = "chaos"
_NAME = re.compile(rf"^{PREFIX}(\d+)x(\d+)-(br|n\d+)$")


def _run(*cmd, check=True, timeout=15):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise NetError(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
    return r


class NetError(Exception):
    pass


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port(rng=random):
    """A port that is free now and that the kernel will not hand out to an
    outgoing connection meanwhile (below the ephemeral range): a node that
    is killed and restarted must get its port back."""
    lo, hi = _ephemeral_range()
    candidates = (range(20000, lo) if lo > 21000 else range(hi + 1, 65536))
    for _ in range(200):
        port = rng.choice(candidates)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:           # fall back to any free port
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Loopback:
    """Every node on 127.0.0.1, one port each (kept across restarts)."""

    name = "loopback"
    partitions = False

    def __init__(self):
        self.ports = {}

    def add_node(self, id):
        if id not in self.ports:
            port = free_port()
            while port in self.ports.values():
                port = free_port()
            self.ports[id] = port

    def address(self, id):
        return f"127.0.0.1:{self.ports[id]}"

    def wrap(self, id, cmd):
        return cmd

    def cleanup(self):
        pass


def netns_available():
    """None if namespaces, veth, bridges and iptables all work here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 iptables)"
    probe = None
    try:
        probe = Netns()
        probe.add_node(1)
        probe.add_node(2)
        probe.block(1, 2)
        probe.heal()
    except (NetError, subprocess.SubprocessError, OSError) as e:
        return str(e)
    finally:
        if probe is not None:
            probe.cleanup()
    return None


def cleanup_stale():
    """Remove the namespaces of harness processes that no longer exist."""
    if shutil.which("ip") is None:
        return []
    r = _run("ip", "netns", "list", check=False)
    removed = []
    names = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    # Node namespaces first, the bridge's last.
    for name in sorted(names, key=lambda n: n.endswith("-br")):
        m = _NAME.match(name)
        if m is None:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            continue            # its harness is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        _run("ip", "netns", "del", name, check=False)
        removed.append(name)
    return removed


class Netns:
    """One namespace per node, a bridge between them; iptables partitions."""

    name = "netns"
    partitions = True
    _serial = 0

    def __init__(self):
        Netns._serial += 1
        self.tag = f"{PREFIX}{os.getpid()}x{Netns._serial}"
        self.bridge_ns = f"{self.tag}-br"
        self.created = []            # namespaces, in creation order
        self.nodes = {}
        self.blocked = set()         # (src, dst): dst drops what src sends
        _run("ip", "netns", "add", self.bridge_ns)
        self.created.append(self.bridge_ns)
        _run("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")

    def ns(self, id):
        return f"{self.tag}-n{id}"

    def ip(self, id):
        if not 1 <= id <= 200:
            raise ValueError(f"node id {id} out of range for {SUBNET}.0/24")
        return f"{SUBNET}.{10 + id}"

    def address(self, id):
        return f"{self.ip(id)}:{PORT}"

    def add_node(self, id):
        if id in self.nodes:
            return
        ns = self.ns(id)
        _run("ip", "netns", "add", ns)
        self.created.append(ns)
        self.nodes[id] = ns
        _run("ip", "link", "add", "eth0", "netns", ns, "type", "veth",
             "peer", "name", f"p{id}", "netns", self.bridge_ns)
        _run("ip", "-n", ns, "addr", "add", f"{self.ip(id)}/24", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        _run("ip", "-n", self.bridge_ns, "link", "set", f"p{id}", "master", "br0")
        _run("ip", "-n", self.bridge_ns, "link", "set", f"p{id}", "up")

    def wrap(self, id, cmd):
        return ["ip", "netns", "exec", self.nodes[id], *cmd]

    # -- partitions -------------------------------------------------------------

    def block(self, src, dst):
        """dst no longer receives what src sends (one way)."""
        if (src, dst) in self.blocked or src == dst:
            return
        _run("ip", "netns", "exec", self.nodes[dst], "iptables", "-w", "5", "-A", "INPUT",
             "-s", self.ip(src), "-j", "DROP")
        self.blocked.add((src, dst))

    def partition(self, groups):
        """No traffic between different groups (lists of ids), both ways."""
        for a in groups:
            for b in groups:
                if a is b:
                    continue
                for src in a:
                    for dst in b:
                        self.block(src, dst)

    def heal(self):
        for id, ns in self.nodes.items():
            _run("ip", "netns", "exec", ns, "iptables", "-w", "5", "-F", "INPUT")
        self.blocked.clear()

    def cleanup(self):
        """Delete every namespace this object created (their veths, rules and
        sockets go with them); the bridge's last."""
        errors = []
        for ns in reversed(self.created):
            r = _run("ip", "netns", "del", ns, check=False)
            if r.returncode != 0 and "No such file" not in r.stderr:
                errors.append(f"{ns}: {r.stderr.strip()}")
        self.created.clear()
        self.nodes.clear()
        if errors:
            raise NetError("; ".join(errors))
