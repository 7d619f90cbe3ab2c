# The libraft calls a request becomes, and their callbacks, on the raft
# thread: apply (with the in-flight list), barrier, configuration changes
# and leadership transfer.

# -- apply ----------------------------------------------------------------------

cdef void submit_apply(NodeState *s, Req *req) noexcept nogil:
    req.tag = s.next_tag
    s.next_tag += 1
    entry_set_tag(&req.buf, req.tag)
    req.apply_req.data = req
    cdef int rv = raft.raft_apply(&s.raft, &req.apply_req, &req.buf, 1, on_applied)
    if rv == raft.RAFT_NOTLEADER and s.fwd.enabled:
        forward_take(s, req)           # forward.pxi: to the leader instead
        return
    if rv != 0:
        fail_requests(s, req, rv)      # the entry is still ours: freed there
        return
    req.buf.base = NULL                # libraft's now
    req.index = req.apply_req.index
    inflight_push(s, req)


cdef void on_applied(raft.raft_apply_req *areq, int status, void *result) noexcept nogil:
    cdef Req *req = <Req *>areq.data
    cdef NodeState *s = req.node
    inflight_unlink(s, req)
    if req.done:        # fsm.pxi settled the futures when it applied the entry
        req_free(req)
        return
    # Applied elsewhere than our FSM call (not ours after all), or failed.
    if s.phase != PHASE_RUNNING:
        status = raft.RAFT_SHUTDOWN
    elif status == 0:
        status = raft.RAFT_LEADERSHIPLOST
    fail_requests(s, req, status)


# The in-flight list: requests libraft accepted, in log-index order; only
# the raft thread touches it.

cdef void inflight_push(NodeState *s, Req *req) noexcept nogil:
    req.next = NULL
    req.prev = s.inflight_tail
    if s.inflight_tail != NULL:
        s.inflight_tail.next = req
    else:
        s.inflight_head = req
    s.inflight_tail = req
    s.inflight_count += req.n       # commands, as stats() reports them


cdef void inflight_unlink(NodeState *s, Req *req) noexcept nogil:
    if req.prev != NULL:
        req.prev.next = req.next
    else:
        s.inflight_head = req.next
    if req.next != NULL:
        req.next.prev = req.prev
    else:
        s.inflight_tail = req.prev
    req.next = req.prev = NULL
    s.inflight_count -= req.n


cdef Req *inflight_find(NodeState *s, raft.raft_index index, uint64_t tag) noexcept nogil:
    cdef Req *req = s.inflight_head
    while req != NULL and req.index <= index:
        if req.index == index:
            return req if req.tag == tag else NULL
        req = req.next
    return NULL


# -- barrier --------------------------------------------------------------------

cdef void submit_barrier(NodeState *s, Req *req) noexcept nogil:
    req.barrier_req.data = req
    cdef int rv = raft.raft_barrier(&s.raft, &req.barrier_req, on_barrier)
    if rv != 0:
        fail_requests(s, req, rv)


cdef void on_barrier(raft.raft_barrier_req *breq, int status) noexcept nogil:
    cdef Req *req = <Req *>breq.data
    cdef NodeState *s = req.node
    if status != 0:
        if s.phase != PHASE_RUNNING:
            status = raft.RAFT_SHUTDOWN
        fail_requests(s, req, status)
        return
    hold_gil(s)
    resolve_single(s, req, False)
    req_free(req)


# -- configuration changes ------------------------------------------------------
#
# libraft 0.22 keeps a single slot for the change in progress and asserts
# (a no-op in release builds, which then lose the first request) when a
# second one arrives while a promotion is catching up. So the binding admits
# one change at a time itself; add() with a role other than SPARE is one
# request that runs raft_add and then raft_assign.

cdef void submit_change(NodeState *s, Req *req) noexcept nogil:
    cdef int rv
    if raft.raft_state(&s.raft) != raft.RAFT_LEADER:
        rv = raft.RAFT_NOTLEADER
    elif s.change_inflight != NULL:
        rv = raft.RAFT_CANTCHANGE
    else:
        req.change_req.data = req
        rv = start_change(s, req)
    if rv != 0:
        fail_requests(s, req, rv)
        return
    s.change_inflight = req


cdef int start_change(NodeState *s, Req *req) noexcept nogil:
    if req.change_op == CHANGE_REMOVE and req.target != s.id and in_configuration(s, req.target):
        return start_removal(s, req)       # removed.pxi: tell it first
    if req.change_op == CHANGE_REMOVE_NOW:
        req.change_op = CHANGE_REMOVE
    if req.change_op == CHANGE_ADD:
        return raft.raft_add(&s.raft, &req.change_req, req.target, req.address, on_changed)
    if req.change_op == CHANGE_ASSIGN:
        return raft.raft_assign(&s.raft, &req.change_req, req.target, req.role, on_changed)
    return raft.raft_remove(&s.raft, &req.change_req, req.target, on_changed)


cdef void on_changed(raft.raft_change_req *change, int status) noexcept nogil:
    cdef Req *req = <Req *>change.data
    cdef NodeState *s = req.node
    if status == 0 and req.change_op == CHANGE_ADD and req.role != raft.RAFT_SPARE:
        # Added as a spare: now promote it (libraft catches it up first).
        req.change_op = CHANGE_ASSIGN
        status = start_change(s, req)
        if status == 0:
            return
    s.change_inflight = NULL
    if status == raft.RAFT_LEADERSHIPLOST and req.change_op == CHANGE_REMOVE \
            and req.target == s.id and not in_configuration(s, s.id):
        status = 0          # removed ourselves: stepping down is the point
    if status != 0 and s.phase != PHASE_RUNNING:
        status = raft.RAFT_SHUTDOWN
    if status != 0:
        fail_requests(s, req, status)
        return
    hold_gil(s)
    resolve_single(s, req, False)
    req_free(req)


cdef bint in_configuration(NodeState *s, raft.raft_id id) noexcept nogil:
    cdef unsigned i
    for i in range(s.raft.configuration.n):
        if s.raft.configuration.servers[i].id == id:
            return True
    return False


# -- leadership transfer --------------------------------------------------------

cdef void submit_transfer(NodeState *s, Req *req) noexcept nogil:
    cdef int rv
    if raft.raft_state(&s.raft) != raft.RAFT_LEADER:
        rv = raft.RAFT_NOTLEADER
    elif s.transfer_inflight:
        rv = raft.RAFT_BUSY
    else:
        req.transfer_req.data = req
        rv = raft.raft_transfer(&s.raft, &req.transfer_req, req.target, on_transferred)
    if rv != 0:
        fail_requests(s, req, rv)
        return
    s.transfer_inflight = True


cdef void on_transferred(raft.raft_transfer_req *transfer) noexcept nogil:
    cdef Req *req = <Req *>transfer.data
    cdef NodeState *s = req.node
    s.transfer_inflight = False
    if s.phase != PHASE_RUNNING:
        fail_requests(s, req, raft.RAFT_SHUTDOWN)
        return
    hold_gil(s)
    resolve_single(s, req, True)
    req_free(req)


cdef void resolve_single(NodeState *s, Req *req, bint with_leader) noexcept with gil:
    """Resolve a one-future request with None, or with the leader known now
    (another node: a transfer that happened) or None."""
    cdef raft.raft_id leader_id = 0
    cdef const char *address = NULL
    value = None
    if with_leader:
        raft.raft_leader(&s.raft, &leader_id, &address)
        if leader_id != 0 and leader_id != s.id and address != NULL:
            value = _types.Server(leader_id, address.decode(errors="replace"))
    resolve_future(s, <object>req.futures[0], value)
    req_release_futures(req)
