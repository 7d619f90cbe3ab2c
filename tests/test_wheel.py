"""make wheel: a repaired wheel that carries libraft and libuv, installable
in a fresh venv and working without the system's copies; an sdist that
builds against the system libraries."""

import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CLUSTER = textwrap.dedent('''
    import socket, sys, tempfile
    import canonical_raft as raft

    class Counter(raft.FSM):
        def __init__(self): self.value = 0
        def apply(self, command): self.value += 1; return self.value
        def snapshot(self): return str(self.value).encode()
        def restore(self, data): self.value = int(data)

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    servers = [raft.Server(i, f"127.0.0.1:{free_port()}") for i in (1, 2, 3)]
    with tempfile.TemporaryDirectory() as base:
        nodes = [raft.Node(s.id, s.address, f"{base}/{s.id}", Counter()) for s in servers]
        try:
            for n in nodes:
                n.bootstrap(servers)
                n.start()
            leader = {n.id: n for n in nodes}[nodes[0].wait_for_leader(20).id]
            results = [leader.apply(b"x").result(20) for _ in range(10)]
            assert results == list(range(1, 11)), results
        finally:
            for n in nodes:
                n.close()
    maps = open("/proc/self/maps").read()
    libs = sorted({line.split()[-1] for line in maps.splitlines()
                   if "libraft" in line or "libuv" in line})
    print("\\n".join(libs))
    print("module", raft.__file__)
''')


def make_venv(path):
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """make wheel, once for this module."""
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(["make", "--no-print-directory", "wheel", f"DIST={dist}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return dist


def extension(venv_dir):
    return next(venv_dir.glob("lib/python*/site-packages/canonical_raft/_raft*.so"))


@pytest.mark.timeout(600)
def test_repaired_wheel_bundles_libraft_and_runs_a_cluster(dist, tmp_path):
    (wheel,) = (dist / "repaired").glob("canonical_raft-*manylinux*.whl")

    python = make_venv(tmp_path / "venv")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-index",
                              "--no-deps", wheel], capture_output=True, text=True,
                             timeout=120)
    assert install.returncode == 0, install.stderr[-3000:]

    # The extension resolves libraft, libuv and OpenSSL inside the wheel ...
    ldd = subprocess.run(["ldd", extension(tmp_path / "venv")], capture_output=True, text=True, timeout=30).stdout
    for lib in ("libraft", "libuv", "libssl", "libcrypto"):
        (line,) = [line for line in ldd.splitlines() if lib in line]
        assert "canonical_raft.libs" in line, ldd

    # ... and a cluster runs on them, from outside the source tree, with no
    # library path: the process maps only the bundled copies.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    env["LD_LIBRARY_PATH"] = ""
    run = subprocess.run([python, "-I", "-c", CLUSTER], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    mapped = [line for line in run.stdout.splitlines() if line.startswith("/")]
    assert mapped and all("canonical_raft.libs" in path for path in mapped), run.stdout
    assert str(tmp_path / "venv") in run.stdout


@pytest.mark.timeout(600)
def test_sdist_builds_against_the_system_libraries(dist, tmp_path):
    (sdist,) = dist.glob("canonical_raft-*.tar.gz")
    python = make_venv(tmp_path / "venv")
    install = subprocess.run([python, "-m", "pip", "install", "-q", sdist],
                             capture_output=True, text=True, timeout=540)
    assert install.returncode == 0, install.stderr[-3000:]
    ldd = subprocess.run(["ldd", extension(tmp_path / "venv")], capture_output=True,
                         text=True, timeout=30).stdout
    (line,) = [line for line in ldd.splitlines() if "libraft" in line]
    assert "canonical_raft.libs" not in line and "=> /" in line, ldd
