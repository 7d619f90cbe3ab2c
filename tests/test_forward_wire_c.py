"""The forwarding channel's frame decoder (canonical_raft/core/forward_wire.h),
tested in C with AddressSanitizer and UBSan: fuzz/forward_fuzz.c's unit cases
(honest frames of every type whole and split at every byte, each check's
negative case) and its oracles (chunk invariance, an independent model of a
well-formed frame) over mutations of an honest stream. The libFuzzer run is
in fuzz/README.md."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from test_firewall_c import ROOT, _build

pytestmark = pytest.mark.timeout(240)


def test_forward_wire_decoder_c(tmp_path: Path) -> None:
    exe = _build(tmp_path, ROOT / "fuzz" / "forward_fuzz.c", "forward_fuzz", "-DFWD_SELFTEST")
    run = subprocess.run([str(exe), "20000"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed") and int(last.split()[0]) > 20000, last
