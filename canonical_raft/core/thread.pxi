# The raft thread: sets libraft up (configure() applies the settings), runs
# the uv loop, announces state changes once per iteration, and tears
# everything down on close: raft_close -> io and transport closed -> every
# handle closed -> the loop ends -> the thread finishes (Core._join).

cdef extern from "<pthread.h>" nogil:
    int pthread_detach(uv.uv_thread_t thread)
    uv.uv_thread_t pthread_self()


def on_raft_thread(key=None):
    """True if the calling thread is the raft thread of the node whose Core
    has this ``key`` (keys start at 1: 0 matches no node), or with None,
    that of any node."""
    cdef NodeState *s = current_node()
    if s == NULL:
        return False
    return key is None or s.key == key


cdef void thread_main(void *arg) noexcept nogil:
    cdef NodeState *s = <NodeState *>arg
    # One Python thread state for the thread's whole life; the GIL itself
    # is taken lazily (hold_gil) and dropped before the loop blocks.
    cdef PyGILState_STATE gstate = PyGILState_Ensure()
    cr_set_current_node(s)
    s.gil_held = False
    s.tstate = PyEval_SaveThread()

    cdef int rv = node_setup(s)
    if rv == 0:
        s.phase = PHASE_RUNNING
        s.notify_pending = True      # UNAVAILABLE -> FOLLOWER is a change too
    else:
        s.phase = PHASE_FAILED
    publish_status(s)
    if rv == 0:
        drop_gil(s)
        uv.uv_run(&s.loop, uv.UV_RUN_DEFAULT)
    else:
        uv.uv_run(&s.loop, uv.UV_RUN_DEFAULT)      # let the closing handles finish
    if uv.uv_loop_close(&s.loop) != 0:
        hold_gil(s)
        with gil:
            log.error("node %d: uv loop still had open handles at exit", s.id)
    if s.phase != PHASE_FAILED:
        s.phase = PHASE_CLOSED
    publish_status(s)
    hold_gil(s)
    # Waiters of futures resolved since the last drop_gil: wake them now.
    drop_gil(s)
    hold_gil(s)
    cr_set_current_node(NULL)
    thread_finished(s)      # may free s
    PyGILState_Release(gstate)


cdef void thread_finished(NodeState *s) noexcept with gil:
    """Nobody will join a thread told to close from itself: detach it and
    drop its reference to the Core (possibly the last one)."""
    cdef Core core = <Core>s.core
    if core._self_release:
        core._self_release = False
        s.thread_joinable = False
        pthread_detach(pthread_self())
        Py_DECREF(core)


cdef void on_handle_closed(uv.uv_handle_t *handle) noexcept nogil:
    CR_COUNT_ADD(live_handles, -1)


cdef int node_setup(NodeState *s) noexcept nogil:
    """Everything up to a running raft; on failure it has started closing
    whatever it opened (the loop must still run to finish that)."""
    cdef int rv = uv.uv_loop_init(&s.loop)
    if rv != 0:
        set_error(s, uv.uv_strerror(rv))
        s.phase = PHASE_FAILED
        return rv
    uv.uv_async_init(&s.loop, &s.wakeup, on_wakeup)
    s.wakeup.data = s
    uv.uv_prepare_init(&s.loop, &s.prepare)
    s.prepare.data = s
    CR_COUNT_ADD(live_handles, 2)
    # Started before raft_start so that it runs after libraft's own prepare
    # callback (libuv runs the newest first), which fires completed requests.
    uv.uv_prepare_start(&s.prepare, on_prepare)
    uv.uv_mutex_lock(&s.lock)
    s.accepting = True
    uv.uv_mutex_unlock(&s.lock)

    rv = transport_init(s)
    if rv != 0:
        set_error(s, s.transport.errmsg)
        close_own_handles(s)
        return rv
    rv = io_init(s)                     # raft_io.pxi: by the storage setting
    if rv != 0:
        set_error(s, s.io.errmsg)
        transport_free(s)
        close_own_handles(s)
        return rv
    s.fsm.version = 1
    s.fsm.data = s
    s.fsm.apply = fsm_apply
    s.fsm.snapshot = fsm_snapshot
    s.fsm.restore = fsm_restore
    rv = raft.raft_init(&s.raft, &s.io, &s.fsm, s.id, s.address)
    if rv != 0:
        s.start_code = rv
        set_error(s, io_failure(s))
        io_free(s)
        transport_free(s)
        close_own_handles(s)
        return rv
    s.raft.data = s
    io_guard_install(s)
    rv = configure(s)
    if rv == 0:
        s.in_start = True
        rv = raft.raft_start(&s.raft)
        s.in_start = False
        if rv != 0:
            s.start_code = rv
            # libraft does not always pass the io's message on (io->start).
            set_error(s, first_message(io_failure(s), s.io.errmsg,
                                       s.transport.errmsg, raft.raft_strerror(rv)))
    if rv != 0:
        s.phase = PHASE_CLOSING
        raft.raft_close(&s.raft, on_raft_closed)
        return rv
    s.born_pending = s.born == 0 and raft.raft_last_index(&s.raft) == 0
    return 0


cdef inline const char *first_message(const char *a, const char *b, const char *c,
                                      const char *d) noexcept nogil:
    if a != NULL and a[0] != 0:
        return a
    if b != NULL and b[0] != 0:
        return b
    if c != NULL and c[0] != 0:
        return c
    return d


cdef inline unsigned ms(double seconds):
    return <unsigned>(seconds * 1000)


cdef int configure(NodeState *s) noexcept with gil:
    """The node's settings, read from the Core's config object (validated
    by canonical_raft's settings) once per start: one line per knob. 0, or
    RAFT_INVALID with the error set."""
    cdef raft.raft *r = &s.raft
    cdef size_t segment_size
    c = (<Core>s.core)._config
    try:
        raft.raft_seed(r, <unsigned>(uv.uv_hrtime() ^ (s.id * <unsigned long long>2654435761)))
        raft.raft_set_election_timeout(r, ms(c.election_timeout))
        s.held.limit_ns = <unsigned long long>ms(c.election_timeout) * 250000   # slow_fsm.pxi
        raft.raft_set_heartbeat_timeout(r, ms(c.heartbeat_timeout))
        raft.raft_set_install_snapshot_timeout(r, ms(c.install_snapshot_timeout))
        s.snapshot_threshold = c.snapshot_threshold     # and again by reset_log_bytes
        raft.raft_set_snapshot_threshold(r, s.snapshot_threshold)
        raft.raft_set_snapshot_trailing(r, c.snapshot_trailing)
        raft.raft_set_pre_vote(r, c.pre_vote)
        raft.raft_set_max_catch_up_rounds(r, c.max_catch_up_rounds)
        raft.raft_set_max_catch_up_round_duration(r, ms(c.max_catch_up_round_duration))
        raft.raft_set_max_inflight_entries(r, c.max_inflight_entries)
        segment_size = c.segment_size
        io_configure(s, c)
        s.snapshot_compression = c.snapshot_compression
        s.tcp_nodelay = c.tcp_nodelay
        s.max_batch_bytes = c.max_batch_bytes
        s.snapshot_log_bytes = c.snapshot_log_bytes
        transport_configure(s, c)
        forward_configure(s, c)
    except BaseException as exc:
        set_error(s, f"bad node settings: {exc!r}".encode(errors="replace"))
        return raft.RAFT_INVALID
    # libraft refuses new entries (NOSPACE) while a majority of voters report
    # less than 4 MiB of prepared log space, its fixed threshold. The uv
    # backend reports about two to three segments, so with segments under
    # 2 MiB every entry would be refused: scale the threshold with them.
    s.capacity_threshold = <unsigned short>min(<size_t>4096, segment_size // 1024)
    raft.raft_set_capacity_threshold(r, s.capacity_threshold)
    tracer_configure(s)
    born_configure(s)
    if mark_configure(s) != 0:         # mark.pxi
        return raft.RAFT_IOERR
    return 0


cdef void close_own_handles(NodeState *s) noexcept nogil:
    uv.uv_mutex_lock(&s.lock)
    s.accepting = False           # no uv_async_send on a closing handle
    uv.uv_mutex_unlock(&s.lock)
    uv.uv_close(<uv.uv_handle_t *>&s.wakeup, on_handle_closed)
    uv.uv_close(<uv.uv_handle_t *>&s.prepare, on_handle_closed)


cdef void on_raft_closed(raft.raft *r) noexcept nogil:
    cdef NodeState *s = <NodeState *>r.data
    drop_deferred(s)
    drop_removal(s)
    snapshot_drop(s)            # backup.pxi
    forward_free(s)
    io_free(s)                  # raft_io.pxi: either storage's io
    transport_free(s)
    close_own_handles(s)


cdef void begin_close(NodeState *s) noexcept nogil:
    """Stop raft; pending requests fail with ShutdownError."""
    if s.phase != PHASE_RUNNING:
        return
    if s.persisting or s.backups_running:
        # libraft's io cannot wait for persist(), and a pool job that needs
        # the GIL must end while on_prepare still lets it go.
        s.close_pending = True
        return
    s.phase = PHASE_CLOSING
    publish_status(s)
    mark_close(s)                   # mark.pxi: the last applied index, on disk
    forward_close(s)                # forward.pxi: its streams before the transport
    raft.raft_close(&s.raft, on_raft_closed)


cdef void on_prepare(uv.uv_prepare_t *handle) noexcept nogil:
    """Last callback before the loop blocks: publish status, let the GIL go."""
    cdef NodeState *s = <NodeState *>handle.data
    check_disk(s)
    check_removal_due(s)        # removed.pxi
    check_membership(s)
    mark_tick(s)                # mark.pxi
    forward_tick(s)             # forward.pxi: send, retry, read rounds
    if (publish_status(s) or s.notify_pending) and s.phase == PHASE_RUNNING:
        s.notify_pending = False
        hold_gil(s)
        notify_state_change(s)
    if s.ev.watching and s.phase == PHASE_RUNNING:
        collect_events(s)       # events.pxi
    snapshot_tick(s)            # backup.pxi: after the publish, which shows the snapshot
    submit_local(s)             # queue.pxi: the raft thread's own submissions
    drop_gil(s)


cdef void check_disk(NodeState *s) noexcept nogil:
    """Say so when the log's disk is full: libraft only retries quietly
    (and, on a majority of voters, refuses new entries with NOSPACE)."""
    if s.phase != PHASE_RUNNING:
        return
    cdef unsigned long long now = uv.uv_hrtime()
    if s.io.capacity >= s.capacity_threshold:
        s.disk_low_since = 0
        if s.disk_full:
            s.disk_full = False
            set_error(s, "")
            hold_gil(s)
            log_disk(s, False)
        return
    if s.disk_low_since == 0:
        s.disk_low_since = now      # a dip while a segment is prepared is normal
    elif not s.disk_full and now - s.disk_low_since > 1000000000:
        s.disk_full = True
        set_error(s, "no space left for the raft log (data_dir is full or "
                     "unwritable): this node cannot store new entries")
        hold_gil(s)
        log_disk(s, True)


cdef void log_disk(NodeState *s, bint full) noexcept with gil:
    if full:
        log.warning("node %d: no space left for the raft log in %s; "
                    "retrying until space is freed", s.id,
                    s.data_dir.decode(errors="replace"))
    else:
        log.info("node %d: space for the raft log is back", s.id)


cdef void notify_state_change(NodeState *s) noexcept with gil:
    """Call the observers (Core.add_observer) with the public Node."""
    cdef Core core = <Core>s.core
    if not core._observers:
        return
    owner = core._owner() if core._owner is not None else None
    if owner is None:
        return
    for fn in list(core._observers):
        try:
            fn(owner)
        except BaseException as exc:
            log.error("node %d: state-change callback %r raised %r",
                      s.id, fn, exc, exc_info=exc)
