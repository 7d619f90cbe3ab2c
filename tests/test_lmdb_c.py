"""storage="lmdb"'s C parts, tested in C, built with AddressSanitizer and UBSan
against the system liblmdb and libraft:

- tests/c/lmdb_store_test.c: the LMDB log store (core/lmdb_store.c) and the
  configuration check (core/codec_conf.h): term/vote, appends, truncations,
  both kinds of snapshot, bootstrap and recover, reopening, and the damage
  open/load must refuse naming the file (a flipped byte in an entry or in
  snapshot data, a missing snapshot, a truncated file, a missing file, a
  file that is not LMDB);
- tests/c/wal_test.c: the write-ahead file (core/wal.c) and the store's path over it:
  the record codec (every flipped byte refused, lying lengths never read past the
  payload), logging, checkpoints, the replay at open, a full file, and the damage
  open refuses naming the file (a flipped record followed by a whole one, a seq gap,
  a newer generation, a cut or missing file) beside the torn last record it ignores;
- tests/c/codec_io_test.c: the raft_io's message frames (core/codec_io.h):
  every type round-trips whole and split at every byte, each check of the
  decoder refuses its case, mutated frames and garbage never crash or leak.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "canonical_raft" / "core"
FLAGS = ["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
         "-I", str(CORE)]


def _pkg(*args: str) -> list[str]:
    out = subprocess.run(["pkg-config", *args], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"pkg-config {' '.join(args)}: {out.stderr.strip()}")
    return shlex.split(out.stdout)


def _build(tmp_path: Path, name: str, *sources: Path) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc) on PATH")
    exe = tmp_path / name
    build = subprocess.run(
        [cc, *FLAGS, *_pkg("--cflags", "raft", "lmdb"), *map(str, sources),
         *_pkg("--libs", "raft", "lmdb"), "-o", str(exe)],
        capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    return exe


def _run(*argv: str, at_least: int) -> None:
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), last
    assert int(last.split()[0]) > at_least, last


@pytest.mark.timeout(180)
def test_lmdb_store_c(tmp_path: Path) -> None:
    exe = _build(tmp_path, "lmdb_store_test", ROOT / "tests" / "c" / "lmdb_store_test.c",
                 CORE / "lmdb_store.c", CORE / "wal.c")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _run(str(exe), str(scratch), at_least=150)


@pytest.mark.timeout(180)
def test_codec_io_c(tmp_path: Path) -> None:
    exe = _build(tmp_path, "codec_io_test", ROOT / "tests" / "c" / "codec_io_test.c")
    _run(str(exe), at_least=50000)


@pytest.mark.timeout(180)
def test_wal_c(tmp_path: Path) -> None:
    exe = _build(tmp_path, "wal_test", ROOT / "tests" / "c" / "wal_test.c",
                 CORE / "wal.c", CORE / "lmdb_store.c")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _run(str(exe), str(scratch), at_least=60)
