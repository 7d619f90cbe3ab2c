"""``python -m canonical_raft assign ID voter|standby|spare``: give a server
another role (a voter is caught up first)."""

from __future__ import annotations

import argparse

from . import add_client_arguments, call, show
from .change import print_configuration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=int)
    parser.add_argument("role", choices=["voter", "standby", "spare"])
    add_client_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    doc = call(args, "POST", "/members/assign", {"id": args.id, "role": args.role})
    return show(args, doc) if args.json else print_configuration(doc)
