"""The snapshot file format (core/entry.pxi): version 3 declares how far its
data inflates, and zlib never inflates past that; versions 1 and 2 still
load."""

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM, free_address

pytestmark = pytest.mark.timeout(120)

HEADER = struct.Struct("<IHHQII")        # magic, version, flags, length, crc, reserved
INFLATED = struct.Struct("<Q")
MAGIC = 0x4E535243
ZLIB = 1


def node_with_snapshot(path, compression=True, count=120):
    """A stopped single node at path whose newest snapshot holds `count`
    commands; the snapshot file's path and the commands."""
    node = raft.Node(1, free_address(), path, RecordingFSM(), snapshot_threshold=50,
                     snapshot_trailing=5, snapshot_compression=compression)
    node.bootstrap([(1, node.address)])
    with node:
        node.start()
        node.wait_for_leader(10)
        for i in range(count):
            node.apply(b"s%d" % i).result(10)
    snaps = sorted((n for n in os.listdir(path) if n.startswith("snapshot-") and "." not in n),
                   key=lambda n: tuple(int(x) for x in n.split("-")[1:]))
    return path / snaps[-1], [b"s%d" % i for i in range(count)]


def parse(data):
    magic, version, flags, length, crc, _ = HEADER.unpack_from(data)
    assert magic == MAGIC
    return version, flags, length, crc


def write(file, version, flags, stored, inflated=None):
    """A snapshot file of the given version around `stored` (the data as
    stored, zlib'd if flags say so)."""
    head = HEADER.pack(MAGIC, version, flags, len(stored), zlib.crc32(stored), 0)
    if version == 1:
        head = head[:16]
    if version == 3:
        head += INFLATED.pack(inflated)
    Path(file).write_bytes(head + stored)


def start_and_read(path):
    """Start the node at path; the commands its FSM holds, or the error."""
    fsm = RecordingFSM()
    node = raft.Node(1, free_address(), path, fsm)
    try:
        with node:
            node.start()
            node.wait_for_leader(10)
            node.barrier().result(10)
            return fsm.commands
    except raft.RaftError as exc:
        return exc


@pytest.mark.parametrize("compression", [True, False])
def test_snapshots_are_written_in_version_3_with_their_inflated_length(tmp_path, compression):
    file, _ = node_with_snapshot(tmp_path / "n", compression)
    data = file.read_bytes()
    version, flags, length, crc = parse(data)
    assert version == 3 and bool(flags & ZLIB) == compression
    stored = data[32:]
    assert length == len(stored) and crc == zlib.crc32(stored)
    (inflated,) = INFLATED.unpack_from(data, 24)
    expected = len(zlib.decompress(stored)) if compression else len(stored)
    assert inflated == expected
    assert raft._raft.snapshot_problem(data) is None


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("compression", [True, False])
def test_older_versions_still_load(tmp_path, version, compression):
    file, expected = node_with_snapshot(tmp_path / "n", compression)
    data = file.read_bytes()
    _, flags, _, _ = parse(data)
    write(file, version, flags, data[32:])
    assert raft._raft.snapshot_problem(file.read_bytes()) is None
    applied = start_and_read(tmp_path / "n")
    assert applied == expected


@pytest.mark.parametrize("declared", [0, 10, "one short", "one long"])
def test_data_that_does_not_inflate_to_its_declared_length_is_refused(tmp_path, declared):
    file, _ = node_with_snapshot(tmp_path / "n")
    data = file.read_bytes()
    real = len(zlib.decompress(data[32:]))
    declared = {"one short": real - 1, "one long": real + 1}.get(declared, declared)
    write(file, 3, ZLIB, data[32:], declared)
    outcome = start_and_read(tmp_path / "n")
    assert isinstance(outcome, raft.CorruptError), outcome
    assert "does not inflate to the length its header declares" in str(outcome)


def test_a_declared_length_past_zlibs_bound_is_refused_by_the_scan(tmp_path):
    file, _ = node_with_snapshot(tmp_path / "n")
    data = file.read_bytes()
    write(file, 3, ZLIB, data[32:], 1032 * (len(data) - 32) + 65)
    assert (raft._raft.snapshot_problem(file.read_bytes())
            == "snapshot data does not inflate to the length its header declares")
    outcome = start_and_read(tmp_path / "n")
    assert isinstance(outcome, raft.CorruptError), outcome


def test_an_uncompressed_snapshot_must_declare_its_own_length(tmp_path):
    file, _ = node_with_snapshot(tmp_path / "n", compression=False)
    data = file.read_bytes()
    write(file, 3, 0, data[32:], len(data) - 32 + 1)
    assert raft._raft.snapshot_problem(file.read_bytes()) is not None


def test_data_that_is_not_zlib_is_refused_as_corrupt(tmp_path):
    file, _ = node_with_snapshot(tmp_path / "n")
    junk = os.urandom(300)
    write(file, 3, ZLIB, junk, 1000)
    outcome = start_and_read(tmp_path / "n")
    assert isinstance(outcome, raft.CorruptError), outcome


BOMB = textwrap.dedent("""
    import resource, sys, zlib
    from pathlib import Path
    import canonical_raft as raft
    from canonical_raft.testing import RecordingFSM, free_address
    path = Path(sys.argv[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    node = raft.Node(1, free_address(), path, RecordingFSM())
    try:
        with node:
            node.start()
        print("started")
    except raft.CorruptError as exc:
        print("refused", exc)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print("grown_kib", grown)
""")


def test_a_zip_bomb_is_not_inflated_past_its_declared_length(tmp_path):
    """512 MiB of zeros in about 0.5 MiB of deflate, declared as 1,000
    bytes: refused, and the process never holds more than a few MiB of it."""
    file, _ = node_with_snapshot(tmp_path / "n")
    z = zlib.compressobj(1)
    chunk = bytes(1 << 20)
    stored = b"".join(z.compress(chunk) for _ in range(512)) + z.flush()
    write(file, 3, ZLIB, stored, 1000)
    out = subprocess.run([sys.executable, "-c", BOMB, str(tmp_path / "n")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("refused") and "inflate" in lines[0], out.stdout
    grown = int(lines[-1].split()[1])
    assert grown < 64 * 1024, f"RSS grew by {grown} KiB while refusing the bomb"
