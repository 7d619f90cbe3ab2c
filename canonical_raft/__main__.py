"""The command line: ``python -m canonical_raft COMMAND [options]``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional

# name -> (module with add_arguments(parser), one-line help). A new command
# (bench, ...) is one more row and one more module.
COMMANDS = {
    "demo": ("canonical_raft.demo",
             "local cluster, replicated dict, SIGKILL of the leader, every write verified"),
    "certs": ("canonical_raft.certs",
              "make a cluster CA and node certificates for mutual TLS"),
    "bench": ("canonical_raft.perf",
              "writes/s and latency of a local cluster on this machine's disk (binding only)"),
    "serve": ("canonical_raft.server.command",
              "a replicated key-value server with an HTTP/JSON API, status page and metrics"),
    "stop": ("canonical_raft.server.stop", "stop the server that holds a data dir (SIGTERM)"),
    "status": ("canonical_raft.cli.status", "a server's node: state, term, indexes, leader"),
    "members": ("canonical_raft.cli.members", "the cluster's members, roles, states, indexes"),
    "add": ("canonical_raft.cli.add", "add a server to the cluster"),
    "remove": ("canonical_raft.cli.remove", "remove a server from the cluster"),
    "assign": ("canonical_raft.cli.assign", "give a server another role"),
    "transfer": ("canonical_raft.cli.transfer", "hand leadership to another voter"),
    "snapshot": ("canonical_raft.cli.snapshot", "a server's node takes a snapshot now"),
    "backup": ("canonical_raft.cli.backup", "download a checked backup of a server's state"),
    "restore": ("canonical_raft.cli.restore", "seed a new node's data dir from a backup"),
    "convert-storage": ("canonical_raft.convert",
                        "convert a stopped node's data dir between storage='uv' and 'lmdb'"),
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m canonical_raft",
                                     description="canonical_raft: Raft consensus (libraft) for Python.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)  # sets defaults(run=...)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
