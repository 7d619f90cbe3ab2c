# The data model, part 1: the native state of one node (read this first).
#
# One NodeState per Core, calloc'd by Core.__cinit__ and freed by its
# __dealloc__ (the raft thread holds a reference to the Core while it runs).
# Who may touch what is written beside each group of fields: the raft
# thread alone, or anyone under `lock`.

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
    AIO_FDS_MAX = 16           # event loops woken by eventfd per iteration (more: the
                               # slower call_soon_threadsafe)


cdef struct WakeupRef:        # gil.pxi: a waiter to release after drop_gil
    PyObject *obj              # the Wakeup (a reference)
    PyThread_type_lock lock    # its lock


cdef enum:
    PEERS_TRACKED = 64         # events.pxi: servers whose contact a leader watches


cdef struct PeerContact:      # events.pxi: one server a leader hears from
    raft.raft_id id
    unsigned long long heard   # uv_hrtime() of its last message
    bint lost                  # reported lost, not yet resumed
    bint resumed               # heard again: report it at the next collect


cdef struct Events:           # events.pxi: what the event observers were told
    int watching               # observers registered (Core sets it, with the GIL)
    bint baseline              # the values below are current: diff from them
    int state
    raft.raft_id leader
    raft.raft_index conf_committed
    raft.raft_index snapshot_index
    bint taken                 # io_guard.pxi: a snapshot of ours was written
    bint installed             # fsm.pxi: a snapshot from the leader was restored
    unsigned long long swept   # uv_hrtime() of the last contact sweep
    PeerContact peers[PEERS_TRACKED]
    unsigned n_peers


cdef struct HeldWatch:        # slow_fsm.pxi: FSM methods that hold the raft thread
    unsigned long long limit_ns          # a quarter of the election timeout (0: off)
    unsigned long long logged_at[3]      # uv_hrtime() of each method's last WARNING
    unsigned long long suppressed[3]
    unsigned long long count[3]


cdef struct NodeState:
    PyObject *core             # the Core (the thread holds a reference)
    unsigned long long key     # this node's number in the process (on_raft_thread)
    raft.raft_id id
    char address[ADDRESS_MAX]
    char *data_dir

    # knobs the running node reads (thread.pxi's configure() sets them
    # before raft_start; the rest go straight to libraft there)
    unsigned snapshot_threshold
    size_t max_batch_bytes     # commands packed into one log entry, at most
    size_t snapshot_log_bytes  # snapshot once the log since the last holds this
    bint snapshot_compression
    bint tcp_nodelay
    bint trace                 # route libraft's tracer to logging
    bint trace_stderr          # LIBRAFT_TRACE is set: keep libraft's own

    # libuv and libraft, touched by the raft thread only
    uv.uv_loop_t loop
    uv.uv_async_t wakeup
    uv.uv_prepare_t prepare
    raft.raft_uv_transport transport    # ours: peer_transport.c (transport.pxi)
    cr_pt_config pt                     # its knobs and callbacks (read at listen)
    raft.raft_uv_accept_cb accept_cb
    raft.raft_uv_transport_close_cb transport_closed_cb
    raft.raft_io io
    bint own_io                          # storage="lmdb": core/raft_io.c (raft_io.pxi)
    raft.raft_io_start_fn io_start            # io_guard.pxi: the wrapped methods
    raft.raft_io_snapshot_put_fn io_snapshot_put
    raft.raft_io_recv_cb io_recv
    raft.raft_io_set_term_fn io_set_term
    raft.raft_io_set_vote_fn io_set_vote
    bint snapshot_armed                  # fsm_snapshot succeeded, put next
    bint snapshot_writing                # our own snapshot is being written
    bint snapshot_persist                # ... after persist() on the pool
    bint persisting                      # persist() is running
    bint close_pending                   # close once persist() is done
    Deferred *deferred_head
    Deferred *deferred_tail
    unsigned deferred_count              # at most DEFERRED_MAX held back
    bint snapshot_too_big_logged         # a snapshot over max_message_size
    # mark.pxi: the data dir's records (the raft thread; mark_queued and
    # mark_status are the pool job's while mark_busy)
    raft.raft_term vote_term             # the term libraft's metadata holds
    int vote_slot                        # the vote file's slot of the current value
    raft.raft_index mark_written         # the mark file's value
    raft.raft_index mark_queued          # ... the write in flight's
    raft.raft_index mark_final           # closing: the last one
    unsigned long long mark_due          # uv_hrtime() of the next write, at the earliest
    bint mark_busy
    bint mark_closing
    bint mark_error_logged
    int mark_status
    uv.uv_work_t mark_work
    raft.raft_fsm fsm
    raft.raft raft
    uv.uv_thread_t thread
    bint thread_joinable

    # the raft thread's Python thread state and whether it holds the GIL
    PyThreadState *tstate
    bint gil_held
    WakeupRef *wakeups         # waiters to release once the GIL is dropped
    unsigned n_wakeups
    unsigned cap_wakeups
    PyObject *aio_batches      # asyncio.pxi: {event loop: [results]} to hand over
                               # when the GIL is dropped, or NULL
    PyObject *aio_wakers       # ... the loops' wakers signalled then (a list), or NULL
    int aio_fds[AIO_FDS_MAX]   # ... their eventfds, written once the GIL is dropped
    unsigned n_aio_fds
    Req *local_head            # queue.pxi: submissions made on the raft thread,
    Req *local_tail            # submitted by the next drain (no lock, no wake-up)

    # raft-thread only
    int phase
    bint in_start              # inside raft_start: restore errors go to start()
    int start_code             # libraft's error from raft_init/raft_start (0: none)
    # removed.pxi: leaving the cluster
    Req *remove_waiting        # a remove() whose notice committed, raft_remove due
    unsigned long long remove_at         # uv_hrtime() when it is due
    raft.raft_index born       # the leader's commit when this node's empty log first
                               # heard from it (0: it was bootstrapped); notices before are not for it
    bint born_pending          # started on an empty log: record born on first contact
    bint was_member            # a committed configuration held this node
    bint removed
    bint notify_pending        # published a change on_prepare must announce
    Events ev                  # events.pxi: on_event's view (raft thread; watching: Core)
    unsigned short capacity_threshold    # KiB: libraft refuses entries below
    unsigned long long disk_low_since    # uv_hrtime() the log space ran low
    bint disk_full                       # reported (error set, warning logged)
    bint fatal                 # the FSM state is unknown: stop the node
    HeldWatch held             # slow_fsm.pxi
    size_t log_bytes           # bytes of entries applied since the last snapshot
    bint snapshot_hurried      # log_bytes passed the cap: threshold lowered
    Req *inflight_head
    Req *inflight_tail
    unsigned inflight_count
    Req *change_inflight       # commands.pxi: one configuration change at a time
    bint transfer_inflight
    unsigned long long leader_contact     # uv_hrtime() of the last message from a leader
    raft.raft_tracer tracer    # to logging, when canonical_raft.libraft logs
    uint64_t next_tag
    unsigned long long snapshot_retry_at   # uv_hrtime() after a failed snapshot
    Req *snapshot_waiting      # backup.pxi: snapshot() requests, until one is written
    unsigned long long snapshot_failed_seen  # ... the snapshot_retry_at they saw
    unsigned backups_running   # backup(path) jobs on libuv's pool (they need the GIL)

    # the peer transport's TLS context for new connections (NULL: plaintext),
    # guarded by lock; its refusal counters (atomic adds, read by stats())
    SSL_CTX *tls_ctx
    uint64_t refused[CR_PT_REASONS]

    # forwarding, the session table and read barriers (forward_state.pxi)
    ForwardState fwd

    # guarded by lock: the submission queue (queue.pxi) ...
    uv.uv_mutex_t lock
    uv.uv_cond_t changed       # phase, leader or state changed
    Req *queue_head
    Req *queue_tail
    unsigned queued
    bint accepting             # the wakeup handle is open and not closing
    bint close_requested

    # ... and the status mirror (status.pxi)
    int m_phase
    int m_state                # also read without the lock, as a hint
    raft.raft_term m_term
    raft.raft_id m_leader_id
    char m_leader_address[ADDRESS_MAX]
    raft.raft_index m_commit_index
    raft.raft_index m_last_applied
    raft.raft_index m_last_index
    raft.raft_index m_snapshot_index
    unsigned m_pending                   # requests queued or in libraft
    unsigned m_log_capacity              # KiB of log space prepared on disk
    unsigned long long m_leader_contact  # uv_hrtime(), 0 if none
    raft.raft_configuration m_configuration
    raft.raft_index m_conf_committed
    raft.raft_index m_conf_uncommitted
    char m_error[ERROR_MAX]
