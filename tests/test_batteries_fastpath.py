"""batteries: the fast paths of the command format give what the slow ones
give (the same values, the same bytes, the same errors), so the log reads
the same whichever path a node takes (no node needed)."""

import hashlib
import json

import pytest

from canonical_raft import batteries
from canonical_raft.batteries import codec, command
from canonical_raft.batteries.snapshot import CHAIN_START

pytestmark = pytest.mark.timeout(30)

ARGS = [
    [], ["k", 1], ["k", None], ["k", True, False], ["é\u2603", "tab\tquote\"back\\slash\n"],
    ["\x00\x1f\u2028", -0.0], [1.5, 1e300, -2**70, 0], ["k", {"v": [1, {"w": "x"}]}],
    [[1, 2], {}], ["\U0001f600"],
]


@pytest.mark.parametrize("args", ARGS)
def test_dumps_writes_what_the_encoder_writes(args):
    assert codec.dumps(args) == codec._ENCODER.encode(args)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_dumps_refuses_what_the_encoder_refuses_alike(bad):
    with pytest.raises(ValueError) as slow:
        codec._ENCODER.encode(["k", bad])
    with pytest.raises(ValueError) as fast:
        codec.dumps(["k", bad])
    assert str(fast.value) == str(slow.value)


@pytest.mark.parametrize("structure", [None, "", "users", "é"])
@pytest.mark.parametrize("args", ARGS)
def test_encode_is_the_json_array_and_parses_back(structure, args):
    data = command.encode(structure, "set", 3, args)
    assert data == codec._ENCODER.encode([command.FORMAT, structure, "set", 3, args]).encode()
    assert command.parse(data) == command._parse_slowly(data) == json.loads(data)
    assert command.decode(data) == (structure, "set", 3, args)


@pytest.mark.parametrize("data", [
    b'\xef\xbb\xbf[1,"s","op",1,["k",1]]',               # a UTF-8 BOM
    '[1,"s","op",1,["k",1]]'.encode("utf-16"),           # another encoding json.loads detects
    '[1,"s","op",1,["k",1]]'.encode("utf-32-le"),
    b' [1,"s","op",1,["k",1]]\n',                        # whitespace around the array
    b'[ 1 , "s" , "op" , 1 , [ "k" , 1 ] ]',
    bytearray(b'[1,"s","op",1,["k",1]]'),
])
def test_what_the_fast_path_leaves_is_still_read_as_before(data):
    assert command.parse(data) == command._parse_slowly(data) == [1, "s", "op", 1, ["k", 1]]


@pytest.mark.parametrize("data", [
    b"", b"\xff\xfe", b"garbage", b"{}", b"[]", b'["1"]', b"[1]", b'[1,"s","op",1]',
    b'[1,2,"op",1,[]]', b'[1,"s",3,1,[]]', b'[1,"s","op",0,[]]', b'[1,"s","op",1,{}]',
    b'[1,"s","op",true,[]]', b'[true,"s","op",1,[]]', b'[1,"s","op",1,[]]x',
    b'[1,"s","op",1,[]][]', b"\x00" * 8, b"[" * 100_000,
    b'[2,"s","op",1,[],"more"]',
    b'[1,"s","op",1,[' + b"9" * 5000 + b']]',
])
def test_bad_input_fails_with_the_slow_paths_error(data):
    with pytest.raises(batteries.BadCommandError) as slow:
        command._parse_slowly(data)
    with pytest.raises(batteries.BadCommandError) as fast:
        command.decode(data)
    assert type(fast.value) is type(slow.value) and str(fast.value) == str(slow.value)


def test_surrogates_json_loads_accepts_are_read_alike():
    # json.loads decodes bytes with surrogatepass: a lone surrogate is a
    # str; data.decode() refuses it, so the slow path reads it.
    data = b'[1,"s","op",1,["\xed\xa0\x80"]]'
    assert command.parse(data) == json.loads(data)


def test_the_chain_is_the_hash_of_the_chain_and_the_command():
    # One blake2b call over both, the same digest as hashing them in turn:
    # chains stored in snapshots and LMDB stores stay valid.
    d = batteries.ReplicatedDict()
    group = d._solo()
    chain = CHAIN_START
    for i in range(5):
        data = command.encode("", "set", 1, [f"k{i}", i])
        assert d.apply(data) is None
        h = hashlib.blake2b(chain, digest_size=16)
        h.update(data)
        chain = h.digest()
    assert group._chain == chain and group._seq == 5
    assert dict(d) == {f"k{i}": i for i in range(5)}


def test_a_bad_key_is_refused_on_apply_as_before():
    d = batteries.ReplicatedDict()
    with pytest.raises(TypeError, match="keys are str"):
        d.apply(command.encode("", "set", 1, [1, "v"]))
    assert len(d) == 0 and d._solo()._seq == 1     # counted, changed nothing


@pytest.mark.parametrize("key,value", [("k", "\ud800"), ("\udc80", 1), ("k", {"a": ["\udfff"]})])
def test_a_lone_surrogate_is_refused_before_anything_is_submitted(key, value):
    """codec.check passes a str with a lone surrogate (JSON text can hold
    it), but it has no UTF-8: encode() refuses it with a ValueError, as the
    codec's other refusals, and the node gets nothing."""
    from test_batteries_group import FakeNode
    d = batteries.ReplicatedDict()
    group = d._solo()
    node = FakeNode([group])
    submitted = []
    node.apply = lambda command: submitted.append(command)
    group.attach(node)
    with pytest.raises(ValueError, match="not valid Unicode"):
        d.set(key, value)
    assert submitted == [] and len(d) == 0
