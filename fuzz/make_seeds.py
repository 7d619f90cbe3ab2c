#!/usr/bin/env python3
"""Write a seed corpus for fuzz/firewall_fuzz.c: honest libraft 0.22.1 streams.

Each seed is one control byte (0: the stream starts with a handshake, 1: it
starts at a message; the other bits seed the harness's chunking) followed by
the bytes of one inbound connection, encoded as a libraft 0.22.1 peer sends
them (cowsql/raft v0.22.1 src/uv_encoding.c, uv_tcp_connect.c,
configuration.c). Captured real streams (fuzz/captures/*.bin) are added too,
each behind a control byte of 0.

    python3 fuzz/make_seeds.py [OUTDIR]      (default: fuzz/corpus)

Capturing real traffic (Linux, strace, the extension built in place):

    .venv/bin/python fuzz/make_seeds.py --capture   (writes fuzz/captures/)

runs a loopback cluster of this binding (elections, appends, a membership
change, a leadership transfer, a snapshot install) under `strace -ff`, and
rebuilds from the read() calls on every accepted socket the exact byte stream
each node received on each inbound connection.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

AE, AER, RV, RVR, IS, TN = 1, 2, 3, 4, 5, 6
COMMAND, BARRIER, CHANGE = 1, 2, 3
STANDBY, VOTER, SPARE = 0, 1, 2


def pad8(n: int) -> int:
    return (n + 7) & ~7


def u64(*vs: int) -> bytes:
    return struct.pack("<%dQ" % len(vs), *vs)


def handshake(server_id: int, address: str) -> bytes:
    a = address.encode() + b"\0"
    return u64(1, server_id, pad8(len(a))) + a + b"\0" * (pad8(len(a)) - len(a))


def preamble(mtype: int, version: int, hlen: int) -> bytes:
    return bytes([mtype, 0, version, 0, 0, 0, 0, 0]) + u64(hlen)


def request_vote(term: int, cand: int, lli: int, llt: int,
                 disrupt: bool = False, pre_vote: bool = False) -> bytes:
    return preamble(RV, 2, 40) + u64(term, cand, lli, llt,
                                     int(disrupt) | int(pre_vote) << 1)


def request_vote_result(term: int, granted: bool, pre_vote: bool = False,
                        capacity: int = 0) -> bytes:
    return (preamble(RVR, 2, 24) + u64(term, int(granted))
            + struct.pack("<BBHHH", int(pre_vote), 0, 1, capacity, 0))


def append_entries_result(term: int, rejected: int, lli: int,
                          capacity: int = 0) -> bytes:
    return (preamble(AER, 2, 32) + u64(term, rejected, lli)
            + struct.pack("<HHI", 1, capacity, 0))


def timeout_now(term: int, lli: int, llt: int) -> bytes:
    return preamble(TN, 0, 24) + u64(term, lli, llt)


def configuration(servers: list[tuple[int, str, int]]) -> bytes:
    out = bytes([1]) + u64(len(servers))
    for sid, addr, role in servers:
        out += u64(sid) + addr.encode() + b"\0" + bytes([role])
    return out + b"\0" * (pad8(len(out)) - len(out))


def append_entries(term: int, pli: int, plt: int, commit: int,
                   entries: list[tuple[int, int, bytes]]) -> bytes:
    hdr = u64(term, pli, plt, commit, len(entries))
    for eterm, etype, data in entries:
        hdr += u64(eterm) + struct.pack("<BBBBI", etype, 0, 0, 0, len(data))
    hdr += u64(0)
    return (preamble(AE, 0, len(hdr)) + hdr
            + b"".join(data for _, _, data in entries))


def install_snapshot(term: int, li: int, lt: int, ci: int,
                     servers: list[tuple[int, str, int]], data: bytes) -> bytes:
    conf = configuration(servers)
    hdr = u64(term, li, lt, ci, len(conf)) + conf + u64(len(data), 0)
    return preamble(IS, 0, len(hdr)) + hdr + data


def command(n: int, tag: int) -> bytes:
    """An entry of this binding's shape: a multiple of 8 bytes."""
    body = b"CRFT" + bytes([tag % 256]) * (pad8(n) - 4)
    return body[:pad8(max(n, 8))]


THREE = [(1, "127.0.0.1:9001", VOTER), (2, "127.0.0.1:9002", VOTER),
         (3, "127.0.0.1:9003", STANDBY)]


def seeds() -> dict[str, bytes]:
    hs = handshake(2, "127.0.0.1:9002")
    conf = configuration(THREE)
    s: dict[str, bytes] = {}
    s["handshake"] = b"\0" + hs
    s["request-vote"] = b"\0" + hs + request_vote(5, 2, 10, 4)
    s["pre-vote"] = b"\2" + hs + request_vote(6, 2, 10, 4, True, True)
    s["request-vote-result"] = b"\4" + hs + request_vote_result(5, True, False, 300)
    s["heartbeat"] = b"\6" + hs + append_entries(3, 7, 2, 7, [])
    s["append-entries"] = b"\x08" + hs + append_entries(
        3, 7, 2, 7, [(3, COMMAND, command(24, 1)), (3, BARRIER, b"\0" * 8),
                     (3, COMMAND, command(200, 2))])
    s["append-entries-change"] = b"\x0a" + hs + append_entries(
        1, 0, 0, 0, [(1, CHANGE, conf), (1, COMMAND, command(40, 3))])
    s["append-entries-result"] = b"\x0c" + hs + append_entries_result(3, 0, 10, 2000)
    s["install-snapshot"] = b"\x0e" + hs + install_snapshot(
        4, 100, 3, 90, THREE, bytes(range(256)) * 4)
    s["timeout-now"] = b"\x10" + hs + timeout_now(4, 100, 4)
    s["no-handshake-mixed"] = b"\x13" + (
        append_entries(5, 10, 4, 9, [(5, COMMAND, command(16, 4))])
        + append_entries_result(5, 0, 11) + request_vote(6, 7, 11, 5)
        + request_vote_result(6, False) + timeout_now(6, 11, 5))
    mixed = hs
    for t in range(2, 8):
        mixed += append_entries(t, 10, 1, 10, [(t, COMMAND, command(8 * t, t)),
                                               (t, CHANGE, conf)][: t % 3])
        mixed += request_vote(t, 2, 10, 1, pre_vote=bool(t & 1))
        mixed += install_snapshot(t, 50, 1, 40, THREE[:2], b"x" * (t * 8))
    s["mixed"] = b"\x15" + mixed
    return s


WORKLOAD = r"""
import sys, tempfile
from canonical_raft import Node
from canonical_raft.testing import FAST_TIMINGS, LocalCluster, RecordingFSM, free_ports, wait_until

with tempfile.TemporaryDirectory() as d:
    with LocalCluster(3, RecordingFSM, d, snapshot_threshold=32, snapshot_trailing=4) as c:
        leader = c.leader()
        for i in range(40):
            c.apply(b"command-%d" % i)
        leader.barrier().result(10)
        port = free_ports(1)[0]
        n4 = Node(4, "127.0.0.1:%d" % port, d + "/node4", RecordingFSM(), **FAST_TIMINGS)
        try:
            n4.start()
            leader.add(4, n4.address).result(20)
            c.apply(b"after-add")
            leader.remove(4).result(20)
        finally:
            n4.close()
        other = next(n for n in c.running if n is not leader)
        print("transfer:", leader.transfer(other.id).result(20), file=sys.stderr)
        leader = c.leader()
        victim = next(n for n in c.running if n is not leader)
        c.kill(victim.id)
        for i in range(100):
            c.apply(b"while-down-%d" % i)
        c.restart(victim.id)
        c.wait_converged(timeout=30)
        print("done", file=sys.stderr)
"""

_CALL = re.compile(r'^(?:\d+ )?(\w+)\((\d+)(.*)\) += (-?\d+)')
_HEX = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def capture(out: Path) -> int:
    """Run WORKLOAD under strace; write each inbound connection's stream."""
    if shutil.which("strace") is None:
        print("strace is missing", file=sys.stderr)
        return 1
    root = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "trace")
        subprocess.run(
            ["strace", "-ff", "-qq", "-e", "trace=accept,accept4,read,close",
             "-e", "signal=none", "-xx", "-s", str(1 << 26), "-o", prefix,
             sys.executable, "-c", WORKLOAD],
            cwd=root, check=True, timeout=600)
        streams: list[bytes] = []
        for trace in sorted(Path(tmp).glob("trace.*")):
            live: dict[int, bytearray] = {}
            for line in trace.read_text(errors="replace").splitlines():
                m = _CALL.match(line)
                if not m:
                    continue
                call, fd, rest, ret = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
                if call in ("accept", "accept4") and ret >= 0:
                    live[ret] = bytearray()
                elif call == "read" and fd in live and ret > 0:
                    h = _HEX.search(rest)
                    if h is None:
                        raise RuntimeError("unparsed read: " + line[:200])
                    data = bytes.fromhex(h.group(1).replace("\\x", ""))
                    assert len(data) == ret, (len(data), ret)
                    live[fd] += data
                elif call == "close" and fd in live:
                    streams.append(bytes(live.pop(fd)))
            streams.extend(bytes(b) for b in live.values())
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.bin"):
        old.unlink()
    kept = [s for s in streams if len(s) > 24]
    for i, data in enumerate(kept):
        (out / f"stream-{i:02d}.bin").write_bytes(data)
    print(f"wrote {len(kept)} captured streams "
          f"({sum(map(len, kept))} bytes) to {out}")
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--capture"]:
        return capture(Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "captures")
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus"
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, data in seeds().items():
        (out / f"seed-{name}.bin").write_bytes(data)
        n += 1
    for cap in sorted((HERE / "captures").glob("*.bin")):
        (out / f"capture-{cap.stem}.bin").write_bytes(b"\0" + cap.read_bytes())
        n += 1
    print(f"wrote {n} seeds to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
