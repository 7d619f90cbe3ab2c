"""batteries: the node's C lane (core/lane.pxi) gives what the Python path
gives. A node applies a plain ReplicatedDict set in C and leaves every
other command to Group.apply; the submitting side writes commands of plain
scalars in C. Each must be indistinguishable from the Python code it
stands in for: the same bytes, the same state (values type for type, the
count, the chain), the same results and errors, for every input."""

import hashlib
import json
import random

import pytest

import canonical_raft as raft
from canonical_raft import _raft
from canonical_raft.batteries import (Group, ReplicatedCounter, ReplicatedDict, ReplicatedQueue,
                                      codec, command)
from canonical_raft.batteries.snapshot import CHAIN_START

from canonical_raft.testing import wait_until

pytestmark = pytest.mark.timeout(60)


# -- the chain --------------------------------------------------------------------


def test_chain_is_blake2b_128_of_chain_then_command():
    rng = random.Random(7)
    for size in [*range(0, 300), 383, 384, 385, 511, 512, 513, 4096, 65537]:
        for held in (0, 16, 127, 128, 200):
            chain, data = rng.randbytes(held), rng.randbytes(size)
            want = hashlib.blake2b(chain + data, digest_size=16).digest()
            assert _raft.lane_chain(chain, data) == want, (held, size)
    assert _raft.lane_chain(CHAIN_START, bytearray(b"x")) == _raft.lane_chain(CHAIN_START, b"x")
    with pytest.raises(TypeError):
        _raft.lane_chain(None, b"x")


# -- the submitting side -------------------------------------------------------------

SCALARS = [None, True, False, 0, -0, 1, -1, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 10**30, "",
           "k", "é\u2603\U0001f600", "quote\"", "back\\slash", "tab\t", "\x00", "\x1f", "\x7f",
           "\u2028", 1.5, -0.0]


def python_encode(structure, op, version, args):
    head = codec.dumps([command.FORMAT, structure, op, version])[:-1] + ","
    return (head + codec._ENCODER.encode(args) + "]").encode()


def test_encode_writes_what_the_encoder_writes():
    rng = random.Random(11)
    cases = [[], *([s] for s in SCALARS), *([a, b] for a in SCALARS for b in SCALARS)]
    cases += [[rng.choice(SCALARS) for _ in range(rng.randrange(6))] for _ in range(2000)]
    cases += [["k", [1, 2]], ["k", {"a": 1}], [True, [None]]]
    for structure in (None, "", "users", "é"):
        for args in cases:
            assert command.encode(structure, "set", 2, args) == python_encode(structure, "set", 2,
                                                                             args), args


def test_encode_still_refuses_a_lone_surrogate():
    with pytest.raises(ValueError, match="not valid Unicode"):
        command.encode("", "set", 1, ["\ud800", 1])
    with pytest.raises(ValueError, match="not valid Unicode"):
        command.encode("\udfff", "set", 1, ["k", 1])


def test_lane_encode_declines_what_it_does_not_write():
    head = '[1,"","set",1,'
    for args in (["k", 1.5], ["k", [1]], ["k", {}], ["a\"b", 1], ["k", 2**64], ["k", "\n"],
                 [type("S", (str,), {})("k"), 1], [type("I", (int,), {})(1)]):
        assert _raft.lane_encode(head, args) is None, args
    assert _raft.lane_encode(head, ["k", 7]) == b'[1,"","set",1,["k",7]]'
    assert _raft.lane_encode(head, []) == b'[1,"","set",1,[]]'


# -- the applying side ------------------------------------------------------------------


def typed(value):
    """value with its types spelled out: 1, 1.0 and True differ."""
    if type(value) is dict:
        return {k: typed(v) for k, v in value.items()}
    if type(value) is list:
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def make_group():
    return Group(d=ReplicatedDict(), e=ReplicatedDict(), c=ReplicatedCounter(),
                 q=ReplicatedQueue())


def state_of(group):
    return (group._seq, group._chain, group._genesis, group._active,
            {name: typed(s._data) for name, s in group.items() if isinstance(s, ReplicatedDict)},
            group["c"]._value, typed(list(group["q"]._items)))


def outcome(fn, data):
    try:
        return ("ok", typed(fn(data)))
    except Exception as exc:        # the error, as a future would carry it
        return ("error", type(exc).__name__, str(exc))


def as_the_node_applies(group):
    """What the node does with one command: the lane, else Group.apply."""
    def apply(data):
        taken, result = _raft.lane_try(group._state, data)
        return result if taken else group.apply(data)
    return apply


def commands(rng, n):
    """Sets in every form the lane takes, and everything next to them that
    it must leave to the Python path."""
    names = ["d", "e", "c", "q", "", "x", "é", None]
    keys = ["k", "", "é", "k\"q", "a\\b", "\t", "\U0001f600", "k1", "k2"]
    values = [0, 1, -1, -0, 2**63 - 1, -2**63, 2**63, 10**20, None, True, False, "v", "", "é",
              "q\"", 1.5, -0.0, 1e300, [1, "a"], {"a": [None]}]
    good = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.6:
            args = [rng.choice(keys), rng.choice(values)]
            good.append(command.encode(rng.choice(["d", "d", "e", "x"]), "set",
                                       rng.choice([1, 1, 1, 2]), args))
        elif kind < 0.7:
            good.append(command.encode("d", rng.choice(["del", "pop", "cas", "setdefault"]), 1,
                                       [rng.choice(keys)] + ([None, True, 5] if rng.random() < .3
                                                             else [])))
        elif kind < 0.8:
            good.append(command.encode(rng.choice(["c", "c", "d"]), rng.choice(["add", "set"]), 1,
                                       [rng.choice([rng.randrange(-5, 5)] * 6 + [
                                           2**63, -2**70, True, None, 1.5, "1"])]
                                       [:rng.choice([1, 1, 1, 1, 0])]
                                       + ([1] if rng.random() < 0.1 else [])))
        elif kind < 0.85:
            good.append(command.encode("q", "put", 1, [rng.choice(values)]))
        elif kind < 0.88:
            good.append(command.encode(None, "activate", 1, [rng.choice([1, 2])]))
        else:
            good.append(command.encode(rng.choice(names), "set", 1,
                                       [rng.choice(keys), rng.choice(values), 1][:rng.randrange(4)]))
    out = []
    for data in good:
        out.append(data)
        if rng.random() < 0.3:
            out.append(mutate(rng, data))
    return out


def mutate(rng, data):
    """The same command with one change: a byte flipped, dropped, doubled or
    replaced by whitespace, an escape, a non-UTF-8 byte; truncated."""
    b = bytearray(data)
    i = rng.randrange(len(b))
    choice = rng.randrange(7)
    if choice == 0:
        b[i] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del b[i]
    elif choice == 2:
        b[i:i] = b[i:i + 1]
    elif choice == 3:
        b[i:i] = rng.choice([b" ", b"\n", b"\\n", b"\\u0041", b"\xff", b"\xc3", b"\xed\xa0\x80",
                             b".5", b"e3", b"0", b"-", b"\x00"])
    elif choice == 4:
        b = b[:i]
    elif choice == 5:
        b[i] = rng.randrange(256)
    else:
        b = bytearray(data.replace(b"[1,", rng.choice([b"[2,", b"[01,", b"[1.0,", b"[true,"]), 1))
    return bytes(b)


@pytest.mark.parametrize("seed", range(4))
def test_lane_and_group_apply_agree_on_every_command(seed):
    rng = random.Random(seed)
    laned, reference = make_group(), make_group()
    apply_laned = as_the_node_applies(laned)
    for data in commands(rng, 3000):
        assert outcome(apply_laned, data) == outcome(reference.apply, data), data
        assert state_of(laned) == state_of(reference), data
    assert laned._state.lane_count > 300         # the lane took the plain ones
    assert reference._state.lane_count == 0


def test_lane_reads_only_what_json_reads_the_same():
    rng = random.Random(99)
    for _ in range(20000):
        data = mutate(rng, command.encode("d", "set", 1, [rng.choice(["k", "é", ""]),
                                                          rng.choice([1, -7, None, True, "v", 1.5,
                                                                      -2.5e-300])]))
        group = Group(d=ReplicatedDict())
        group._begun = True
        if not _raft.lane_try(group._state, data)[0]:
            assert state_of_dict(group) == (0, {})
            continue
        msg = json.loads(data)          # it took the command: json reads the same set
        assert msg[:4] == [1, "d", "set", 1] and len(msg[4]) == 2
        assert state_of_dict(group) == (1, {msg[4][0]: typed(msg[4][1])})


@pytest.mark.parametrize("number", [
    "0", "-0", "7", "-7", "123456789012345678", "1234567890123456789", "1.5", "-0.0", "0.1e-3",
    "1E+2", "1e400", "-1e400", "2.5e-400", "1e0", "0e0", "3.141592653589793238462643383279",
    "01", "01.5", "1.", ".5", "1e", "1e+", "-", "--1", "1.5.5", "+1", "1ee2", "0x10", "1_0",
    "Infinity", "NaN", "-Infinity", "1.5e3.2"])
def test_the_lane_reads_numbers_as_json_does(number):
    data = b'[1,"d","set",1,["k",' + number.encode() + b"]]"
    group = Group(d=ReplicatedDict())
    group._begun = True
    taken, _ = _raft.lane_try(group._state, data)
    try:
        want = json.loads(data)[4][1]
    except ValueError:
        assert not taken            # what json refuses, the lane leaves alone
        return
    if taken:
        assert typed(group["d"]._data["k"]) == typed(want)
    else:                           # declined: only long ints and what JSON has not (NaN...)
        assert type(want) is float and number in ("Infinity", "NaN", "-Infinity") or (
            type(want) is int and len(number.lstrip("-")) > 18)


def state_of_dict(group):
    return group._seq, {k: typed(v) for k, v in group["d"]._data.items()}


def test_lane_leaves_the_first_command_and_resuming_structures_to_python():
    group = Group(d=ReplicatedDict())
    data = command.encode("d", "set", 1, ["k", 1])
    assert not _raft.lane_try(group._state, data)[0]  # not begun: _begin() runs first
    group.apply(data)
    assert _raft.lane_try(group._state, data) == (True, None) and group._seq == 2
    group._resuming = [object()]
    assert not _raft.lane_try(group._state, data)[0]
    group._resuming = []
    group._seq = None                                   # an old snapshot's: no count
    assert not _raft.lane_try(group._state, data)[0]
    group._seq, group._chain = 2, None                  # never made so; not read as bytes
    assert not _raft.lane_try(group._state, data)[0]
    group._chain, group._state.active = CHAIN_START, None     # nor this: left to Python
    assert not _raft.lane_try(group._state, data)[0] and group._seq == 2


def test_only_plain_structures_of_groups_that_keep_apply_are_laned():
    class MyDict(ReplicatedDict):
        pass

    class MyGroup(Group):
        def apply(self, data):
            return super().apply(data)

    class MyCounter(ReplicatedCounter):
        pass

    group = Group(d=ReplicatedDict(), m=MyDict(), c=ReplicatedCounter(), k=MyCounter())
    assert set(group._state.dicts) == {"d"} and set(group._state.counters) == {"c"}
    from canonical_raft.batteries.group import _lane_of
    assert _lane_of(group) is group._state
    assert _lane_of(MyGroup(d=ReplicatedDict())) is None
    solo = ReplicatedDict()
    assert _lane_of(solo) is solo.group._state
    assert _lane_of(MyDict()).dicts == {}
    assert _lane_of(object()) is None
    member = ReplicatedDict()
    Group(x=member)
    assert _lane_of(member) is None


# -- through a node ----------------------------------------------------------------------


def test_a_node_applies_sets_in_the_lane_and_the_rest_in_python(make_node):
    group = Group(d=ReplicatedDict(), c=ReplicatedCounter())
    node = make_node(group)
    group.attach(node)
    node.bootstrap([(node.id, node.address)])
    node.start()
    wait_until(lambda: node.is_leader, 20, message="the node to lead")
    d, c = group["d"], group["c"]
    futures = [d.set(f"k{i}", i) for i in range(500)] + [c.add(2) for _ in range(10)]
    futures += [d.set("f", 1.5), d.set("n", {"a": [1]}), d.delete("k0")]
    results = [f.result(20) for f in futures]
    assert results[:500] == [None] * 500 and results[500:510] == list(range(2, 22, 2))
    assert results[510:] == [None, None, True]
    assert d.copy() == {**{f"k{i}": i for i in range(1, 500)}, "f": 1.5, "n": {"a": [1]}}
    assert group._state.lane_count >= 499          # the first may have gone to Python
    assert group._seq == 513
    # The chain is the one hashlib gives over the same commands, in order.
    chain = CHAIN_START
    for data in ([command.encode("d", "set", 1, [f"k{i}", i]) for i in range(500)]
                 + [command.encode("c", "add", 1, [2])] * 10
                 + [command.encode("d", "set", 1, ["f", 1.5]),
                    command.encode("d", "set", 1, ["n", {"a": [1]}]),
                    command.encode("d", "del", 1, ["k0"])]):
        chain = hashlib.blake2b(chain + data, digest_size=16).digest()
    assert group._chain == chain


def test_the_lane_frees_what_it_makes():
    # Taken, declined (before and after it decodes: b"\xff" is no UTF-8)
    # and written commands, 100,000 of each kind: memory stays flat.
    import gc
    import tracemalloc
    group = Group(d=ReplicatedDict())
    group._begun = True
    taken = [command.encode("d", "set", 1, [f"k{i % 100}", i if i % 2 else i + 0.5])
             for i in range(1000)]
    declined = [b'[1,"d","set",1,["k",[1]]]', b'[1,"d","set",1,["\xff",1]]', b'[1,"x","set",1,["k",1]]']
    args = [[f"k{i}", i] for i in range(100)]
    head = command.head("d", "set", 1)

    def round_():
        for data in taken:
            assert _raft.lane_try(group._state, data)[0]
        for data in declined * 300:
            assert not _raft.lane_try(group._state, data)[0]
        for a in args * 10:
            _raft.lane_encode(head, a)
            _raft.lane_chain(CHAIN_START, taken[0])

    round_()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            round_()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown
    assert len(group["d"]._data) == 100
