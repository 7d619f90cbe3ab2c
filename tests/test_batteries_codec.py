"""batteries: the codec refuses what would not round-trip, at the call;
the command format fails garbage deterministically (no node needed)."""

import enum
import json
from collections import OrderedDict

import pytest

from canonical_raft import batteries
from canonical_raft.batteries import codec, command

pytestmark = pytest.mark.timeout(30)


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**100, 1.5, -0.0, "", "é\u2603", [], {}, [1, [2, [3]]],
    {"a": {"b": [None, 1.25, "x"]}},
])
def test_codec_round_trips_exactly(value):
    codec.check(value)
    back = codec.loads(codec.dumps(value).encode())
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value, error, words", [
    ((1, 2), TypeError, "use a list"),
    ({1, 2}, TypeError, "sorted list"),
    (b"x", TypeError, "base64"),
    ({1: "a"}, TypeError, "keys are str"),
    ({"k": {2: 3}}, TypeError, "keys are str"),
    (Color.RED, TypeError, "subclass of int"),
    (OrderedDict(a=1), TypeError, "subclass of dict"),
    (object(), TypeError, "does not carry"),
    ([1, float("nan")], ValueError, "NaN"),
    ({"x": float("inf")}, ValueError, "NaN"),
])
def test_codec_refuses_what_would_not_round_trip(value, error, words):
    with pytest.raises(error, match=words):
        codec.check(value)


def test_codec_names_where_the_problem_is():
    with pytest.raises(TypeError, match=r"value\['a'\]\[1\]"):
        codec.check({"a": [1, (2,)]})


def test_codec_refuses_deep_nesting():
    value: list = []
    for _ in range(200):
        value = [value]
    with pytest.raises(ValueError, match="deeper"):
        codec.check(value)


def test_copy_shares_no_mutable_part():
    value = {"a": [1, {"b": 2}]}
    c = codec.copy(value)
    assert c == value
    c["a"][1]["b"] = 3
    assert value["a"][1]["b"] == 2


def test_refusals_happen_at_the_call_before_any_node():
    d = batteries.ReplicatedDict()
    with pytest.raises(TypeError, match="tuple"):
        d.set("k", (1, 2))
    with pytest.raises(TypeError, match="keys are str"):
        d.set(1, "v")
    q = batteries.ReplicatedQueue()
    with pytest.raises(TypeError):
        q.put({1, 2})
    with pytest.raises(TypeError):
        batteries.ReplicatedCounter().add(1.5)
    with pytest.raises(TypeError):
        batteries.ReplicatedLock().acquire("", 1)
    with pytest.raises(ValueError):
        batteries.ReplicatedLock().acquire("me", 0)
    # and with a valid value, the next problem is the missing node
    with pytest.raises(batteries.NotAttachedError, match="attach"):
        d.set("k", [1, 2])


def test_command_format_is_a_compact_versioned_array():
    data = command.encode("users", "set", 1, ["k", {"v": 1}])
    assert json.loads(data) == [command.FORMAT, "users", "set", 1, ["k", {"v": 1}]]
    assert command.decode(data) == ("users", "set", 1, ["k", {"v": 1}])
    assert b" " not in data


@pytest.mark.parametrize("data", [
    b"", b"\xff\xfe", b"garbage", b"{}", b"[]", b'["1"]', b"[1]", b'[1,"s","op",1]',
    b'[1,2,"op",1,[]]', b'[1,"s",3,1,[]]', b'[1,"s","op",0,[]]', b'[1,"s","op",1,{}]',
    b'[1,"s","op",true,[]]', b"\x00" * 8, b"[" * 100_000,
])
def test_garbage_is_a_bad_command(data):
    with pytest.raises(batteries.BadCommandError):
        command.decode(data)


def test_a_newer_format_is_unsupported_not_garbage():
    with pytest.raises(batteries.UnsupportedCommandError, match="format 2"):
        command.decode(b'[2,"s","op",1,[],"more"]')


@pytest.mark.parametrize("n", [0, 1, codec.CHUNK, codec.CHUNK + 1, 3 * codec.CHUNK + 7])
def test_pieces_make_the_same_json(n):
    d = {f"k{i}": [i, {"x": "é"}] for i in range(n)}
    assert json.loads("".join(codec.dumps_object(iter(d.items())))) == d
    values = list(d.values())
    assert json.loads("".join(codec.dumps_array(values))) == values
