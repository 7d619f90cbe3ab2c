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


# -- the forwarding channel (canonical_raft/core/forward_wire.h) ----------------

FORWARD_PROTOCOL = int.from_bytes(b"CRFWD\0\0\1", "little")
FWD_APPLY, FWD_APPLY_REPLY, FWD_READ, FWD_READ_REPLY, FWD_PING, FWD_PONG = range(1, 7)
FWD_RESYNC = 1


def forward_handshake(id: int, address: str) -> bytes:
    """The handshake of a forwarding stream: libraft's, with the second protocol."""
    return struct.pack("<Q", FORWARD_PROTOCOL) + handshake(id, address)[8:]


def forward_frame(type: int, body: bytes, version: int = 1) -> bytes:
    return struct.pack("<BBHIQ", type, version, 0, 0, len(body)) + body


def forward_apply(session: int, first: int, commands: list[bytes], request: int = 1,
                  flags: int = FWD_RESYNC) -> bytes:
    """An APPLY frame: commands framed as a log entry holds them."""
    body = struct.pack("<QQIIQQ", session, first, len(commands), flags, request, 0)
    for c in commands:
        body += struct.pack("<Q", len(c)) + c + b"\0" * (-len(c) % 8)
    return forward_frame(FWD_APPLY, body)


# -- every message type, and a framing walker (the live fuzzer's, fuzz/live/) --

COMMAND, BARRIER, CHANGE = 1, 2, 3         # entry types
STANDBY, VOTER, SPARE = 0, 1, 2            # configuration roles


def request_vote_result(term: int, granted: int = 0, flags: int = 0,
                        features: int = 1, capacity: int = 0) -> bytes:
    return message(4, 2, struct.pack("<QQBBHHH", term, granted, flags, 0, features,
                                     capacity, 0))


def append_entries_result(term: int, rejected: int = 0, last_index: int = 0,
                          features: int = 1, capacity: int = 0) -> bytes:
    return message(2, 2, struct.pack("<QQQHHI", term, rejected, last_index, features,
                                     capacity, 0))


def timeout_now(term: int, last_index: int = 0, last_term: int = 0) -> bytes:
    return message(6, 0, struct.pack("<QQQ", term, last_index, last_term))


def configuration(servers: list[tuple[int, str, int]]) -> bytes:
    """A configuration's encoding: format 1, count, (id, address NUL, role)..., padded to 8."""
    out = b"\1" + struct.pack("<Q", len(servers))
    for sid, address, role in servers:
        out += struct.pack("<Q", sid) + address.encode() + b"\0" + bytes([role])
    return out + b"\0" * (-len(out) % 8)


def append_entries_typed(term: int, prev_index: int, prev_term: int, commit: int,
                         entries: list[tuple[int, int, bytes]]) -> bytes:
    """An AppendEntries of (term, type, data) entries, data sent as given
    (an honest sender pads it to 8)."""
    header = struct.pack("<QQQQQ", term, prev_index, prev_term, commit, len(entries))
    for eterm, etype, data in entries:
        header += struct.pack("<QBxxxI", eterm, etype, len(data))
    header += struct.pack("<Q", 0)
    return message(1, 0, header, b"".join(data for _, _, data in entries))


def install_snapshot(term: int, last_index: int, last_term: int, conf_index: int,
                     conf: bytes, data: bytes) -> bytes:
    header = struct.pack("<QQQQQ", term, last_index, last_term, conf_index, len(conf))
    header += conf + struct.pack("<QQ", len(data), 0)
    return message(5, 0, header, data)


HANDSHAKE_PREAMBLE = 24
PREAMBLE = 16


def frames(data: bytes, handshake: bool = True):
    """Walk a stream as libraft 0.22.1 frames it: yields ("handshake", 0, end)
    and then ("message", start, end, type, header_length) for each message
    whose framing adds up (lengths in the preamble, AppendEntries entry
    descriptors, InstallSnapshot's configuration and data lengths); stops at
    the first one that does not (the firewall drops the stream there or
    earlier). ``end`` may lie past the data for a message cut short."""
    p = 0
    if handshake:
        if len(data) < HANDSHAKE_PREAMBLE:
            return
        alen = struct.unpack_from("<Q", data, 16)[0]
        if alen > 4096:
            return
        p = HANDSHAKE_PREAMBLE + alen
        yield ("handshake", 0, p)
    while p + PREAMBLE <= len(data):
        mtype = data[p]
        hlen = struct.unpack_from("<Q", data, p + 8)[0]
        h = p + PREAMBLE
        if hlen > len(data) - h:
            yield ("message", p, h + hlen, mtype, hlen)
            return
        payload = 0
        if mtype == 1 and hlen >= 48:
            n = struct.unpack_from("<Q", data, h + 32)[0]
            if 48 + 16 * n != hlen:
                return
            payload = sum(struct.unpack_from("<I", data, h + 40 + 16 * i + 12)[0]
                          for i in range(n))
        elif mtype == 5 and hlen >= 56:
            clen = struct.unpack_from("<Q", data, h + 32)[0]
            if 56 + clen != hlen:
                return
            payload = struct.unpack_from("<Q", data, h + 40 + clen)[0]
        end = h + hlen + payload
        yield ("message", p, end, mtype, hlen)
        p = end


# What each field of a header is, by type: (offset in the header, width, kind).
_FIXED = {
    2: [(0, 8, "term"), (8, 8, "index"), (16, 8, "index"), (24, 2, "flags"), (26, 2, "count"),
        (28, 4, "reserved")],
    3: [(0, 8, "term"), (8, 8, "id"), (16, 8, "index"), (24, 8, "term"), (32, 8, "flags")],
    4: [(0, 8, "term"), (8, 8, "flags"), (16, 1, "flags"), (17, 1, "reserved"),
        (18, 2, "flags"), (20, 2, "count"), (22, 2, "reserved")],
    6: [(0, 8, "term"), (8, 8, "index"), (16, 8, "term")],
}


def _conf_fields(data: bytes, at: int, end: int) -> list[tuple[int, int, str]]:
    """The fields of the configuration at data[at:end]: format, count, then
    per server id, address (its first byte and its NUL), role."""
    out = [(at, 1, "u8"), (at + 1, 8, "count")]
    p, n = at + 9, struct.unpack_from("<Q", data, at + 1)[0] if at + 9 <= end else 0
    for _ in range(min(n, 64)):
        if p + 8 > end:
            break
        out.append((p, 8, "id"))
        nul = data.find(b"\0", p + 8, end)
        if nul < 0 or nul + 1 >= end:
            break
        out += [(p + 8, 1, "u8"), (nul, 1, "u8"), (nul + 1, 1, "u8")]
        p = nul + 2
    return out


def fields(data: bytes, start: int, mtype: int, hlen: int) -> list[tuple[int, int, str]]:
    """The fields of the framed message at data[start:] (see frames()), as
    (offset in data, width, kind); kinds: u8 (type, version, roles, ...),
    reserved, len, term, index, id, count, flags."""
    h = start + PREAMBLE
    out = [(start, 1, "u8"), (start + 1, 1, "reserved"), (start + 2, 1, "u8"),
           (start + 3, 1, "reserved"), (start + 4, 4, "reserved"), (start + 8, 8, "len")]
    have = min(hlen, len(data) - h)
    if mtype in _FIXED:
        out += [(h + o, w, k) for o, w, k in _FIXED[mtype] if o + w <= have]
    elif mtype == 1 and have >= 48:
        out += [(h, 8, "term"), (h + 8, 8, "index"), (h + 16, 8, "term"),
                (h + 24, 8, "index"), (h + 32, 8, "count")]
        n = (have - 48) // 16
        payload = h + hlen
        for i in range(n):
            d = h + 40 + 16 * i
            out += [(d, 8, "term"), (d + 8, 1, "u8"), (d + 9, 3, "reserved"), (d + 12, 4, "len")]
            size = struct.unpack_from("<I", data, d + 12)[0]
            if data[d + 8] == CHANGE and payload + size <= len(data):
                out += _conf_fields(data, payload, payload + size)
            payload += size
        out.append((h + hlen - 8, 8, "reserved"))
    elif mtype == 5 and have >= 56:
        clen = struct.unpack_from("<Q", data, h + 32)[0]
        out += [(h, 8, "term"), (h + 8, 8, "index"), (h + 16, 8, "term"),
                (h + 24, 8, "index"), (h + 32, 8, "len")]
        if 56 + clen == hlen:
            out += _conf_fields(data, h + 40, h + 40 + clen)
            out += [(h + 40 + clen, 8, "len"), (h + 48 + clen, 8, "reserved")]
    return out


def handshake_fields() -> list[tuple[int, int, str]]:
    """The handshake's preamble: protocol, server id, address length."""
    return [(0, 8, "u64"), (8, 8, "id"), (16, 8, "len")]
