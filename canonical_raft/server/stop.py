"""``python -m canonical_raft stop --data-dir DIR``: stop the server that
holds DIR (SIGTERM to the pid its lock file names, which closes it
cleanly), and wait until it has let go of the dir."""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import time

from ..datadir import LOCK_NAME

__all__ = ["add_arguments", "run", "holder"]

_POLL = 0.05


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for it to exit")
    parser.set_defaults(run=run)


def holder(data_dir: str) -> int | None:
    """The pid of the process that holds ``data_dir`` now, or None."""
    try:
        fd = os.open(os.path.join(data_dir, LOCK_NAME), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None         # nobody holds it
    finally:
        os.close(fd)


def run(args: argparse.Namespace) -> int:
    pid = holder(args.data_dir)
    if pid is None:
        print(f"stop: nothing runs on {args.data_dir}")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + args.timeout
    while holder(args.data_dir) is not None:
        if time.monotonic() >= deadline:
            raise SystemExit(f"stop: pid {pid} still holds {args.data_dir} after "
                             f"{args.timeout:g} s")
        time.sleep(_POLL)
    print(f"stop: pid {pid} stopped")
    return 0
