# The submission queue, end to end: requests made on the caller's thread,
# pushed under the lock with one uv_async_send, drained whole by the raft
# thread (uv_async_send coalesces), and submitted to libraft in order, runs
# of applies packed into as few entries as max_batch_bytes allows.
# Requests made on the raft thread itself (from a done callback or an FSM
# method) go on its own list instead, without the lock or a wake-up: the
# loop submits that list before it next blocks (submit_local, on_prepare).
#
# The queue's fields are NodeState's "guarded by lock" group (state.pxi);
# the raft thread's list is its own.

# -- the caller's side --------------------------------------------------------

cdef Req *apply_req_new(NodeState *s, const char *data, size_t size,
                        object future) except? NULL:
    """A request for one command, already framed as a one-command entry."""
    cdef Req *req = req_new(s, REQ_APPLY, 1)
    if req == NULL:
        raise MemoryError()
    cdef char *p = entry_begin(&req.buf, 1, ENTRY_HEADER + command_size(size))
    if p == NULL:
        req_free(req)
        raise MemoryError()
    entry_put_command(p, data, size)
    Py_INCREF(future)
    req.futures[0] = <PyObject *>future
    return req


cdef Req *entries_req_new(NodeState *s, Py_buffer *views, list futures,
                          Py_ssize_t n) except NULL:
    """Frame commands into entries of at most max_batch_bytes (a larger
    command alone), one request per entry, chained."""
    cdef Req *first = NULL
    cdef Req *last = NULL
    cdef Req *req
    cdef Py_ssize_t start = 0, end, i
    cdef size_t size, part
    cdef char *p
    try:
        while start < n:
            size = ENTRY_HEADER + command_size(views[start].len)
            end = start + 1
            while end < n:
                part = command_size(views[end].len)
                if size + part > s.max_batch_bytes:
                    break
                size += part
                end += 1
            req = req_new(s, REQ_APPLY, <unsigned>(end - start))
            if req == NULL:
                raise MemoryError()
            if last == NULL:
                first = req
            else:
                last.next = req
            last = req
            p = entry_begin(&req.buf, <uint32_t>(end - start), size)
            if p == NULL:
                raise MemoryError()
            for i in range(start, end):
                p = entry_put_command(p, <const char *>views[i].buf, views[i].len)
                fut = futures[i]
                Py_INCREF(fut)
                req.futures[i - start] = <PyObject *>fut
            start = end
    except BaseException:
        fail_requests(s, first, raft.RAFT_CANCELED)
        raise
    return first


cdef bint push(NodeState *s, Req *first, Req *last) noexcept nogil:
    """Append requests to the submission queue and wake the raft thread;
    False if the node no longer accepts work."""
    if current_node() == s:
        return push_local(s, first, last)
    uv.uv_mutex_lock(&s.lock)
    if not s.accepting or s.close_requested:
        uv.uv_mutex_unlock(&s.lock)
        return False
    cdef bint was_empty = s.queue_head == NULL
    cdef Req *req = first
    if was_empty:
        s.queue_head = first
    else:
        s.queue_tail.next = first
    s.queue_tail = last
    while req != NULL:
        s.queued += req.n
        req = req.next
    if was_empty:
        # Under the lock: the handle cannot be closing while accepting.
        uv.uv_async_send(&s.wakeup)
    uv.uv_mutex_unlock(&s.lock)
    return True


cdef inline bint push_local(NodeState *s, Req *first, Req *last) noexcept nogil:
    """On the raft thread: onto its own list, for submit_local()."""
    if s.phase != PHASE_RUNNING:
        return False
    if s.local_head == NULL:
        s.local_head = first
    else:
        s.local_tail.next = first
    s.local_tail = last
    return True


# -- the drain ------------------------------------------------------------------

cdef Req *take_queue(NodeState *s, bint *closing) noexcept nogil:
    """The whole queue, in order, leaving it empty: the one drain (the raft
    thread's on_wakeup, and Core._join once the thread is gone). If a close
    was asked for or the FSM state is lost, *closing is set; when it is
    set, the queue stops accepting."""
    uv.uv_mutex_lock(&s.lock)
    cdef Req *head = s.queue_head
    s.queue_head = s.queue_tail = NULL
    s.queued = 0
    if s.close_requested or s.fatal:
        closing[0] = True
    if closing[0]:
        s.accepting = False
    uv.uv_mutex_unlock(&s.lock)
    return head


cdef void on_wakeup(uv.uv_async_t *handle) noexcept nogil:
    """Drain the whole submission queue (uv_async_send coalesces)."""
    cdef NodeState *s = <NodeState *>handle.data
    cdef bint closing = False
    cdef Req *head = take_queue(s, &closing)
    if closing or s.phase != PHASE_RUNNING:
        fail_requests(s, head, raft.RAFT_SHUTDOWN)
        begin_close(s)
        return
    submit_local(s)
    submit_queue(s, head)


cdef void submit_local(NodeState *s) noexcept nogil:
    """Submit the raft thread's own requests (on_prepare, on_wakeup; fail
    them once the node is closing). Those that their failures' callbacks
    submit at once wait for the next iteration, which the wake-up makes
    come without blocking."""
    cdef Req *head = s.local_head
    if head == NULL:
        return
    s.local_head = s.local_tail = NULL
    if s.phase != PHASE_RUNNING:
        fail_requests(s, head, raft.RAFT_SHUTDOWN)
        return
    submit_queue(s, head)
    if s.local_head != NULL and s.phase == PHASE_RUNNING:
        uv.uv_async_send(&s.wakeup)


cdef Req *take_local(NodeState *s) noexcept nogil:
    """The raft thread's list, once that thread is gone (Core._join)."""
    cdef Req *head = s.local_head
    s.local_head = s.local_tail = NULL
    return head


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
                   size + entry_commands_size(&run_end.buf) <= s.max_batch_bytes):
                size += entry_commands_size(&run_end.buf)
                n_futures += run_end.n
                count += 1
                run_end = run_end.next
            if count > 1:
                merged = merge_applies(req, count, n_futures, size)
                if merged != NULL:
                    req = merged
        next = req.next
        req.next = NULL             # off the queue: alone from here on
        if req.kind == REQ_APPLY:
            submit_apply(s, req)
        elif req.kind == REQ_BARRIER:
            submit_barrier(s, req)
        elif req.kind == REQ_CHANGE:
            submit_change(s, req)
        elif req.kind == REQ_SNAPSHOT or req.kind == REQ_BACKUP:
            backup_submit(s, req)       # backup.pxi
        elif req.kind >= REQ_FORWARD:
            forward_submit(s, req)      # forward.pxi
        else:
            submit_transfer(s, req)
        req = next


cdef Req *merge_applies(Req *first, unsigned count, unsigned n_futures,
                        size_t size) noexcept nogil:
    """Pack `count` queued one-entry requests starting at `first` into one
    entry; NULL (and nothing changed) if memory is short."""
    cdef Req *merged = req_new(first.node, REQ_APPLY, n_futures)
    if merged == NULL:
        return NULL
    cdef char *p = entry_begin(&merged.buf, n_futures, size)
    if p == NULL:
        req_free(merged)
        return NULL
    cdef unsigned i, j, k = 0
    cdef Req *req = first
    cdef Req *next
    for i in range(count):
        next = req.next
        p = entry_put_commands_of(p, &req.buf)
        for j in range(req.n):
            merged.futures[k] = req.futures[j]    # the reference moves
            k += 1
        raft.raft_free(req.buf.base)
        req_free(req)
        req = next
    merged.next = req
    return merged
