# Configuration changes and leadership transfer, on the raft thread.
#
# libraft 0.22 keeps a single slot for the change in progress and asserts
# (a no-op in release builds, which then lose the first request) when a
# second one arrives while a promotion is catching up. So the binding admits
# one change at a time itself; add() with a role other than SPARE is one
# request that runs raft_add and then raft_assign.

cdef void submit_change(NodeState *s, Req *req) noexcept nogil:
    cdef int rv
    if raft_state(&s.raft) != RAFT_LEADER:
        rv = RAFT_NOTLEADER
    elif s.change_inflight != NULL:
        rv = RAFT_CANTCHANGE
    else:
        req.change_req.data = req
        rv = start_change(s, req)
    if rv != 0:
        fail_req(s, req, rv)
        req_free(req)
        return
    s.change_inflight = req


cdef int start_change(NodeState *s, Req *req) noexcept nogil:
    if req.change_op == CHANGE_ADD:
        return raft_add(&s.raft, &req.change_req, req.target, req.address, on_changed)
    if req.change_op == CHANGE_ASSIGN:
        return raft_assign(&s.raft, &req.change_req, req.target, req.role, on_changed)
    return raft_remove(&s.raft, &req.change_req, req.target, on_changed)


cdef void on_changed(raft_change_req *change, int status) noexcept nogil:
    cdef Req *req = <Req *>change.data
    cdef NodeState *s = req.node
    if status == 0 and req.change_op == CHANGE_ADD and req.role != RAFT_SPARE:
        # Added as a spare: now promote it (libraft catches it up first).
        req.change_op = CHANGE_ASSIGN
        status = start_change(s, req)
        if status == 0:
            return
    s.change_inflight = NULL
    if status == RAFT_LEADERSHIPLOST and req.change_op == CHANGE_REMOVE \
            and req.target == s.id and not in_configuration(s, s.id):
        status = 0          # removed ourselves: stepping down is the point
    if status != 0 and s.phase != PHASE_RUNNING:
        status = RAFT_SHUTDOWN
    hold_gil(s)
    if status == 0:
        resolve_single(s, req, False)
    else:
        fail_futures(s, req, status)
    req_free(req)


cdef bint in_configuration(NodeState *s, raft_id id) noexcept nogil:
    cdef unsigned i
    for i in range(s.raft.configuration.n):
        if s.raft.configuration.servers[i].id == id:
            return True
    return False


cdef void submit_transfer(NodeState *s, Req *req) noexcept nogil:
    cdef int rv
    if raft_state(&s.raft) != RAFT_LEADER:
        rv = RAFT_NOTLEADER
    elif s.transfer_inflight:
        rv = RAFT_BUSY
    else:
        req.transfer_req.data = req
        rv = raft_transfer(&s.raft, &req.transfer_req, req.target, on_transferred)
    if rv != 0:
        fail_req(s, req, rv)
        req_free(req)
        return
    s.transfer_inflight = True


cdef void on_transferred(raft_transfer_req *transfer) noexcept nogil:
    cdef Req *req = <Req *>transfer.data
    cdef NodeState *s = req.node
    s.transfer_inflight = False
    hold_gil(s)
    if s.phase != PHASE_RUNNING:
        fail_futures(s, req, RAFT_SHUTDOWN)
    else:
        resolve_single(s, req, True)
    req_free(req)


cdef void resolve_single(NodeState *s, Req *req, bint with_leader) noexcept with gil:
    """Resolve a one-future request with None, or with the leader known now
    (another node: a transfer that happened) or None."""
    cdef raft_id leader_id = 0
    cdef const char *address = NULL
    value = None
    if with_leader:
        raft_leader(&s.raft, &leader_id, &address)
        if leader_id != 0 and leader_id != s.id and address != NULL:
            value = Server(leader_id, address.decode(errors="replace"))
    (<Core>s.core)._resolve(<object>req.futures[0], value)
    req_release_futures(req)
