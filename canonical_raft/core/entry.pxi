# The two formats the binding puts on disk, for good: a log entry and a
# snapshot. Nothing else reads or writes these bytes (little-endian
# throughout).
#
# Entry:    header (24 bytes): magic "CRFT" u32 | version u16 | flags u16 |
#                              command count u32 | reserved u32 | tag u64
#           per command:       length u64 | bytes | zero padding to 8
#
# Notice:   an entry header with flags bit 0 (ENTRY_NOTICE) and command count
#           0, then kind u64 (1: removed) | server id u64. The binding's own
#           word to every node (removed.pxi); a release that does not know
#           it sees an entry without commands.
#
# Session:  commands forwarded from another node (forward.pxi): an entry
#           header of version 2 with flags bit 1 (ENTRY_SESSION), then
#           session id u64 | first seq u64 | reserved u64 (0), then the
#           commands as above, the i-th with seq first + i. Every node skips
#           a command whose seq its session table has applied (sessions.pxi).
#           Entries without a session stay version 1; a release that knows
#           only version 1 refuses a version 2 entry ("not a canonical_raft
#           entry"): every node must run a release that reads version 2
#           before any node uses forward=True.
#
# libraft's uv backend wants every entry length a multiple of 8, which the
# padding gives. The tag lets the node that submitted an entry recognise it
# when it is applied (index alone is not proof after a leader change).
#
# Snapshot: header (32 bytes): magic "CRSN" u32 | version u16 (3) |
#                              flags u16 (bit 0: zlib) | data length u64 |
#                              CRC-32 u32 (zlib's, of the section and the
#                              data as stored) | section length u32 |
#                              inflated length u64 (the FSM's bytes)
#           then the binding's own section (the session table,
#           sessions.pxi; never compressed; 0 bytes when it is empty), then
#           the FSM's data: FSM.restore() gets the data alone.
#           The inflated length bounds zlib: a snapshot never inflates past
#           what its header declares. Version 2 is the first 24 bytes, and
#           version 1 (releases before the checksum) the first 16; both are
#           still read (1 unchecked), inflated up to zlib's own bound.

cdef enum:
    ENTRY_MAGIC = 0x54465243      # b"CRFT"
    ENTRY_VERSION = 1
    ENTRY_VERSION_SESSION = 2     # knows ENTRY_SESSION
    ENTRY_AT_MAGIC = 0            # the header's fields, by offset
    ENTRY_AT_VERSION = 4
    ENTRY_AT_FLAGS = 6
    ENTRY_AT_COUNT = 8
    ENTRY_AT_RESERVED = 12
    ENTRY_AT_TAG = 16
    ENTRY_HEADER = 24
    COMMAND_HEADER = 8            # a command's length, before its bytes
    ENTRY_NOTICE = 1              # flags: a notice, not commands
    NOTICE_REMOVED = 1            # the kind of notice: server id removed
    NOTICE_SIZE = ENTRY_HEADER + 16
    ENTRY_SESSION = 2             # flags: a session header follows
    SESSION_HEADER = 24           # session u64 | first seq u64 | reserved u64
    SESSION_AT_ID = ENTRY_HEADER
    SESSION_AT_FIRST = ENTRY_HEADER + 8
    SESSION_AT_RESERVED = ENTRY_HEADER + 16

    SNAPSHOT_MAGIC = 0x4E535243   # b"CRSN"
    SNAPSHOT_VERSION = 3
    SNAPSHOT_VERSION_2 = 2        # no inflated length: still read
    SNAPSHOT_VERSION_1 = 1        # no checksum either: still read
    SNAPSHOT_AT_MAGIC = 0
    SNAPSHOT_AT_VERSION = 4
    SNAPSHOT_AT_FLAGS = 6
    SNAPSHOT_AT_LENGTH = 8
    SNAPSHOT_AT_CRC = 16
    SNAPSHOT_AT_SECTION = 20      # version 3: the section's length
    SNAPSHOT_AT_INFLATED = 24
    SNAPSHOT_HEADER_1 = 16
    SNAPSHOT_HEADER_2 = 24
    SNAPSHOT_HEADER = 32
    SNAPSHOT_ZLIB = 1             # flags: the data is zlib'd
    # deflate never inflates past 1032 bytes per byte (zlib's FAQ);
    # a header that claims more is lying.
    ZLIB_MAX_RATIO = 1032


cdef inline size_t pad8(size_t n) noexcept nogil:
    return (n + 7) & ~(<size_t>7)


cdef inline size_t command_size(size_t n) noexcept nogil:
    """What a command of n bytes takes in an entry."""
    return COMMAND_HEADER + pad8(n)


cdef inline size_t entry_commands_size(const raft.raft_buffer *buf) noexcept nogil:
    """The bytes of an entry's commands (all but its header)."""
    return buf.len - ENTRY_HEADER


# -- writing entries --------------------------------------------------------

cdef char *entry_begin(raft.raft_buffer *buf, uint32_t count, size_t size) noexcept nogil:
    """An entry of `size` bytes (ENTRY_HEADER plus the command_size() of
    each of its `count` commands) in buf, raft_malloc'd, its header
    written; where its commands go, or NULL if memory is short."""
    cdef char *p = <char *>raft.raft_malloc(size)
    if p == NULL:
        return NULL
    cr_put32(p + ENTRY_AT_MAGIC, ENTRY_MAGIC)
    cr_put16(p + ENTRY_AT_VERSION, ENTRY_VERSION)
    cr_put16(p + ENTRY_AT_FLAGS, 0)
    cr_put32(p + ENTRY_AT_COUNT, count)
    cr_put32(p + ENTRY_AT_RESERVED, 0)
    cr_put64(p + ENTRY_AT_TAG, 0)
    buf.base = p
    buf.len = size
    return p + ENTRY_HEADER


cdef inline char *entry_put_command(char *p, const char *data, size_t size) noexcept nogil:
    """Write one command at p; where the next one goes."""
    cr_put64(p, size)
    if size:
        memcpy(p + COMMAND_HEADER, data, size)
    memset(p + COMMAND_HEADER + size, 0, pad8(size) - size)
    return p + command_size(size)


cdef inline char *entry_put_commands_of(char *p, const raft.raft_buffer *entry) noexcept nogil:
    """Copy the commands of another entry at p; where the next one goes."""
    cdef size_t part = entry_commands_size(entry)
    memcpy(p, <const char *>entry.base + ENTRY_HEADER, part)
    return p + part


cdef inline void entry_set_tag(raft.raft_buffer *buf, uint64_t tag) noexcept nogil:
    cr_put64(<char *>buf.base + ENTRY_AT_TAG, tag)


cdef bint entry_new_notice(raft.raft_buffer *buf, uint64_t kind, uint64_t id) noexcept nogil:
    """A notice entry in buf (raft_malloc'd); False if memory is short."""
    cdef char *p = entry_begin(buf, 0, NOTICE_SIZE)
    if p == NULL:
        return False
    cr_put16(<char *>buf.base + ENTRY_AT_FLAGS, ENTRY_NOTICE)
    cr_put64(p, kind)
    cr_put64(p + 8, id)
    return True


cdef char *entry_begin_session(raft.raft_buffer *buf, uint32_t count, size_t commands,
                              uint64_t session, uint64_t first) noexcept nogil:
    """A session entry (commands: the command_size() sum of its `count`
    commands) in buf, raft_malloc'd, its headers written; where its commands
    go, or NULL if memory is short."""
    cdef char *p = entry_begin(buf, count, ENTRY_HEADER + SESSION_HEADER + commands)
    if p == NULL:
        return NULL
    cr_put16(<char *>buf.base + ENTRY_AT_VERSION, ENTRY_VERSION_SESSION)
    cr_put16(<char *>buf.base + ENTRY_AT_FLAGS, ENTRY_SESSION)
    cr_put64(<char *>buf.base + SESSION_AT_ID, session)
    cr_put64(<char *>buf.base + SESSION_AT_FIRST, first)
    cr_put64(<char *>buf.base + SESSION_AT_RESERVED, 0)
    return p + SESSION_HEADER


cdef inline bint entry_notice(const raft.raft_buffer *buf, uint64_t *kind,
                              uint64_t *id) noexcept nogil:
    """True (and its kind and server id) if the entry is a notice."""
    cdef const char *p = <const char *>buf.base
    if (buf.len != NOTICE_SIZE or cr_get32(p + ENTRY_AT_MAGIC) != ENTRY_MAGIC
            or not cr_get16(p + ENTRY_AT_FLAGS) & ENTRY_NOTICE):
        return False
    kind[0] = cr_get64(p + ENTRY_HEADER)
    id[0] = cr_get64(p + ENTRY_HEADER + 8)
    return True


# -- reading entries --------------------------------------------------------

cdef inline bint entry_tag(const raft.raft_buffer *buf, uint64_t *tag) noexcept nogil:
    """The tag of an entry; False if it is too short to have one."""
    if buf.len < ENTRY_HEADER:
        return False
    tag[0] = cr_get64(<const char *>buf.base + ENTRY_AT_TAG)
    return True


cdef const char *entry_open(const char *p, size_t size, uint32_t *count,
                            size_t *off) noexcept nogil:
    """Check an entry's header: NULL, its command count and the offset of
    its first command; or why it is not an entry."""
    if size < ENTRY_HEADER or cr_get32(p + ENTRY_AT_MAGIC) != ENTRY_MAGIC:
        return "not a canonical_raft entry"
    cdef unsigned version = cr_get16(p + ENTRY_AT_VERSION)
    off[0] = ENTRY_HEADER
    if version == ENTRY_VERSION_SESSION:
        if cr_get16(p + ENTRY_AT_FLAGS) & ENTRY_SESSION:
            if size < ENTRY_HEADER + SESSION_HEADER:
                return "truncated entry"
            off[0] = ENTRY_HEADER + SESSION_HEADER
    elif version != ENTRY_VERSION:
        return "not a canonical_raft entry"
    count[0] = cr_get32(p + ENTRY_AT_COUNT)
    return NULL


cdef inline bint entry_session(const char *p, size_t size, uint64_t *session,
                               uint64_t *first) noexcept nogil:
    """True (and its session and first seq) if the entry has a session."""
    if (size < ENTRY_HEADER + SESSION_HEADER or cr_get32(p + ENTRY_AT_MAGIC) != ENTRY_MAGIC
            or cr_get16(p + ENTRY_AT_VERSION) != ENTRY_VERSION_SESSION
            or not cr_get16(p + ENTRY_AT_FLAGS) & ENTRY_SESSION):
        return False
    session[0] = cr_get64(p + SESSION_AT_ID)
    first[0] = cr_get64(p + SESSION_AT_FIRST)
    return True


cdef const char *entry_next(const char *p, size_t size, size_t *off,
                            const char **data, uint64_t *length) noexcept nogil:
    """The command at *off, and *off moved past it; or why there is none.
    Every length is checked against the entry's size."""
    if off[0] > size or size - off[0] < COMMAND_HEADER:
        return "truncated entry"
    length[0] = cr_get64(p + off[0])
    off[0] += COMMAND_HEADER
    if length[0] > size - off[0]:
        return "command longer than its entry"
    data[0] = p + off[0]
    off[0] += pad8(length[0])
    return NULL


# -- snapshots ----------------------------------------------------------------

cdef int frame_snapshot(data, bint compress, raft.raft_buffer *buf,
                        bytes section=b"") except -1:
    """The snapshot file: header, section, then data (zlib'd if compress)."""
    cdef int flags = 0
    cdef size_t slen = len(section)
    data = bytes(data)
    cdef size_t inflated = len(<bytes>data)
    if compress:
        data = zlib.compress(data, 1)
        flags |= SNAPSHOT_ZLIB
    cdef size_t size = len(<bytes>data)
    cdef uint32_t crc = zlib.crc32(data, zlib.crc32(section))
    if slen > 0xFFFFFFFF:
        raise OverflowError("the session table is over 4 GiB")
    cdef char *p = <char *>raft.raft_malloc(SNAPSHOT_HEADER + slen + size)
    if p == NULL:
        raise MemoryError()
    cr_put32(p + SNAPSHOT_AT_MAGIC, SNAPSHOT_MAGIC)
    cr_put16(p + SNAPSHOT_AT_VERSION, SNAPSHOT_VERSION)
    cr_put16(p + SNAPSHOT_AT_FLAGS, flags)
    cr_put64(p + SNAPSHOT_AT_LENGTH, size)
    cr_put32(p + SNAPSHOT_AT_CRC, crc)
    cr_put32(p + SNAPSHOT_AT_SECTION, <uint32_t>slen)
    cr_put64(p + SNAPSHOT_AT_INFLATED, inflated)
    if slen:
        memcpy(p + SNAPSHOT_HEADER, PyBytes_AS_STRING(section), slen)
    memcpy(p + SNAPSHOT_HEADER + slen, PyBytes_AS_STRING(data), size)
    buf.base = p
    buf.len = SNAPSHOT_HEADER + slen + size
    return 0


cdef int snapshot_check(const char *p, size_t size, size_t *header,
                        uint64_t *inflated) noexcept:
    """WHY_LIBRAFT (0) if p holds a whole snapshot of ours whose data
    matches its checksum (version 1: no checksum), the offset of its data
    in *header (its header and section, if any) and the most its data may
    inflate to in *inflated (exactly that, from version 3); else why not.
    Needs the GIL (zlib)."""
    if size < SNAPSHOT_HEADER_1 or cr_get32(p + SNAPSHOT_AT_MAGIC) != SNAPSHOT_MAGIC:
        return WHY_NOT_A_SNAPSHOT
    cdef unsigned version = cr_get16(p + SNAPSHOT_AT_VERSION)
    if version == SNAPSHOT_VERSION_1:
        header[0] = SNAPSHOT_HEADER_1
    elif version == SNAPSHOT_VERSION_2 and size >= SNAPSHOT_HEADER_2:
        header[0] = SNAPSHOT_HEADER_2
    elif version == SNAPSHOT_VERSION and size >= SNAPSHOT_HEADER:
        header[0] = SNAPSHOT_HEADER
    else:
        return WHY_NOT_A_SNAPSHOT
    cdef size_t checked = header[0]       # where the checksum starts
    if version == SNAPSHOT_VERSION:
        if cr_get32(p + SNAPSHOT_AT_SECTION) > size - header[0]:
            return WHY_SNAPSHOT_LENGTH
        header[0] += cr_get32(p + SNAPSHOT_AT_SECTION)
    cdef uint64_t length = cr_get64(p + SNAPSHOT_AT_LENGTH)
    if length != size - header[0]:
        return WHY_SNAPSHOT_LENGTH
    cdef bint zlibbed = cr_get16(p + SNAPSHOT_AT_FLAGS) & SNAPSHOT_ZLIB
    cdef uint64_t bound = length * ZLIB_MAX_RATIO + 64 if zlibbed else length
    if version == SNAPSHOT_VERSION:
        inflated[0] = cr_get64(p + SNAPSHOT_AT_INFLATED)
        if inflated[0] > bound or (not zlibbed and inflated[0] != length):
            return WHY_SNAPSHOT_INFLATED
    else:
        inflated[0] = bound
    if version != SNAPSHOT_VERSION_1 and <uint32_t>zlib.crc32(
            PyMemoryView_FromMemory(<char *>p + checked, size - checked, PyBUF_READ)) \
            != cr_get32(p + SNAPSHOT_AT_CRC):
        return WHY_SNAPSHOT_CHECKSUM
    return 0


cdef bytes read_snapshot(const char *p, size_t size):
    """The data of a snapshot file (inflated, never past its declared
    length); CorruptError if it is not one of ours, its data does not match
    its checksum or does not inflate to what its header says."""
    cdef size_t header = 0
    cdef uint64_t inflated = 0
    cdef int why = snapshot_check(p, size, &header, &inflated)
    if why:
        raise raft_error(raft.RAFT_CORRUPT, why)
    data = PyMemoryView_FromMemory(<char *>p + header, size - header, PyBUF_READ)
    if not cr_get16(p + SNAPSHOT_AT_FLAGS) & SNAPSHOT_ZLIB:
        return bytes(data)
    inflate = zlib.decompressobj()
    try:
        # One byte past the bound tells "too long" from "exactly right".
        out = inflate.decompress(data, inflated + 1)
    except zlib.error:
        raise raft_error(raft.RAFT_CORRUPT, WHY_SNAPSHOT_INFLATED) from None
    cdef uint64_t got = len(out)
    if (not inflate.eof or inflate.unused_data or got > inflated
            or (cr_get16(p + SNAPSHOT_AT_VERSION) == SNAPSHOT_VERSION and got != inflated)):
        raise raft_error(raft.RAFT_CORRUPT, WHY_SNAPSHOT_INFLATED)
    return out


cdef bytes snapshot_section(const char *p, size_t size):
    """The binding's section of a snapshot that snapshot_check() passed
    (b"" before version 3, or when empty)."""
    if cr_get16(p + SNAPSHOT_AT_VERSION) != SNAPSHOT_VERSION:
        return b""
    return PyBytes_FromStringAndSize(p + SNAPSHOT_HEADER, cr_get32(p + SNAPSHOT_AT_SECTION))


def snapshot_problem(data):
    """For canonical_raft.integrity: None if ``data`` (a snapshot file's
    bytes) is a sound snapshot of ours, else what is wrong with it."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    cdef size_t header = 0
    cdef uint64_t inflated = 0
    cdef int why
    if view.shape[0] == 0:
        why = WHY_NOT_A_SNAPSHOT
    else:
        why = snapshot_check(<const char *>&view[0], view.shape[0], &header, &inflated)
    return _WORDING[why] if why else None
