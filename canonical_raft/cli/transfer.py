"""``python -m canonical_raft transfer [ID]``: hand leadership to voter ID
(none given: the leader picks one)."""

from __future__ import annotations

import argparse

from . import add_client_arguments, call, show


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=int, nargs="?", default=0)
    add_client_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    doc = call(args, "POST", "/members/transfer", {"id": args.id})
    if args.json:
        return show(args, doc)
    leader = doc["leader"]
    print(f"leader: {leader['id']} at {leader['address']}")
    return 0
