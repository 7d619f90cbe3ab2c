"""The value codec: JSON (stdlib), checked at the call, never pickle.

What round-trips exactly, and nothing else is accepted:

- ``None``, ``bool``, ``int``, ``float`` (finite), ``str``;
- ``list`` of those (nested freely);
- ``dict`` with ``str`` keys and such values.

Refused with ``TypeError`` at the call that submits them (on the caller's
thread, before anything is replicated): tuples and sets (JSON would turn a
tuple into a list), dicts with non-``str`` keys (JSON would turn ``1`` into
``"1"``), subclasses of the types above (``IntEnum``, ``OrderedDict``...),
bytes, and every other object. ``ValueError`` for NaN and infinities (not
JSON). Only exact types are accepted, so what every node decodes is equal,
type for type, to what was submitted.
"""

from __future__ import annotations

import itertools
import json
import json.decoder
import json.encoder
import math
import re
from collections.abc import Iterator
from typing import Any, Union

__all__ = ["JSON", "check", "dumps", "loads", "copy", "canonical", "dumps_object", "dumps_array",
           "Reader", "ReadError"]

#: A value the codec carries (what ``check`` accepts).
JSON = Union[None, bool, int, float, str, "list[JSON]", "dict[str, JSON]"]

_SCALARS = (type(None), bool, int, str)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                            check_circular=False)
_CANONICAL = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                              check_circular=False, sort_keys=True)
_MAX_DEPTH = 100


def check(value: object, what: str = "value") -> None:
    """``TypeError``/``ValueError`` unless ``value`` round-trips through
    the codec exactly; the message names where in ``value`` the problem is."""
    _check(value, what, 0)


def _check(value: Any, where: str, depth: int) -> None:
    t = type(value)
    if t in _SCALARS:
        return
    if t is float:
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}: NaN and infinities are not JSON")
        return
    if depth >= _MAX_DEPTH:
        raise ValueError(f"{where} nests deeper than {_MAX_DEPTH} levels")
    if t is list:
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", depth + 1)
        return
    if t is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where} has the key {key!r} ({type(key).__name__}): "
                                f"JSON object keys are str only")
            _check(item, f"{where}[{key!r}]", depth + 1)
        return
    hint = ""
    if t is tuple:
        hint = " (use a list: JSON has no tuples)"
    elif t in (set, frozenset):
        hint = " (use a sorted list)"
    elif t in (bytes, bytearray, memoryview):
        hint = " (encode it, e.g. base64, into a str)"
    else:
        base = next((b for b in (int, float, str, list, dict) if isinstance(value, b)), None)
        if base is not None:
            hint = f" (a subclass of {base.__name__}: pass a plain {base.__name__})"
    raise TypeError(f"{where} is a {t.__name__}, which the batteries' JSON codec does not "
                    f"carry{hint}: None, bool, int, float, str, list and dict with str keys only")


def dumps(value: object) -> str:
    """The compact JSON text of a checked value."""
    if type(value) is list:
        # A command's arguments are mostly a few scalars: their texts joined
        # cost a third of what the encoder's set-up for each call does.
        try:
            return "[" + ",".join([_SCALAR_TEXT[type(v)](v) for v in value]) + "]"
        except KeyError:
            pass
    return _ENCODER.encode(value)


def _float_text(value: float) -> str:
    # The encoder writes a finite float as its repr; it words the refusal of the others.
    return float.__repr__(value) if math.isfinite(value) else _ENCODER.encode(value)


# What _ENCODER writes for each scalar type (its C code calls the same functions).
_SCALAR_TEXT: dict[type, Any] = {
    str: json.encoder.encode_basestring,    # ensure_ascii=False
    int: int.__repr__,
    float: _float_text,
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
}


#: Items per piece in dumps_object/dumps_array: a few ms of encoding each.
CHUNK = 4096


def dumps_object(items: Iterator[tuple[str, Any]]) -> Iterator[str]:
    """The JSON object of ``items`` (str keys), as text in pieces of
    ``CHUNK`` items: a large one without holding the GIL throughout."""
    yield "{"
    first = True
    while True:
        chunk = dict(itertools.islice(items, CHUNK))
        if not chunk:
            break
        text = _ENCODER.encode(chunk)
        yield text[1:-1] if first else "," + text[1:-1]
        first = False
    yield "}"


def dumps_array(values: list[Any]) -> Iterator[str]:
    """The JSON array of ``values``, as text in pieces (see dumps_object)."""
    yield "["
    for start in range(0, len(values), CHUNK):
        text = _ENCODER.encode(values[start:start + CHUNK])
        yield text[1:-1] if start == 0 else "," + text[1:-1]
    yield "]"


def canonical(value: object) -> str:
    """JSON text with sorted keys: equal values, equal text (for compare-and-set)."""
    return _CANONICAL.encode(value)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON text or UTF-8 bytes."""
    if isinstance(data, memoryview):
        data = bytes(data)
    return json.loads(data)


def copy(value: Any) -> Any:
    """A copy of a decoded value that shares no mutable part with it
    (scalars are returned as they are)."""
    t = type(value)
    if t is list:
        return [copy(v) for v in value]
    if t is dict:
        return {k: copy(v) for k, v in value.items()}
    return value


_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_SCANSTRING = json.decoder.scanstring  # type: ignore[attr-defined]
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_COLON = re.compile(r"[ \t\n\r]*:")
_NEXT = re.compile(r"[ \t\n\r]*([,}])[ \t\n\r]*")


class ReadError(ValueError):
    """Text that a Reader cannot read as JSON."""


class Reader:
    """JSON text read member by member, so that a large object is never
    decoded whole (a snapshot's dict of a million keys is written into LMDB
    as it is read). Raises ReadError, naming the offset, on bad JSON."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> ReadError:
        return ReadError(f"{what} at offset {self.pos}")

    def _skip(self) -> int:
        pos = self.pos
        if self.text[pos:pos + 1].isspace():
            pos = self.pos = _WHITESPACE.match(self.text, pos).end()  # type: ignore[union-attr]
        return pos

    def at(self, char: str) -> bool:
        """Whether the next value starts with ``char`` (e.g. ``"{"``)."""
        return self.text.startswith(char, self._skip())

    def span(self) -> tuple[Any, int, int]:
        """The next value, decoded, and where its text starts and ends."""
        start = self._skip()
        try:
            value, end = _SCAN(self.text, start)
        except StopIteration:
            raise self.error("expected a JSON value") from None
        except RecursionError:
            raise self.error("a value nested too deep") from None
        self.pos = end
        return value, start, end

    def value(self) -> Any:
        """The next value, decoded."""
        return self.span()[0]

    def members(self) -> Iterator[str]:
        """The keys of the object that comes next, one by one; after each,
        the caller reads its value (``value()``, ``span()``, ``members()``)."""
        text = self.text
        if not self.at("{"):
            raise self.error("expected '{'")
        self.pos += 1
        if self.at("}"):
            self.pos += 1
            return
        pos = self.pos
        while True:
            if not text.startswith('"', pos):
                raise self.error("expected '\"'")
            try:
                key, pos = _SCANSTRING(text, pos + 1)
            except ValueError:
                raise self.error("a bad object key") from None
            colon = _COLON.match(text, pos)
            if colon is None:
                self.pos = pos
                raise self.error("expected ':'")
            self.pos = colon.end()
            yield key
            after = _NEXT.match(text, self.pos)
            if after is None:
                raise self.error("expected ',' or '}'")
            pos = after.end()
            if after.group(1) == "}":
                self.pos = pos
                return

    def end(self) -> None:
        """ReadError unless only whitespace is left."""
        if self._skip() != len(self.text):
            raise self.error("extra data")
