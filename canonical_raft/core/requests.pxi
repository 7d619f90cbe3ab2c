# Requests: what other threads hand to the raft thread, and the log entry
# format they become.
#
# An entry is on disk for good, so its format is fixed here once
# (little-endian throughout):
#
#   header (24 bytes): magic "CRFT" u32 | version u16 | flags u16 |
#                      command count u32 | reserved u32 | tag u64
#   per command:       length u64 | bytes | zero padding to 8
#
# libraft's uv backend wants every entry length a multiple of 8, which the
# padding gives. The tag lets the node that submitted an entry recognise it
# when it is applied (index alone is not proof after a leader change).

cdef enum:
    ENTRY_MAGIC = 0x54465243      # b"CRFT"
    ENTRY_VERSION = 1
    ENTRY_HEADER = 24

cdef enum ReqKind:
    REQ_APPLY = 1
    REQ_BARRIER = 2
    REQ_CHANGE = 3          # add, assign or remove (change_op)
    REQ_TRANSFER = 4

cdef enum ChangeOp:
    CHANGE_ADD = 1
    CHANGE_ASSIGN = 2
    CHANGE_REMOVE = 3


cdef struct Req:
    Req *next                  # submission queue, then the in-flight list
    Req *prev
    NodeState *node
    int kind
    bint done                  # futures already resolved
    uint64_t tag
    raft_index index
    unsigned n                 # futures
    PyObject **futures         # owned references
    PyObject *one              # storage for futures when n == 1
    raft_buffer buf            # the entry (REQ_APPLY), raft_malloc'd
    raft_apply_req apply_req
    raft_barrier_req barrier_req
    # configuration changes and leadership transfer
    int change_op
    raft_id target
    int role
    char *address
    raft_change_req change_req
    raft_transfer_req transfer_req


cdef inline size_t pad8(size_t n) noexcept nogil:
    return (n + 7) & ~(<size_t>7)


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


cdef void req_free(Req *req) noexcept nogil:
    """Free the request itself; its futures must be released already."""
    if req.futures != &req.one:
        free(req.futures)
    free(req.address)
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


cdef void write_entry_header(char *p, uint32_t count) noexcept nogil:
    cr_put32(p, ENTRY_MAGIC)
    cr_put16(p + 4, ENTRY_VERSION)
    cr_put16(p + 6, 0)
    cr_put32(p + 8, count)
    cr_put32(p + 12, 0)
    cr_put64(p + 16, 0)


cdef Req *apply_req_new(NodeState *s, const char *data, size_t size,
                        object future) except? NULL:
    """A request for one command, already framed as a one-command entry."""
    cdef Req *req = req_new(s, REQ_APPLY, 1)
    if req == NULL:
        raise MemoryError()
    cdef size_t total = ENTRY_HEADER + 8 + pad8(size)
    cdef char *p = <char *>raft_malloc(total)
    if p == NULL:
        req_free(req)
        raise MemoryError()
    write_entry_header(p, 1)
    cr_put64(p + ENTRY_HEADER, size)
    if size:
        memcpy(p + ENTRY_HEADER + 8, data, size)
    memset(p + ENTRY_HEADER + 8 + size, 0, pad8(size) - size)
    req.buf.base = p
    req.buf.len = total
    Py_INCREF(future)
    req.futures[0] = <PyObject *>future
    return req


cdef Req *single_req_new(NodeState *s, int kind, object future) except? NULL:
    """A barrier, change or transfer request: one future, no entry."""
    cdef Req *req = req_new(s, kind, 1)
    if req == NULL:
        raise MemoryError()
    Py_INCREF(future)
    req.futures[0] = <PyObject *>future
    return req


cdef Req *merge_applies(Req *first, unsigned count, unsigned n_futures,
                        size_t size) noexcept nogil:
    """Pack `count` queued one-entry requests starting at `first` into one
    entry; NULL (and nothing changed) if memory is short."""
    cdef Req *merged = req_new(first.node, REQ_APPLY, n_futures)
    if merged == NULL:
        return NULL
    cdef char *p = <char *>raft_malloc(size)
    if p == NULL:
        req_free(merged)
        return NULL
    write_entry_header(p, n_futures)
    cdef size_t off = ENTRY_HEADER
    cdef size_t part
    cdef unsigned i, j, k = 0
    cdef Req *req = first
    cdef Req *next
    for i in range(count):
        next = req.next
        part = req.buf.len - ENTRY_HEADER
        memcpy(p + off, <char *>req.buf.base + ENTRY_HEADER, part)
        off += part
        for j in range(req.n):
            merged.futures[k] = req.futures[j]    # the reference moves
            k += 1
        raft_free(req.buf.base)
        req_free(req)
        req = next
    merged.buf.base = p
    merged.buf.len = size
    merged.next = req
    return merged


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


cdef Req *inflight_find(NodeState *s, raft_index index, uint64_t tag) noexcept nogil:
    cdef Req *req = s.inflight_head
    while req != NULL and req.index <= index:
        if req.index == index:
            return req if req.tag == tag else NULL
        req = req.next
    return NULL
