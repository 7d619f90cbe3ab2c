# The batteries' fast lane: the commonest commands of canonical_raft.batteries
# (a ReplicatedDict's set and del, a ReplicatedCounter's add and set),
# applied here in C instead of through the group's Python apply(). Every
# node applies every command, so this is the batteries' cost per command on
# every node, and on the leader it also holds the GIL its clients need to
# submit.
#
# One meaning, two readers: batteries/group.py's Group.apply() is the
# definition. The lane takes a command only when the Group would do nothing
# but count it, chain it and run one of those operations on plain values
# (command_scan.h reads it, the checks below are Group.apply's, in its
# order), and changes nothing when it declines: Group.apply() then runs as
# it always does.
# tests/test_batteries_lane.py checks that both give the same state.

cdef extern from "command_scan.h" nogil:
    enum:
        CS_STR
        CS_INT
        CS_FLOAT
        CS_TRUE
        CS_FALSE
        CS_NULL
    ctypedef struct cs_value:
        int kind
        const char *p
        size_t len
        long long i
    ctypedef struct cs_command:
        cs_value structure
        cs_value op
        long long version
        unsigned nargs
        cs_value args[4]
    int cs_command_scan(const char *p, size_t n, cs_command *c)

cdef extern from "blake2b.h" nogil:
    void cr_blake2b2(uint8_t *out, size_t outlen, const uint8_t *a, size_t alen,
                     const uint8_t *b, size_t blen)

from cpython.unicode cimport PyUnicode_DecodeUTF8
from cpython.long cimport PyLong_FromLongLong
from cpython.float cimport PyFloat_FromString
from cpython.unicode cimport PyUnicode_DecodeASCII

cdef enum:
    CHAIN_SIZE = 16             # batteries.snapshot.CHAIN_START's


cdef bytes chain_next(bytes chain, const char *p, size_t n):
    cdef uint8_t digest[CHAIN_SIZE]
    cr_blake2b2(digest, CHAIN_SIZE, <const uint8_t *>PyBytes_AS_STRING(chain), len(chain),
                <const uint8_t *>p, n)
    return PyBytes_FromStringAndSize(<char *>digest, CHAIN_SIZE)


def lane_chain(bytes chain not None, command):
    """The batteries' command chain after ``command`` (bytes-like): the
    16-byte BLAKE2b of ``chain`` then ``command`` (batteries/group.py)."""
    cdef bytes data = command if type(command) is bytes else bytes(memoryview(command))
    return chain_next(chain, PyBytes_AS_STRING(data), len(data))


cdef class GroupState:
    """What a batteries Group knows of the log (batteries/group.py keeps it
    here, under these names): C fields, so that lane_apply reads them
    without a dict lookup each."""
    cdef public object seq          # commands applied (None: not known)
    cdef public bytes chain         # their hash chain
    cdef public object genesis      # the chain after the first (None: not known)
    cdef public object active       # the cluster's active version
    cdef public bint begun          # a restore or an apply has happened
    cdef public list resuming       # durable structures skipping what they hold
    cdef public dict dicts          # name: each plain ReplicatedDict (lane_apply: set, del)
    cdef public dict counters       # name: each plain ReplicatedCounter (add, set)
    cdef readonly unsigned long long lane_count     # commands lane_apply took


cdef GroupState lane_of(object fsm):
    """The state of the batteries Group whose commands lane_apply may take
    (the node's FSM, or the structure that is one by itself), else None."""
    group = sys.modules.get("canonical_raft.batteries.group")
    if group is None:
        return None             # never imported: the FSM is not theirs
    return group._lane_of(fsm)


cdef object lane_value(cs_value *v):
    """A scanned value as json.loads gives it (UnicodeDecodeError: not UTF-8)."""
    if v.kind == CS_STR:
        return PyUnicode_DecodeUTF8(v.p, v.len, NULL)
    if v.kind == CS_INT:
        return PyLong_FromLongLong(v.i)
    if v.kind == CS_FLOAT:
        # json.loads: float() of the number's text (its digits are ASCII).
        return PyFloat_FromString(PyUnicode_DecodeASCII(v.p, v.len, NULL))
    if v.kind == CS_TRUE:
        return True
    if v.kind == CS_FALSE:
        return False
    return None


cdef object DECLINED = object()     # lane_apply: "Group.apply takes this one"

cdef enum LaneOp:
    LANE_NONE = 0
    LANE_DICT_SET = 1           # ReplicatedDict._apply_set
    LANE_DICT_DEL = 2           # ReplicatedDict._apply_del
    LANE_COUNTER_ADD = 3        # ReplicatedCounter._apply_add
    LANE_COUNTER_SET = 4        # ReplicatedCounter._apply_set


cdef inline bint op_is(cs_command *c, const char *name, size_t size) noexcept nogil:
    return c.op.len == size and memcmp(c.op.p, name, size) == 0


cdef LaneOp lane_op(cs_command *c, bint is_dict) noexcept nogil:
    """Which of the operations the lane runs this is, for a structure of
    that kind, by its arguments' count and kinds (what the Python
    operation would accept as is); LANE_NONE for any other."""
    if is_dict:
        if op_is(c, b"set", 3) and c.nargs == 2 and c.args[0].kind == CS_STR:
            return LANE_DICT_SET
        if op_is(c, b"del", 3) and c.nargs == 1 and c.args[0].kind == CS_STR:
            return LANE_DICT_DEL
    elif c.nargs == 1 and c.args[0].kind == CS_INT:
        if op_is(c, b"add", 3):
            return LANE_COUNTER_ADD
        if op_is(c, b"set", 3):
            return LANE_COUNTER_SET
    return LANE_NONE


cdef object lane_apply(GroupState group, const char *p, size_t n):
    """Apply the command at p here if it is one of the LaneOp operations of
    a plain ReplicatedDict or ReplicatedCounter, which Group.apply would
    run as they are: its result. DECLINED, with nothing changed, for every
    other command."""
    cdef cs_command c
    cdef LaneOp op
    if cs_command_scan(p, n, &c) != 0 or c.structure.kind != CS_STR:
        return DECLINED
    try:
        name = lane_value(&c.structure)
        target = group.dicts.get(name)
        if target is not None:
            op = lane_op(&c, True)
        else:
            target = group.counters.get(name)
            if target is None:
                return DECLINED     # not a plain dict or counter (or no such structure)
            op = lane_op(&c, False)
        if op == LANE_NONE:
            return DECLINED
        arg = lane_value(&c.args[0])
        value = lane_value(&c.args[1]) if op == LANE_DICT_SET else None
        # Group.apply's checks, before anything changes.
        if not group.begun or group.resuming:
            return DECLINED         # the first command, or durable ones replaying
        seq = group.seq
        if seq is None or group.chain is None or c.version > group.active:
            return DECLINED         # no count to keep; or a version it refuses
    except Exception:
        # Not UTF-8, or a state it cannot read: Group.apply, which changes
        # nothing either before this point, takes the command and says why.
        return DECLINED
    # As Group.apply: the count, the chain, then the operation.
    chain = chain_next(group.chain, p, n)
    seq += 1
    group.seq = seq
    group.chain = chain
    if seq == 1:
        group.genesis = chain
    group.lane_count += 1
    if op == LANE_DICT_SET:
        target._data[arg] = value
        return None
    if op == LANE_DICT_DEL:
        return target._data.pop(arg, DECLINED) is not DECLINED
    if op == LANE_COUNTER_ADD:
        target._value = result = target._value + arg
    else:
        target._value = result = arg
    return result


def lane_try(GroupState group not None, bytes command not None):
    """What a node does first with each command of that group: (True, its
    result) if lane_apply applied it, (False, None) if Group.apply must
    (nothing changed). For tests."""
    result = lane_apply(group, PyBytes_AS_STRING(command), len(command))
    return (False, None) if result is DECLINED else (True, result)


# -- the submitting side: command.encode()'s bytes, for the same values --------

from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.long cimport PyLong_AsLongLongAndOverflow

cdef enum:
    LANE_INT_TEXT = 21          # "-9223372036854775808" and room


cdef Py_ssize_t lane_text_size(object arg) except -2:
    """Bytes of arg's JSON text, -1 if the lane does not write it (json's
    encoder would escape something, or it is not a plain scalar)."""
    cdef const char *text
    cdef Py_ssize_t size, i
    cdef int overflow = 0
    cdef long long value
    cdef char digits[LANE_INT_TEXT]
    if arg is None or arg is True:
        return 4
    if arg is False:
        return 5
    if type(arg) is int:
        value = PyLong_AsLongLongAndOverflow(arg, &overflow)
        return -1 if overflow else lane_int_text(value, digits)
    if type(arg) is not str:
        return -1
    try:
        text = PyUnicode_AsUTF8AndSize(arg, &size)
    except UnicodeEncodeError:
        return -1               # a lone surrogate: encode() words the refusal
    for i in range(size):
        if <unsigned char>text[i] < 0x20 or text[i] == b'"' or text[i] == b'\\':
            return -1
    return size + 2


cdef Py_ssize_t lane_int_text(long long value, char *out) noexcept:
    """value in decimal at the end of out[LANE_INT_TEXT]; its length."""
    cdef unsigned long long magnitude = <unsigned long long>value
    cdef Py_ssize_t at = LANE_INT_TEXT
    if value < 0:
        magnitude = 0 - magnitude
    while True:
        at -= 1
        out[at] = c'0' + <char>(magnitude % 10)
        magnitude //= 10
        if magnitude == 0:
            break
    if value < 0:
        at -= 1
        out[at] = b'-'
    return LANE_INT_TEXT - at


cdef char *lane_write_text(char *p, object arg) noexcept:
    """arg's text (lane_text_size said it writes it) at p; past it."""
    cdef const char *text
    cdef Py_ssize_t size
    cdef int overflow = 0
    cdef char digits[LANE_INT_TEXT]
    if arg is None:
        memcpy(p, b"null", 4)
        return p + 4
    if arg is True:
        memcpy(p, b"true", 4)
        return p + 4
    if arg is False:
        memcpy(p, b"false", 5)
        return p + 5
    if type(arg) is int:
        size = lane_int_text(PyLong_AsLongLongAndOverflow(arg, &overflow), digits)
        memcpy(p, digits + LANE_INT_TEXT - size, size)
        return p + size
    text = PyUnicode_AsUTF8AndSize(arg, &size)      # cached by lane_text_size
    p[0] = b'"'
    memcpy(p + 1, text, size)
    p[size + 1] = b'"'
    return p + size + 2


def lane_encode(str head, list args):
    """command.encode(): the bytes of ``head`` (its text before the
    arguments) and ``args``, if every argument is None, a bool, an int of
    64 bits or a str json writes as is; else None (command.encode writes
    it)."""
    cdef const char *head_text
    cdef Py_ssize_t head_size, size, total, n = len(args), i
    try:
        head_text = PyUnicode_AsUTF8AndSize(head, &head_size)
    except UnicodeEncodeError:
        return None
    total = head_size + 3 + (n - 1 if n else 0)      # "[" ... "]]" and the commas
    for i in range(n):
        size = lane_text_size(args[i])
        if size < 0:
            return None
        total += size
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *p = PyBytes_AS_STRING(out)
    memcpy(p, head_text, head_size)
    p += head_size
    p[0] = b'['
    p += 1
    for i in range(n):
        if i:
            p[0] = b','
            p += 1
        p = lane_write_text(p, args[i])
    p[0] = b']'
    p[1] = b']'
    return out
