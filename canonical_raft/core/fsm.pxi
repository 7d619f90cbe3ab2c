# The FSM trampolines: libraft calls these on the raft thread; they call the
# user's Python FSM. They never return an error for a Python exception while
# the node runs: libraft asserts on FSM errors from the network path, so an
# exception is delivered to the future (apply), retried later (snapshot) or
# stops the node (restore).
#
# Snapshot format: header (16 bytes): magic "CRSN" u32 | version u16 |
# flags u16 (bit 0: zlib) | data length u64; then the data.

cdef enum:
    SNAPSHOT_MAGIC = 0x4E535243   # b"CRSN"
    SNAPSHOT_VERSION = 1
    SNAPSHOT_HEADER = 16
    SNAPSHOT_ZLIB = 1
    SNAPSHOT_RETRY_NS = 1000000000   # wait after a failed snapshot


cdef int fsm_apply(raft_fsm *fsm, const raft_buffer *buf, void **result) noexcept nogil:
    cdef NodeState *s = <NodeState *>fsm.data
    # libraft sets last_applied after this call returns.
    cdef raft_index index = raft_last_applied(&s.raft) + 1
    cdef Req *req = NULL
    result[0] = NULL
    if buf.len >= ENTRY_HEADER:
        req = inflight_find(s, index, cr_get64(<const char *>buf.base + 16))
    hold_gil(s)
    apply_entry(s, req, <const char *>buf.base, buf.len, index)
    count_log_bytes(s, buf.len)
    return 0


cdef inline void count_log_bytes(NodeState *s, size_t size) noexcept nogil:
    """Snapshot early once the entries since the last snapshot hold
    snapshot_log_bytes: libraft keeps them all in memory and counts only
    entries (snapshot_threshold), whatever their size."""
    s.log_bytes += size
    if (s.snapshot_log_bytes and s.log_bytes >= s.snapshot_log_bytes
            and not s.snapshot_hurried):
        s.snapshot_hurried = True
        raft_set_snapshot_threshold(&s.raft, 1)     # at libraft's next check


cdef inline void reset_log_bytes(NodeState *s) noexcept nogil:
    """A snapshot starts (or one was restored): count afresh."""
    s.log_bytes = 0
    if s.snapshot_hurried:
        s.snapshot_hurried = False
        raft_set_snapshot_threshold(&s.raft, s.snapshot_threshold)


cdef void apply_entry(NodeState *s, Req *req, const char *p, size_t size,
                      raft_index index) noexcept with gil:
    cdef Core core = <Core>s.core
    cdef uint32_t count = 0
    cdef uint32_t i
    cdef size_t off = ENTRY_HEADER
    cdef uint64_t length
    if (size < ENTRY_HEADER or cr_get32(p) != ENTRY_MAGIC
            or cr_get16(p + 4) != ENTRY_VERSION):
        core._entry_error(req, index, "not a canonical_raft entry")
        return
    count = cr_get32(p + 8)
    if req != NULL and req.n != count:
        req = NULL
    for i in range(count):
        if size - off < 8:
            core._entry_error(req, index, "truncated entry")
            return
        length = cr_get64(p + off)
        off += 8
        if length > size - off:
            core._entry_error(req, index, "command longer than its entry")
            return
        core._apply_command(
            PyBytes_FromStringAndSize(p + off, length),
            <object>req.futures[i] if req != NULL else None, index)
        off += pad8(length)
    if req != NULL:
        req_release_futures(req)


cdef int fsm_snapshot(raft_fsm *fsm, raft_buffer **bufs, unsigned *n_bufs) noexcept nogil:
    cdef NodeState *s = <NodeState *>fsm.data
    if s.fatal or uv_hrtime() < s.snapshot_retry_at:
        return RAFT_BUSY
    reset_log_bytes(s)
    hold_gil(s)
    cdef raft_buffer *array = <raft_buffer *>raft_malloc(sizeof(raft_buffer))
    if array == NULL:
        return RAFT_NOMEM
    cdef int rv = take_snapshot(s, array)
    if rv < 0:
        raft_free(array)
        s.snapshot_retry_at = uv_hrtime() + SNAPSHOT_RETRY_NS
        return RAFT_CANCELED
    # libraft writes it next, through io_guard.pxi, which first runs
    # persist() on the thread pool when rv says so.
    s.snapshot_armed = True
    s.snapshot_persist = rv == 1
    bufs[0] = array
    n_bufs[0] = 1
    return 0


cdef int take_snapshot(NodeState *s, raft_buffer *buf) noexcept with gil:
    """Call FSM.snapshot() into buf: 0 done, 1 persist() still to run (buf
    holds an empty placeholder), -1 failed (logged)."""
    cdef Core core = <Core>s.core
    try:
        snapshot = core._snapshot_begin()
        if snapshot is None:
            frame_snapshot(s, b"", buf)
            return 1
        frame_snapshot(s, snapshot, buf)
        return 0
    except BaseException as exc:
        log.error("node %d: FSM.snapshot() failed, will retry: %r", s.id, exc,
                  exc_info=exc)
        return -1


cdef int frame_snapshot(NodeState *s, data, raft_buffer *buf) except -1:
    """The snapshot file: header, then data (zlib'd if so configured)."""
    cdef int flags = 0
    data = bytes(data)
    if s.snapshot_compression:
        data = zlib.compress(data, 1)
        flags |= SNAPSHOT_ZLIB
    cdef size_t size = len(<bytes>data)
    cdef char *p = <char *>raft_malloc(SNAPSHOT_HEADER + size)
    if p == NULL:
        raise MemoryError()
    cr_put32(p, SNAPSHOT_MAGIC)
    cr_put16(p + 4, SNAPSHOT_VERSION)
    cr_put16(p + 6, flags)
    cr_put64(p + 8, size)
    memcpy(p + SNAPSHOT_HEADER, PyBytes_AS_STRING(data), size)
    buf.base = p
    buf.len = SNAPSHOT_HEADER + size
    return 0


cdef int fsm_restore(raft_fsm *fsm, raft_buffer *buf) noexcept nogil:
    cdef NodeState *s = <NodeState *>fsm.data
    reset_log_bytes(s)
    hold_gil(s)
    if restore_snapshot(s, <const char *>buf.base, buf.len) != 0:
        if s.in_start:
            return RAFT_CORRUPT      # raft_start fails; start() raises
        # Installing from the leader: libraft cannot take an error here, so
        # accept the buffer and stop the node from the loop instead.
        s.fatal = True
        uv_async_send(&s.wakeup)
    raft_free(buf.base)              # success: the buffer is ours to free
    return 0


cdef int restore_snapshot(NodeState *s, const char *p, size_t size) noexcept with gil:
    cdef Core core = <Core>s.core
    cdef uint64_t length
    try:
        if (size < SNAPSHOT_HEADER or cr_get32(p) != SNAPSHOT_MAGIC
                or cr_get16(p + 4) != SNAPSHOT_VERSION):
            raise RaftError("snapshot is not in canonical_raft's format", RAFT_CORRUPT)
        length = cr_get64(p + 8)
        if length != size - SNAPSHOT_HEADER:
            raise RaftError("snapshot length does not match its header", RAFT_CORRUPT)
        core._restore_bytes(PyBytes_FromStringAndSize(p + SNAPSHOT_HEADER, length),
                            cr_get16(p + 6))
        return 0
    except BaseException as exc:
        core._restore_failed(exc)
        return -1
