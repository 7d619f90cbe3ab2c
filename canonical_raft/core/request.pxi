# The data model, part 2: a request, what other threads hand to the raft
# thread (queue.pxi), and how one ends.
#
# A request's futures are a node's Futures, asyncio futures or slots of an
# apply_many_async() burst (future.pxi and asyncio.pxi settle each kind).
# A request holds one reference to each of its futures: taken when it is
# made, dropped exactly once, by req_release_futures(), on every path. It
# ends either resolved (its callback settles the futures, then req_free)
# or through fail_requests(), the one way to end it without a result.

cdef enum ReqKind:
    REQ_APPLY = 1
    REQ_BARRIER = 2
    REQ_CHANGE = 3          # add, assign or remove (change_op)
    REQ_TRANSFER = 4
    REQ_FORWARD = 5         # forward.pxi: an apply sent to the leader
    REQ_READ = 6            # reads.pxi: read_barrier()
    REQ_SNAPSHOT = 7        # backup.pxi: snapshot() on demand
    REQ_BACKUP = 8          # backup.pxi: backup(path)

cdef enum ChangeOp:
    CHANGE_ADD = 1
    CHANGE_ASSIGN = 2
    CHANGE_REMOVE = 3
    CHANGE_REMOVE_NOW = 4   # removed.pxi: the notice is out, raft_remove now


cdef struct Req:
    Req *next                  # submission queue, then the in-flight list
    Req *prev
    NodeState *node
    int kind
    bint done                  # futures already resolved
    uint64_t tag
    raft.raft_index index
    unsigned n                 # futures
    PyObject **futures         # owned references
    PyObject *one              # storage for futures when n == 1
    raft.raft_buffer buf       # the entry (REQ_APPLY), raft_malloc'd; base is
                               # NULL once libraft owns it
    raft.raft_apply_req apply_req
    raft.raft_barrier_req barrier_req
    # configuration changes and leadership transfer
    int change_op
    raft.raft_id target
    int role
    char *address
    char *path                 # REQ_BACKUP: the file to write
    raft.raft_change_req change_req
    raft.raft_transfer_req transfer_req


cdef Req *req_new(NodeState *s, int kind, unsigned n) noexcept nogil:
    cdef Req *req = <Req *>calloc(1, sizeof(Req))
    if req == NULL:
        return NULL
    if n <= 1:
        req.futures = &req.one
    else:
        req.futures = <PyObject **>calloc(n, sizeof(PyObject *))
        if req.futures == NULL:
            free(req)
            return NULL
    req.node = s
    req.kind = kind
    req.n = n
    CR_COUNT_ADD(live_requests, 1)
    return req


cdef Req *single_req_new(NodeState *s, int kind, object future) except? NULL:
    """A barrier, change or transfer request: one future, no entry."""
    cdef Req *req = req_new(s, kind, 1)
    if req == NULL:
        raise MemoryError()
    Py_INCREF(future)
    req.futures[0] = <PyObject *>future
    return req


cdef void req_free(Req *req) noexcept nogil:
    """Free the request itself; its futures must be released already and
    its entry freed or handed to libraft."""
    if req.futures != &req.one:
        free(req.futures)
    free(req.address)
    free(req.path)
    free(req)
    CR_COUNT_ADD(live_requests, -1)


cdef void req_release_futures(Req *req) noexcept:
    """Drop the references to the futures (with the GIL), exactly once."""
    cdef unsigned i
    for i in range(req.n):
        if req.futures[i] != NULL:
            Py_DECREF(<object>req.futures[i])
            req.futures[i] = NULL
    req.done = True


# Settling a future: resolve_future() and fail_future() (future.pxi).

# -- the one way a request fails --------------------------------------------

cdef void fail_requests(NodeState *s, Req *req, int code) noexcept nogil:
    """Fail `req` and every request chained after it (req.next) with the
    error for libraft's `code`, free their entries if still ours, free
    them. Any thread; on the raft thread the GIL is then kept for the rest
    of the loop iteration (the waiters wake once it is dropped)."""
    if req == NULL:
        return
    if current_node() == s and not PyGILState_Check():
        hold_gil(s)
    fail_requests_held(s, req, code)


cdef void fail_requests_held(NodeState *s, Req *req, int code) noexcept with gil:
    cdef Req *next
    cdef unsigned i
    cdef raft.raft_id leader_id = 0
    cdef const char *leader_address = NULL
    leader = None
    # Only the raft thread may read struct raft.
    if code == raft.RAFT_NOTLEADER and current_node() == s and s.phase == PHASE_RUNNING:
        raft.raft_leader(&s.raft, &leader_id, &leader_address)
        if leader_id:
            leader = _types.Server(leader_id, leader_address.decode(errors="replace"))
    cdef int why = (WHY_NOT_APPLIED if code == raft.RAFT_SHUTDOWN or
                    code == raft.RAFT_CANCELED else 0)
    while req != NULL:
        next = req.next
        for i in range(req.n):
            if req.futures[i] != NULL:
                fail_future(s, <object>req.futures[i], raft_error(code, why, leader))
        req_release_futures(req)
        if req.buf.base != NULL:
            raft.raft_free(req.buf.base)
            req.buf.base = NULL
        req_free(req)
        req = next
