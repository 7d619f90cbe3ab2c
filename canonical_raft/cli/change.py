"""What the membership commands (add, remove, assign) print: the
configuration after the change."""

from __future__ import annotations

from typing import Any

from . import print_table


def print_configuration(doc: Any) -> int:
    print_table(("ID", "ADDRESS", "ROLE"),
                [(m["id"], m["address"], m["role"]) for m in doc["members"]])
    return 0
