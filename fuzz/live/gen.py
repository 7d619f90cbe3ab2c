"""Peer-port inputs for the live fuzzer: seeded and structure-aware.

Input ``i`` of seed ``s`` comes from its own ``random.Random(f"{s}:{i}")``, so
any one input can be made again on its own (``Generator.make(i)``). Families:

    random        random bytes, bare or after an honest handshake
    handshake     truncated, oversized, bad address/protocol/id, doubled
    field         one honest message of each type, one field pushed to 0,
                  1, small, huge, near 2^32/2^63/2^64 or off by a little
    inconsistent  two or three fields pushed, payloads cut or padded,
                  configurations with duplicate ids or addresses, too many
                  change entries
    terms         terms and indexes near 2^63 and 2^64
    capture       real traffic (fuzz/captures/) cut to a window of
                  messages, then byte flips, inserts, deletes, splices,
                  aligned-word and field pushes
    stream        several honest messages with hostile ones among them

Who speaks: the handshake claims a member id (the other nodes, or the
target's own, which it must refuse) or a stranger's (not in the
configuration). Over TLS the
input also picks its credentials: a member's valid certificate, none, one
of another CA, or raw plaintext bytes.

Reflections (REFLECT): libraft 0.22.1 answers a stale AppendEntries or
InstallSnapshot at its current term, to the address the handshake declared,
with fields the sender chose (rejected = its prev_log_index; 0, "success",
for a snapshot) and last_log_index left uninitialized. Sent to a follower
in the leader's name and at the leader's address, a few stale messages make
the real leader take those answers for its follower's: it moves that
follower's next index back and, seen in this fuzzer, never sends it an
entry again (the follower's commit index even drops). By default the
handshakes of member-claimed inputs declare an address no node listens on,
so that answers go nowhere and the strict checks hold; ``reflect=True``
(``--reflect``) declares the members' own addresses, to reproduce it.

Rogue mode (``rogue=True``, ``--rogue``): the member's messages carry the
cluster's current term (or the next) instead, as a hostile member's would
(or anyone's on a plaintext port who claims a member's id). Raft then acts
on them, so terms, leaders and logs may change; the runner checks only that
every node lives, serves and stays bounded. Input i then also depends on
the term when it is made: a failing batch is replayed from its saved bytes.

Stale terms: the fuzz cluster's term is raised above ``STALE_MAX`` before
the first input, and every term field of every message that speaks for a
member (the claim checked on the final bytes: mutations can make one) is
pulled down to a stale 1..STALE_MAX. The firewall lets a well-formed
message from a member through, and raft would act on a current or higher
term in it; a stale one it answers and ignores. So after any batch the
nodes' terms and states must be exactly what they were.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import peerwire as w

STALE_MAX = 3              # the inputs' terms; the captures' are 2 and 3
MIN_CLUSTER_TERM = STALE_MAX + 2
TERM_LIMIT = 1 << 63       # the firewall refuses terms and indexes from here
U64 = (1 << 64) - 1
CAPTURES = sorted((Path(__file__).resolve().parents[1] / "captures").glob("*.bin"))
MAX_INPUT = 64 * 1024      # bytes actually sent in one input

# (name, weight); TLS credentials likewise.
FAMILIES = [("random", 8), ("handshake", 14), ("field", 28), ("inconsistent", 12),
            ("terms", 8), ("capture", 22), ("stream", 8)]
CREDENTIALS = [("member", 60), ("nocert", 15), ("other_ca", 5), ("raw", 20)]
STRANGER_IDS = [0, 4, 5, 99, 1 << 32, (1 << 32) + 1, TERM_LIMIT, U64]

_BIG = [1 << 16, 1 << 20, (1 << 30) - 16, 1 << 30, (1 << 30) + 8, 1 << 31, (1 << 32) - 8,
        1 << 32, (1 << 32) + 8, 1 << 40, 1 << 56, TERM_LIMIT - 8, TERM_LIMIT, U64 - 7, U64]
VALUES = {
    "len": [0, 1, 7, 8, 9, 15, 16, 24, 40, 48, 56, 64, 255, 256, 4096] + _BIG,
    "count": [0, 1, 2, 3, 31, 32, 33, 64, 65, 1023, 1024, 1025, 1 << 16, 1 << 32,
              (1 << 32) + 1, TERM_LIMIT, U64],
    "term": [0, 1, 2, 3, 1 << 31, 1 << 32, 1 << 62, TERM_LIMIT - 2, TERM_LIMIT - 1,
             TERM_LIMIT, TERM_LIMIT + 1, U64 - 1, U64],
    "id": [0, 1, 2, 3, 4, 99, 1 << 32, TERM_LIMIT, U64],
    "flags": [0, 1, 2, 3, 4, 0xFF, 1 << 32, TERM_LIMIT, U64],
    "reserved": [1, 0x80, 0xFF, U64],
    "u8": [0, 1, 2, 3, 4, 5, 6, 7, 0x7F, 0x80, 0xFF],
    "u64": [0, 2, 0x0100000000000001, U64],
}
VALUES["index"] = VALUES["term"]
NEAR_LIMIT = [TERM_LIMIT - 2, TERM_LIMIT - 1, TERM_LIMIT, TERM_LIMIT + 1, U64 - 1, U64]


@dataclass
class Case:
    """One input: bytes for one inbound connection to ``target``."""
    index: int
    family: str
    target: str                    # "leader" or "follower"
    data: bytes
    cuts: list[int] = field(default_factory=list)  # sent in pieces at these offsets
    credentials: Optional[str] = None  # TLS: member, nocert, other_ca, raw; None: plaintext
    cert_id: Optional[int] = None      # the member certificate presented
    member: bool = False           # it speaks for an id the node accepts (terms made stale)
    must_refuse: bool = False      # the node must count a refusal for it


def _choice(rnd: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rnd.choices([n for n, _ in weighted], [wt for _, wt in weighted])[0]


def _push(rnd: random.Random, data: bytearray, at: int, width: int, kind: str) -> None:
    """Set the field at data[at:at+width] to a value its kind makes interesting."""
    if at + width > len(data):
        return
    cur = int.from_bytes(data[at:at + width], "little")
    mask = (1 << (8 * width)) - 1
    if rnd.random() < 0.25:
        v = cur + rnd.choice([-16, -8, -1, 1, 8, 16, cur, -(cur // 2)])
    else:
        v = rnd.choice(VALUES.get(kind, VALUES["u8"] if width == 1 else VALUES["len"]))
        if v > mask:
            v = rnd.choice([mask, mask - 1, v & mask, 1 << (8 * width - 1)])
    data[at:at + width] = (v & mask).to_bytes(width, "little")


def message_fields(data: bytes, handshake: bool = True) -> list[tuple[int, int, str]]:
    """Every field of every framed message of ``data`` (and the handshake's)."""
    out: list[tuple[int, int, str]] = []
    for frame in w.frames(data, handshake):
        if frame[0] == "handshake":
            out += w.handshake_fields()
        else:
            _, start, _, mtype, hlen = frame
            out += w.fields(data, start, mtype, hlen)
    return out


def claim(data: bytes) -> tuple[str, int]:
    """What the handshake at the start of ``data`` claims: ("partial", 0)
    while its id is incomplete (or protocol and id are missing), ("bad", 0)
    for a protocol word other than 1, else ("id", the server id)."""
    if len(data) >= 8 and struct.unpack_from("<Q", data, 0)[0] != 1:
        return "bad", 0
    if len(data) < 16:
        return "partial", 0
    return "id", struct.unpack_from("<Q", data, 8)[0]


def make_stale(rnd: random.Random, data: bytes) -> bytes:
    """Every message's term fields at or above STALE_MAX + 1 and below the
    firewall's limit pulled down to a stale term; those the firewall refuses
    (>= 2^63) are left for it to refuse."""
    out = bytearray(data)
    for at, width, kind in message_fields(data):
        if kind == "term" and width == 8 and at + 8 <= len(out):
            v = int.from_bytes(out[at:at + 8], "little")
            if STALE_MAX < v < TERM_LIMIT:
                out[at:at + 8] = rnd.randint(1, STALE_MAX).to_bytes(8, "little")
    return bytes(out)


def make_current(rnd: random.Random, data: bytes, term: int) -> bytes:
    """Rogue mode: each message's own term (its first header field, when the
    firewall would take it) set to ``term`` or ``term + 1``, so that raft
    acts on it; its other terms stay below."""
    out = bytearray(data)
    for frame in w.frames(data):
        if frame[0] == "message" and frame[1] + 24 <= len(out):
            at = frame[1] + 16
            if int.from_bytes(out[at:at + 8], "little") < TERM_LIMIT:
                out[at:at + 8] = (term + rnd.choice([0, 0, 1])).to_bytes(8, "little")
    return bytes(out)


class Generator:
    """Inputs for a cluster whose members are ``servers`` (id -> address);
    ``ids`` maps the targets ("leader", "follower") to node ids."""

    def __init__(self, seed: int, servers: dict[int, str], ids: dict[str, int],
                 tls: bool = False, reflect: bool = False, rogue: bool = False) -> None:
        self.seed = seed
        self.reflect = reflect
        self.rogue = rogue
        self.term = MIN_CLUSTER_TERM   # rogue mode: the cluster's term (the runner sets it)
        self.servers = dict(servers)
        self.ids = dict(ids)
        self.tls = tls
        self.captures = [p.read_bytes() for p in CAPTURES]
        # Each capture's message boundaries, once.
        self.frames = [[(s, e) for kind, s, e, *_ in w.frames(c) if kind == "message"]
                       for c in self.captures]

    # -- one input ------------------------------------------------------------

    def make(self, index: int) -> Case:
        rnd = random.Random(f"{self.seed}:{index}")
        target = rnd.choice(["leader", "follower"])
        case = Case(index, _choice(rnd, FAMILIES), target, b"")
        # The ids the target lets speak: the configuration's but its own.
        accept = set(self.servers) - {self.ids[target]}
        if self.tls:
            case.credentials = _choice(rnd, CREDENTIALS)
            if case.credentials == "member":
                case.cert_id = rnd.choice(sorted(self.servers))
                accept &= {case.cert_id}
        speaker = self._speaker(rnd, target, case.cert_id)
        data = getattr(self, "_" + case.family)(rnd, speaker)[:MAX_INPUT]
        kind, claimed = claim(data)
        case.member = kind == "id" and claimed in accept and case.credentials in (None, "member")
        if case.member:
            data = make_current(rnd, data, self.term) if self.rogue else make_stale(rnd, data)
        case.data = data
        case.must_refuse = self._must_refuse(case, kind)
        if len(data) > 1 and rnd.random() < 0.15:
            case.cuts = sorted({rnd.randrange(1, len(data))
                                for _ in range(rnd.randint(1, 6))} | {rnd.randint(1, 3)})
            case.cuts = [c for c in case.cuts if c < len(data)]
        return case

    def _must_refuse(self, case: Case, kind: str) -> bool:
        """Whether the node is bound to count a refusal: anything that is not
        a member's stream and has bytes (a handshake cut short included) on
        the plaintext port; over TLS, every connection without a member's
        certificate, and a member's that claims another id."""
        if case.member:
            return False
        if case.credentials is None:
            return len(case.data) > 0
        if case.credentials in ("nocert", "other_ca"):
            return True
        if case.credentials == "raw":
            return len(case.data) >= 8
        return kind != "partial"

    def _speaker(self, rnd: random.Random, target: str, cert_id: Optional[int]) -> int:
        """The id the handshake claims: mostly a member (the target's own now
        and then), else a stranger's."""
        if cert_id is not None and rnd.random() < 0.85:
            return cert_id
        r = rnd.random()
        own = self.ids[target]
        if r < 0.6:
            return rnd.choice([i for i in self.servers if i != own])
        if r < 0.7:
            return own
        return rnd.choice(STRANGER_IDS + [rnd.randrange(4, 1 << 64)])

    def _address(self, rnd: random.Random, speaker: int) -> str:
        """The address a handshake declares: libraft answers a message at
        that address (its current term in the answer). Only with
        ``reflect`` is it a member's own (see REFLECT)."""
        real = rnd.random() < 0.8
        if self.reflect and real and speaker in self.servers:
            return self.servers[speaker]
        address = rnd.choice(["127.0.0.1:1", "127.0.0.1:%d" % rnd.randrange(1024, 65536),
                              "localhost:9", "[::1]:7001", "x" * rnd.randint(1, 40) + ":1"])
        return "127.0.0.1:1" if address in self.servers.values() else address

    def _handshake_bytes(self, rnd: random.Random, speaker: int) -> bytes:
        return w.handshake(speaker, self._address(rnd, speaker))

    # -- honest messages (stale terms) ------------------------------------------

    def _conf(self, rnd: random.Random) -> bytes:
        ids = rnd.sample(range(1, 8), rnd.randint(1, 4))
        return w.configuration([(i, self.servers.get(i, "127.0.0.1:%d" % (9000 + i)),
                                 rnd.choice([w.VOTER, w.VOTER, w.STANDBY, w.SPARE]))
                                for i in ids])

    def honest(self, rnd: random.Random, speaker: int, mtype: Optional[int] = None) -> bytes:
        """One well-formed message of ``mtype`` (1..6, else random) at a stale term."""
        mtype = mtype or rnd.choice([1, 1, 2, 3, 4, 5, 6])
        term = rnd.randint(1, STALE_MAX)
        index = rnd.choice([0, rnd.randint(1, 64)])
        lterm = 0 if index == 0 else rnd.randint(1, term)
        if mtype == 1:
            entries = []
            eterm = max(lterm, 1)
            for _ in range(rnd.choice([0, 0, 1, 2, 3, 5])):
                etype = rnd.choice([w.COMMAND, w.COMMAND, w.BARRIER, w.CHANGE])
                if etype == w.COMMAND:
                    data = b"CRFT" + rnd.randbytes(8 * rnd.randint(1, 32) - 4)
                elif etype == w.BARRIER:
                    data = b"\0" * 8
                else:
                    data = self._conf(rnd)
                eterm = rnd.randint(eterm, term)
                entries.append((eterm, etype, data))
            return w.append_entries_typed(term, index, lterm, rnd.randint(0, index + 2), entries)
        if mtype == 2:
            return w.append_entries_result(term, rnd.choice([0, index]), index,
                                           rnd.choice([0, 1]), rnd.randrange(1 << 16))
        if mtype == 3:
            return w.request_vote(term, speaker, index, lterm, rnd.randint(0, 3))
        if mtype == 4:
            return w.request_vote_result(term, rnd.randint(0, 1), rnd.randint(0, 1),
                                         rnd.choice([0, 1]), rnd.randrange(1 << 16))
        if mtype == 5:
            li = rnd.randint(1, 1000)
            return w.install_snapshot(term, li, rnd.randint(1, term), rnd.randint(1, li),
                                      self._conf(rnd), rnd.randbytes(rnd.choice([0, 8, 100, 4096])))
        return w.timeout_now(term, index, lterm)

    # -- families -------------------------------------------------------------

    def _random(self, rnd: random.Random, speaker: int) -> bytes:
        n = rnd.choice([0, 1, 7, 8, 15, 16, 23, 24, 25, 32, 40, 64, 100, 512, 1024, 4096,
                        rnd.randrange(1, 2048)])
        junk = rnd.randbytes(n)
        if rnd.random() < 0.3:
            return self._handshake_bytes(rnd, speaker) + junk
        return junk

    def _handshake(self, rnd: random.Random, speaker: int) -> bytes:
        hs = bytearray(self._handshake_bytes(rnd, speaker))
        tail = self.honest(rnd, speaker) if rnd.random() < 0.5 else b""
        how = rnd.randrange(7)
        if how == 0:                                    # truncated
            return bytes(hs[:rnd.randrange(1, len(hs))])
        if how == 1:                                    # a preamble field pushed
            at, width, kind = rnd.choice(w.handshake_fields())
            _push(rnd, hs, at, width, kind)
            return bytes(hs) + tail
        if how == 2:                                    # oversized: huge length, bytes follow
            alen = rnd.choice([1 << 12, 1 << 16, 1 << 20, 1 << 32, TERM_LIMIT, U64 - 7])
            return struct.pack("<QQQ", 1, speaker, alen) + rnd.randbytes(rnd.choice([0, 64, 8192]))
        if how == 3:                                    # the address's bytes spoiled
            address = bytearray(hs[24:])
            at = rnd.randrange(len(address))
            address[at] = rnd.choice([0, 0x20, 0x0A, 0x7F, 0xFF, ord("a")])
            if rnd.random() < 0.3:
                address[-1] = rnd.randint(1, 255)       # padding not zero / no NUL
            return bytes(hs[:24] + address) + tail
        if how == 4:                                    # an address too long, length consistent
            a = ("h" * rnd.choice([200, 254, 255, 256, 300, 4000])).encode() + b"\0"
            a += b"\0" * (-len(a) % 8)
            return struct.pack("<QQQ", 1, speaker, len(a)) + a + tail
        if how == 5:                                    # two handshakes
            return bytes(hs) + bytes(hs) + tail
        return bytes(hs[:24]) + b"\0" * rnd.choice([8, 16]) + tail  # an empty address

    def _field(self, rnd: random.Random, speaker: int) -> bytes:
        msg = bytearray(self.honest(rnd, speaker))
        fs = message_fields(bytes(msg), handshake=False)
        at, width, kind = rnd.choice(fs)
        _push(rnd, msg, at, width, kind)
        return self._around(rnd, speaker, bytes(msg))

    def _inconsistent(self, rnd: random.Random, speaker: int) -> bytes:
        how = rnd.randrange(4)
        if how == 3:
            return self._around(rnd, speaker, self._bad_configurations(rnd))
        msg = bytearray(self.honest(rnd, speaker, rnd.choice([1, 1, 5, 5, 2, 3, 4, 6])))
        if how == 0:                                    # two or three fields at once
            fs = message_fields(bytes(msg), handshake=False)
            for at, width, kind in rnd.sample(fs, min(len(fs), rnd.randint(2, 3))):
                _push(rnd, msg, at, width, kind)
        elif how == 1:                                  # the payload cut or padded
            if rnd.random() < 0.5 and len(msg) > 16:
                del msg[rnd.randrange(16, len(msg)):]
            else:
                msg += rnd.randbytes(rnd.choice([1, 7, 8, 16, 100]))
        else:                                           # header length off, bytes to match
            hlen = struct.unpack_from("<Q", msg, 8)[0]
            new = max(0, hlen + rnd.choice([-16, -8, -1, 1, 8, 16]))
            msg[8:16] = struct.pack("<Q", new)
            if new > hlen:
                msg[16 + hlen:16 + hlen] = b"\0" * (new - hlen)
        return self._around(rnd, speaker, bytes(msg))

    def _bad_configurations(self, rnd: random.Random) -> bytes:
        """Configurations no honest peer sends: a duplicate address or id,
        in a snapshot or a change entry; or more change entries than one
        AppendEntries may carry (FW_CHANGES_MAX, 32)."""
        term = rnd.randint(1, STALE_MAX)
        a, b = "127.0.0.1:%d" % rnd.randrange(1, 65536), "127.0.0.1:9"
        servers = rnd.choice([[(1, a, w.VOTER), (2, a, w.VOTER)],
                              [(1, a, w.VOTER), (1, b, w.VOTER)],
                              [(3, b, w.SPARE), (4, a, w.STANDBY), (5, a, w.VOTER)]])
        conf = w.configuration(servers)
        r = rnd.randrange(3)
        if r == 0:
            return w.install_snapshot(term, 10, term, 10, conf, b"x" * 8)
        if r == 1:
            return w.append_entries_typed(term, 0, 0, 0, [(term, w.CHANGE, conf)])
        good = self._conf(rnd)
        return w.append_entries_typed(term, 0, 0, 0,
                                      [(term, w.CHANGE, good)] * rnd.choice([32, 33, 40]))

    def _terms(self, rnd: random.Random, speaker: int) -> bytes:
        msg = bytearray(self.honest(rnd, speaker))
        fs = [f for f in message_fields(bytes(msg), handshake=False)
              if f[2] in ("term", "index")]
        for at, width, _ in (fs if rnd.random() < 0.3 else [rnd.choice(fs)]):
            msg[at:at + width] = rnd.choice(NEAR_LIMIT).to_bytes(8, "little")
        return self._around(rnd, speaker, bytes(msg))

    def _stream(self, rnd: random.Random, speaker: int) -> bytes:
        msgs = [self.honest(rnd, speaker) for _ in range(rnd.randint(2, 12))]
        for _ in range(rnd.choice([0, 1, 1, 2])):
            at = rnd.randrange(len(msgs))
            bad = bytearray(msgs[at])
            fs = message_fields(bytes(bad), handshake=False)
            if fs:
                _push(rnd, bad, *rnd.choice(fs))
                msgs[at] = bytes(bad)
        return self._handshake_bytes(rnd, speaker) + b"".join(msgs)

    def _around(self, rnd: random.Random, speaker: int, msg: bytes) -> bytes:
        """A handshake, maybe honest messages before and after ``msg``."""
        before = b"".join(self.honest(rnd, speaker) for _ in range(rnd.choice([0, 0, 1, 2])))
        after = b"".join(self.honest(rnd, speaker) for _ in range(rnd.choice([0, 0, 1])))
        return self._handshake_bytes(rnd, speaker) + before + msg + after

    def _capture(self, rnd: random.Random, speaker: int) -> bytes:
        i = rnd.randrange(len(self.captures))
        cap, frames = self.captures[i], self.frames[i]
        a = rnd.randrange(len(frames))
        b = a + 1
        limit = rnd.choice([2048, 16384, MAX_INPUT])
        while b < len(frames) and frames[b][1] - frames[a][0] < limit and rnd.random() < 0.8:
            b += 1
        body = bytearray(cap[frames[a][0]:frames[b - 1][1]])
        hs = self._handshake_bytes(rnd, speaker) if rnd.random() < 0.95 else b""
        data = bytearray(hs) + body
        for _ in range(rnd.choice([1, 1, 2, 3, 5, 8])):
            self._mutate(rnd, data, len(hs))
        return bytes(data)

    def _mutate(self, rnd: random.Random, data: bytearray, body: int) -> None:
        """One mutation of a captured stream (``body``: where the messages start)."""
        if not data:
            return
        n = len(data)
        how = rnd.randrange(9)
        at = rnd.randrange(n)
        if how == 0:
            data[at] ^= 1 << rnd.randrange(8)
        elif how == 1:
            data[at] = rnd.choice([0, 1, 0x7F, 0x80, 0xFF, rnd.randrange(256)])
        elif how == 2:
            data[at:at] = rnd.randbytes(rnd.randint(1, 16))
        elif how == 3:
            del data[at:at + rnd.randint(1, 64)]
        elif how == 4:                                  # a range repeated
            k = rnd.randint(1, 256)
            data[at:at] = data[at:at + k]
        elif how == 5:                                  # spliced from another capture
            other = rnd.choice(self.captures)
            s = rnd.randrange(len(other))
            data[at:] = other[s:s + rnd.randint(16, 4096)] + data[at:][:rnd.randint(0, 4096)]
        elif how == 6:                                  # an 8-byte word of a message pushed
            start = body + 8 * rnd.randrange(max(1, (n - body) // 8))
            _push(rnd, data, start, 8, rnd.choice(["len", "count", "term"]))
        elif how == 7:                                  # a field, structure-aware
            fs = message_fields(bytes(data))
            if fs:
                _push(rnd, data, *rnd.choice(fs))
        else:                                           # cut short
            del data[at:]
