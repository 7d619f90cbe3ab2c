# The FSM trampolines and their Python side: libraft calls these on the
# raft thread; they call the user's Python FSM. They never return an error
# for a Python exception while the node runs: libraft asserts on FSM errors
# from the network path, so an exception is delivered to the future
# (apply), retried later (snapshot) or stops the node (restore).

cdef enum:
    SNAPSHOT_RETRY_NS = 1000000000   # wait after a failed snapshot


# -- apply ------------------------------------------------------------------------

cdef int fsm_apply(raft.raft_fsm *fsm, const raft.raft_buffer *buf, void **result) noexcept nogil:
    cdef NodeState *s = <NodeState *>fsm.data
    # libraft sets last_applied after this call returns.
    cdef raft.raft_index index = raft.raft_last_applied(&s.raft) + 1
    cdef Req *req = NULL
    cdef uint64_t tag
    result[0] = NULL
    if apply_notice(s, buf, index):      # removed.pxi
        count_log_bytes(s, buf.len)
        return 0
    if entry_tag(buf, &tag):
        req = inflight_find(s, index, tag)
    sessions_tick(s, index)
    hold_gil(s)
    cdef unsigned long long began = uv.uv_hrtime()
    apply_entry(s, req, <const char *>buf.base, buf.len, index)
    check_held(s, HELD_APPLY, began)      # slow_fsm.pxi
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
        raft.raft_set_snapshot_threshold(&s.raft, 1)     # at libraft's next check


cdef inline void reset_log_bytes(NodeState *s) noexcept nogil:
    """A snapshot starts (or one was restored): count afresh."""
    s.log_bytes = 0
    if s.snapshot_hurried:
        s.snapshot_hurried = False
        raft.raft_set_snapshot_threshold(&s.raft, s.snapshot_threshold)


cdef void apply_entry(NodeState *s, Req *req, const char *p, size_t size,
                      raft.raft_index index) noexcept with gil:
    cdef uint32_t count = 0
    cdef uint32_t i
    cdef size_t off
    cdef const char *data
    cdef uint64_t length
    if apply_session_entry(s, p, size, index):     # sessions.pxi: forwarded commands
        return
    cdef const char *error = entry_open(p, size, &count, &off)
    if error != NULL:
        entry_failed(s, req, index, error)
        return
    if req != NULL and req.n != count:
        req = NULL
    for i in range(count):
        error = entry_next(p, size, &off, &data, &length)
        if error != NULL:
            entry_failed(s, req, index, error)
            return
        apply_command(s, data, length, <object>req.futures[i] if req != NULL else None,
                      index)
    if req != NULL:
        req_release_futures(req)


cdef void apply_command(NodeState *s, const char *data, size_t length, object fut,
                        raft.raft_index index) noexcept:
    cdef Core core = <Core>s.core
    if s.fatal:
        if fut is not None:
            fail_future(s, fut, raft_error(raft.RAFT_SHUTDOWN, WHY_FSM_UNKNOWN))
        return
    try:
        result = DECLINED if core.lane is None else lane_apply(core.lane, data, length)
        if result is DECLINED:
            result = core.fsm.apply(PyBytes_FromStringAndSize(data, length))
    except BaseException as exc:
        if fut is not None:
            fail_future(s, fut, exc)
        else:
            log.debug("node %d: FSM.apply raised at index %d: %r", s.id, index, exc)
        return
    if fut is not None:
        resolve_future(s, fut, result)


cdef void entry_failed(NodeState *s, Req *req, raft.raft_index index,
                       const char *error) noexcept:
    """An entry that is not ours to read: log it, fail its futures (the
    request itself ends in on_applied, libraft still holds it)."""
    why = error.decode()
    log.error("node %d: cannot apply entry %d: %s", s.id, index, why)
    cdef unsigned i
    if req != NULL:
        for i in range(req.n):
            fail_future(s, <object>req.futures[i],
                        _errors.RaftError(f"entry {index}: {why}", raft.RAFT_MALFORMED))
        req_release_futures(req)


# -- snapshot -------------------------------------------------------------------

cdef int fsm_snapshot(raft.raft_fsm *fsm, raft.raft_buffer **bufs, unsigned *n_bufs) noexcept nogil:
    cdef NodeState *s = <NodeState *>fsm.data
    if s.fatal or uv.uv_hrtime() < s.snapshot_retry_at:
        return raft.RAFT_BUSY
    reset_log_bytes(s)
    hold_gil(s)
    cdef raft.raft_buffer *array = <raft.raft_buffer *>raft.raft_malloc(sizeof(raft.raft_buffer))
    if array == NULL:
        return raft.RAFT_NOMEM
    cdef unsigned long long began = uv.uv_hrtime()
    cdef int rv = take_snapshot(s, array)
    check_held(s, HELD_SNAPSHOT, began)
    if rv < 0:
        raft.raft_free(array)
        s.snapshot_retry_at = uv.uv_hrtime() + SNAPSHOT_RETRY_NS
        return raft.RAFT_CANCELED
    # libraft writes it next, through io_guard.pxi, which first runs
    # persist() on the thread pool when rv says so.
    s.snapshot_armed = True
    s.snapshot_persist = rv == 1
    bufs[0] = array
    n_bufs[0] = 1
    return 0


cdef int take_snapshot(NodeState *s, raft.raft_buffer *buf) noexcept with gil:
    """Call FSM.snapshot() into buf: 0 done, 1 persist() still to run (buf
    holds an empty placeholder), -1 failed (logged)."""
    cdef Core core = <Core>s.core
    try:
        section = sessions_dump(&s.fwd.table)      # sessions.pxi, at this index
        snapshot = core.fsm.snapshot()
        if snapshot is None or getattr(snapshot, "persist", None) is not None:
            # An object whose persist() must run next, off the raft thread.
            core._persisting = snapshot
            forward_hold_section(s, section)
            frame_snapshot(b"", s.snapshot_compression, buf)
            return 1
        frame_snapshot(snapshot, s.snapshot_compression, buf, section)
        return 0
    except BaseException as exc:
        log.error("node %d: FSM.snapshot() failed, will retry: %r", s.id, exc,
                  exc_info=exc)
        return -1


cdef object persist_snapshot(NodeState *s):
    """On libuv's pool (io_guard.pxi): run persist() of the pending
    snapshot object; release() always."""
    cdef Core core = <Core>s.core
    snapshot = core._persisting
    core._persisting = None
    try:
        return snapshot.persist()
    finally:
        release = getattr(snapshot, "release", None)
        if release is not None:
            release()


cdef void release_snapshot(NodeState *s) noexcept with gil:
    """The persist() job could not be queued: release the snapshot."""
    cdef Core core = <Core>s.core
    snapshot = core._persisting
    core._persisting = None
    try:
        release = getattr(snapshot, "release", None)
        if release is not None:
            release()
    except BaseException as exc:
        log.error("node %d: snapshot release() failed: %r", s.id, exc)


# -- restore --------------------------------------------------------------------

cdef int fsm_restore(raft.raft_fsm *fsm, raft.raft_buffer *buf) noexcept nogil:
    cdef NodeState *s = <NodeState *>fsm.data
    reset_log_bytes(s)
    hold_gil(s)
    if not s.in_start:
        s.ev.installed = True             # events.pxi: from the leader
    cdef unsigned long long began = uv.uv_hrtime()
    cdef int restored = restore_snapshot(s, <const char *>buf.base, buf.len)
    check_held(s, HELD_RESTORE, began)
    if restored != 0:
        if s.in_start:
            return raft.RAFT_CORRUPT      # raft_start fails; start() raises
        # Installing from the leader: libraft cannot take an error here, so
        # accept the buffer and stop the node from the loop instead.
        s.fatal = True
        uv.uv_async_send(&s.wakeup)
    raft.raft_free(buf.base)              # success: the buffer is ours to free
    return 0


cdef int restore_snapshot(NodeState *s, const char *p, size_t size) noexcept with gil:
    cdef Core core = <Core>s.core
    try:
        data = read_snapshot(p, size)
        sessions_load(&s.fwd.table, snapshot_section(p, size))    # sessions.pxi
        core.fsm.restore(data)
        forward_restored(s)
        return 0
    except _errors.CorruptError as exc:
        # read_snapshot's check (entry.pxi): the FSM never saw the bytes.
        message = (f"corrupt snapshot refused before FSM.restore: {exc}; remove this node, "
                   "wipe its data dir and add it back (docs/howto/recovery.md)")
        set_error(s, message.encode(errors="replace"))
        if s.in_start:
            core._start_error = exc
        else:
            log.error("node %d: %s; stopping the node", s.id, message)
        return -1
    except BaseException as exc:
        message = f"FSM.restore raised {exc!r}"
        set_error(s, message.encode(errors="replace"))
        if s.in_start:
            core._start_error = exc
        else:
            log.error("node %d: %s; stopping the node, its state is unknown",
                      s.id, message, exc_info=exc)
        return -1
