"""Build the compiled core against the system libraft (>= 0.22) and libuv."""

import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup

MIN_LIBRAFT = "0.22.0"


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args], check=True, text=True,
                             capture_output=True).stdout
    except FileNotFoundError:
        sys.exit("canonical_raft: pkg-config not found; run scripts/install-deps.sh "
                 "(or install pkg-config, libraft-dev >= 0.22 and libuv1-dev)")
    except subprocess.CalledProcessError as exc:
        sys.exit(f"canonical_raft: pkg-config {' '.join(args)} failed: {exc.stderr.strip()}")
    return shlex.split(out)


def check_libraft():
    try:
        version = pkg_config("--modversion", "raft")[0]
    except SystemExit:
        sys.exit("canonical_raft: libraft not found by pkg-config; run "
                 "scripts/install-deps.sh (Debian: libraft-dev from bookworm-backports)")
    if subprocess.run(["pkg-config", f"--atleast-version={MIN_LIBRAFT}", "raft"]).returncode:
        sys.exit(f"canonical_raft: libraft {version} is too old: {MIN_LIBRAFT} or newer "
                 "is required (0.15 has known safety bugs); on Debian 12 install "
                 "libraft-dev from bookworm-backports (scripts/install-deps.sh does)")
    return version


def extensions():
    from Cython.Build import cythonize

    check_libraft()
    debug = os.environ.get("CANONICAL_RAFT_DEBUG") == "1"
    # The peer transport's C parts: mutual TLS over OpenSSL (libssl-dev);
    # storage="lmdb": liblmdb (liblmdb-dev).
    cflags = pkg_config("--cflags", "raft", "libuv", "libssl", "libcrypto", "lmdb")
    libs = pkg_config("--libs", "raft", "libuv", "libssl", "libcrypto", "lmdb")
    extra_compile = ["-std=gnu11", "-Wno-unused-function"]
    if debug:
        extra_compile += ["-O0", "-g3", "-UNDEBUG"]
    ext = Extension(
        "canonical_raft._raft",
        ["canonical_raft/_raft.pyx", "canonical_raft/core/tls_stream.c",
         "canonical_raft/core/peer_transport.c", "canonical_raft/core/forward_link.c",
         "canonical_raft/core/lmdb_store.c", "canonical_raft/core/wal.c",
         "canonical_raft/core/raft_io.c",
         "canonical_raft/core/lmdb_convert.c"],
        include_dirs=["canonical_raft/core"],
        depends=["canonical_raft/core/firewall.h", "canonical_raft/core/tls_stream.h",
                 "canonical_raft/core/peer_transport.h", "canonical_raft/core/log_guard.h",
                 "canonical_raft/core/forward_wire.h", "canonical_raft/core/forward_link.h",
                 "canonical_raft/core/backup.h", "canonical_raft/core/lmdb_store.h",
                 "canonical_raft/core/codec_conf.h", "canonical_raft/core/codec_io.h",
                 "canonical_raft/core/raft_io.h", "canonical_raft/core/lmdb_convert.h",
                 "canonical_raft/core/wal.h", "canonical_raft/core/command_scan.h",
                 "canonical_raft/core/blake2b.h"],
        extra_compile_args=cflags + extra_compile,
        extra_link_args=libs,
        define_macros=[("CANONICAL_RAFT_DEBUG", "1")] if debug else [],
    )
    directives = {"language_level": 3}
    if debug:
        directives.update(boundscheck=True, wraparound=True, initializedcheck=True)
    return cythonize([ext], compiler_directives=directives,
                     include_path=["canonical_raft"], quiet=True)


# Metadata lives in pyproject.toml; `setup.py clean` etc. need no Cython.
if len(sys.argv) > 1 and sys.argv[1] in ("clean", "--version", "--name"):
    setup()
else:
    setup(ext_modules=extensions())
