"""``python -m canonical_raft backup FILE --server HOST:PORT``: download a
backup of that node's state (leader or follower) into FILE, checked whole
before it replaces FILE. ``restore`` seeds a new node's data dir from it."""

from __future__ import annotations

import argparse
import os
import tempfile

from . import add_client_arguments, request, show

_CHUNK = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="where to write the backup")
    add_client_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..backups import read_backup
    from ..errors import CorruptError
    path = os.path.abspath(args.file)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path),
                               prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with open(fd, "wb") as out, request(args, "GET", "/backup") as resp:
            node = resp.headers.get("X-Raft-Node")
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        try:
            info = read_backup(tmp)           # a download cut short is refused here
        except CorruptError as exc:
            raise SystemExit(f"backup: the download does not check: {exc}") from None
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    doc = {"file": path, "node": int(node) if node else None, "index": info.index,
           "term": info.term, "servers": [list(s) for s in info.servers],
           "bytes": os.path.getsize(path)}
    return show(args, doc, f"backup of node {node} at index {info.index} (term {info.term}, "
                           f"{doc['bytes']} bytes) written to {path}")
