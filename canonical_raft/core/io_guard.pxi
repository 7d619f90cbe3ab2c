# A guard around raft_io methods. It works around a libraft 0.22 crash,
# runs FSM snapshots' persist() off the raft thread, and records the term
# and vote before libraft's metadata gets them (set_term, set_vote: mark.pxi;
# storage="uv" only). The rest guards libraft's core, so either io.
#
# When an InstallSnapshot message arrives while the node is writing a
# snapshot of its own, libraft parks it as "pending" and, once the write
# completes, takeSnapshotCb() clears the pending pointer before reading it
# and dereferences NULL (legacy.c, "r->legacy.snapshot_pending = NULL;
# persist = r->legacy.snapshot_pending;"). We never let that state arise:
# while our own snapshot is being written, InstallSnapshot messages are held
# back and delivered right after the write completes. Raft tolerates delayed
# messages, so this changes timing only.
#
# persist(): libraft 0.22 calls even FSM v3's snapshot_async on the loop
# thread. When FSM.snapshot() returns an object with persist(), fsm_snapshot
# hands libraft a placeholder; the guard then runs persist() on libuv's
# thread pool, puts its bytes in the placeholder's place and only then lets
# libraft write the snapshot. The loop keeps applying entries meanwhile;
# libraft's metadata (the index) was fixed when snapshot() ran.

# InstallSnapshot messages held back at most (each holds a whole snapshot):
# beyond, the oldest is dropped (the leader sends another).
DEF DEFERRED_MAX = 2


cdef struct Deferred:
    Deferred *next
    raft.raft_message message  # a shallow copy; its buffers are owned by it
    char *server_address       # our copy: the connection may go away


cdef struct PutGuard:
    raft.raft_io_snapshot_put put     # what libuv's io sees
    raft.raft_io_snapshot_put *orig   # libraft's request
    NodeState *node
    raft.raft_io *io                  # the put's arguments, kept while persisting
    unsigned trailing
    raft.raft_snapshot *snapshot
    uv.uv_work_t work
    raft.raft_buffer persisted
    int persist_status


cdef inline NodeState *io_node(raft.raft_io *io) noexcept nogil:
    return <NodeState *>(<raft.raft *>io.data).data


cdef void io_guard_install(NodeState *s) noexcept nogil:
    s.io_start = s.io.start
    s.io_snapshot_put = s.io.snapshot_put
    s.io.start = guard_start
    s.io.snapshot_put = guard_snapshot_put
    if records_kept(s):                    # mark.pxi: the term and vote record (uv)
        s.io_set_term = s.io.set_term
        s.io_set_vote = s.io.set_vote
        s.io.set_term = guard_set_term
        s.io.set_vote = guard_set_vote


cdef int guard_start(raft.raft_io *io, unsigned msecs, raft.raft_io_tick_cb tick,
                     raft.raft_io_recv_cb recv) noexcept nogil:
    cdef NodeState *s = io_node(io)
    s.io_recv = recv
    return s.io_start(io, msecs, tick, guard_recv)


cdef inline void discard_install_snapshot(raft.raft_message *message) noexcept nogil:
    """Drop a received InstallSnapshot: free what libraft would have owned."""
    raft.raft_configuration_close(&message.install_snapshot.conf)
    raft.raft_free(message.install_snapshot.data.base)


cdef bint stale_from_own_leader(NodeState *s, raft.raft_message *message) noexcept nogil:
    """An AppendEntries or InstallSnapshot of an older term than this node's,
    claiming to come from the leader it knows."""
    cdef raft.raft_term term
    cdef raft.raft_id leader = 0
    cdef const char *address = NULL
    if message.type == raft.RAFT_APPEND_ENTRIES:
        term = message.append_entries.term
    elif message.type == raft.RAFT_INSTALL_SNAPSHOT:
        term = message.install_snapshot.term
    else:
        return False
    if term >= raft.raft_current_term(&s.raft):
        return False
    raft.raft_leader(&s.raft, &leader, &address)
    return leader != 0 and leader == message.server_id


cdef void guard_recv(raft.raft_io *io, raft.raft_message *message) noexcept nogil:
    cdef NodeState *s = io_node(io)
    cdef Deferred *d
    if message.type == raft.RAFT_APPEND_ENTRIES and cr_conflicts_with_committed(&s.raft, message):
        # libraft 0.22.1 would abort on it (core/log_guard.h).
        cr_pt_refuse_log_conflict(&s.transport, message.server_address)
        cr_discard_append_entries(message)
        return
    if s.ev.watching:
        heard_from(s, message.server_id)    # events.pxi
    # An older term's message in the name of the leader this node follows
    # now is dropped unanswered: that leader never sends one, and libraft
    # 0.22.1 answers it as a success at the current term, to that leader,
    # which then stops replicating to this node (fuzz/README.md, live
    # finding 2). Any other stale sender still gets libraft's answer: a real
    # old leader must learn the newer term from it (a node that campaigned
    # past its leader's term while cut off is caught up that way).
    if stale_from_own_leader(s, message):
        if message.type == raft.RAFT_APPEND_ENTRIES:
            cr_discard_append_entries(message)
        else:
            discard_install_snapshot(message)
        return
    if message.type == raft.RAFT_APPEND_ENTRIES or message.type == raft.RAFT_INSTALL_SNAPSHOT:
        s.leader_contact = uv.uv_hrtime()   # only leaders send these
        born_check(s, message)              # removed.pxi
    if message.type == raft.RAFT_INSTALL_SNAPSHOT and s.snapshot_writing:
        d = <Deferred *>calloc(1, sizeof(Deferred))
        if d != NULL and message.server_address != NULL:
            d.server_address = <char *>malloc(strlen(message.server_address) + 1)
        if d != NULL and (message.server_address == NULL or d.server_address != NULL):
            d.message = message[0]
            if d.server_address != NULL:
                strcpy(d.server_address, message.server_address)
                d.message.server_address = d.server_address
            if s.deferred_count >= DEFERRED_MAX:
                drop_oldest_deferred(s)
            if s.deferred_tail != NULL:
                s.deferred_tail.next = d
            else:
                s.deferred_head = d
            s.deferred_tail = d
            s.deferred_count += 1
            CR_COUNT_ADD(installs_deferred_count, 1)
            return
        free(d)
        # Out of memory: drop it (the leader retries), never crash.
        discard_install_snapshot(message)
        return
    s.io_recv(io, message)
    publish_if_changed(s)


cdef int guard_snapshot_put(raft.raft_io *io, unsigned trailing, raft.raft_io_snapshot_put *req,
                            const raft.raft_snapshot *snapshot,
                            raft.raft_io_snapshot_put_cb cb) noexcept nogil:
    cdef NodeState *s = io_node(io)
    if not s.snapshot_armed:      # installing one from the leader
        return s.io_snapshot_put(io, trailing, req, snapshot, cb)
    s.snapshot_armed = False       # writing the one fsm_snapshot just took
    cdef PutGuard *g = <PutGuard *>calloc(1, sizeof(PutGuard))
    if g == NULL:
        return raft.RAFT_NOMEM
    req.cb = cb
    g.orig = req
    g.node = s
    g.put.data = g
    g.io = io
    g.trailing = trailing
    g.snapshot = <raft.raft_snapshot *>snapshot
    cdef int rv
    if s.snapshot_persist:
        s.snapshot_persist = False
        g.work.data = g
        rv = uv.uv_queue_work(&s.loop, &g.work, persist_work, persist_done)
        if rv != 0:
            free(g)
            release_snapshot(s)   # fsm.pxi
            return raft.RAFT_IOERR
        s.persisting = True
        s.snapshot_writing = True
        return 0
    check_snapshot_fits(s, snapshot.bufs[0].len)
    rv = s.io_snapshot_put(io, trailing, &g.put, snapshot, guard_put_done)
    if rv != 0:
        free(g)
        return rv
    s.snapshot_writing = True
    return 0


cdef void guard_put_done(raft.raft_io_snapshot_put *put, int status) noexcept nogil:
    cdef PutGuard *g = <PutGuard *>put.data
    cdef raft.raft_io_snapshot_put *orig = g.orig
    cdef NodeState *s = g.node
    free(g)
    # Cleared first: libraft's callback may start writing the next snapshot.
    s.snapshot_writing = False
    if status == 0:
        s.ev.taken = True              # events.pxi
    orig.cb(orig, status)
    deliver_deferred(s)


cdef void persist_work(uv.uv_work_t *work) noexcept nogil:
    """On a libuv pool thread: run persist(), frame its bytes."""
    cdef PutGuard *g = <PutGuard *>work.data
    g.persist_status = run_persist(g.node, &g.persisted)


cdef int run_persist(NodeState *s, raft.raft_buffer *out) noexcept with gil:
    try:
        frame_snapshot(persist_snapshot(s), s.snapshot_compression, out,
                       forward_take_section(s))
        return 0
    except BaseException as exc:
        log.error("node %d: snapshot persist() failed, will retry: %r",
                  s.id, exc, exc_info=exc)
        return -1


cdef void persist_done(uv.uv_work_t *work, int status) noexcept nogil:
    """Back on the loop: write the persisted snapshot, or tell libraft the
    snapshot failed (it then retries later, like a failed FSM.snapshot())."""
    cdef PutGuard *g = <PutGuard *>work.data
    cdef NodeState *s = g.node
    cdef raft.raft_io_snapshot_put *orig = g.orig
    cdef int rv = -1
    s.persisting = False
    if status == 0 and g.persist_status == 0:
        raft.raft_free(g.snapshot.bufs[0].base)     # the placeholder
        g.snapshot.bufs[0] = g.persisted
        check_snapshot_fits(s, g.persisted.len)
        rv = s.io_snapshot_put(g.io, g.trailing, &g.put, g.snapshot, guard_put_done)
    if rv != 0:
        free(g)
        s.snapshot_retry_at = uv.uv_hrtime() + SNAPSHOT_RETRY_NS
        s.snapshot_writing = False
        orig.cb(orig, raft.RAFT_CANCELED)
        deliver_deferred(s)
    if s.close_pending:
        s.close_pending = False
        begin_close(s)


cdef void deliver_deferred(NodeState *s) noexcept nogil:
    cdef Deferred *d
    while s.deferred_head != NULL and not s.snapshot_writing:
        d = s.deferred_head
        s.deferred_head = d.next
        if s.deferred_head == NULL:
            s.deferred_tail = NULL
        s.deferred_count -= 1
        s.io_recv(&s.io, &d.message)
        free(d.server_address)
        free(d)


cdef void drop_oldest_deferred(NodeState *s) noexcept nogil:
    cdef Deferred *d = s.deferred_head
    s.deferred_head = d.next
    if s.deferred_head == NULL:
        s.deferred_tail = NULL
    s.deferred_count -= 1
    raft.raft_configuration_close(&d.message.install_snapshot.conf)
    raft.raft_free(d.message.install_snapshot.data.base)
    free(d.server_address)
    free(d)


cdef void check_snapshot_fits(NodeState *s, size_t size) noexcept nogil:
    """Say so, once, when a snapshot cannot reach the peers: their
    firewalls drop an InstallSnapshot over max_message_size."""
    if size + MESSAGE_OVERHEAD <= s.pt.max_message_size or s.snapshot_too_big_logged:
        return
    s.snapshot_too_big_logged = True
    hold_gil(s)
    log_snapshot_too_big(s, size)


cdef void log_snapshot_too_big(NodeState *s, size_t size) noexcept with gil:
    log.warning("node %d: a snapshot of %d bytes is over max_message_size (%d): "
                "followers that need it will refuse it; raise max_message_size on "
                "every node", s.id, size, s.pt.max_message_size)


cdef void drop_deferred(NodeState *s) noexcept nogil:
    """Free held-back messages that will never be delivered (closing)."""
    cdef Deferred *d
    while s.deferred_head != NULL:
        d = s.deferred_head
        s.deferred_head = d.next
        raft.raft_configuration_close(&d.message.install_snapshot.conf)
        raft.raft_free(d.message.install_snapshot.data.base)
        free(d.server_address)
        free(d)
    s.deferred_tail = NULL
    s.deferred_count = 0
