"""``python -m canonical_raft status --server HOST:PORT``: that node's state,
term, indexes and leader."""

from __future__ import annotations

import argparse

from . import add_client_arguments, call, print_table, show

_FIELDS = ("id", "address", "http", "state", "term", "commit_index", "last_applied",
           "last_index", "snapshot_index", "last_contact", "pending_applies", "voters",
           "servers", "error", "version")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    doc = call(args, "GET", "/status")
    if args.json:
        return show(args, doc)
    leader = doc.get("leader")
    rows = [(name, doc.get(name)) for name in _FIELDS]
    rows.insert(4, ("leader", f"{leader['id']} ({leader['address']})" if leader else None))
    refused = doc.get("refused") or {}
    if refused:
        rows.append(("refused", ", ".join(f"{k}={v}" for k, v in sorted(refused.items()))))
    print_table(("field", "value"), rows)
    return 0
