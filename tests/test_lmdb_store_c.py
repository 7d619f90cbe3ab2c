"""The LMDB log store (canonical_raft/core/lmdb_store.c) and the configuration
check (core/codec_conf.h), tested in C: tests/c/lmdb_store_test.c, built with
AddressSanitizer and UBSan against the system liblmdb and libraft. It covers
term/vote, appends, truncations, both kinds of snapshot, bootstrap and
recover, reopening, and the damage open/load must refuse naming the file
(a flipped byte in an entry or in snapshot data, a missing snapshot, a
truncated file, a missing file, a file that is not LMDB)."""
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


@pytest.mark.timeout(180)
def test_lmdb_store_c(tmp_path: Path) -> None:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc) on PATH")
    exe = tmp_path / "lmdb_store_test"
    build = subprocess.run(
        [cc, *FLAGS, *_pkg("--cflags", "raft", "lmdb"),
         str(ROOT / "tests" / "c" / "lmdb_store_test.c"), str(CORE / "lmdb_store.c"),
         *_pkg("--libs", "raft", "lmdb"), "-o", str(exe)],
        capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    run = subprocess.run([str(exe), str(scratch)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), last
    assert int(last.split()[0]) > 150, last
