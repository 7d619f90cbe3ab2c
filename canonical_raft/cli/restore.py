"""``python -m canonical_raft restore BACKUP --data-dir DIR [--peers
id=host:port,...]``: seed a new node's empty data dir from a backup (no
server needed), for each voter of the new cluster, with the same --peers
(default: the backup's own servers). Then start each with ``serve`` on
that dir: it comes up with the backup's state (--peers then changes
nothing)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", help="a file of `backup` or node.backup()")
    parser.add_argument("--data-dir", required=True, help="the new node's data dir (empty)")
    parser.add_argument("--peers", default="",
                        help="id=host:port,... of the new cluster (default: the backup's)")
    parser.add_argument("--check", action="store_true",
                        help="only check the backup and say what it holds")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..backups import read_backup, restore_backup
    from ..errors import RaftError
    from ..testing.procs import parse_servers
    try:
        if args.check:
            info = read_backup(args.backup)
        else:
            servers = parse_servers(args.peers) if args.peers else None
            info = restore_backup(args.backup, args.data_dir, servers)
    except (RaftError, OSError, ValueError) as exc:
        raise SystemExit(f"restore: {exc}") from None
    doc = {"backup": info.path, "index": info.index, "term": info.term,
           "servers": [{"id": s.id, "address": s.address, "role": s.role.name.lower()}
                       for s in info.servers],
           "snapshot_bytes": info.snapshot_size,
           "data_dir": None if args.check else args.data_dir}
    if args.json:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    what = "checked" if args.check else f"seeded {args.data_dir} from"
    print(f"{what} {info.path}: index {info.index}, term {info.term}, "
          f"{info.snapshot_size} bytes of snapshot")
    for s in info.servers:
        print(f"  {s.id}  {s.address}  {s.role.name.lower()}")
    return 0
