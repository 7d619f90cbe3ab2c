# The session table: exactly-once for forwarded commands, in the replicated
# state. Every node applies the same rule at the same log index, so the
# table is the same everywhere and travels in every snapshot (the binding's
# section, entry.pxi).
#
# A row per session: base (every seq below it is done), a 64-bit window of
# applied seqs from base on, and the index of its last use. At apply, a
# command whose seq is below base or set in the window is skipped (the FSM
# is not called); a seq past the window slides it (the seqs passed over
# count as done: their submitter failed them, outcome unknown).
#
# Bounded by log time, never wall time: a session unused for session_expiry
# entries is dropped, and when max_sessions are held a new one takes the
# place of the one unused longest. A session the table no longer holds is
# known only from its first seq: an entry of an unknown session that does
# not start at seq 1 is refused (its commands are not applied; their
# futures fail with LeadershipLostError, "outcome unknown").
#
# Section (snapshot): magic "CRST" u32 | version u32 (1) | count u64 |
# count x (id u64 | base u64 | window u64 | last u64).

cdef enum:
    SECTION_MAGIC = 0x54535243     # b"CRST"
    SECTION_VERSION = 1
    SECTION_HEADER = 16
    SECTION_ROW = 32
    WINDOW = 64

cdef enum SeqVerdict:
    SEQ_NEW = 0                    # apply it
    SEQ_DUPLICATE = 1              # applied already: skip
    SEQ_REFUSED = 2                # its session is gone: skip, outcome unknown


cdef inline unsigned session_hash(uint64_t id, unsigned mask) noexcept nogil:
    id ^= id >> 33
    id *= <uint64_t>0xff51afd7ed558ccdULL
    id ^= id >> 33
    return <unsigned>id & mask


cdef int sessions_init(Sessions *t, unsigned max_sessions, uint64_t expiry) noexcept nogil:
    """An empty table for max_sessions; -1 if memory is short."""
    cdef unsigned cap = 16
    while cap < 2 * max_sessions:
        cap *= 2
    t.slots = <Session *>calloc(cap, sizeof(Session))
    if t.slots == NULL:
        return -1
    t.cap = cap
    t.n = 0
    t.max = max_sessions
    t.expiry = expiry
    t.sweep_at = 0
    return 0


cdef void sessions_free(Sessions *t) noexcept nogil:
    free(t.slots)
    t.slots = NULL
    t.n = t.cap = 0


cdef void sessions_clear(Sessions *t) noexcept nogil:
    if t.slots != NULL:
        memset(t.slots, 0, t.cap * sizeof(Session))
    t.n = 0
    t.sweep_at = 0


cdef Session *sessions_find(Sessions *t, uint64_t id) noexcept nogil:
    if t.n == 0:
        return NULL
    cdef unsigned mask = t.cap - 1
    cdef unsigned i = session_hash(id, mask)
    while t.slots[i].id != 0:
        if t.slots[i].id == id:
            return &t.slots[i]
        i = (i + 1) & mask
    return NULL


cdef void sessions_remove(Sessions *t, Session *row) noexcept nogil:
    """Backward-shift deletion: linear probing stays tombstone-free."""
    cdef unsigned mask = t.cap - 1
    cdef unsigned hole = <unsigned>(row - t.slots)
    cdef unsigned i = (hole + 1) & mask
    cdef unsigned home
    while t.slots[i].id != 0:
        home = session_hash(t.slots[i].id, mask)
        # Move slot i into the hole if its home is not in (hole, i].
        if ((i - home) & mask) >= ((i - hole) & mask):
            t.slots[hole] = t.slots[i]
            hole = i
        i = (i + 1) & mask
    memset(&t.slots[hole], 0, sizeof(Session))
    t.n -= 1


cdef Session *sessions_insert(Sessions *t, uint64_t id) noexcept nogil:
    """A new row for id (the table must not hold it); when full, the row
    unused longest (the lowest last index, then the lowest id) makes room."""
    cdef unsigned i
    cdef Session *victim = NULL
    if t.n >= t.max:
        for i in range(t.cap):
            if t.slots[i].id != 0 and (
                    victim == NULL or t.slots[i].last < victim.last
                    or (t.slots[i].last == victim.last and t.slots[i].id < victim.id)):
                victim = &t.slots[i]
        sessions_remove(t, victim)
    cdef unsigned mask = t.cap - 1
    i = session_hash(id, mask)
    while t.slots[i].id != 0:
        i = (i + 1) & mask
    memset(&t.slots[i], 0, sizeof(Session))
    t.slots[i].id = id
    t.slots[i].base = 1
    t.n += 1
    return &t.slots[i]


cdef void sessions_expire(Sessions *t, raft.raft_index index) noexcept nogil:
    """Drop the sessions unused for expiry entries at `index` (cheap unless
    one may be due: sweep_at is the earliest index one can be)."""
    if t.n == 0 or index < t.sweep_at:
        return
    cdef uint64_t oldest = 0
    cdef unsigned i = 0
    cdef bint found = False
    while i < t.cap:
        if t.slots[i].id != 0 and t.slots[i].last + t.expiry <= index:
            sessions_remove(t, &t.slots[i])
            continue                 # a row may have shifted into slot i
        if t.slots[i].id != 0 and (not found or t.slots[i].last < oldest):
            oldest = t.slots[i].last
            found = True
        i += 1
    t.sweep_at = oldest + t.expiry if found else 0


cdef int session_seq(Session *row, uint64_t seq) noexcept nogil:
    """Record seq as applied if it is new: SEQ_NEW or SEQ_DUPLICATE."""
    cdef uint64_t d, shift
    if seq < row.base:
        return SEQ_DUPLICATE
    d = seq - row.base
    if d >= WINDOW:
        shift = d - (WINDOW - 1)
        row.window = row.window >> shift if shift < WINDOW else 0
        row.base += shift
        d = WINDOW - 1
    elif row.window & (<uint64_t>1 << d):
        return SEQ_DUPLICATE
    row.window |= <uint64_t>1 << d
    while row.window & 1:
        row.window >>= 1
        row.base += 1
    return SEQ_NEW


cdef Session *session_for_entry(Sessions *t, uint64_t id, uint64_t first,
                                raft.raft_index index) noexcept nogil:
    """The row of an entry's session at `index` (made if the entry starts
    the session), or NULL: the session is gone, refuse the entry."""
    sessions_expire(t, index)
    cdef Session *row = sessions_find(t, id)
    if row == NULL:
        if first != 1:
            return NULL
        row = sessions_insert(t, id)
    row.last = index
    if t.sweep_at == 0:
        t.sweep_at = index + t.expiry
    return row


cdef bint session_applied(Sessions *t, uint64_t id, uint64_t seq) noexcept nogil:
    """Whether the table says seq of session id is done."""
    cdef Session *row = sessions_find(t, id)
    if row == NULL:
        return False
    if seq < row.base:
        return True
    return seq - row.base < WINDOW and (row.window >> (seq - row.base)) & 1


# -- apply ------------------------------------------------------------------------

cdef bint apply_session_entry(NodeState *s, const char *p, size_t size,
                              raft.raft_index index) noexcept with gil:
    """From fsm.pxi's apply_entry: apply a session entry's new commands,
    skip the others, settle this node's forwarded futures. False if the
    entry has no session (not handled here)."""
    cdef uint64_t session = 0, first = 0, length
    cdef uint32_t count = 0, i
    cdef size_t off
    cdef const char *data
    cdef const char *error
    if not entry_session(p, size, &session, &first):
        return False
    error = entry_open(p, size, &count, &off)
    if error != NULL:
        entry_failed(s, NULL, index, error)
        return True
    cdef ForwardState *f = &s.fwd
    cdef Session *row = session_for_entry(&f.table, session, first, index)
    cdef bint mine = session == f.session
    cdef int verdict
    for i in range(count):
        error = entry_next(p, size, &off, &data, &length)
        if error != NULL:
            entry_failed(s, NULL, index, error)
            return True
        verdict = SEQ_REFUSED if row == NULL else session_seq(row, first + i)
        if verdict == SEQ_NEW:
            apply_command(s, data, length, forwarded_future(s, first + i) if mine else None,
                          index)
        else:
            if verdict == SEQ_DUPLICATE:
                f.n_duplicates += 1
            else:
                f.n_refused += 1
            if mine:     # settled before, normally: else its result is not known here
                forwarded_settle_error(s, first + i, raft_error(
                    raft.RAFT_LEADERSHIPLOST, WHY_SESSION_GONE if verdict == SEQ_REFUSED
                    else WHY_SNAPSHOT_PAST))
        if mine:
            forwarded_settled(s, first + i)
    if mine and row == NULL:
        forward_new_session(s)
    return True


cdef inline void sessions_tick(NodeState *s, raft.raft_index index) noexcept nogil:
    """From fsm_apply, for every entry: expire sessions by log time."""
    if s.fwd.table.n and index >= s.fwd.table.sweep_at:
        sessions_expire(&s.fwd.table, index)


# -- the snapshot section -----------------------------------------------------------

cdef bytes sessions_dump(Sessions *t):
    """The table as the snapshot's section (b"" when empty), rows by last use."""
    if t.n == 0:
        return b""
    rows = sorted((t.slots[i].last, t.slots[i].id, t.slots[i].base, t.slots[i].window)
                  for i in range(t.cap) if t.slots[i].id != 0)
    cdef bytearray out = bytearray(SECTION_HEADER + SECTION_ROW * len(rows))
    cdef char *p = out
    cr_put32(p, SECTION_MAGIC)
    cr_put32(p + 4, SECTION_VERSION)
    cr_put64(p + 8, len(rows))
    p += SECTION_HEADER
    for last, id, base, window in rows:
        cr_put64(p, id)
        cr_put64(p + 8, base)
        cr_put64(p + 16, window)
        cr_put64(p + 24, last)
        p += SECTION_ROW
    return bytes(out)


cdef int sessions_load(Sessions *t, bytes section) except -1:
    """Replace the table with a snapshot's section (b"": empty);
    CorruptError if it does not check. Rows beyond max_sessions: the oldest
    go, as they would have."""
    cdef const char *p = section
    cdef size_t size = len(section)
    cdef uint64_t n, i
    cdef Session *row
    if size == 0:
        sessions_clear(t)
        return 0
    if (size < SECTION_HEADER or cr_get32(p) != SECTION_MAGIC
            or cr_get32(p + 4) != SECTION_VERSION):
        raise raft_error(raft.RAFT_CORRUPT, WHY_SECTION)
    n = cr_get64(p + 8)
    if n > (size - SECTION_HEADER) // SECTION_ROW or SECTION_HEADER + n * SECTION_ROW != size:
        raise raft_error(raft.RAFT_CORRUPT, WHY_SECTION)
    for i in range(n):
        row = <Session *>(p + SECTION_HEADER + i * SECTION_ROW)
        if cr_get64(<const char *>row) == 0 or cr_get64(<const char *>row + 16) & 1:
            raise raft_error(raft.RAFT_CORRUPT, WHY_SECTION)
    sessions_clear(t)
    for i in range(n):
        p = <const char *>section + SECTION_HEADER + i * SECTION_ROW
        if sessions_find(t, cr_get64(p)) != NULL:
            raise raft_error(raft.RAFT_CORRUPT, WHY_SECTION)
        row = sessions_insert(t, cr_get64(p))
        row.base = cr_get64(p + 8)
        row.window = cr_get64(p + 16)
        row.last = cr_get64(p + 24)
    t.sweep_at = 0 if t.n == 0 else 1       # the next entry sweeps
    return 0
