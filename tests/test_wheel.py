"""make wheels: repaired wheels that carry libraft, libuv, OpenSSL and liblmdb,
installable in a fresh venv and working without the system's copies, built
from an sdist that builds against the system libraries. One `make wheels`
for the oldest and newest CPython found serves every test here (a build
takes ~30 s per Python); scripts/wheels.py's own smoke test runs a cluster
in each wheel's venv and fails unless only the bundled libraries are mapped."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def wheels_module():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import wheels
    finally:
        sys.path.pop(0)
    return wheels


def oldest_and_newest():
    """The oldest and newest supported CPython this machine has, else the
    test's own."""
    wheels = wheels_module()
    found = [v for v in wheels.SUPPORTED if wheels.find_python(v)]
    return sorted({found[0], found[-1]}) if found else [sys.executable]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """make wheels for oldest_and_newest(), once for this module."""
    versions = oldest_and_newest()
    dist = tmp_path_factory.mktemp("wheels")
    args = " ".join(f"--python {v}" for v in versions) + f" --dist {dist}"
    out = subprocess.run(["make", "--no-print-directory", "wheels", f"WHEELS_ARGS={args}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return versions, dist, out.stdout


def ldd_of_extension(wheel, into):
    """ldd of the wheel's extension, unpacked with the libraries beside it."""
    with zipfile.ZipFile(wheel) as z:
        z.extractall(into)
    (so,) = (into / "canonical_raft").glob("_raft*.so")
    return subprocess.run(["ldd", so], capture_output=True, text=True, timeout=30).stdout


@pytest.mark.timeout(900)
def test_wheels_for_the_oldest_and_newest_python_run_a_cluster(built):
    versions, dist, stdout = built
    tags = []
    for v in versions:
        if "/" in v:
            v = subprocess.run([v, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        tags.append("cp" + v.replace(".", ""))
    names = sorted(p.name for p in (dist / "repaired").glob("*.whl"))
    assert [any(f"-{t}-{t}-manylinux" in name for name in names) for t in tags] == \
        [True] * len(tags), names
    ok = [line for line in stdout.splitlines() if " ok " in line]
    assert len(ok) == len(versions), stdout


@pytest.mark.timeout(900)
def test_repaired_wheels_resolve_the_bundled_libraries(built, tmp_path):
    _, dist, _ = built
    wheels = sorted((dist / "repaired").glob("canonical_raft-*manylinux*.whl"))
    assert wheels
    for i, wheel in enumerate(wheels):
        ldd = ldd_of_extension(wheel, tmp_path / str(i))
        for lib in ("libraft", "libuv", "libssl", "libcrypto", "liblmdb"):
            (line,) = [line for line in ldd.splitlines() if lib in line]
            assert "canonical_raft.libs" in line and "not found" not in line, ldd


@pytest.mark.timeout(900)
def test_sdist_builds_against_the_system_libraries(built, tmp_path):
    """The wheels come from the sdist (pip wheel of it, as a user's pip
    would), and before repair they link the system's libraft."""
    _, dist, _ = built
    assert len(list(dist.glob("canonical_raft-*.tar.gz"))) == 1
    raw = sorted((dist / "raw").glob("canonical_raft-*.whl"))
    assert raw
    for i, wheel in enumerate(raw):
        ldd = ldd_of_extension(wheel, tmp_path / str(i))
        (line,) = [line for line in ldd.splitlines() if "libraft" in line]
        assert "canonical_raft.libs" not in line and "=> /" in line, ldd


def test_supported_pythons_are_declared_once():
    """requires-python and the classifiers say what make wheels builds."""
    import tomllib
    wheels = wheels_module()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={wheels.SUPPORTED[0]}"
    declared = [c.rsplit(" ", 1)[1] for c in project["classifiers"]
                if c.startswith("Programming Language :: Python :: 3.")]
    assert declared == wheels.SUPPORTED
