"""The protocol firewall's parser (canonical_raft/core/firewall.h), tested in C.

1. tests/c/firewall_test.c, built with AddressSanitizer and UBSan: unit tests
   (honest messages of every type whole and split at every byte, each check's
   negative cases, mutations, garbage); it also gets the captured real streams
   in fuzz/captures/, each of which must pass.
2. fuzz/firewall_fuzz.c without libFuzzer (FW_FUZZ_STANDALONE): its oracles
   (chunk invariance, and an independent model of libraft 0.22.1's receiver
   that every passed message must satisfy) over the seeds of
   fuzz/make_seeds.py and a few thousand structure-aware mutations of them.
   The real fuzzing run (libFuzzer, clang) is described in fuzz/README.md.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "canonical_raft" / "core"
CAPTURES = sorted((ROOT / "fuzz" / "captures").glob("*.bin"))
FLAGS = ["-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
         "-I", str(INCLUDE)]
MUTATED_INPUTS = 5000


def _build(tmp_path: Path, source: Path, name: str, *extra: str) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc) on PATH")
    exe = tmp_path / name
    build = subprocess.run([cc, *FLAGS, *extra, str(source), "-o", str(exe)],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    return exe


def test_firewall_parser_c(tmp_path: Path) -> None:
    exe = _build(tmp_path, ROOT / "tests" / "c" / "firewall_test.c", "firewall_test")
    assert CAPTURES, "fuzz/captures/*.bin missing"
    run = subprocess.run([str(exe), *map(str, CAPTURES)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), last
    assert int(last.split()[0]) > 10000, last
    assert run.stdout.count("capture ") == len(CAPTURES)


def test_firewall_fuzz_oracles(tmp_path: Path) -> None:
    exe = _build(tmp_path, ROOT / "fuzz" / "firewall_fuzz.c", "firewall_fuzz",
                 "-DFW_FUZZ_STANDALONE")
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, str(ROOT / "fuzz" / "make_seeds.py"), str(corpus)],
                   check=True, capture_output=True, timeout=60)
    seeds = sorted(corpus.glob("*.bin"))
    assert len(seeds) >= 10
    run = subprocess.run([str(exe), str(MUTATED_INPUTS), *map(str, seeds)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "no oracle failed" in run.stdout
