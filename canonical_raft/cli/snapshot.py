"""``python -m canonical_raft snapshot --server HOST:PORT``: that node takes a
snapshot now (leader or follower), and says at which index."""

from __future__ import annotations

import argparse

from . import add_client_arguments, call, show


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    doc = call(args, "POST", "/snapshot", {})
    return show(args, doc, f"node {doc['id']}: snapshot at index {doc['index']}")
