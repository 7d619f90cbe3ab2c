"""The command format: what ``node.apply()`` carries for a structure.

One command is the UTF-8 JSON array::

    [1, "users", "set", 1, ["alice", {"age": 7}]]
     |    |       |     |   '- the operation's arguments (codec values)
     |    |       |     '- the operation's version (see Group.activate)
     |    |       '- the operation
     |    '- the structure's name in its group ("" for a structure that is a
     |       node's FSM by itself; null for the group's own operations)
     '- FORMAT, the version of this layout

A compact JSON array rather than an object with named fields: about a third
fewer bytes on the log and on the wire for small commands, and one
``json.loads`` decodes it. Every node decodes every command the same way; a
command that does not decode fails with BadCommandError on every node, and
changes nothing.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Optional

from . import codec
from .errors import BadCommandError, UnsupportedCommandError

__all__ = ["FORMAT", "Command", "encode", "decode"]

#: The layout version written by this code; decode() refuses higher ones.
FORMAT = 1


class Command(NamedTuple):
    structure: Optional[str]
    op: str
    version: int
    args: list[Any]


def encode(structure: Optional[str], op: str, version: int, args: list[Any]) -> bytes:
    """The bytes of a command; ``args`` must have passed ``codec.check``."""
    return codec.dumps([FORMAT, structure, op, version, args]).encode()


def decode(data: bytes) -> Command:
    """The command in ``data``; BadCommandError if it is not one,
    UnsupportedCommandError if it is of a newer FORMAT."""
    try:
        msg = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # (JSONDecodeError is a ValueError; RecursionError: nested too deep,
        # far deeper than the codec lets a value be.)
        raise BadCommandError(f"not a batteries command ({len(data)} bytes): "
                              f"{type(exc).__name__}: {exc}") from None
    if type(msg) is not list or not msg or type(msg[0]) is not int:
        raise BadCommandError(f"not a batteries command: {_preview(data)}")
    if msg[0] != FORMAT:
        raise UnsupportedCommandError(f"command format {msg[0]} (this code reads format "
                                      f"{FORMAT}): {_preview(data)}")
    if (len(msg) != 5 or (msg[1] is not None and type(msg[1]) is not str)
            or type(msg[2]) is not str or type(msg[3]) is not int or msg[3] < 1
            or type(msg[4]) is not list):
        raise BadCommandError(f"malformed batteries command: {_preview(data)}")
    return Command(msg[1], msg[2], msg[3], msg[4])


def _preview(data: bytes, limit: int = 80) -> str:
    text = bytes(data[:limit]).decode("utf-8", "replace")
    return repr(text) + ("..." if len(data) > limit else "")
