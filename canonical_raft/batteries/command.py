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

from .._raft import lane_encode as _lane_encode
from . import codec
from .errors import BadCommandError, UnsupportedCommandError

__all__ = ["FORMAT", "Command", "encode", "head", "encode_after", "decode", "parse"]

#: The layout version written by this code; decode() refuses higher ones.
FORMAT = 1

# The scanner json.loads runs (the same C decoder and defaults), called on
# the text directly: json.loads of bytes first detects their encoding, then
# checks for whitespace around the value, which a command never has.
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

# The text before the arguments, per (structure, op, version): a few per
# structure, bounded all the same.
_HEADS: dict[tuple[Optional[str], str, int], str] = {}
_MAX_HEADS = 1024


class Command(NamedTuple):
    structure: Optional[str]
    op: str
    version: int
    args: list[Any]


def encode(structure: Optional[str], op: str, version: int, args: list[Any]) -> bytes:
    """The bytes of a command; ``args`` must have passed ``codec.check``."""
    return encode_after(head(structure, op, version), structure, op, args)


def head(structure: Optional[str], op: str, version: int) -> str:
    """The text of a command before its arguments (cached)."""
    key = (structure, op, version)
    text = _HEADS.get(key)
    if text is None:
        text = codec.dumps([FORMAT, structure, op, version])[:-1] + ","
        if len(_HEADS) >= _MAX_HEADS:
            _HEADS.clear()
        _HEADS[key] = text
    return text


def encode_after(head_text: str, structure: Optional[str], op: str, args: list[Any]) -> bytes:
    """encode() with its head already written (``head``; a structure keeps its own)."""
    data = _lane_encode(head_text, args)     # in C for plain scalars (core/lane.pxi)
    if data is not None:
        return data
    try:
        return (head_text + codec.dumps(args) + "]").encode()
    except UnicodeEncodeError as exc:
        # A str with a lone surrogate passes codec.check but has no UTF-8:
        # refused here, where every command passes, before it is submitted.
        raise ValueError(f"a str in {op!r} of {structure!r} is not valid Unicode "
                         f"({exc.reason}: {exc.object[exc.start:exc.end]!r})") from None


def parse(data: bytes) -> list[Any]:
    """The command in ``data`` as the list ``[FORMAT, structure, op,
    version, args]``, checked; the errors of ``decode``."""
    if type(data) is bytes:
        # The fast path: UTF-8 without a BOM and nothing around the array,
        # as encode() writes it. It accepts only what json.loads accepts, and
        # decodes it the same; anything else takes the path below, which
        # words the error.
        try:
            text = data.decode()
            msg, end = _SCAN(text, 0)
        except (ValueError, StopIteration, RecursionError):
            pass
        else:
            if (end == len(text) and type(msg) is list and len(msg) == 5
                    and type(msg[0]) is int and msg[0] == FORMAT
                    and (msg[1] is None or type(msg[1]) is str) and type(msg[2]) is str
                    and type(msg[3]) is int and msg[3] >= 1 and type(msg[4]) is list):
                return msg
    return _parse_slowly(data)


def decode(data: bytes) -> Command:
    """The command in ``data``; BadCommandError if it is not one,
    UnsupportedCommandError if it is of a newer FORMAT."""
    msg = parse(data)
    return Command(msg[1], msg[2], msg[3], msg[4])


def _parse_slowly(data: bytes) -> list[Any]:
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
    return msg


def _preview(data: bytes, limit: int = 80) -> str:
    text = bytes(data[:limit]).decode("utf-8", "replace")
    return repr(text) + ("..." if len(data) > limit else "")
