# The native state of one node, the raft thread's hold on the GIL, and the
# status mirror that other threads read instead of struct raft.

cdef enum Phase:
    PHASE_NEW = 0        # constructed, thread not started
    PHASE_STARTING = 1   # thread running raft_start
    PHASE_RUNNING = 2
    PHASE_CLOSING = 3    # raft_close called, loop winding down
    PHASE_CLOSED = 4     # thread finished (or never started)
    PHASE_FAILED = 5     # start failed; thread finishing

cdef enum:
    ADDRESS_MAX = 256
    ERROR_MAX = 512


cdef struct WakeupRef:        # wakeup.pxi: a waiter to release after drop_gil
    PyObject *obj              # the Wakeup (a reference)
    PyThread_type_lock lock    # its lock


cdef struct NodeState:
    PyObject *core             # the Core (the thread holds a reference)
    raft_id id
    char address[ADDRESS_MAX]
    char *data_dir

    # settings, applied before raft_start
    unsigned election_ms
    unsigned heartbeat_ms
    unsigned install_snapshot_ms
    unsigned snapshot_threshold
    unsigned snapshot_trailing
    unsigned max_catch_up_rounds
    unsigned max_catch_up_round_ms
    unsigned max_inflight_entries
    size_t segment_size
    size_t max_batch_bytes     # commands packed into one log entry, at most
    size_t snapshot_log_bytes  # snapshot once the log since the last holds this
    bint pre_vote
    bint snapshot_compression
    bint tcp_nodelay
    bint trace                 # route libraft's tracer to logging
    bint trace_stderr          # LIBRAFT_TRACE is set: keep libraft's own

    # libuv and libraft, touched by the raft thread only
    uv_loop_t loop
    uv_async_t wakeup
    uv_prepare_t prepare
    raft_uv_transport transport    # ours, around tcp (transport.pxi)
    raft_uv_transport tcp
    raft_uv_accept_cb accept_cb
    raft_uv_transport_close_cb transport_closed_cb
    raft_io io
    raft_io_start_fn io_start            # io_guard.pxi: the wrapped methods
    raft_io_snapshot_put_fn io_snapshot_put
    raft_io_recv_cb io_recv
    bint snapshot_armed                  # fsm_snapshot succeeded, put next
    bint snapshot_writing                # our own snapshot is being written
    bint snapshot_persist                # ... after persist() on the pool
    bint persisting                      # persist() is running
    bint close_pending                   # close once persist() is done
    Deferred *deferred_head
    Deferred *deferred_tail
    raft_fsm fsm
    raft raft
    uv_thread_t thread
    bint thread_joinable

    # the raft thread's Python thread state and whether it holds the GIL
    PyThreadState *tstate
    bint gil_held
    unsigned long thread_ident
    WakeupRef *wakeups         # waiters to release once the GIL is dropped
    unsigned n_wakeups
    unsigned cap_wakeups

    # raft-thread only
    int phase
    bint in_start              # inside raft_start: restore errors go to start()
    bint notify_pending        # published a change on_prepare must announce
    unsigned short capacity_threshold    # KiB: libraft refuses entries below
    unsigned long long disk_low_since    # uv_hrtime() the log space ran low
    bint disk_full                       # reported (error set, warning logged)
    bint fatal                 # the FSM state is unknown: stop the node
    size_t log_bytes           # bytes of entries applied since the last snapshot
    bint snapshot_hurried      # log_bytes passed the cap: threshold lowered
    Req *inflight_head
    Req *inflight_tail
    unsigned inflight_count
    Req *change_inflight       # cluster.pxi: one configuration change at a time
    bint transfer_inflight
    unsigned long long leader_contact     # uv_hrtime() of the last message from a leader
    raft_tracer tracer         # to logging, when canonical_raft.libraft logs
    uint64_t next_tag
    unsigned long long snapshot_retry_at   # uv_hrtime() after a failed snapshot

    # guarded by lock: the submission queue ...
    uv_mutex_t lock
    uv_cond_t changed          # phase, leader or state changed
    Req *queue_head
    Req *queue_tail
    unsigned queued
    bint accepting             # the wakeup handle is open and not closing
    bint close_requested

    # ... and the status mirror
    int m_phase
    int m_state                # also read without the lock, as a hint
    raft_term m_term
    raft_id m_leader_id
    char m_leader_address[ADDRESS_MAX]
    raft_index m_commit_index
    raft_index m_last_applied
    raft_index m_last_index
    raft_index m_snapshot_index
    unsigned m_pending                   # requests queued or in libraft
    unsigned m_log_capacity              # KiB of log space prepared on disk
    unsigned long long m_leader_contact  # uv_hrtime(), 0 if none
    raft_configuration m_configuration
    raft_index m_conf_committed
    raft_index m_conf_uncommitted
    char m_error[ERROR_MAX]


cdef inline void hold_gil(NodeState *s) noexcept nogil:
    """Take the GIL for the rest of this loop iteration (see on_prepare)."""
    if not s.gil_held:
        PyEval_RestoreThread(s.tstate)
        s.gil_held = True
        if s.n_wakeups:
            forget_wakeups(s)


cdef inline void drop_gil(NodeState *s) noexcept nogil:
    """Let the GIL go, then wake the waiters of the futures resolved while
    it was held (wakeup.pxi): they find it free."""
    cdef unsigned i
    if s.gil_held:
        s.gil_held = False
        s.tstate = PyEval_SaveThread()
        for i in range(s.n_wakeups):
            PyThread_release_lock(s.wakeups[i].lock)


cdef void forget_wakeups(NodeState *s) noexcept nogil:
    """Drop the references to the waiters drop_gil released (with the
    GIL: the next hold_gil, or the end of the thread)."""
    cdef unsigned i
    for i in range(s.n_wakeups):
        Py_DecRef(s.wakeups[i].obj)
    s.n_wakeups = 0


cdef void set_error(NodeState *s, const char *message) noexcept nogil:
    uv_mutex_lock(&s.lock)
    cr_copy(s.m_error, message, ERROR_MAX)
    uv_mutex_unlock(&s.lock)


cdef bint publish_status(NodeState *s) noexcept nogil:
    """Copy raft's state into the mirror; True if the state or leader changed."""
    cdef int state = RAFT_UNAVAILABLE
    cdef raft_id leader_id = 0
    cdef const char *leader_address = NULL
    cdef bint running = s.phase == PHASE_RUNNING and not s.fatal
    cdef bint changed
    cdef unsigned i
    if running:
        state = raft_state(&s.raft)
        raft_leader(&s.raft, &leader_id, &leader_address)
    uv_mutex_lock(&s.lock)
    changed = (state != s.m_state or leader_id != s.m_leader_id
               or s.phase != s.m_phase)
    s.m_phase = s.phase
    CR_STORE(s.m_state, state)
    if leader_id != s.m_leader_id:
        s.m_leader_id = leader_id
        s.m_leader_address[0] = 0
        if leader_address != NULL:
            cr_copy(s.m_leader_address, leader_address, ADDRESS_MAX)
    if running:    # once raft_close ran, struct raft is no longer readable
        s.m_term = raft_current_term(&s.raft)
        s.m_commit_index = raft_commit_index(&s.raft)
        s.m_last_applied = raft_last_applied(&s.raft)
        s.m_last_index = raft_last_index(&s.raft)
        s.m_snapshot_index = cr_snapshot_index(&s.raft)
        s.m_pending = s.inflight_count + s.queued
        s.m_log_capacity = s.io.capacity
        s.m_leader_contact = s.leader_contact
        if (s.raft.configuration_committed_index != s.m_conf_committed or
                s.raft.configuration_uncommitted_index != s.m_conf_uncommitted or
                s.raft.configuration.n != s.m_configuration.n):
            s.m_conf_committed = s.raft.configuration_committed_index
            s.m_conf_uncommitted = s.raft.configuration_uncommitted_index
            raft_configuration_close(&s.m_configuration)
            raft_configuration_init(&s.m_configuration)
            for i in range(s.raft.configuration.n):
                raft_configuration_add(&s.m_configuration,
                                       s.raft.configuration.servers[i].id,
                                       s.raft.configuration.servers[i].address,
                                       s.raft.configuration.servers[i].role)
    if changed:
        uv_cond_broadcast(&s.changed)
    uv_mutex_unlock(&s.lock)
    return changed


cdef inline void publish_if_changed(NodeState *s) noexcept nogil:
    """Publish at once when a message changed the state or the leader: the
    peers may learn of it from this node's messages before the end of the
    loop iteration, and a user told "X leads" must find X saying so."""
    cdef raft_id leader_id = 0
    cdef const char *address = NULL
    if s.phase != PHASE_RUNNING or s.fatal:
        return
    raft_leader(&s.raft, &leader_id, &address)
    if <int>raft_state(&s.raft) != s.m_state or leader_id != s.m_leader_id:
        if publish_status(s):
            s.notify_pending = True
