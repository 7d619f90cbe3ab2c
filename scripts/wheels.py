"""`make wheels`: a repaired wheel for each CPython this machine has, each
proven in a fresh venv of its own Python by a 3-node cluster.

    python scripts/wheels.py [--python 3.9 --python /path/to/python ...] [--dist DIR]

Without --python: every CPython from 3.9 to 3.13 found (pyenv's versions,
then pythonX.Y on PATH); --python takes a version or an interpreter's path
(`make wheel` passes the .venv's). One sdist is made first; each wheel is
built from it (as pip would for a user) into DIST/raw/, linked against the
system libraries, then repaired with auditwheel (libraft, libuv, OpenSSL, liblmdb
bundled) into DIST/repaired/ and installed with no index into a new venv,
where scripts/wheel_smoke.py must run a cluster on the bundled libraries
only. Exit status 1 if any Python fails; a table at the end either way.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "scripts" / "wheel_smoke.py"
SUPPORTED = ["3.9", "3.10", "3.11", "3.12", "3.13"]


def find_python(version: str) -> str | None:
    """The newest interpreter of `version` (X.Y) on this machine, or
    `version` itself when it is a path."""
    if "/" in version:
        return version if os.access(version, os.X_OK) else None
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"),
                   key=lambda p: tuple(int(x) for x in p.split("/")[-3].split(".")
                                       if x.isdigit()))
    return found[-1] if found else shutil.which(f"python{version}")


def run(argv, what: str, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed ({out.returncode}):\n"
                           + (out.stdout[-2000:] + out.stderr[-3000:]))
    return out


def make_sdist(dist: Path) -> Path:
    run([sys.executable, "-m", "build", "--sdist", "--outdir", dist, ROOT], "sdist",
        timeout=300)
    (sdist,) = dist.glob("canonical_raft-*.tar.gz")
    return sdist


def build_and_prove(python: str, sdist: Path, dist: Path, scratch: Path) -> Path:
    """Build, repair, install and smoke-test one wheel; its path."""
    tag = run([python, "-c", "import sys; print('cp%d%d' % sys.version_info[:2])"],
              "version").stdout.strip()
    raw = dist / "raw"
    run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", raw, sdist],
        f"pip wheel ({tag})", timeout=900)
    (wheel,) = raw.glob(f"canonical_raft-*-{tag}-*.whl")
    repaired = dist / "repaired"
    run([sys.executable, "-m", "auditwheel", "repair", "-w", repaired, wheel],
        f"auditwheel repair ({tag})", timeout=300,
        env=dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"))
    (fixed,) = repaired.glob(f"canonical_raft-*-{tag}-*manylinux*.whl")

    venv = scratch / f"venv-{tag}"
    run([python, "-m", "venv", venv], f"venv ({tag})", timeout=120)
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--no-deps",
         fixed], f"install ({tag})", timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    env["LD_LIBRARY_PATH"] = ""
    smoke = run([venv / "bin" / "python", "-I", SMOKE], f"smoke test ({tag})",
                cwd=scratch, env=env, timeout=120).stdout
    mapped = [line for line in smoke.splitlines() if line.startswith("/")]
    if not mapped or not all("canonical_raft.libs" in path for path in mapped):
        raise RuntimeError(f"smoke test ({tag}) mapped system libraries:\n{smoke}")
    if str(venv) not in smoke:
        raise RuntimeError(f"smoke test ({tag}) imported another copy:\n{smoke}")
    return fixed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", action="append", metavar="X.Y",
                   help="a CPython version to build for (repeatable; default: all found "
                        f"of {', '.join(SUPPORTED)})")
    p.add_argument("--dist", default=str(ROOT / "dist" / "wheels"), type=Path)
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                   help="Pythons built at once (each build compiles on one core; "
                        "default: the cores, at most 4)")
    args = p.parse_args(argv)
    versions = args.python or SUPPORTED
    pythons = {v: find_python(v) for v in versions}
    if args.python and None in pythons.values():
        missing = [v for v, py in pythons.items() if py is None]
        print(f"no interpreter for {', '.join(missing)}", file=sys.stderr)
        return 1
    dist = args.dist
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    sdist = make_sdist(dist)

    def one(version: str, python: str | None, scratch: Path) -> tuple[str, str, str, float]:
        if python is None:
            return version, "-", "not on this machine", 0.0
        began = time.monotonic()
        try:
            wheel = build_and_prove(python, sdist, dist, scratch)
            return version, wheel.name, "ok", time.monotonic() - began
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            print(exc, file=sys.stderr)
            return version, "-", "FAILED", time.monotonic() - began

    with tempfile.TemporaryDirectory(prefix="canonical-raft-wheels-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        # Each Python's build, repair, venv and smoke test is its own: they
        # share only the sdist and the output dirs (names differ by tag).
        rows = list(pool.map(lambda item: one(*item, Path(tmp)), pythons.items()))
    failed = any(result == "FAILED" for _, _, result, _ in rows)
    print(f"\nsdist: {sdist.name}\n")
    print(f"{'python':<8} {'result':<20} {'seconds':>8}  wheel")
    for version, name, result, seconds in rows:
        print(f"{version:<8} {result:<20} {seconds:>8.0f}  {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
