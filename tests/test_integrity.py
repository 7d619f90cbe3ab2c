"""Integrity at rest (issue 12, items 2 and 3): every damage of a stopped
node's data dir either starts with every acknowledged command intact or
refuses with raft.CorruptError naming the file; a torn tail after a crash
is recovered; auto_recovery=True is libraft's old repair."""

import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

import canonical_raft as raft
from canonical_raft import integrity
from canonical_raft.testing import RecordingFSM, free_address
from canonical_raft.testing.procs import child_env

pytestmark = pytest.mark.timeout(60)

CHILD = str(Path(__file__).with_name("integrity_child.py"))
SEGMENT = 64 * 1024
THRESHOLD = 1000
COUNT = 3000
EXPECTED = [b"c%d" % i for i in range(COUNT)]


def run_child(data_dir, address, count, kill_after=None, threshold=THRESHOLD):
    """Run integrity_child.py until it is done (or kill_after seconds of
    load), SIGKILL it by pid; (its first line, the last number acknowledged,
    its last_applied index when done or None)."""
    proc = subprocess.Popen([sys.executable, CHILD, str(data_dir), address, str(count),
                             str(SEGMENT), str(threshold)],
                            stdout=subprocess.PIPE, text=True, env=child_env())
    first, acked, applied = None, -1, None
    started = None
    try:
        for line in proc.stdout:
            if first is None:
                first = line.split()
                started = time.monotonic()
                if first[0] == "error":
                    break
            elif line.startswith("ack"):
                acked = int(line.split()[1])
            elif line.startswith("done"):
                applied = int(line.split()[1])
                break
            if kill_after is not None and started and time.monotonic() - started > kill_after:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    return first, acked, applied


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """A data dir of one node killed after 3000 acknowledged commands: closed
    and open segments, two snapshots, metadata1."""
    address = free_address()
    for attempt in range(3):
        path = tmp_path_factory.mktemp("crashed") / "node"
        first, acked, applied = run_child(path, address, COUNT)
        assert first[:2] == ["have", "0"] and acked == COUNT - 1
        names = os.listdir(path)
        assert sum(n.endswith(".meta") for n in names) == 2
        if layout_as_the_tests_need(path):
            return path, address, applied
    pytest.fail(f"3 runs of the child left no entries in an open segment: {sorted(names)}")


def layout_as_the_tests_need(path):
    """The tests damage the open segment's entries and the newest closed
    segment's; timing decides where the crash leaves them (under load the
    last batches can fill a segment exactly, or the newest snapshot can
    cover every closed segment): both must hold entries past the newest
    snapshot."""
    names = os.listdir(path)
    snapshot_index = max(int(n.split("-")[2]) for n in names if n.endswith(".meta"))
    closed_last = max((int(m.group(2)) for m in map(integrity._CLOSED.match, names) if m),
                      default=0)
    open_used = any(n.startswith("open-") and integrity._Segment(path / n).nonzero_end > 8
                    for n in names)
    return open_used and closed_last > snapshot_index


def open_node(path, address=None, **settings):
    fsm = RecordingFSM()
    node = raft.Node(1, address or free_address(), path, fsm, segment_size=SEGMENT,
                     snapshot_threshold=THRESHOLD, snapshot_trailing=64, **settings)
    return node, fsm


def start_and_read(path, address=None, **settings):
    """Start a node on path: its FSM's commands after a barrier, or the
    CorruptError it refused with."""
    node, fsm = open_node(path, address, **settings)
    try:
        try:
            node.start()
        except raft.CorruptError as exc:
            return exc
        node.wait_for_leader(10)
        node.barrier().result(10)
        return list(fsm.commands)
    finally:
        node.close()


def file_of(path, kind):
    names = sorted(os.listdir(path))
    snaps = sorted((n for n in names if n.startswith("snapshot-") and not n.endswith(".meta")),
                   key=lambda n: tuple(int(x) for x in n.split("-")[1:]))
    closed = [n for n in names if integrity._CLOSED.match(n)]
    if kind == "open":
        # the open segment that holds entries
        return next(n for n in names if n.startswith("open-")
                    and integrity._Segment(os.path.join(path, n)).nonzero_end > 8)
    if kind == "closed":
        return closed[-1]
    if kind == "closed_first":
        return closed[0]
    if kind == "metadata":
        return "metadata1"
    if kind == "metadata_newest":
        return os.path.basename(integrity.newest_metadata(str(path)).path)
    if kind == "mark":
        return integrity.MARK_NAME
    if kind == "vote":
        return integrity.VOTE_NAME
    if kind == "snapshot":
        return snaps[-1]
    if kind == "snapshot_meta":
        return snaps[-1] + ".meta"
    if kind == "old_snapshot":
        return snaps[0]
    raise AssertionError(kind)


def damage(path, name, op, where):
    """Flip a byte at (or truncate to) fraction `where` of the file's used
    part (an open segment's written bytes, the whole of other files)."""
    file = os.path.join(path, name)
    data = bytearray(Path(file).read_bytes())
    used = len(data)
    if name.startswith("open-"):
        used = integrity._Segment(file).nonzero_end
    at = min(int(used * where), used - 1)
    if op == "flip":
        data[at] ^= 0x41
    elif op == "truncate":
        del data[at:]
    elif op == "delete":
        os.unlink(file)
        return at
    Path(file).write_bytes(bytes(data))
    return at


FLIPS = [0.0, 0.003, 0.1, 0.33, 0.5, 0.77, 0.95, 0.999]
TRUNCS = [0.0, 0.02, 0.5, 0.97]
CASES = ([(k, "flip", w) for k in ("open", "closed", "snapshot", "snapshot_meta")
          for w in FLIPS]
         + [(k, "truncate", w) for k in ("open", "closed", "snapshot", "snapshot_meta",
                                          "metadata") for w in TRUNCS]
         + [("metadata", "flip", w) for w in (0.0, 0.1, 0.26, 0.3, 0.5, 0.8)]
         + [("closed_first", "flip", 0.5), ("old_snapshot", "flip", 0.5)]
         + [(k, "delete", 0) for k in ("metadata", "snapshot", "snapshot_meta",
                                        "closed_first", "mark", "vote")]
         # A whole file gone at the log's end leaves a log that looks whole
         # to libraft (0.22 records the last index nowhere): the high-water
         # mark finds it (check_mark). The crashed node waited for its mark
         # to cover every applied entry; a crash within ~200 ms (plus one
         # heartbeat) of the last applies leaves those entries above the mark,
         # and a file holding only them would go unnoticed.
         + [(k, "delete", 0) for k in ("open", "closed")]
         + [(k, "flip", w) for k in ("mark", "vote") for w in (0.0, 0.4, 0.6, 0.7, 0.9)]
         + [("vote", "truncate", w) for w in (0.0, 0.5)]
         + [("metadata_newest", "flip", w) for w in (0.5, 0.55, 0.8, 0.9)])


@pytest.mark.parametrize("kind,op,where", CASES, ids=lambda v: str(v))
def test_single_node_damage_is_refused_or_harmless(crashed, tmp_path, kind, op, where):
    base, address, _ = crashed
    path = tmp_path / "node"
    shutil.copytree(base, path)
    name = file_of(path, kind)
    damage(path, name, op, where)
    outcome = start_and_read(path, address)
    if isinstance(outcome, raft.CorruptError):
        assert name in str(outcome) or str(path) in str(outcome), outcome
        assert "auto_recovery=True" in str(outcome) and outcome.code == raft.errors.CORRUPT
        return
    # Started: every acknowledged command is there, nothing else.
    assert outcome == EXPECTED, (len(outcome), outcome[-3:])


def test_undamaged_crash_dir_starts(crashed, tmp_path):
    path = tmp_path / "node"
    shutil.copytree(crashed[0], path)
    assert start_and_read(path, crashed[1]) == EXPECTED


def test_closed_segment_damage_message_and_auto_recovery(crashed, tmp_path):
    path = tmp_path / "node"
    shutil.copytree(crashed[0], path)
    name = file_of(path, "closed")
    damage(path, name, "flip", 0.5)
    before = sorted(os.listdir(path))
    outcome = start_and_read(path, crashed[1])
    assert isinstance(outcome, raft.CorruptError)
    assert f"load closed segment {name}" in str(outcome)
    assert "checksum mismatch" in str(outcome)
    assert sorted(os.listdir(path)) == before          # nothing changed on disk
    # Opting in: libraft's repair discards the segment and what follows.
    outcome = start_and_read(path, crashed[1], auto_recovery=True)
    assert isinstance(outcome, list) and len(outcome) < COUNT
    assert outcome == EXPECTED[:len(outcome)]
    assert any(n.startswith("corrupt-") for n in os.listdir(path))


# -- the high-water mark and the term/vote record (core/mark.pxi) ---------------

def test_crashed_node_mark_covers_its_log(crashed):
    """The mark follows last_applied while the node runs (the crashed node
    never closed)."""
    assert integrity.read_mark(str(crashed[0])) == crashed[2] > COUNT


@pytest.mark.parametrize("kind", ["open", "closed"])
def test_newest_log_file_deleted_is_refused(crashed, tmp_path, kind):
    path = tmp_path / "node"
    shutil.copytree(crashed[0], path)
    damage(path, file_of(path, kind), "delete", 0)
    before = sorted(os.listdir(path))
    outcome = start_and_read(path, crashed[1])
    assert isinstance(outcome, raft.CorruptError)
    assert str(path) in str(outcome) and integrity.MARK_NAME in str(outcome)
    assert f"to index {crashed[2]} were applied" in str(outcome), outcome
    assert sorted(os.listdir(path)) == before          # nothing changed on disk


def test_auto_recovery_is_not_blocked_by_the_mark(crashed, tmp_path):
    """auto_recovery=True accepts loss: a start with the open segment gone
    runs, and the mark starts again from what the node applies then, so a
    later start without auto_recovery is not refused."""
    path = tmp_path / "node"
    shutil.copytree(crashed[0], path)
    damage(path, file_of(path, "open"), "delete", 0)
    outcome = start_and_read(path, crashed[1], auto_recovery=True)
    assert isinstance(outcome, list) and 0 < len(outcome) < COUNT
    assert outcome == EXPECTED[:len(outcome)]
    assert integrity.read_mark(str(path)) < crashed[2]
    assert start_and_read(path, crashed[1]) == outcome


def test_a_partly_wiped_dir_is_refused_a_whole_wipe_starts_afresh(crashed, tmp_path):
    """The records remember a log: libraft's files deleted without them is
    a lost log (refused, saying to wipe the whole dir); wiped whole, the dir
    bootstraps afresh."""
    path = tmp_path / "node"
    shutil.copytree(crashed[0], path)
    for name in os.listdir(path):
        if not name.startswith("canonical_raft."):
            os.unlink(path / name)
    node, _fsm = open_node(path, crashed[1])
    with pytest.raises(raft.CorruptError, match="wiped whole"):
        node.bootstrap([(1, node.address)])
    node.close()
    shutil.rmtree(path)
    node, fsm = open_node(path, crashed[1])
    node.bootstrap([(1, node.address)])
    with node:
        node.start()
        node.wait_for_leader(10)
        node.apply(b"fresh").result(10)
    assert fsm.commands == [b"fresh"]
    assert start_and_read(path, crashed[1]) == [b"fresh"]


def _metadata_flip(path, offset):
    name = os.path.basename(integrity.newest_metadata(str(path)).path)
    data = bytearray((path / name).read_bytes())
    data[offset] ^= 0x04
    (path / name).write_bytes(bytes(data))
    return name


@pytest.mark.parametrize("offset", [16, 17, 23, 24, 25, 31], ids=lambda o: f"byte{o}")
def test_single_node_term_or_vote_flip_is_refused(crashed, tmp_path, offset):
    """libraft's metadata has no checksum; the vote record catches a flipped
    term (bytes 16-23) or vote (24-31) of the metadata libraft would use."""
    path = tmp_path / "node"
    shutil.copytree(crashed[0], path)
    name = _metadata_flip(path, offset)
    outcome = start_and_read(path, crashed[1])
    assert isinstance(outcome, raft.CorruptError), outcome
    assert name in str(outcome) and "term or vote is damaged" in str(outcome)


def _vote_slot(term, vote):
    body = struct.pack("<IHHQQ", 0x54565243, 1, 0, term, vote)
    return body + struct.pack("<II", zlib.crc32(body), 0)


def test_crash_between_the_vote_record_and_libraft_is_accepted(crashed, tmp_path):
    """A new term recorded in the other slot, libraft's metadata not yet
    written (a crash between the two): the node starts. A record that
    matches neither slot is refused."""
    path = tmp_path / "node"
    shutil.copytree(crashed[0], path)
    term, vote = integrity.current_metadata(str(path))
    record = path / integrity.VOTE_NAME
    assert raft._raft.vote_decode(record.read_bytes()) == [(term, vote)] * 2
    record.write_bytes(_vote_slot(term, vote) + _vote_slot(term + 1, 0))
    assert start_and_read(path, crashed[1]) == EXPECTED
    record.write_bytes(_vote_slot(term + 1, 0) + _vote_slot(term + 1, 3))
    outcome = start_and_read(path, crashed[1])
    assert isinstance(outcome, raft.CorruptError)
    assert f"term {term + 1} vote 0 or term {term + 1} vote 3" in str(outcome)


# -- torn tail vs corruption in the open segment --------------------------------

def _open_batches(path, name):
    seg = integrity._Segment(os.path.join(path, name))
    offsets, off = [], 8
    while True:
        state, end, _n, _why = seg.batch(off)
        if state != "ok":
            return offsets, off
        offsets.append((off, end))
        off = end


def _batch(term, body):
    header = struct.pack("<QQB3xI", 1, term, 1, len(body))
    return struct.pack("<II", integrity.crc32(header), integrity.crc32(body)) + header + body


def _damaged_open_segment(crashed, tmp_path, damage):
    """A copy of the crashed node whose open segment ``damage(data,
    batches, stop)`` changed in place: (path, the segment's name, stop)."""
    path = tmp_path / "node"
    shutil.copytree(crashed[0], path)
    name = file_of(path, "open")
    batches, stop = _open_batches(path, name)
    file = os.path.join(path, name)
    data = bytearray(Path(file).read_bytes())
    damage(data, batches, stop)
    Path(file).write_bytes(bytes(data))
    return path, name, stop


def _torn(data, batches, stop):
    """A 2 KiB batch after the last one whose write stopped at a sector
    boundary inside it (the rest still the preallocated zeros); its end."""
    term = struct.unpack_from("<Q", data, batches[-1][0] + 16)[0]
    torn = _batch(term, bytes(range(256)) * 8)          # 2 KiB: spans sectors
    cut = (stop + 600) // 512 * 512                     # a sector boundary inside it
    data[stop:stop + len(torn)] = torn
    data[cut:stop + len(torn)] = bytes(stop + len(torn) - cut)
    return stop + len(torn), term


def test_torn_tail_is_recovered_and_logged(crashed, tmp_path, caplog):
    """A batch whose write stopped at a sector boundary (the rest of it
    still the zeros of the preallocated file) after the last acknowledged
    one: dropped with a warning, everything before it kept."""
    path, name, stop = _damaged_open_segment(crashed, tmp_path, _torn)
    with caplog.at_level(logging.WARNING, logger="canonical_raft"):
        outcome = start_and_read(path, crashed[1])
    assert outcome == EXPECTED
    warned = [r.getMessage() for r in caplog.records if "torn write" in r.getMessage()]
    assert warned and name in warned[0] and f"byte {stop}" in warned[0], warned
    assert "1 entries" in warned[0]


def test_torn_tail_followed_by_a_valid_batch_is_corruption(crashed, tmp_path):
    """The same torn batch, but with a valid batch after it: entries after
    the damage were acknowledged, so it is not a torn tail."""
    after_torn = []

    def torn_then_valid(data, batches, stop):
        end, term = _torn(data, batches, stop)
        after = _batch(term, b"x" * 64)
        data[end:end + len(after)] = after
        after_torn.append(end)
    path, name, _ = _damaged_open_segment(crashed, tmp_path, torn_then_valid)
    with pytest.raises(raft.CorruptError, match=f"{name}.*valid batch starts at byte "
                       f"{after_torn[0]}"):
        integrity.check(str(path))


def test_damaged_middle_batch_is_corruption(crashed, tmp_path):
    def flip_middle(data, batches, stop):
        start, end = batches[len(batches) // 2]
        data[end - 4] ^= 1
    path, name, _ = _damaged_open_segment(crashed, tmp_path, flip_middle)
    with pytest.raises(raft.CorruptError, match=f"{name}.*data checksum mismatch.*valid batch"):
        integrity.check(str(path))


def test_damaged_last_batch_written_whole_is_corruption(crashed, tmp_path):
    def flip_last_term(data, batches, stop):
        start, end = batches[-1]
        data[start + 17] ^= 0x10        # the last batch's first entry term
    path, _, _ = _damaged_open_segment(crashed, tmp_path, flip_last_term)
    with pytest.raises(raft.CorruptError, match="written whole"):
        integrity.check(str(path))


def test_crc_matches_libraft(crashed):
    """integrity.crc32 is libraft's byteCrc32: every batch of a real
    segment checks."""
    base = crashed[0]
    closed = file_of(base, "closed")
    seg = integrity._Segment(os.path.join(base, closed))
    off, batches = 8, 0
    while off < seg.size:
        state, off, _n, why = seg.batch(off)
        assert state == "ok", why
        batches += 1
    assert batches > 10
    # and it is the bitwise definition (libiberty's crc32: MSB first, no xor)
    def reference(data, crc=0):
        for byte in data:
            crc ^= byte << 24
            for _ in range(8):
                crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        return crc
    for sample in (b"", b"123456789", bytes(range(256)) * 3):
        assert integrity.crc32(sample) == reference(sample)
        assert integrity.crc32(sample, 0x1234) == reference(sample, 0x1234)


def test_scan_speed_of_a_full_16mib_open_segment(tmp_path):
    """A 16 MiB open segment full of batches scans in well under a second."""
    batches, off, body = [], 8, bytes(range(256)) * 4    # 1 KiB entries
    while off + 16 + 16 + len(body) <= 16 * 1024 * 1024 - 2048:
        header = struct.pack("<QQB3xI", 1, 1, 1, len(body))
        pre = struct.pack("<II", integrity.crc32(header), integrity.crc32(body))
        batches.append(pre + header + body)
        off += len(batches[-1])
    data = struct.pack("<Q", 1) + b"".join(batches)
    data += bytes(16 * 1024 * 1024 - len(data))
    (tmp_path / "open-1").write_bytes(data)
    (tmp_path / "metadata1").write_bytes(struct.pack("<4Q", 1, 1, 1, 1))
    t0 = time.perf_counter()
    scans = integrity.check(str(tmp_path))
    elapsed = time.perf_counter() - t0
    assert scans[0].batches == len(batches) and not scans[0].torn
    print(f"16 MiB open segment, {len(batches)} batches: {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0


# -- crashes under load ---------------------------------------------------------

# CANONICAL_RAFT_SOAK_ROUNDS=200 makes this a soak (about 2.5 s a round).
SOAK_ROUNDS = int(os.environ.get("CANONICAL_RAFT_SOAK_ROUNDS", "6"))


@pytest.mark.timeout(60 + 6 * SOAK_ROUNDS)
def test_sigkill_under_load_restarts_cleanly(tmp_path):
    """Kill a node process mid-write SOAK_ROUNDS times: each restart refuses
    nothing (the torn-tail rule, the high-water mark) and holds every
    acknowledged command, in order, with no gap."""
    import random
    rng = random.Random(12)
    path = tmp_path / "node"
    address = free_address()
    acked_total = -1
    for round in range(SOAK_ROUNDS):
        first, acked, _ = run_child(path, address, 0, threshold=400,
                                    kill_after=0.3 + 0.15 * (round % 6) + rng.uniform(0, 0.1))
        assert first[0] == "have", (round, first)
        have, crc = int(first[1]), int(first[2])
        assert have >= acked_total + 1, (round, have, acked_total)
        assert crc == zlib.crc32(b"".join(b"c%d" % i for i in range(have))), (round, have)
        acked_total = max(acked_total, acked)
    outcome = start_and_read(path, address)
    assert isinstance(outcome, list)
    assert outcome[:acked_total + 1] == [b"c%d" % i for i in range(acked_total + 1)]
    assert outcome == [b"c%d" % i for i in range(len(outcome))]
    print(f"{SOAK_ROUNDS} rounds, {acked_total + 1} commands acknowledged, "
          f"{len(outcome)} held")


# -- the previous release's data dir -----------------------------------------

def test_a_data_dir_of_the_previous_release_opens(tmp_path):
    """tests/data/v1-datadir.tar.gz (made by make_v1_datadir.py with the
    release before the snapshot checksum): its version-1 snapshots load;
    snapshots taken now are in the current version and load too."""
    import tarfile
    with tarfile.open(Path(__file__).with_name("data") / "v1-datadir.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    path = tmp_path / "node1"
    assert not any(n.startswith("canonical_raft.") for n in os.listdir(path))
    snaps = [n for n in os.listdir(path) if n.startswith("snapshot-") and "." not in n]
    assert snaps and all(struct.unpack_from("<H", (path / n).read_bytes(), 4)[0] == 1
                         for n in snaps)
    old = [b"v1-%d" % i for i in range(300)]
    fsm = RecordingFSM()
    address = "127.0.0.1:%d" % int(free_address().rsplit(":", 1)[1])
    with raft.Node(1, address, path, fsm, snapshot_threshold=100, snapshot_trailing=10,
                   segment_size=SEGMENT) as node:
        node.start()
        node.wait_for_leader(10)
        node.barrier().result(10)
        assert fsm.commands == old
        for i in range(250):
            node.apply(b"v2-%d" % i).result(10)
    versions = {struct.unpack_from("<H", (path / n).read_bytes(), 4)[0]
                for n in os.listdir(path) if n.startswith("snapshot-") and "." not in n}
    assert versions == {3}
    assert integrity.read_mark(str(path)) >= 550      # the records exist from now on
    assert start_and_read(path) == old + [b"v2-%d" % i for i in range(250)]


def test_snapshot_checksum_refused_before_restore(tmp_path):
    """A checksummed snapshot whose data was damaged never reaches
    FSM.restore(): the scan names the file."""
    path = tmp_path / "node"
    fsm = RecordingFSM()
    node = raft.Node(1, free_address(), path, fsm, snapshot_threshold=50, snapshot_trailing=5)
    node.bootstrap([(1, node.address)])
    with node:
        node.start()
        node.wait_for_leader(10)
        for i in range(120):
            node.apply(b"s%d" % i).result(10)
    snaps = sorted((n for n in os.listdir(path) if n.startswith("snapshot-") and "." not in n),
                   key=lambda n: tuple(int(x) for x in n.split("-")[1:]))
    file = path / snaps[-1]
    data = bytearray(file.read_bytes())
    assert struct.unpack_from("<H", data, 4)[0] == 3
    data[-3] ^= 0xFF
    file.write_bytes(bytes(data))
    assert raft._raft.snapshot_problem(bytes(data)) == "snapshot data does not match its checksum"
    restored = []

    class Watching(RecordingFSM):
        def restore(self, data):
            restored.append(data)
            super().restore(data)

    node = raft.Node(1, free_address(), path, Watching())
    with pytest.raises(raft.CorruptError, match=f"{snaps[-1]}: snapshot data does not match"):
        node.start()
    node.close()
    assert restored == []


# -- one follower of three ----------------------------------------------------------

@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """A 3-node cluster with 3000 commands; one follower stopped, a pristine
    copy of its data dir kept."""
    from canonical_raft.testing import LocalCluster
    root = tmp_path_factory.mktemp("three")
    cluster = LocalCluster(3, RecordingFSM, root / "c", segment_size=SEGMENT,
                           snapshot_threshold=THRESHOLD, snapshot_trailing=64,
                           max_batch_bytes=0)
    try:
        leader = cluster.leader()
        for start in range(0, FOLLOWER_COUNT, 500):
            for fut in leader.apply_many(EXPECTED[start:min(start + 500, FOLLOWER_COUNT)]):
                fut.result(20)
        follower = cluster.followers(leader)[0]
        cluster.wait_converged(key=lambda f: len(f.commands), timeout=20)
        cluster.kill(follower.id)
        pristine = root / "pristine"
        shutil.copytree(cluster.data_dir(follower.id), pristine)
        yield cluster, leader, follower.id, pristine
    finally:
        cluster.close()


REFUSED, STARTED = [], []
FOLLOWER_COUNT = 2700          # the last snapshot (each 1000) leaves segments after it
FOLLOWER_CASES = ([("closed", "flip", w) for w in (0.0, 0.1, 0.5, 0.9)]
                  + [("closed", "truncate", w) for w in (0.3, 0.97)]
                  + [("metadata", "flip", w) for w in (0.0, 0.3)]
                  + [("snapshot", "flip", 0.6), ("snapshot_meta", "flip", 0.6),
                     ("snapshot_meta", "delete", 0), ("old_snapshot", "delete", 0),
                     ("metadata", "flip", 0.8), ("closed", "delete", 0),
                     ("mark", "flip", 0.5), ("vote", "flip", 0.2), ("vote", "flip", 0.7)])


@pytest.mark.parametrize("kind,op,where", FOLLOWER_CASES, ids=lambda v: str(v))
def test_follower_damage_is_refused_or_repaired(three, kind, op, where):
    cluster, leader, fid, pristine = three
    path = cluster.data_dir(fid)
    shutil.rmtree(path)
    shutil.copytree(pristine, path)
    name = file_of(path, kind)
    damage(path, name, op, where)
    node = cluster.create(fid)
    try:
        node.start()
    except raft.CorruptError as exc:
        assert name in str(exc) or str(path) in str(exc), exc
        node.close()
        REFUSED.append((kind, op, where))
        return
    try:
        # (No new entries: each case restores the same pristine copy, which a
        # longer leader log would make a follower that lost entries.)
        want = EXPECTED[:FOLLOWER_COUNT]
        deadline = time.monotonic() + 15
        while cluster.fsm(fid).commands[:len(want)] != want and time.monotonic() < deadline:
            time.sleep(0.05)
        got = cluster.fsm(fid).commands
        assert got[:len(want)] == want, (len(got), got[-2:])
        # Nothing else: every command it applied is one the leader applied.
        assert got == cluster.fsm(leader.id).commands
        STARTED.append((kind, op, where))
    finally:
        cluster.kill(fid)


@pytest.mark.parametrize("offset", [16, 24], ids=["term", "vote"])
def test_follower_term_or_vote_flip_is_refused(three, offset):
    """A follower's flipped term could let it vote twice in a term, or its
    flipped vote for another candidate: refused, naming the metadata file."""
    cluster, _leader, fid, pristine = three
    path = cluster.data_dir(fid)
    shutil.rmtree(path)
    shutil.copytree(pristine, path)
    name = _metadata_flip(path, offset)
    node = cluster.create(fid)
    with pytest.raises(raft.CorruptError, match=f"{name}.*term or vote is damaged"):
        node.start()
    node.close()


def test_follower_that_installed_a_snapshot_restarts(tmp_path):
    """The leader's snapshot replaces a lagging follower's log: its mark
    (last_applied, now the snapshot's index) is covered by the snapshot, and
    it restarts cleanly, its term and vote as recorded."""
    from canonical_raft.testing import LocalCluster, wait_until
    with LocalCluster(3, RecordingFSM, tmp_path / "c", snapshot_threshold=20,
                      snapshot_trailing=4, max_batch_bytes=0) as cluster:
        leader = cluster.leader()
        lagging = cluster.followers(leader)[0].id
        cluster.kill(lagging)
        sent = [b"s%d" % i for i in range(120)]
        for fut in leader.apply_many(sent):
            fut.result(20)
        wait_until(lambda: leader.stats()["snapshot_index"] > 40, 20)
        node = cluster.restart(lagging)
        cluster.wait_converged(key=lambda f: f.commands, expected=sent, timeout=20)
        installed = node.stats()["snapshot_index"]
        assert installed > 40
        cluster.kill(lagging)
        path = str(cluster.data_dir(lagging))
        assert integrity.read_mark(path) >= installed
        integrity.check(path)
        cluster.restart(lagging)
        cluster.wait_converged(key=lambda f: f.commands, expected=sent, timeout=20)
