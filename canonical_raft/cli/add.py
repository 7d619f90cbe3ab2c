"""``python -m canonical_raft add ID HOST:PORT [--role voter|standby|spare]``:
add a server to the cluster (then start it, with an empty data dir and no
--peers)."""

from __future__ import annotations

import argparse

from . import add_client_arguments, call, show
from .change import print_configuration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=int)
    parser.add_argument("address", help="the new server's peer port, host:port")
    parser.add_argument("--role", default="voter", choices=["voter", "standby", "spare"])
    add_client_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    doc = call(args, "POST", "/members/add",
               {"id": args.id, "address": args.address, "role": args.role})
    return show(args, doc) if args.json else print_configuration(doc)
