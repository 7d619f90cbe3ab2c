"""The protocol firewall's parser (canonical_raft/core/firewall.h), tested in C.

Compiles tests/c/firewall_test.c with AddressSanitizer and UBSan and runs it;
the program prints "N passed, M failed" and exits non-zero on any failure.
Captured real traffic (fuzz/corpus/capture-*.bin, if present) is passed to it
as well: every captured stream must pass.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "c" / "firewall_test.c"
INCLUDE = ROOT / "canonical_raft" / "core"
CAPTURES = sorted((ROOT / "fuzz" / "captures").glob("*.bin"))


def test_firewall_parser_c(tmp_path: Path) -> None:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc) on PATH")
    exe = tmp_path / "firewall_test"
    build = subprocess.run(
        [cc, "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
         "-I", str(INCLUDE), str(SOURCE), "-o", str(exe)],
        capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), *map(str, CAPTURES)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), last
    assert int(last.split()[0]) > 1000, last
