"""storage="lmdb": the binding's own raft_io over the LMDB store.

The core suites also run over it (tests/test_lmdb_suites.py); here is what
is particular to it: the data dir's kind, the peer port's protocol, damage
refused at start, and acknowledged writes surviving SIGKILL."""
from __future__ import annotations

import logging
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

import canonical_raft as raft
from canonical_raft import _raft, storage
from canonical_raft.testing import LocalCluster, RecordingFSM, free_address, procs, wait_until

import peerwire
from fsms import Counter

HERE = Path(__file__).resolve().parent
FAST = {"election_timeout": 0.5, "heartbeat_timeout": 0.05}
CRASH_ROUNDS = int(os.environ.get("CANONICAL_RAFT_CRASH_ROUNDS", "6"))


def single(tmp_path, name="n", **kwargs):
    node = raft.Node(1, free_address(), str(tmp_path / name), Counter(), **{**FAST, **kwargs})
    return node


def run_once(node, commands=(b"1", b"2", b"3")):
    node.bootstrap([(node.id, node.address)])
    node.start()
    try:
        node.wait_for_leader(20)
        wait_until(lambda: node.is_leader, 20, message="leader")
        return [node.apply(c).result(20) for c in commands]
    finally:
        node.close()


@pytest.mark.timeout(60)
def test_a_new_dir_records_its_kind_and_the_other_kind_is_refused(tmp_path):
    run_once(single(tmp_path, "l", storage="lmdb"))
    run_once(single(tmp_path, "u", storage="uv"))
    assert storage.recorded(str(tmp_path / "l")) == "lmdb"
    assert (tmp_path / "l" / "lmdb" / "data.mdb").exists()
    assert storage.recorded(str(tmp_path / "u")) == "uv"
    for name, wrong in (("l", "uv"), ("u", "lmdb")):
        node = single(tmp_path, name, storage=wrong)
        with pytest.raises(raft.RaftError, match="convert-storage") as info:
            node.start()
        assert str(tmp_path / name) in str(info.value) and wrong in str(info.value)
        with pytest.raises(raft.RaftError, match="convert-storage"):
            node.bootstrap([(1, node.address)])
        node.close()
    # An old uv dir (no record) is known by its files.
    os.unlink(tmp_path / "u" / storage.RECORD_NAME)
    assert storage.recorded(str(tmp_path / "u")) == "uv"


@pytest.mark.timeout(60)
def test_restart_keeps_term_log_and_snapshot(tmp_path):
    node = single(tmp_path, storage="lmdb", snapshot_threshold=16, snapshot_trailing=4)
    run_once(node, [b"1"] * 50)
    stat = _raft.lmdb_stat(str(tmp_path / "n"))
    assert stat["snapshot_index"] >= 16 and stat["term"] >= 1
    assert stat["first_index"] <= stat["snapshot_index"] - 3   # the trailing entries
    fsm = Counter()
    node = raft.Node(1, node.address, str(tmp_path / "n"), fsm, storage="lmdb", **FAST)
    node.start()
    try:
        wait_until(lambda: node.is_leader, 20, message="leader")
        assert fsm.value == 50                 # the snapshot, then the log after it
        assert node.apply(b"1").result(20) == 51
        assert node.stats()["term"] >= stat["term"]
    finally:
        node.close()
    assert _raft.debug_counters()["raft_io"] == 0


def damaged(tmp_path, spoil):
    node = single(tmp_path, storage="lmdb", snapshot_threshold=16, snapshot_trailing=4)
    run_once(node, [b"%d" % (7000 + i) for i in range(40)])
    _raft.lmdb_stat(str(tmp_path / "n"))    # an open checkpoints the WAL into LMDB
    path = tmp_path / "n" / "lmdb" / "data.mdb"
    spoil(path)
    node = single(tmp_path, storage="lmdb")
    try:
        with pytest.raises(raft.CorruptError) as info:
            node.start()
    finally:
        node.close()
    assert str(path) in str(info.value) and "wipe its data dir" in str(info.value)
    return str(info.value)


def flip(path, needle):
    """Flip a bit in every copy of ``needle`` (LMDB's freed pages may hold
    old ones; the live one is among them)."""
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, needle
    while at >= 0:
        data[at + len(needle) - 1] ^= 0x01
        at = data.find(needle, at + 1)
    path.write_bytes(bytes(data))


@pytest.mark.timeout(60)
def test_a_flipped_byte_in_an_entry_is_refused(tmp_path):
    assert "log entry" in damaged(tmp_path, lambda p: flip(p, b"7039"))


@pytest.mark.timeout(60)
def test_a_flipped_byte_in_the_snapshot_is_refused(tmp_path):
    msg = damaged(tmp_path, lambda p: flip(p, b"CRSN"))    # the snapshot's magic
    assert "snapshot" in msg and "checksum" in msg


@pytest.mark.timeout(60)
def test_a_truncated_file_is_refused(tmp_path):
    msg = damaged(tmp_path, lambda p: os.truncate(p, p.stat().st_size // 2))
    assert "truncated" in msg


@pytest.mark.timeout(60)
def test_a_missing_file_is_refused(tmp_path):
    assert "missing" in damaged(tmp_path, os.unlink)


WAL_MAGIC = b"CRW2"
WAL_BLOCK, WAL_STAMP, WAL_HEADER = 512, 8, 40


def wal_records(path):
    """(offset, length) of the write-ahead file's records of the generation
    at offset 0, in order. core/wal.h: 512-byte blocks, each an 8-byte stamp
    (the generation) and 504 of the record's bytes; the header (u32 CRC |
    "CRW2" | u64 gen | u64 seq | u32 payload length ...) opens the first."""
    data = path.read_bytes()
    out, at, gen = [], 0, data[0:8]
    while (data[at:at + 8] == gen and data[at + 12:at + 16] == WAL_MAGIC
           and data[at + 16:at + 24] == gen):
        payload = int.from_bytes(data[at + 32:at + 36], "little")
        blocks = -(-(WAL_HEADER + payload) // (WAL_BLOCK - WAL_STAMP))
        out.append((at, blocks * WAL_BLOCK))
        at += blocks * WAL_BLOCK
    return out


def wal_damaged(tmp_path, spoil, caplog=None, commands=(b"1",) * 30):
    """A node's write-ahead file holding records LMDB does not (no snapshot
    and no checkpoint since start), spoiled, then start(): the error, or
    the node's value if it starts."""
    node = single(tmp_path, storage="lmdb")
    run_once(node, commands)
    path = tmp_path / "n" / "lmdb" / "wal"
    records = wal_records(path)
    assert len(records) >= len(commands), records
    spoil(path, records)
    fsm = Counter()
    node = raft.Node(1, node.address, str(tmp_path / "n"), fsm, storage="lmdb", **FAST)
    try:
        node.start()
        wait_until(lambda: node.is_leader, 20, message="leader")
        node.barrier().result(20)
        return fsm.value
    finally:
        node.close()


def flip_byte(path, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


@pytest.mark.timeout(60)
def test_a_flipped_byte_mid_wal_is_refused(tmp_path):
    path = tmp_path / "n" / "lmdb" / "wal"
    with pytest.raises(raft.CorruptError) as info:
        wal_damaged(tmp_path, lambda p, rs: flip_byte(p, rs[len(rs) // 2][0] + 40))
    assert str(path) in str(info.value) and "damaged" in str(info.value)
    assert "wipe its data dir" in str(info.value)


# The last command spans three blocks, so a crash can tear its record.
BIG_LAST = (b"1",) * 29 + (b"1".rjust(1200, b"0"),)


def zero_last_block(path, records):
    at, length = records[-1]
    assert length >= 3 * WAL_BLOCK, records[-1]
    with open(path, "r+b") as f:
        f.seek(at + length - WAL_BLOCK)
        f.write(bytes(WAL_BLOCK))


@pytest.mark.timeout(60)
def test_a_torn_last_wal_record_is_ignored_with_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="canonical_raft")
    # The last record is torn (a crash while it was written: its first
    # block new, its last still the zeros the file was made with): the node
    # starts without it, as a write never acknowledged may be lost.
    value = wal_damaged(tmp_path, zero_last_block, commands=BIG_LAST)
    assert value == 29
    assert any("torn" in r.getMessage() and "lmdb/wal" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["stamp", "length", "last byte"])
def test_the_last_wal_record_damaged_though_written_whole_is_refused(tmp_path, where):
    # Every block of it carries its generation, so it was written whole and
    # acknowledged: a flipped byte is damage, never a torn write to drop.
    path = tmp_path / "n" / "lmdb" / "wal"
    offset = {"stamp": lambda at, n: at + 3, "length": lambda at, n: at + 8 + 25,
              "last byte": lambda at, n: at + n - 1}[where]
    last = []

    def spoil(p, records):
        last.append(records[-1][0])
        flip_byte(p, offset(*records[-1]))

    with pytest.raises(raft.CorruptError) as info:
        wal_damaged(tmp_path, spoil, commands=BIG_LAST)
    assert str(path) in str(info.value) and "damaged" in str(info.value)
    assert f"offset {last[0]} " in str(info.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_truncated_or_missing_wal_is_refused(tmp_path, damage):
    path = tmp_path / "n" / "lmdb" / "wal"
    spoil = ((lambda p, rs: os.truncate(p, p.stat().st_size // 2)) if damage == "truncated"
             else (lambda p, rs: os.unlink(p)))
    with pytest.raises(raft.CorruptError) as info:
        wal_damaged(tmp_path, spoil)
    assert str(path) in str(info.value) and damage in str(info.value)


@pytest.mark.timeout(60)
def test_the_peer_port_speaks_only_its_own_protocol(tmp_path):
    node = single(tmp_path, storage="lmdb")
    # Id 2, a spare, is a member the handshakes may speak for (not node 1's
    # own id, which no raft stream may declare).
    node.bootstrap([(1, node.address), (2, "127.0.0.1:1", raft.Role.SPARE)])
    node.start()
    try:
        wait_until(lambda: node.is_leader, 20, message="leader")
        # libraft's own handshake: refused by the firewall.
        peerwire.send_plain(node.address, peerwire.handshake(2, "127.0.0.1:1") +
                            peerwire.request_vote(5, 2), timeout=2)
        # Ours, then a frame the decoder refuses (a term of 2^63).
        frame = bytes([3, 1, 0, 0]) + (40).to_bytes(4, "little") + bytes(8)
        frame += (1 << 63).to_bytes(8, "little") + (2).to_bytes(8, "little") + bytes(24)
        peerwire.send_plain(node.address, peerwire.handshake(2, "127.0.0.1:1",
                                                             peerwire.IO_PROTOCOL) + frame,
                            timeout=2)
        # A frame header declaring more than max_message_size: no allocation.
        huge = bytes([5, 1, 0, 0]) + (56).to_bytes(4, "little") + (2**62).to_bytes(8, "little")
        peerwire.send_plain(node.address, peerwire.handshake(2, "127.0.0.1:1",
                                                             peerwire.IO_PROTOCOL) + huge,
                            timeout=2)
        wait_until(lambda: node.stats()["refused"].get("io_malformed", 0) >= 2 and
                   node.stats()["refused"].get("fw_handshake_protocol", 0) >= 1, 10,
                   message=f"the refusals counted: {node.stats()['refused']}")
        assert node.apply(b"4").result(20) == 4 and node.stats()["term"] < 5
    finally:
        node.close()


@pytest.mark.timeout(60)
def test_a_uv_node_and_an_lmdb_node_do_not_talk(tmp_path):
    ports = [free_address(), free_address()]
    servers = [(1, ports[0]), (2, ports[1])]
    a = raft.Node(1, ports[0], str(tmp_path / "a"), Counter(), storage="uv", **FAST)
    b = raft.Node(2, ports[1], str(tmp_path / "b"), Counter(), storage="lmdb", **FAST)
    try:
        for n in (a, b):
            n.bootstrap(servers)
            n.start()
        wait_until(lambda: a.stats()["refused"].get("fw_handshake_protocol", 0) >= 1 and
                   b.stats()["refused"].get("fw_handshake_protocol", 0) >= 1, 15,
                   message="each refusing the other's handshakes")
        assert a.leader is None and b.leader is None
    finally:
        a.close()
        b.close()


@pytest.mark.timeout(60 + 15 * CRASH_ROUNDS)
def test_sigkill_under_load_loses_no_acknowledged_write(tmp_path):
    """Rounds of: start the node process, apply as fast as it goes, SIGKILL
    it at a random moment (appends, snapshots, prefix deletions under way);
    then every write whose future resolved is there, in order, once. Odd
    rounds send 8 KiB commands and snapshot every 2,000: the write-ahead
    file's records, its checkpoints into LMDB and its filling up (a batch
    straight to LMDB, the file started over) are all under way too."""
    address = free_address()
    rnd = random.Random(int(os.environ.get("CANONICAL_RAFT_CRASH_SEED", "1")))
    acked = -1
    for round in range(CRASH_ROUNDS):
        seen = []

        def on_event(proc, name, data):
            if name == "acked":
                seen.append(data["upto"])

        argv = procs.python_argv("lmdb_crash_child", "--id", "1",
                                 "--address", address, "--data-dir", str(tmp_path / "n"),
                                 *(["--bootstrap", f"1={address}"] if round == 0 else []),
                                 *(["--pad", "8192", "--snapshot-every", "2000"]
                                   if round % 2 else []))
        proc = procs.Process(argv, name=f"round {round}", log_path=tmp_path / "log",
                             env=procs.child_env(HERE), on_event=on_event)
        try:
            proc.wait_ready()
            items = proc.call("items", timeout=30)["items"]
            assert items == list(range(len(items))), f"round {round}: not 0..n-1"
            assert len(items) > acked, f"round {round}: {acked} acknowledged, {len(items)} kept"
            proc.call("load")
            time.sleep(rnd.uniform(0.2, 1.0))
            proc.kill()
        finally:
            proc.stop()
        assert seen, f"round {round}: nothing acknowledged"
        acked = max(acked, max(seen))
    assert acked > 100
    assert _raft.lmdb_stat(str(tmp_path / "n"))["snapshot_index"] > 0


class Commands(RecordingFSM, raft.FSM):
    """Every command in log order (snapshots included)."""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("security", ["plain", "tls"])
def test_forwarding_reads_events_and_backups_over_lmdb(tmp_path, security):
    """What main added beside the io works over it: the forwarding streams
    (their own protocol, routed beside the io's, plaintext and TLS),
    read_barrier() on a follower, events, and a backup restored into a new
    lmdb node. No uv record (mark, vote) is written in an lmdb dir."""
    events = []
    tls = {"tls_dir": tmp_path / "certs"} if security == "tls" else {}
    with LocalCluster(3, Commands, tmp_path / "c", start=False, storage="lmdb",
                      forward=True, **tls) as cluster:
        for node in cluster.nodes:
            node.on_event(events.append, kinds=["leader", "snapshot_taken"])
        cluster.start()
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        for i in range(5):
            assert follower.apply(b"f%d" % i).result(20) == i + 1     # forwarded
        follower.read_barrier().result(20)
        assert cluster.fsms[follower.id - 1].commands == [b"f%d" % i for i in range(5)]
        assert follower.stats()["forwarding"]["forwarded"] >= 5, follower.stats()["forwarding"]
        index = follower.snapshot().result(20)
        wait_until(lambda: any(e.kind == "snapshot_taken" and e.node_id == follower.id
                               for e in events), 10, message="snapshot_taken")
        assert any(e.kind == "leader" for e in events)
        assert follower.backup(tmp_path / "b.bak").result(20) >= index
        for node in cluster.nodes:
            names = os.listdir(node.data_dir)
            assert _raft.MARK_NAME not in names and _raft.VOTE_NAME not in names, names
    address = free_address()
    info = raft.Node.restore_backup(tmp_path / "b.bak", tmp_path / "new", [(1, address)],
                                    storage="lmdb")
    assert storage.recorded(str(tmp_path / "new")) == "lmdb"
    assert sorted(os.listdir(tmp_path / "new")) == ["canonical_raft.lock", "canonical_raft.storage",
                                                   "lmdb"]
    fsm = Commands()
    with raft.Node(1, address, str(tmp_path / "new"), fsm, storage="lmdb", **FAST) as node:
        node.start()
        wait_until(lambda: node.is_leader, 20, message="leader")
        assert fsm.commands[:5] == [b"f%d" % i for i in range(5)] and info.index >= 5
        assert node.apply(b"after").result(20) == len(fsm.commands)
