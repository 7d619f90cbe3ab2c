"""Secure by default: which nodes may run their peer port without TLS.

A node whose address is a loopback address only talks to processes on the
same machine; any other address is reachable from the network, where
libraft's plaintext protocol would take anyone's messages (the firewall
bounds what they can crash, not what they can say). Such a node needs
``tls=raft.TLS(...)``, or ``insecure=True`` to say the network is trusted.
"""

from __future__ import annotations

import ipaddress
import socket

from .types import parse_address

CERTS_HOWTO = (
    "make a cluster CA once with `python -m canonical_raft certs init DIR`, a "
    "certificate per node with `python -m canonical_raft certs node DIR --id N --host HOST`, "
    "and pass tls=raft.TLS.from_dir(DIR, N)")


def is_loopback(host: str) -> bool:
    """True if every address ``host`` names is a loopback address."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addrs = {str(info[4][0]) for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback
                               for a in addrs)


def check(node_id: int, address: str, tls: object, insecure: bool,
          bind: str | None = None) -> None:
    """ValueError unless a node at ``address`` (listening on ``bind`` if
    given) may start as configured: both must be loopback without TLS."""
    if tls is not None or insecure:
        return
    exposed = [a for a in (address, bind) if a is not None
               and not is_loopback(a.rpartition(":")[0])]
    if not exposed:
        return
    raise ValueError(
        f"node {node_id}: {exposed[0]} is not a loopback address and the node has no tls, "
        "so its peer port would accept raft messages from anyone who can reach it. "
        f"Use mutual TLS: {CERTS_HOWTO}; or, on a network you trust, pass insecure=True "
        "to run plaintext")
