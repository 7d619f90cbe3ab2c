# The raft thread: sets libraft up, runs the uv loop, drains the submission
# queue, publishes status, and tears everything down on close.

cdef void thread_main(void *arg) noexcept nogil:
    cdef NodeState *s = <NodeState *>arg
    # One Python thread state for the thread's whole life; the GIL itself
    # is taken lazily (hold_gil) and dropped before the loop blocks.
    cdef PyGILState_STATE gstate = PyGILState_Ensure()
    s.thread_ident = PyThread_get_thread_ident()
    cr_set_current_node(s)
    thread_started(s)
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
        uv_run(&s.loop, UV_RUN_DEFAULT)
    else:
        uv_run(&s.loop, UV_RUN_DEFAULT)      # let the closing handles finish
    if uv_loop_close(&s.loop) != 0:
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


cdef void thread_started(NodeState *s) noexcept with gil:
    (<Core>s.core)._future_type._raft_thread = s.thread_ident


cdef void thread_finished(NodeState *s) noexcept with gil:
    """Forget the thread's ident. Nobody will join a thread told to close
    from itself: detach it and drop its reference to the Core (possibly the
    last one)."""
    cdef Core core = <Core>s.core
    # The ident may be reused by the next thread the process creates.
    s.thread_ident = 0
    core._future_type._raft_thread = -1
    if core._self_release:
        core._self_release = False
        s.thread_joinable = False
        pthread_detach(pthread_self())
        Py_DECREF(core)


cdef void on_handle_closed(uv_handle_t *handle) noexcept nogil:
    CR_COUNT_ADD(live_handles, -1)


cdef int node_setup(NodeState *s) noexcept nogil:
    """Everything up to a running raft; on failure it has started closing
    whatever it opened (the loop must still run to finish that)."""
    cdef int rv = uv_loop_init(&s.loop)
    if rv != 0:
        set_error(s, uv_strerror(rv))
        s.phase = PHASE_FAILED
        return rv
    uv_async_init(&s.loop, &s.wakeup, on_wakeup)
    s.wakeup.data = s
    uv_prepare_init(&s.loop, &s.prepare)
    s.prepare.data = s
    CR_COUNT_ADD(live_handles, 2)
    # Started before raft_start so that it runs after libraft's own prepare
    # callback (libuv runs the newest first), which fires completed requests.
    uv_prepare_start(&s.prepare, on_prepare)
    uv_mutex_lock(&s.lock)
    s.accepting = True
    uv_mutex_unlock(&s.lock)

    rv = transport_init(s)
    if rv != 0:
        set_error(s, s.tcp.errmsg)
        close_own_handles(s)
        return rv
    rv = raft_uv_init(&s.io, &s.loop, s.data_dir, &s.transport)
    if rv != 0:
        set_error(s, s.io.errmsg)
        raft_uv_tcp_close(&s.tcp)
        close_own_handles(s)
        return rv
    s.fsm.version = 1
    s.fsm.data = s
    s.fsm.apply = fsm_apply
    s.fsm.snapshot = fsm_snapshot
    s.fsm.restore = fsm_restore
    rv = raft_init(&s.raft, &s.io, &s.fsm, s.id, s.address)
    if rv != 0:
        set_error(s, raft_errmsg(&s.raft))
        raft_uv_close(&s.io)
        raft_uv_tcp_close(&s.tcp)
        close_own_handles(s)
        return rv
    s.raft.data = s
    io_guard_install(s)
    configure(s)
    s.in_start = True
    rv = raft_start(&s.raft)
    s.in_start = False
    if rv != 0:
        # libraft does not always pass the io's message on (io->start).
        set_error(s, first_message(raft_errmsg(&s.raft), s.io.errmsg,
                                   s.transport.errmsg, raft_strerror(rv)))
        s.phase = PHASE_CLOSING
        raft_close(&s.raft, on_raft_closed)
        return rv
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


cdef void configure(NodeState *s) noexcept nogil:
    cdef raft *r = &s.raft
    raft_seed(r, <unsigned>(uv_hrtime() ^ (s.id * <unsigned long long>2654435761)))
    raft_set_election_timeout(r, s.election_ms)
    raft_set_heartbeat_timeout(r, s.heartbeat_ms)
    raft_set_install_snapshot_timeout(r, s.install_snapshot_ms)
    raft_set_snapshot_threshold(r, s.snapshot_threshold)
    raft_set_snapshot_trailing(r, s.snapshot_trailing)
    raft_set_pre_vote(r, s.pre_vote)
    raft_set_max_catch_up_rounds(r, s.max_catch_up_rounds)
    raft_set_max_catch_up_round_duration(r, s.max_catch_up_round_ms)
    raft_set_max_inflight_entries(r, s.max_inflight_entries)
    raft_uv_set_segment_size(&s.io, s.segment_size)
    # libraft refuses new entries (NOSPACE) while a majority of voters report
    # less than 4 MiB of prepared log space, its fixed threshold. The uv
    # backend reports about two to three segments, so with segments under
    # 2 MiB every entry would be refused: scale the threshold with them.
    s.capacity_threshold = <unsigned short>min(<size_t>4096, s.segment_size // 1024)
    raft_set_capacity_threshold(r, s.capacity_threshold)
    tracer_configure(s)


cdef void close_own_handles(NodeState *s) noexcept nogil:
    uv_mutex_lock(&s.lock)
    s.accepting = False           # no uv_async_send on a closing handle
    uv_mutex_unlock(&s.lock)
    uv_close(<uv_handle_t *>&s.wakeup, on_handle_closed)
    uv_close(<uv_handle_t *>&s.prepare, on_handle_closed)


cdef void on_raft_closed(raft *r) noexcept nogil:
    cdef NodeState *s = <NodeState *>r.data
    drop_deferred(s)
    raft_uv_close(&s.io)
    raft_uv_tcp_close(&s.tcp)
    close_own_handles(s)


cdef void begin_close(NodeState *s) noexcept nogil:
    """Stop raft; pending requests fail with ShutdownError."""
    if s.phase != PHASE_RUNNING:
        return
    if s.persisting:
        s.close_pending = True      # libraft's io cannot wait for persist()
        return
    s.phase = PHASE_CLOSING
    publish_status(s)
    raft_close(&s.raft, on_raft_closed)


cdef void on_prepare(uv_prepare_t *handle) noexcept nogil:
    """Last callback before the loop blocks: publish status, let the GIL go."""
    cdef NodeState *s = <NodeState *>handle.data
    check_disk(s)
    if (publish_status(s) or s.notify_pending) and s.phase == PHASE_RUNNING:
        s.notify_pending = False
        hold_gil(s)
        notify_state_change(s)
    drop_gil(s)


cdef void check_disk(NodeState *s) noexcept nogil:
    """Say so when the log's disk is full: libraft only retries quietly
    (and, on a majority of voters, refuses new entries with NOSPACE)."""
    if s.phase != PHASE_RUNNING:
        return
    cdef unsigned long long now = uv_hrtime()
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
    (<Core>s.core)._notify_state_change()


cdef void on_wakeup(uv_async_t *handle) noexcept nogil:
    """Drain the whole submission queue (uv_async_send coalesces)."""
    cdef NodeState *s = <NodeState *>handle.data
    uv_mutex_lock(&s.lock)
    cdef Req *head = s.queue_head
    cdef bint closing = s.close_requested or s.fatal
    s.queue_head = s.queue_tail = NULL
    s.queued = 0
    if closing:
        s.accepting = False
    uv_mutex_unlock(&s.lock)
    if closing or s.phase != PHASE_RUNNING:
        fail_queue(s, head, RAFT_SHUTDOWN)
        begin_close(s)
        return
    submit_queue(s, head)


cdef void fail_queue(NodeState *s, Req *head, int code) noexcept nogil:
    cdef Req *next
    while head != NULL:
        next = head.next
        fail_req(s, head, code)
        if head.kind == REQ_APPLY:
            raft_free(head.buf.base)
        req_free(head)
        head = next


cdef void fail_req(NodeState *s, Req *req, int code) noexcept nogil:
    hold_gil(s)
    fail_futures(s, req, code)


cdef void fail_futures(NodeState *s, Req *req, int code) noexcept with gil:
    (<Core>s.core)._fail_req(req, code)
    req_release_futures(req)


cdef void submit_queue(NodeState *s, Req *req) noexcept nogil:
    """Submit queued requests in order, packing runs of applies into as few
    entries as max_batch_bytes allows (0: none packed)."""
    cdef Req *run_end
    cdef Req *merged
    cdef Req *next
    cdef unsigned count, n_futures
    cdef size_t size
    while req != NULL:
        if req.kind == REQ_APPLY:
            count = 1
            n_futures = req.n
            size = req.buf.len
            run_end = req.next
            while (run_end != NULL and run_end.kind == REQ_APPLY and
                   size + run_end.buf.len - ENTRY_HEADER <= s.max_batch_bytes):
                size += run_end.buf.len - ENTRY_HEADER
                n_futures += run_end.n
                count += 1
                run_end = run_end.next
            if count > 1:
                merged = merge_applies(req, count, n_futures, size)
                if merged != NULL:
                    req = merged
            next = req.next
            submit_apply(s, req)
        else:
            next = req.next
            if req.kind == REQ_BARRIER:
                submit_barrier(s, req)
            elif req.kind == REQ_CHANGE:
                submit_change(s, req)
            else:
                submit_transfer(s, req)
        req = next


cdef void submit_apply(NodeState *s, Req *req) noexcept nogil:
    req.tag = s.next_tag
    s.next_tag += 1
    cr_put64(<char *>req.buf.base + 16, req.tag)
    req.apply_req.data = req
    cdef int rv = raft_apply(&s.raft, &req.apply_req, &req.buf, 1, on_applied)
    if rv != 0:
        raft_free(req.buf.base)        # still ours when raft_apply fails
        fail_req(s, req, rv)
        req_free(req)
        return
    req.index = req.apply_req.index
    inflight_push(s, req)


cdef void on_applied(raft_apply_req *areq, int status, void *result) noexcept nogil:
    cdef Req *req = <Req *>areq.data
    cdef NodeState *s = req.node
    inflight_unlink(s, req)
    if not req.done:
        # Applied elsewhere than our FSM call (not ours after all), or failed.
        if s.phase != PHASE_RUNNING:
            status = RAFT_SHUTDOWN
        elif status == 0:
            status = RAFT_LEADERSHIPLOST
        fail_req(s, req, status)
    req_free(req)


cdef void submit_barrier(NodeState *s, Req *req) noexcept nogil:
    req.barrier_req.data = req
    cdef int rv = raft_barrier(&s.raft, &req.barrier_req, on_barrier)
    if rv != 0:
        fail_req(s, req, rv)
        req_free(req)


cdef void on_barrier(raft_barrier_req *breq, int status) noexcept nogil:
    cdef Req *req = <Req *>breq.data
    cdef NodeState *s = req.node
    hold_gil(s)
    if status == 0:
        resolve_single(s, req, False)
    else:
        if s.phase != PHASE_RUNNING:
            status = RAFT_SHUTDOWN
        fail_futures(s, req, status)
    req_free(req)


