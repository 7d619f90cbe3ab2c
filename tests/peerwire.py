"""libraft 0.22.1's TCP wire format, written by hand for hostile-input tests
(the layout is documented in canonical_raft/core/firewall.h)."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time

U64 = 2**64 - 1


#: The handshake's protocol word of storage="lmdb" nodes (firewall.h FW_IO_PROTOCOL).
IO_PROTOCOL = 0x0100004F49525243


def handshake(id: int, address: str, protocol: int = 1) -> bytes:
    raw = address.encode() + b"\0"
    raw += b"\0" * (-len(raw) % 8)
    return struct.pack("<QQQ", protocol, id, len(raw)) + raw


def message(type: int, version: int, header: bytes, payload: bytes = b"") -> bytes:
    return struct.pack("<BBBBIQ", type, 0, version, 0, 0, len(header)) + header + payload


def request_vote(term: int, candidate: int, last_index: int = 0, last_term: int = 0,
                 flags: int = 0) -> bytes:
    return message(3, 2, struct.pack("<QQQQQ", term, candidate, last_index, last_term, flags))


def append_entries_huge_count(term: int = 1, n: int = 2**32) -> bytes:
    # A header that holds one descriptor but declares n entries.
    header = struct.pack("<QQQQQ", term, 0, 0, 0, n) + struct.pack("<QBxxxI", term, 1, 8)
    header += struct.pack("<Q", 0)
    return message(1, 0, header, b"\0" * 8)


def install_snapshot_huge_conf(term: int = 1, conf_len: int = 2**40) -> bytes:
    # The header holds 8 bytes of configuration but declares conf_len.
    header = struct.pack("<QQQQQ", term, 10, 1, 10, conf_len) + b"\1" + b"\0" * 7
    header += struct.pack("<QQ", 0, 0)
    return message(5, 0, header)


def send_plain(address: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection, then read until the peer closes
    (returns what it sent back, normally nothing)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            return b""
        return _drain(sock, timeout)


def _drain(sock, timeout: float) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        got += chunk
    return got


def client_context(certfile: str | None, keyfile: str | None, cafile: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile)
    if certfile is not None:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def tls_connect(address: str, ctx: ssl.SSLContext, timeout: float = 5.0) -> ssl.SSLSocket:
    """A TLS connection that the node's pump accepted (its 0x01 byte read);
    ConnectionError if the node refused it."""
    host, port = address.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=timeout)
    sock = ctx.wrap_socket(raw, server_hostname=None)
    try:
        first = sock.recv(1)
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise ConnectionError(f"refused: {exc}") from exc
    if first != b"\x01":
        sock.close()
        raise ConnectionError(f"refused (got {first!r})")
    return sock


def send_tls(address: str, ctx: ssl.SSLContext, data: bytes, timeout: float = 5.0) -> bytes:
    with tls_connect(address, ctx, timeout) as sock:
        try:
            sock.sendall(data)
        except (ssl.SSLError, OSError):
            return b""
        return _drain(sock, timeout)


def count_closed_by_node(socks: list[socket.socket], timeout: float) -> int:
    """How many of ``socks`` the node closed (EOF) within ``timeout`` s in
    all; a reset one was never accepted (the kernel's accept queue overflowed)."""
    deadline = time.monotonic() + timeout
    closed = 0
    for s in socks:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            assert s.recv(1) == b""
            closed += 1
        except ConnectionResetError:
            pass
    return closed


def garbage(n: int = 64, seed: int = 1) -> bytes:
    import random
    rnd = random.Random(seed)
    return bytes(rnd.randrange(256) for _ in range(n))


__all__ = ["U64", "handshake", "message", "request_vote", "append_entries_huge_count",
           "install_snapshot_huge_conf", "send_plain", "client_context", "tls_connect",
           "send_tls", "garbage", "os"]


def append_entries(term: int, prev_index: int, prev_term: int, commit: int,
                   entries: list[tuple[int, bytes]]) -> bytes:
    """An AppendEntries with command entries (term, data), data padded to 8."""
    header = struct.pack("<QQQQQ", term, prev_index, prev_term, commit, len(entries))
    payload = b""
    for eterm, data in entries:
        data += b"\0" * (-len(data) % 8)
        header += struct.pack("<QBxxxI", eterm, 1, len(data))
        payload += data
    header += struct.pack("<Q", 0)
    return message(1, 0, header, payload)
