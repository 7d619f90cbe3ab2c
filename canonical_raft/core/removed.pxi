# Leaving the cluster (HashiCorp's ShutdownOnRemove). libraft 0.22 stops
# replicating to a server the moment its leader appends the configuration
# without it, so a removed node never learns that it was removed and stands
# for election for ever. So the leader's remove() of another server first
# commits a notice entry naming it (entry.pxi), gives the commit index a few
# heartbeats to reach that server, and only then calls raft_remove. A node
# that applies a notice naming itself, or commits a configuration without
# itself, stops: state UNAVAILABLE, stats()["error"] and a WARNING say
# "removed from the cluster", and a marker file in its data dir
# (datadir.REMOVED_NAME) makes a later start() refuse until the dir is wiped.
#
# A node added back after a wipe replays the old notice while it catches up:
# it records the leader's commit index when its empty log first hears from a
# leader (datadir.BORN_NAME) and ignores what came before.

cdef enum:
    REMOVE_WAIT_HEARTBEATS = 4


cdef int start_removal(NodeState *s, Req *req) noexcept nogil:
    """The notice for req.target; raft_remove follows once it is applied."""
    if not entry_new_notice(&req.buf, NOTICE_REMOVED, req.target):
        return raft.RAFT_NOMEM
    req.apply_req.data = req
    cdef int rv = raft.raft_apply(&s.raft, &req.apply_req, &req.buf, 1, on_notice_applied)
    if rv != 0:
        return rv                      # fail_requests frees the entry
    req.buf.base = NULL                # libraft's now
    return 0


cdef void on_notice_applied(raft.raft_apply_req *areq, int status, void *result) noexcept nogil:
    cdef Req *req = <Req *>areq.data
    cdef NodeState *s = req.node
    if s.phase != PHASE_RUNNING:
        status = raft.RAFT_SHUTDOWN
    if status != 0:
        s.change_inflight = NULL
        fail_requests(s, req, status)
        return
    req.change_op = CHANGE_REMOVE_NOW
    s.remove_waiting = req
    s.remove_at = uv.uv_hrtime() + (<unsigned long long>REMOVE_WAIT_HEARTBEATS *
                                    s.raft.heartbeat_timeout * 1000000)


cdef void check_removal_due(NodeState *s) noexcept nogil:
    """From on_prepare: call raft_remove for a notice given its time."""
    cdef Req *req = s.remove_waiting
    cdef int rv
    if req == NULL:
        return
    if s.phase == PHASE_RUNNING and raft.raft_state(&s.raft) == raft.RAFT_LEADER:
        if uv.uv_hrtime() < s.remove_at:
            return
        s.remove_waiting = NULL
        rv = start_change(s, req)
    else:
        s.remove_waiting = NULL
        rv = raft.RAFT_SHUTDOWN if s.phase != PHASE_RUNNING else raft.RAFT_LEADERSHIPLOST
    if rv != 0:
        s.change_inflight = NULL
        fail_requests(s, req, rv)


cdef void drop_removal(NodeState *s) noexcept nogil:
    """Closing: a remove() still waiting fails with ShutdownError."""
    cdef Req *req = s.remove_waiting
    if req != NULL:
        s.remove_waiting = NULL
        s.change_inflight = NULL
        fail_requests(s, req, raft.RAFT_SHUTDOWN)


cdef bint apply_notice(NodeState *s, const raft.raft_buffer *buf,
                       raft.raft_index index) noexcept nogil:
    """From fsm_apply: True if the entry is a notice (handled here)."""
    cdef uint64_t kind = 0, target = 0
    if not entry_notice(buf, &kind, &target):
        return False
    if kind == NOTICE_REMOVED and target == s.id and index > s.born:
        hold_gil(s)
        node_removed(s, index)
    return True


cdef void check_membership(NodeState *s) noexcept nogil:
    """From on_prepare: a committed configuration without this node, once
    one held it, removes it too (the leader that removed itself)."""
    if s.phase != PHASE_RUNNING or s.fatal or s.removed:
        return
    if s.raft.configuration_committed_index == 0 or s.raft.configuration_uncommitted_index != 0:
        return
    if in_configuration(s, s.id):
        s.was_member = True
    elif s.was_member and s.raft.configuration_committed_index > s.born:
        hold_gil(s)
        node_removed(s, 0)


cdef void node_removed(NodeState *s, raft.raft_index index) noexcept with gil:
    if s.removed:
        return
    s.removed = True
    how = (f"a notice at index {index}" if index else
           "the committed configuration no longer holds it")
    message = (f"removed from the cluster ({how}): this node stopped and will not stand "
               "for election; to add it back, wipe its data dir first")
    set_error(s, message.encode())
    log.warning("node %d: %s", s.id, message)
    try:
        path = os.path.join(s.data_dir.decode(errors="surrogateescape"), _datadir.REMOVED_NAME)
        with open(path, "w") as f:
            f.write(message + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        log.error("node %d: cannot record the removal in its data dir: %r", s.id, exc)
    s.fatal = True                  # take_queue() then closes the node
    uv.uv_async_send(&s.wakeup)


cdef void born_configure(NodeState *s) noexcept with gil:
    """At start (configure): what datadir.BORN_NAME recorded, if anything."""
    s.born = 0
    s.born_pending = False
    try:
        with open(os.path.join(s.data_dir.decode(errors="surrogateescape"),
                               _datadir.BORN_NAME)) as f:
            s.born = int(f.read().strip() or 0)
    except (OSError, ValueError):
        pass


cdef inline void born_check(NodeState *s, raft.raft_message *message) noexcept nogil:
    """From guard_recv: the first word from a leader to an empty log."""
    if not s.born_pending:
        return
    if message.type == raft.RAFT_APPEND_ENTRIES:
        s.born = message.append_entries.leader_commit
    elif message.type == raft.RAFT_INSTALL_SNAPSHOT:
        s.born = message.install_snapshot.last_index
    else:
        return
    s.born_pending = False
    if s.born:
        hold_gil(s)
        born_record(s)


cdef void born_record(NodeState *s) noexcept with gil:
    try:
        path = os.path.join(s.data_dir.decode(errors="surrogateescape"), _datadir.BORN_NAME)
        with open(path, "w") as f:
            f.write(f"{s.born}\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        log.error("node %d: cannot write %s: %r", s.id, _datadir.BORN_NAME, exc)
