"""make wheel: a repaired wheel that carries libraft and libuv, installable
in a fresh venv and working without the system's copies; an sdist that
builds against the system libraries."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMOKE = ROOT / "scripts" / "wheel_smoke.py"


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

    # The extension resolves libraft, libuv, OpenSSL and liblmdb inside the wheel ...
    ldd = subprocess.run(["ldd", extension(tmp_path / "venv")], capture_output=True, text=True, timeout=30).stdout
    for lib in ("libraft", "libuv", "libssl", "libcrypto", "liblmdb"):
        (line,) = [line for line in ldd.splitlines() if lib in line]
        assert "canonical_raft.libs" in line, ldd

    # ... and a cluster runs on them, from outside the source tree, with no
    # library path: the process maps only the bundled copies.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    env["LD_LIBRARY_PATH"] = ""
    run = subprocess.run([python, "-I", SMOKE], cwd=tmp_path, env=env,
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


def oldest_and_newest():
    """The oldest and newest supported CPython this machine has."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import wheels
    finally:
        sys.path.pop(0)
    found = [v for v in wheels.SUPPORTED if wheels.find_python(v)]
    return wheels, sorted({found[0], found[-1]}) if found else []


def test_supported_pythons_are_declared_once():
    """requires-python and the classifiers say what make wheels builds."""
    import tomllib
    wheels, _ = oldest_and_newest()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={wheels.SUPPORTED[0]}"
    declared = [c.rsplit(" ", 1)[1] for c in project["classifiers"]
                if c.startswith("Programming Language :: Python :: 3.")]
    assert declared == wheels.SUPPORTED


@pytest.mark.timeout(900)
def test_wheels_for_the_oldest_and_newest_python(tmp_path):
    """make wheels for the oldest and newest CPython found: each repaired,
    installed into a fresh venv of its own Python and running a cluster on
    the bundled libraries (scripts/wheels.py checks the mapped files)."""
    _, versions = oldest_and_newest()
    if not versions:
        pytest.skip("no CPython 3.9-3.13 besides the test's own (pyenv or pythonX.Y)")
    args = " ".join(f"--python {v}" for v in versions) + f" --dist {tmp_path / 'wheels'}"
    out = subprocess.run(["make", "--no-print-directory", "wheels", f"WHEELS_ARGS={args}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    built = sorted(p.name for p in (tmp_path / "wheels" / "repaired").glob("*.whl"))
    tags = ["cp" + v.replace(".", "") for v in versions]
    assert [any(f"-{t}-{t}-manylinux" in name for name in built) for t in tags] == \
        [True] * len(tags), built
    for v in versions:
        assert any(line.startswith(v) and " ok " in line for line in out.stdout.splitlines()), \
            out.stdout
