"""``python -m canonical_raft members --server HOST:PORT``: the cluster's
members with their roles, states, terms, indexes and last contact."""

from __future__ import annotations

import argparse
from typing import Any

from . import add_client_arguments, call, print_table, show

HEADERS = ("ID", "ADDRESS", "ROLE", "STATE", "TERM", "COMMIT", "APPLIED", "LAST CONTACT", "HTTP")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.set_defaults(run=run)


def _contact(status: Any) -> Any:
    if status.get("state") == "leader":
        return "leader"
    seconds = status.get("last_contact")
    return None if seconds is None else f"{seconds:.2f}s"


def rows(doc: Any) -> list[tuple[Any, ...]]:
    out = []
    for m in doc["members"]:
        s = m.get("status")
        leads = "*" if m["id"] == doc.get("leader") else ""
        if s is None:
            out.append((f"{m['id']}{leads}", m["address"], m["role"],
                        m.get("status_error") or "unknown", None, None, None, None, m["http"]))
            continue
        out.append((f"{m['id']}{leads}", m["address"], m["role"], s["state"], s["term"],
                    s["commit_index"], s["last_applied"], _contact(s), m["http"]))
    return out


def run(args: argparse.Namespace) -> int:
    doc = call(args, "GET", "/members")
    if args.json:
        return show(args, doc)
    print_table(HEADERS, rows(doc))
    return 0
