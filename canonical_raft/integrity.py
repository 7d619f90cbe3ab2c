"""The check of a node's data dir before libraft opens it.

libraft 0.22's uv backend repairs what it cannot read by throwing it away:
an open segment is truncated at its first bad batch whatever its settings
(the acknowledged entries after it are lost, or renumbered), a short
metadata file is deleted, orphaned snapshot halves are deleted, and with
auto-recovery (its default) a damaged closed segment is renamed away. So,
under the data dir's lock and before ``raft_init`` touches anything,
``check()`` reads the files libraft would repair and raises
``CorruptError`` (naming the file, what is wrong, and the remedy) instead.
Closed segments are left to libraft itself, started with auto-recovery
off: it then fails on any damage, and ``start_failure()`` words that.

The one thing a crash legitimately leaves behind is a torn write at the
tail of an open segment. libraft has a single append write in flight and
acknowledges an entry only once its write has completed, so a torn batch
is the last thing written: nothing valid may follow it. At the first batch
of an open segment that does not check (offset X):

- the rest of the file is zeros: the normal end of the segment;
- a valid batch (count 1..max, header CRC, data CRC, inside the file)
  starts at an 8-byte-aligned offset after X, or a later open segment holds
  one: corruption (entries after X were acknowledged);
- the bad batch was written whole (its non-zero bytes reach the end its
  header declares, rounded up to a 512-byte sector, or its count field is
  garbage, or non-zero bytes follow a zero count): corruption;
- otherwise a torn tail: accepted (libraft drops it), logged at WARNING.

A file that ends inside a batch, an open segment smaller than a later one
(they are allocated whole, in order: it was cut short) unless it ends just
after its last batch (finalized, but killed before its rename), or a batch libraft
would reject for a reason other than a checksum, is refused (libraft 0.22 would fail, or
abort the process on a double free).

Two things libraft cannot see are checked against the binding's own
records (core/mark.pxi): the log, or the newest snapshot, must reach the
high-water mark (the last_applied index the node recorded: a newest segment
deleted whole is refused), and the term and vote of the metadata libraft
reads must be one of the two the node recorded before libraft wrote them.

The numbers are computed at C speed (struct, zlib): libraft's CRC-32 is
libiberty's (polynomial 0x04C11DB7, not reflected, no final xor), which is
zlib's reflected CRC of the bit-reversed bytes, bit-reversed.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from dataclasses import dataclass

from . import _raft
from .errors import CORRUPT, IOERR, MALFORMED, CorruptError, RaftError

log = logging.getLogger("canonical_raft")

DISK_FORMAT = 1                          # libraft's UV__DISK_FORMAT
MAX_BATCH_ENTRIES = 8 * 1024 * 1024 // 32  # libraft's bound on a batch's count
ENTRY_TYPES = (1, 2, 3)                  # RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE
METADATA_SIZE = 32
SECTOR = 512                             # a torn write stops at a sector boundary

REMEDY = ("The node refuses to start rather than lose acknowledged entries. If the "
          "other voters hold the data: remove this node from the cluster, wipe its "
          "data dir and add it back (docs/howto/recovery.md); or start it with auto_recovery=True to let libraft discard the log "
          "from the damaged point on.")

_OPEN = re.compile(r"open-(\d+)\Z")
_CLOSED = re.compile(r"(\d{16})-(\d{16})\Z")
_SNAPSHOT = re.compile(r"snapshot-(\d+)-(\d+)-(\d+)(\.meta)?\Z")

_REV = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
_U64 = struct.Struct("<Q")
_PREAMBLE = struct.Struct("<IIQ")        # header CRC, data CRC, entry count
_ENTRY = struct.Struct("<QB3xI")         # term, type, data length


def _rev32(x: int) -> int:
    return int.from_bytes(x.to_bytes(4, "big").translate(_REV), "little")


def crc32(data: bytes, crc: int = 0) -> int:
    """libraft's checksum (byteCrc32) of ``data``, continuing from ``crc``."""
    return _rev32(~zlib.crc32(data.translate(_REV), ~_rev32(crc) & 0xFFFFFFFF) & 0xFFFFFFFF)


def corrupt(path: str, what: str) -> CorruptError:
    return CorruptError(f"{path}: {what}. {REMEDY}", CORRUPT)


# -- segments -----------------------------------------------------------------

class _Segment:
    """One segment file's bytes, with the bit-reversed copy for the CRCs."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            self.buf = f.read()
        self.size = len(self.buf)
        self._rev: memoryview | None = None
        self.nonzero_end = len(self.buf.rstrip(b"\0"))

    def crc(self, start: int, end: int) -> int:
        if self._rev is None:
            self._rev = memoryview(self.buf.translate(_REV))
        return _rev32(~zlib.crc32(self._rev[start:end], 0xFFFFFFFF) & 0xFFFFFFFF)

    def batch(self, off: int) -> tuple[str, int, int, str]:
        """libraft's reading of the batch at ``off``: ("ok", its end, its
        entry count, ""), ("bad", ...) where libraft sees RAFT_CORRUPT (and,
        in an open segment, truncates), ("fail", ...) where it would fail
        otherwise (or abort), with why."""
        buf, size = self.buf, self.size
        if off + _PREAMBLE.size > size:
            return "fail", off, 0, "the file ends inside a batch preamble"
        crc_header, crc_data, n = _PREAMBLE.unpack_from(buf, off)
        if n == 0:
            return "bad", off, 0, "entries count in preamble is zero"
        if n > MAX_BATCH_ENTRIES:
            return "bad", off, n, f"entries count {n} in preamble is too high"
        header_end = off + 16 + 16 * n
        if header_end > size:
            return "fail", off, n, "the file ends inside a batch header"
        if self.crc(off + 8, header_end) != crc_header:
            return "bad", off, n, "header checksum mismatch"
        length = 0
        for _term, kind, size_i in _ENTRY.iter_unpack(buf[off + 16:header_end]):
            if kind not in ENTRY_TYPES:
                return "fail", off, n, f"unknown entry type {kind}"
            length += size_i
        end = header_end + length
        if end > size:
            return "fail", off, n, "the file ends inside a batch's data"
        if self.crc(header_end, end) != crc_data:
            return "bad", off, n, "data checksum mismatch"
        return "ok", end, n, ""

    def declared_end(self, off: int) -> int | None:
        """Where the batch at ``off`` ends by its header (unchecked)."""
        (n,) = _U64.unpack_from(self.buf, off + 8)
        if not 0 < n <= MAX_BATCH_ENTRIES or off + 16 + 16 * n > self.size:
            return None
        lengths = sum(e[2] for e in _ENTRY.iter_unpack(self.buf[off + 16:off + 16 + 16 * n]))
        return int(off + 16 + 16 * n + lengths)

    def valid_batch_after(self, start: int) -> int | None:
        """The first 8-byte-aligned offset >= start where a valid batch
        starts, or None."""
        buf, limit = self.buf, min(self.nonzero_end, self.size - _PREAMBLE.size)
        words = memoryview(buf)[:self.size // 8 * 8].cast("Q")
        for k in range((start + 7) // 8 + 1, limit // 8 + 2):
            # word k is the count field of a batch starting at 8 * (k - 1)
            if k < len(words) and 0 < words[k] <= MAX_BATCH_ENTRIES:
                off = 8 * (k - 1)
                if off + _PREAMBLE.size <= self.size and self.batch(off)[0] == "ok":
                    return off
        return None

    def format(self) -> int | None:
        if self.size < 8:
            return None
        (fmt,) = _U64.unpack_from(self.buf, 0)
        return int(fmt)


@dataclass
class OpenScan:
    """What check() found in one open segment."""

    path: str
    batches: int = 0
    entries: int = 0
    stop: int = 0             # offset of the first batch that did not check
    torn: bool = False        # a torn tail was found at `stop` (libraft drops it)
    torn_entries: int = 0     # entries its header counts (0: unknown)
    empty: bool = False       # nothing written yet (libraft removes it)


def _scan_open(seg: _Segment) -> tuple[OpenScan, str | None, str]:
    """One open segment: its scan, and ("fail"|"bad"|None, why) at its stop."""
    scan = OpenScan(seg.path)
    if seg.size == 0:
        scan.empty = True
        return scan, None, ""
    fmt = seg.format()
    if fmt != DISK_FORMAT:
        if fmt == 0 and seg.nonzero_end <= 8:
            scan.empty = True
            return scan, None, ""
        return scan, "fail", f"unexpected format version {fmt}"
    off = 8
    while off < seg.size:
        state, end, n, why = seg.batch(off)
        if state == "ok":
            scan.batches += 1
            scan.entries += n
            off = end
            continue
        scan.stop = off
        if state == "fail":
            return scan, "fail", f"batch {scan.batches + 1} at byte {off}: {why}"
        if seg.nonzero_end <= off:
            return scan, None, ""          # zeros from here: the segment's end
        return scan, "bad", f"batch {scan.batches + 1} at byte {off}: {why}"
    scan.stop = off
    if scan.batches == 0:
        return scan, "fail", "the file holds no batch"
    return scan, None, ""


def check_open_segments(data_dir: str, names: list[str]) -> list[OpenScan]:
    """The torn-tail rule over the open segments (see the module's doc);
    CorruptError on corruption, the scans otherwise."""
    opens = sorted((int(m.group(1)), name) for name in names
                   if (m := _OPEN.match(name)) is not None)
    segments = [_Segment(os.path.join(data_dir, name)) for _, name in opens]
    scans = []
    for i, seg in enumerate(segments):
        # libraft allocates open segments whole, one after another: one
        # smaller than a later one was cut short (and its entries with it),
        # unless it ends exactly after its last batch: libraft finalizes a
        # segment by truncating it there and then renaming it, and a crash
        # between the two leaves just that.
        scan, state, why = _scan_open(seg)
        finalized = state is None and scan.batches > 0 and scan.stop == seg.size
        bigger = [o for o in segments[i + 1:] if o.size > seg.size]
        if bigger and not finalized:
            raise corrupt(seg.path, f"cut short to {seg.size} bytes (the later open segment "
                          f"{os.path.basename(bigger[0].path)} has {bigger[0].size}: open "
                          "segments are allocated whole)")
        scans.append(scan)
        if state == "fail":
            raise corrupt(seg.path, why)
        if state is None:
            continue
        x = scan.stop
        later = seg.valid_batch_after(x + 8)
        if later is not None:
            raise corrupt(seg.path, f"{why}, yet a valid batch starts at byte {later} "
                          "after it: entries after the damage were acknowledged")
        for other in segments[i + 1:]:
            if other.size >= 8 + _PREAMBLE.size and other.format() == DISK_FORMAT \
                    and other.batch(8)[0] == "ok":
                raise corrupt(seg.path, f"{why}, yet the later open segment "
                              f"{os.path.basename(other.path)} holds entries: entries "
                              "after the damage were acknowledged")
        (count,) = _U64.unpack_from(seg.buf, x + 8)
        declared = seg.declared_end(x)
        written_to = -(-seg.nonzero_end // SECTOR) * SECTOR   # whole sectors written
        if count == 0:
            whole = seg.nonzero_end > x + 8
        elif declared is None:
            whole = True               # a garbage count is not a torn write
        else:
            whole = written_to >= declared
        if whole and count == 0:
            raise corrupt(seg.path, f"{why}, yet non-zero bytes follow it (up to byte "
                          f"{seg.nonzero_end}): damaged, not the end of a write")
        if whole:
            raise corrupt(seg.path, f"{why}, yet the batch was written whole: it is "
                          "damaged, not torn")
        scan.torn = True
        scan.torn_entries = count if declared is not None else 0
    return scans


# -- metadata -------------------------------------------------------------------

@dataclass
class Metadata:
    """One of metadata1/2, as read (unchecked)."""

    path: str
    n: int
    size: int | None = None          # None: missing
    fmt: int = 0
    version: int | None = None       # None: not a whole file
    term: int = 0
    vote: int = 0


def _read_metadata(data_dir: str, n: int) -> Metadata:
    path = os.path.join(data_dir, f"metadata{n}")
    try:
        with open(path, "rb") as f:
            content = f.read(METADATA_SIZE + 1)
    except FileNotFoundError:
        return Metadata(path, n)
    if len(content) != METADATA_SIZE:
        return Metadata(path, n, len(content))
    fmt, version, term, vote = struct.unpack("<4Q", content)
    return Metadata(path, n, METADATA_SIZE, fmt, version, term, vote)


def newest_metadata(data_dir: str) -> Metadata | None:
    """The file libraft takes the term and vote from: the whole one with
    the higher version (None: neither). Unchecked: check_metadata() is."""
    whole = [m for m in (_read_metadata(data_dir, 1), _read_metadata(data_dir, 2))
             if m.version is not None]
    return max(whole, key=lambda m: m.version or 0) if whole else None


def current_metadata(data_dir: str) -> tuple[int, int]:
    """The (term, vote) libraft reads from metadata1/2 ((0, 0): none)."""
    newest = newest_metadata(data_dir)
    return (newest.term, newest.vote) if newest is not None else (0, 0)


def _checked_version(m: Metadata) -> int | None:
    if m.version is None:
        return None
    if m.fmt != DISK_FORMAT:
        raise corrupt(m.path, f"bad format version {m.fmt} (expected {DISK_FORMAT})")
    if m.version == 0:
        raise corrupt(m.path, "version is zero")
    if (1 if m.version % 2 else 2) != m.n:
        raise corrupt(m.path, f"version {m.version} belongs in "
                      f"metadata{1 if m.version % 2 else 2}")
    return m.version


def check_metadata(data_dir: str, has_log: bool) -> None:
    """libraft keeps the term and vote in metadata1/2, written alternately
    (version n in file 1 if n is odd, else 2), each 32 bytes, unchecksummed."""
    m1, m2 = _read_metadata(data_dir, 1), _read_metadata(data_dir, 2)
    v1, v2 = _checked_version(m1), _checked_version(m2)
    for m, other in ((m1, v2), (m2, v1)):
        if m.size is None or m.size == METADATA_SIZE:
            continue
        if m.size > METADATA_SIZE:
            raise corrupt(m.path, f"size {m.size} instead of {METADATA_SIZE}")
        # A short file is what a crash leaves while the file is first made:
        # metadata2 beside version 1, or metadata1 before any log exists.
        if not ((m.n == 2 and other == 1) or (m.n == 1 and other is None and not has_log)):
            raise corrupt(m.path, f"truncated to {m.size} bytes (libraft would delete it "
                          "and forget the term and vote it holds)")
    if v1 is not None and v2 is not None and abs(v1 - v2) != 1:
        raise corrupt(m1.path, f"metadata1 is at version {v1} and metadata2 at {v2}: "
                      "one of them is damaged")
    if v1 is None and v2 is None and has_log:
        raise corrupt(m1.path, "no valid metadata file (term and vote) beside the log")


# -- snapshots ------------------------------------------------------------------

def _check_meta(path: str) -> None:
    with open(path, "rb") as f:
        content = f.read()
    if len(content) < 32:
        raise corrupt(path, f"snapshot metadata truncated to {len(content)} bytes")
    fmt, crc, _conf_index, conf_len = struct.unpack_from("<4Q", content)
    if fmt != DISK_FORMAT:
        raise corrupt(path, f"bad snapshot metadata format {fmt}")
    if conf_len == 0 or 32 + conf_len != len(content):
        raise corrupt(path, f"configuration length {conf_len} does not match the file")
    if crc32(content[16:], 0) != crc & 0xFFFFFFFF:
        raise corrupt(path, "snapshot metadata checksum mismatch")


def check_snapshots(data_dir: str, names: list[str],
                    closed_firsts: list[int]) -> int:
    """Each snapshot's two files (libraft deletes a lone half at raft_init),
    the .meta's checksum, and the newest snapshot's data (the binding's
    header and checksum, core/entry.pxi). The newest one's index (0: none)."""
    halves: dict[tuple[int, int, int], set[str]] = {}
    for name in names:
        m = _SNAPSHOT.match(name)
        if m:
            key = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
            halves.setdefault(key, set()).add("meta" if m.group(4) else "data")
    complete = sorted(k for k, v in halves.items() if v == {"meta", "data"})
    newest = complete[-1] if complete else None
    for key in sorted(halves):
        if halves[key] == {"meta", "data"}:
            continue
        term, index, ts = key
        name = f"snapshot-{term}-{index}-{ts}"
        if newest is not None and key < newest:
            log.warning("%s: a lone half of an old snapshot (libraft removes it)",
                        os.path.join(data_dir, name))
            continue
        path = os.path.join(data_dir, name)
        if halves[key] == {"data"}:
            raise corrupt(path, "snapshot without its .meta file")
        # libraft renames the .meta into place first: a crash before the data
        # file leaves a lone .meta, and the log the snapshot would cover is
        # still there then. If it is not, the data file is what went missing.
        previous = newest[1] if newest is not None else 0
        if closed_firsts and min(closed_firsts) > previous + 1:
            raise corrupt(path + ".meta", "snapshot data file missing, and the log "
                          "entries it covered are gone")
        log.warning("%s.meta: snapshot never completed (a crash while it was written); "
                    "libraft falls back to the one before", path)
    for key in complete:
        _check_meta(os.path.join(data_dir, "snapshot-%d-%d-%d.meta" % key))
    if newest is not None:
        path = os.path.join(data_dir, "snapshot-%d-%d-%d" % newest)
        with open(path, "rb") as f:
            problem = _raft.snapshot_problem(f.read())
        if problem is not None:
            raise corrupt(path, problem)
    return newest[1] if newest is not None else 0


# -- the binding's records (core/mark.pxi) ------------------------------------------

MARK_NAME = _raft.MARK_NAME
VOTE_NAME = _raft.VOTE_NAME
WIPE_WHOLE = ("(a data dir wiped on purpose must be wiped whole, its canonical_raft.* "
              "files too)")


def read_mark(data_dir: str) -> int:
    """The applied index the mark file holds (0: no file); CorruptError if
    it does not check."""
    path = os.path.join(data_dir, MARK_NAME)
    try:
        with open(path, "rb") as f:
            data = f.read(64)
    except FileNotFoundError:
        return 0
    try:
        return int(_raft.mark_decode(data))
    except ValueError as exc:
        raise corrupt(path, f"the high-water mark is damaged ({exc})") from None


def check_mark(data_dir: str, names: list[str], scans: list[OpenScan],
               snapshot_index: int) -> None:
    """The log (or the newest snapshot) must reach the mark: entries up to it
    were applied, so committed, and no legitimate path removes them."""
    mark = read_mark(data_dir)
    closed_ends = [int(m.group(2)) for n in names if (m := _CLOSED.match(n))]
    # Open segments continue the newest closed one; without closed segments,
    # the snapshot (libraft's uvLoadSnapshotAndEntries).
    base = max(closed_ends) if closed_ends else snapshot_index
    log_end = base + sum(scan.entries for scan in scans)
    reach = max(log_end, snapshot_index)
    if mark <= reach:
        return
    snapshot = f", the newest snapshot at {snapshot_index}" if snapshot_index else ""
    raise corrupt(data_dir, f"the log ends at index {log_end}{snapshot}, yet entries up "
                  f"to index {mark} were applied ({MARK_NAME}): log files are missing "
                  f"(entries {reach + 1} to {mark} at least) {WIPE_WHOLE}")


def check_vote(data_dir: str) -> None:
    """libraft's current term and vote must be one of the two the node
    recorded before handing them to libraft (core/mark.pxi)."""
    path = os.path.join(data_dir, VOTE_NAME)
    try:
        with open(path, "rb") as f:
            slots = _raft.vote_decode(f.read(128))
    except FileNotFoundError:
        return
    if not slots:
        raise corrupt(path, "neither of its two slots checks")
    if all(slot == (0, 0) for slot in slots):
        return       # a node that never had a term; bootstrap() writes term 1 unrecorded
    newest = newest_metadata(data_dir)
    have = (newest.term, newest.vote) if newest is not None else (0, 0)
    if have in slots:
        return
    recorded = " or ".join(f"term {t} vote {v}" for t, v in dict.fromkeys(slots))
    if newest is None:
        raise corrupt(data_dir, f"metadata1 and metadata2 are missing, yet the node "
                      f"recorded {recorded} ({VOTE_NAME}) {WIPE_WHOLE}")
    raise corrupt(newest.path, f"term {have[0]} vote {have[1]} (version {newest.version}) "
                  f"is not what the node recorded ({VOTE_NAME}: {recorded}): the term or "
                  "vote is damaged")


# -- the whole dir ----------------------------------------------------------------

def check(data_dir: str) -> list[OpenScan]:
    """Refuse (CorruptError) a data dir libraft would silently repair; log a
    torn tail it will drop. Call with the data dir's lock held, before
    libraft opens the dir."""
    names = sorted(os.listdir(data_dir))
    closed_firsts = [int(m.group(1)) for n in names if (m := _CLOSED.match(n))]
    has_log = bool(closed_firsts) or any(_SNAPSHOT.match(n) for n in names) or any(
        _OPEN.match(n) and os.path.getsize(os.path.join(data_dir, n)) > 0 for n in names)
    check_metadata(data_dir, has_log)
    snapshot_index = check_snapshots(data_dir, names, closed_firsts)
    scans = check_open_segments(data_dir, names)
    check_vote(data_dir)
    check_mark(data_dir, names, scans, snapshot_index)
    for scan in scans:
        if scan.torn:
            what = (f"{scan.torn_entries} entries" if scan.torn_entries
                    else "an unknown number of entries")
            log.warning("%s: torn write at byte %d after a crash (a batch of %s, never "
                        "acknowledged); dropping it, keeping the %d entries before it",
                        scan.path, scan.stop, what, scan.entries)
    return scans


_LOAD_WORDS = ("load closed segment", "load open segment", "short read")


def start_failure(exc: RaftError, data_dir: str) -> RaftError:
    """libraft's failure to open a damaged data dir, as CorruptError with
    the remedy; any other error unchanged."""
    message = str(exc)
    if isinstance(exc, CorruptError) and REMEDY in message:
        return exc
    damaged = exc.code in (CORRUPT, MALFORMED) or (
        exc.code == IOERR and any(w in message for w in _LOAD_WORDS))
    if not damaged:
        return exc
    return CorruptError(f"{data_dir}: {message}. {REMEDY}", CORRUPT)
