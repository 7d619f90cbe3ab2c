"""Servers, roles and states: the plain values of the public API."""

from __future__ import annotations

import enum
import socket
from typing import Any, NamedTuple

from ._raft import ROLES, STATES


class Role(enum.IntEnum):
    """A server's role in the configuration (libraft's codes, from raft.h)."""

    STANDBY = ROLES["STANDBY"]  # replicates the log, does not vote
    VOTER = ROLES["VOTER"]  # replicates the log and votes
    SPARE = ROLES["SPARE"]  # neither replicates nor votes


class State(enum.IntEnum):
    """A node's raft state (libraft's codes, from raft.h)."""

    UNAVAILABLE = STATES["UNAVAILABLE"]
    FOLLOWER = STATES["FOLLOWER"]
    CANDIDATE = STATES["CANDIDATE"]
    LEADER = STATES["LEADER"]


class Server(NamedTuple):
    """A member of the cluster: id (>= 1), "host:port" address and role."""

    id: int
    address: str
    role: Role = Role.VOTER


def parse_address(address: str, *, listen: bool = False) -> str:
    """Check a "host:port" address and return it; ValueError if malformed.
    ``listen``: an address to bind, where 0.0.0.0 (every interface) is fine."""
    if not isinstance(address, str):
        what = "bind" if listen else "address"
        raise TypeError(f"{what} must be a str 'host:port', not {type(address).__name__}")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address must be 'host:port' with a port in 1..65535, got {address!r}")
    if len(address.encode()) > 255 or any(c.isspace() for c in address):
        raise ValueError(f"address {address!r} is too long or contains white space")
    if ":" in host or host.startswith("["):
        raise ValueError(f"address {address!r}: IPv6 is not supported (libraft 0.22's TCP "
                         "transport is IPv4 only); use an IPv4 address or a host name")
    if not listen and _is_unspecified(host):
        raise ValueError(f"address {address!r} is not one that other nodes can reach: give "
                         "this machine's own address (the others connect to it); to listen "
                         "on every interface, pass bind='0.0.0.0:PORT' besides it")
    return address


def _is_unspecified(host: str) -> bool:
    # inet_aton, as the resolver reads numbers: "0" and "0.0" are 0.0.0.0 too.
    try:
        return socket.inet_aton(host) == bytes(4)
    except OSError:
        return False        # a host name


def as_server(item: Server | tuple[Any, ...]) -> Server:
    """Turn a Server or an (id, address[, role]) tuple into a checked Server."""
    if isinstance(item, Server):
        server = item
    else:
        try:
            server = Server(*item)
        except TypeError:
            raise TypeError(f"expected a raft.Server or an (id, address) tuple, got {item!r}") from None
    if isinstance(server.id, bool) or not isinstance(server.id, int):
        raise TypeError(f"server id must be an int, got {server.id!r}")
    if not 1 <= server.id < 2**64:
        raise ValueError(f"server id must be >= 1, got {server.id}")
    parse_address(server.address)
    return Server(server.id, server.address, Role(server.role))
