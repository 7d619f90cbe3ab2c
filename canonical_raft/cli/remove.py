"""``python -m canonical_raft remove ID``: remove a server from the cluster
(it stops by itself; wipe its data dir before adding it back)."""

from __future__ import annotations

import argparse

from . import add_client_arguments, call, show
from .change import print_configuration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=int)
    add_client_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    doc = call(args, "POST", "/members/remove", {"id": args.id})
    return show(args, doc) if args.json else print_configuration(doc)
