# Apply on any node: a follower with forward=True sends its commands to the
# leader over the forwarding channel (forward_link.h, on the peer port), and
# resolves each future when its OWN FSM applies the entry (the FSM is
# deterministic: the result is the leader's, and the write is then visible
# here). The leader only appends: one entry per frame, marked with the
# sender's session and seqs (entry.pxi), and answers "appended at index I,
# term T", "not leader" or an error. Every node skips a seq its session
# table has applied (sessions.pxi): a command retried after a leader change
# or a lost answer is applied once.
#
# Order: a follower sends its commands in seq order, and after a leader
# change, a lost link or any refusal, starts again from its lowest unsettled
# seq with RESYNC. The leader accepts a frame that says RESYNC, or one that
# starts where the session's last accepted frame of this term ended, and
# refuses the rest (so "seq 4 refused, then 5 accepted" cannot happen).
#
# Outcomes: a command not settled within forward_timeout fails with
# LeadershipLostError if any leader may have appended it (it said so, or
# an answer never came), else with NotLeaderError. Closing fails the rest
# with ShutdownError.

cdef enum:
    FWD_REPLY_SIZE = 40
    FWD_READ_REPLY_SIZE = 32
    FWD_PING_SIZE = 16
    FRAME_OVERHEAD = FWD_HEADER + FWD_APPLY_FIXED
    RETRY_NS = 20000000              # after "not leader", before sending there again


# -- set-up and close (thread.pxi) ----------------------------------------------------

cdef int forward_configure(NodeState *s, c) except -1:
    """From configure(): the settings, a new session, the link."""
    cdef ForwardState *f = &s.fwd
    f.enabled = c.forward
    f.timeout_ns = <unsigned long long>(c.forward_timeout * 1e9)
    f.max_frame = c.max_message_size
    f.session = (<uint64_t>int.from_bytes(os.urandom(8), "little")) | 1
    f.next_seq = 1
    f.next_request = 1
    sessions_free(&f.table)
    if sessions_init(&f.table, c.max_sessions, c.session_expiry) != 0:
        raise MemoryError()
    f.link_config.max_frame = c.max_message_size
    f.link_config.idle_timeout_ms = ms(c.peer_idle_timeout)
    f.link_config.on_frame = forward_on_frame
    f.link_config.on_down = forward_on_down
    f.link_config.arg = s
    f.link = cr_fl_new(&s.loop, &s.transport, &f.link_config)
    if f.link == NULL:
        raise MemoryError()
    s.pt.forward_accept = pt_forward_accept
    return 0


cdef void pt_forward_accept(void *arg, uint64_t id, const char *address,
                            uv.uv_stream_t *stream) noexcept nogil:
    cdef NodeState *s = <NodeState *>arg
    cr_fl_accept(s.fwd.link, id, address, stream)


cdef void forward_close(NodeState *s) noexcept nogil:
    """From begin_close, before raft_close: close the streams, fail what
    waits (ShutdownError)."""
    cdef ForwardState *f = &s.fwd
    cdef Forwarded *fw
    cr_fl_close(f.link)
    while f.head != NULL:
        fw = f.head
        forwarded_unlink(s, fw)
        forwarded_fail(s, fw, raft.RAFT_SHUTDOWN)
    reads_close(s)


cdef void forward_free(NodeState *s) noexcept nogil:
    """From on_raft_closed: the link and the table go (Core.__dealloc__ may
    run on another thread later: nothing of this may be left then)."""
    cdef ForwardState *f = &s.fwd
    forward_close(s)
    cr_fl_free(f.link)
    f.link = NULL
    sessions_free(&f.table)
    if f.section != NULL:
        hold_gil(s)
        Py_DecRef(f.section)
        f.section = NULL


# -- the caller's side (core.pxi's apply and apply_many) --------------------------------

cdef inline bint forward_wanted(NodeState *s, refusal) noexcept:
    """Forward instead of failing with `refusal`? (A running follower with
    forward=True; the raft thread decides again where it goes.)"""
    return (s.fwd.enabled and s.m_phase == PHASE_RUNNING and not s.close_requested
            and isinstance(refusal, _errors.NotLeaderError))


cdef inline size_t forward_limit(NodeState *s) noexcept nogil:
    """The largest command a frame can carry to the leader's firewall."""
    return s.fwd.max_frame - FRAME_OVERHEAD - COMMAND_HEADER - 8


cdef object forward_too_big(NodeState *s, Py_ssize_t size):
    """The error for a command of `size` bytes too big to forward, or None."""
    if <size_t>size <= forward_limit(s):
        return None
    return _errors.RaftError(
        f"command of {size} bytes is too big to forward: at most "
        f"{forward_limit(s)} bytes (max_message_size on the leader)", raft.RAFT_TOOBIG)


cdef object forward_apply(Core core, command, fut=None):
    """apply() on a follower with forward=True: into `fut` (a node's Future
    if None, or an asyncio future of the caller's running loop)."""
    cdef NodeState *s = core.s
    too_big = forward_too_big(s, memoryview(command).nbytes)
    if too_big is not None:
        if fut is None:
            return core._failed_future(too_big)
        fut.set_exception(too_big)
        return fut
    if fut is None:
        fut = core._new_future()
    cdef Req *req = core._command_req(command, fut)
    req.kind = REQ_FORWARD
    if not push(s, req, req):
        fail_requests(s, req, raft.RAFT_SHUTDOWN)
    return fut


cdef object forward_apply_many(Core core, list commands, list futures=None):
    """apply_many() (or, with `futures`: the slots of an apply_many_async()
    burst, whose commands the caller checked for size) on a follower."""
    cdef NodeState *s = core.s
    cdef Py_ssize_t n = len(commands)
    cdef Py_ssize_t i, got = 0
    if futures is None and any(forward_too_big(s, memoryview(c).nbytes) is not None
                               for c in commands):
        return [forward_apply(core, c) for c in commands]
    if n == 0:
        return []
    cdef Py_buffer *views = <Py_buffer *>calloc(n, sizeof(Py_buffer))
    if views == NULL:
        raise MemoryError()
    cdef Req *first = NULL
    try:
        for i in range(n):
            _get_buffer(commands[i], &views[i])
            got += 1
        if futures is None:
            futures = [core._new_future() for _ in range(n)]
        first = entries_req_new(s, views, futures, n)
    finally:
        for i in range(got):
            PyBuffer_Release(&views[i])
        free(views)
    cdef Req *last = first
    last.kind = REQ_FORWARD
    while last.next != NULL:
        last = last.next
        last.kind = REQ_FORWARD
    if not push(s, first, last):
        fail_requests(s, first, raft.RAFT_SHUTDOWN)
    return futures


# -- the raft thread: taking requests in ---------------------------------------------

cdef void forward_submit(NodeState *s, Req *req) noexcept nogil:
    """From submit_queue: a forwarded apply, or a read barrier."""
    if req.kind == REQ_READ:
        read_take(s, req)
    else:
        forward_take(s, req)


cdef void forward_take(NodeState *s, Req *req) noexcept nogil:
    """A request (REQ_FORWARD, or an apply that libraft refused with
    NOTLEADER) becomes this session's next seqs; sent at the end of this
    loop iteration (forward_tick), with its neighbours."""
    cdef ForwardState *f = &s.fwd
    cdef Forwarded *fw = <Forwarded *>calloc(1, sizeof(Forwarded))
    if fw == NULL:
        fail_requests(s, req, raft.RAFT_NOMEM)
        return
    if f.head == NULL and f.next_seq > 1 and not sessions_find(&f.table, f.session):
        forward_new_session(s)   # ours expired while idle: start afresh
    req.kind = REQ_FORWARD
    req.next = NULL
    fw.req = req
    fw.first = f.next_seq
    f.next_seq += req.n
    fw.deadline = uv.uv_hrtime() + f.timeout_ns
    fw.prev = f.tail
    if f.tail != NULL:
        f.tail.next = fw
    else:
        f.head = fw
    f.tail = fw
    f.count += req.n
    if f.unsent == NULL:
        f.unsent = fw


cdef void forward_new_session(NodeState *s) noexcept nogil:
    """A fresh session (ours is gone from the table): seqs from 1 again.
    Commands still waiting under the old one can no longer be applied (the
    table refuses its entries): they fail, outcome unknown."""
    cdef ForwardState *f = &s.fwd
    cdef Forwarded *fw
    while f.head != NULL:
        fw = f.head
        forwarded_unlink(s, fw)
        forwarded_fail(s, fw, raft.RAFT_LEADERSHIPLOST)
    f.session = (f.session * <uint64_t>6364136223846793005ULL + <uint64_t>1442695040888963407ULL) | 1
    f.next_seq = 1
    f.resync = True


cdef void forwarded_unlink(NodeState *s, Forwarded *fw) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    if f.unsent == fw:
        f.unsent = fw.next
    if fw.prev != NULL:
        fw.prev.next = fw.next
    else:
        f.head = fw.next
    if fw.next != NULL:
        fw.next.prev = fw.prev
    else:
        f.tail = fw.prev
    f.count -= fw.req.n - fw.settled


cdef void forwarded_fail(NodeState *s, Forwarded *fw, int code) noexcept nogil:
    """Fail the futures not yet settled, free both (unlinked already)."""
    fail_requests(s, fw.req, code)
    free(fw)


# -- settling (sessions.pxi's apply) ------------------------------------------------

cdef Forwarded *forwarded_find(NodeState *s, uint64_t seq) noexcept nogil:
    cdef Forwarded *fw = s.fwd.head
    while fw != NULL:
        if fw.first <= seq < fw.first + fw.req.n:
            return fw
        fw = fw.next
    return NULL


cdef object forwarded_future(NodeState *s, uint64_t seq):
    """The future of this node's command `seq`, or None (settled already)."""
    cdef Forwarded *fw = forwarded_find(s, seq)
    if fw == NULL or fw.req.futures[seq - fw.first] == NULL:
        return None
    return <object>fw.req.futures[seq - fw.first]


cdef void forwarded_settle_error(NodeState *s, uint64_t seq, exc) noexcept:
    fut = forwarded_future(s, seq)
    if fut is not None:
        fail_future(s, fut, exc)


cdef void forwarded_settled(NodeState *s, uint64_t seq) noexcept:
    """Command `seq` was applied or skipped: drop its future (the apply
    resolved it, or it was settled before); free its request once all are."""
    cdef Forwarded *fw = forwarded_find(s, seq)
    if fw == NULL:
        return
    cdef PyObject *fut = fw.req.futures[seq - fw.first]
    if fut == NULL:
        return
    fw.req.futures[seq - fw.first] = NULL
    fw.settled += 1
    s.fwd.count -= 1
    Py_DECREF(<object>fut)
    if fw.settled == fw.req.n:
        forwarded_unlink(s, fw)
        fw.req.done = True
        if fw.req.buf.base != NULL:
            raft.raft_free(fw.req.buf.base)
            fw.req.buf.base = NULL
        req_free(fw.req)
        free(fw)


cdef void forward_restored(NodeState *s) noexcept with gil:
    """After a snapshot was installed: commands of ours the table says are
    done were applied where this node did not see it (their results are
    unknown here)."""
    cdef Forwarded *fw = s.fwd.head
    cdef Forwarded *next
    cdef unsigned i
    while fw != NULL:
        next = fw.next
        for i in range(fw.req.n):
            if fw.req.futures[i] != NULL and session_applied(&s.fwd.table, s.fwd.session,
                                                            fw.first + i):
                forwarded_settle_error(s, fw.first + i, raft_error(
                    raft.RAFT_LEADERSHIPLOST, WHY_SNAPSHOT_PAST))
                forwarded_settled(s, fw.first + i)
        fw = next


# -- sending (once per loop iteration, from on_prepare) ------------------------------------

cdef void forward_tick(NodeState *s) noexcept nogil:
    """From on_prepare: send what waits, retry, expire; then the reads."""
    if s.phase != PHASE_RUNNING or s.fatal:
        return
    # What done callbacks submitted since the drain (push_local) goes out
    # in this tick: on_prepare's own submit_local comes after it, and the
    # loop would then block with it unsent until some other wake-up.
    submit_local(s)
    if s.fwd.head != NULL:
        forward_expire(s)
        forward_flush(s)
    reads_tick(s)
    if s.fwd.wanted > s.fwd.nudged or s.fwd.nudging:
        leader_nudge(s)


cdef void leader_nudge(NodeState *s) noexcept nogil:
    """A follower resolves a forwarded command (or a read) only once it
    learns that its index committed, and libraft 0.22 tells followers the
    commit index only with the next entries or the next heartbeat (up to
    heartbeat_timeout later). When the index they wait for has committed
    and nothing else is on its way to carry the news, append an empty
    barrier: its AppendEntries carries the commit index at once."""
    cdef ForwardState *f = &s.fwd
    cdef raft.raft_index commit
    if raft.raft_state(&s.raft) != raft.RAFT_LEADER:
        f.wanted = f.nudged = 0
        return
    commit = raft.raft_commit_index(&s.raft)
    cdef unsigned long long now = uv.uv_hrtime()
    if commit != f.commit_seen:
        f.commit_seen = commit
        f.commit_at = now
    elif now - f.commit_at > <unsigned long long>s.raft.heartbeat_timeout * 2000000:
        f.nudged = f.wanted          # a heartbeat has told them since
        return
    if f.nudging or commit < f.wanted or raft.raft_last_index(&s.raft) != commit:
        return
    f.nudge_req.data = s
    if raft.raft_barrier(&s.raft, &f.nudge_req, on_nudged) == 0:
        f.nudging = True
        f.nudged = f.wanted
        f.nudge_below = commit
        f.nudge_index = raft.raft_last_index(&s.raft)


cdef void on_nudged(raft.raft_barrier_req *req, int status) noexcept nogil:
    (<NodeState *>req.data).fwd.nudging = False


cdef void forward_expire(NodeState *s) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef unsigned long long now = uv.uv_hrtime()
    cdef Forwarded *fw
    while f.head != NULL and f.head.deadline <= now:
        fw = f.head
        forwarded_unlink(s, fw)
        forwarded_fail(s, fw, raft.RAFT_LEADERSHIPLOST
                       if fw.accepted or fw.in_doubt or fw.unknown else raft.RAFT_NOTLEADER)


cdef void forward_flush(NodeState *s) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef raft.raft_id leader_id = 0
    cdef const char *address = NULL
    raft.raft_leader(&s.raft, &leader_id, &address)
    if leader_id == 0:
        return                       # wait for one, until the deadline
    if leader_id != f.target:
        f.target = leader_id         # a new leader: start again from the lowest
        forward_resync(s)
    elif f.unsent == NULL or uv.uv_hrtime() < f.retry_at:
        return                       # all sent; or it refused just now: a moment
    if leader_id == s.id:
        if raft.raft_state(&s.raft) == raft.RAFT_LEADER:
            forward_append_here(s)
        return
    if not cr_fl_can_send(f.link, leader_id):
        return
    while f.unsent != NULL:
        if forward_send_frame(s, leader_id, address) != 0:
            forward_resync(s)
            return


cdef void forward_resync(NodeState *s) noexcept nogil:
    """Send everything unsettled again, from the lowest seq, with RESYNC."""
    cdef ForwardState *f = &s.fwd
    cdef Forwarded *fw = f.head
    f.resync = True
    f.unsent = fw
    while fw != NULL:
        if fw.sent and fw.in_doubt:
            fw.unknown = True        # that send may still land
        fw.sent = False
        fw.in_doubt = False
        fw = fw.next


cdef int forward_send_frame(NodeState *s, raft.raft_id to, const char *address) noexcept nogil:
    """One APPLY frame from f.unsent on: consecutive seqs up to
    max_batch_bytes (one request at least). 0, or -1 if it was not sent."""
    cdef ForwardState *f = &s.fwd
    cdef Forwarded *start = f.unsent
    cdef Forwarded *end = start.next
    cdef size_t size = entry_commands_size(&start.req.buf)
    cdef uint32_t count = start.req.n
    while (end != NULL and end.first == start.first + count
           and size + entry_commands_size(&end.req.buf) <= s.max_batch_bytes
           and size + entry_commands_size(&end.req.buf) <= forward_limit(s)):
        size += entry_commands_size(&end.req.buf)
        count += end.req.n
        end = end.next
    cdef uint32_t flags = FWD_RESYNC if f.resync or start.first != f.sent_next else 0
    cdef uint64_t request = f.next_request
    f.next_request += 1
    cdef uint8_t fixed[FWD_APPLY_FIXED]
    fwd_put_apply(fixed, f.session, start.first, count, flags, request)
    cdef int rv
    cdef char *body
    cdef char *p
    cdef Forwarded *fw
    if end == start.next:            # one request: its commands as they are
        rv = cr_fl_send(f.link, to, address, FWD_APPLY, fixed, FWD_APPLY_FIXED,
                        <const char *>start.req.buf.base + ENTRY_HEADER, size)
    else:
        body = <char *>malloc(size)
        if body == NULL:
            return -1
        p = body
        fw = start
        while fw != end:
            p = entry_put_commands_of(p, &fw.req.buf)
            fw = fw.next
        rv = cr_fl_send(f.link, to, address, FWD_APPLY, fixed, FWD_APPLY_FIXED, body, size)
        free(body)
    if rv != 0:
        return -1
    f.resync = False
    f.sent_next = start.first + count
    fw = start
    while fw != end:
        if fw.request == 0:
            f.n_forwarded += fw.req.n
        else:
            f.n_resent += fw.req.n
        if fw.in_doubt:
            fw.unknown = True
        fw.sent = True
        fw.in_doubt = True
        fw.request = request
        fw = fw.next
    f.unsent = end
    return 0


cdef void forward_append_here(NodeState *s) noexcept nogil:
    """This node leads: append what waits itself, as session entries (the
    same dedup applies, so a command another leader took is not applied
    twice)."""
    cdef ForwardState *f = &s.fwd
    cdef Forwarded *fw
    while f.unsent != NULL:
        fw = f.unsent
        if forward_append(s, f.session, fw.first, fw.req.n,
                          <const char *>fw.req.buf.base + ENTRY_HEADER,
                          entry_commands_size(&fw.req.buf)) != 0:
            forward_resync(s)
            return
        if fw.in_doubt:
            fw.unknown = True
        fw.sent = True
        fw.accepted = True
        f.unsent = fw.next
    f.resync = False
    f.sent_next = f.next_seq


# -- the leader: appending what followers send ------------------------------------------

cdef int forward_append(NodeState *s, uint64_t session, uint64_t first, uint32_t count,
                        const char *commands, size_t size) noexcept nogil:
    """Append one session entry; 0 or libraft's error."""
    cdef FwdApply *a = <FwdApply *>calloc(1, sizeof(FwdApply))
    cdef raft.raft_buffer buf
    if a == NULL:
        return raft.RAFT_NOMEM
    cdef char *p = entry_begin_session(&buf, count, size, session, first)
    if p == NULL:
        free(a)
        return raft.RAFT_NOMEM
    memcpy(p, commands, size)
    a.node = s
    a.req.data = a
    cdef int rv = raft.raft_apply(&s.raft, &a.req, &buf, 1, on_forward_applied)
    if rv != 0:
        raft.raft_free(buf.base)
        free(a)
        return rv
    CR_COUNT_ADD(live_requests, 1)
    return 0


cdef void on_forward_applied(raft.raft_apply_req *req, int status, void *result) noexcept nogil:
    free(req.data)
    CR_COUNT_ADD(live_requests, -1)


cdef Expect *expect_find(ForwardState *f, uint64_t session, bint make) noexcept nogil:
    cdef unsigned i
    cdef Expect *oldest = &f.expect[0]
    for i in range(<unsigned>EXPECT_SLOTS):
        if f.expect[i].session == session:
            return &f.expect[i]
        if f.expect[i].used < oldest.used:
            oldest = &f.expect[i]
    if not make:
        return NULL
    memset(oldest, 0, sizeof(Expect))
    oldest.session = session
    return oldest


cdef void leader_apply_frame(NodeState *s, raft.raft_id frm, const uint8_t *b,
                             uint64_t len) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef uint64_t session = cr_get64(b), first = cr_get64(b + 8)
    cdef uint32_t count = cr_get32(b + 16), flags = cr_get32(b + 20)
    cdef uint64_t request = cr_get64(b + 24)
    cdef raft.raft_term term = raft.raft_current_term(&s.raft)
    cdef Expect *e
    cdef int rv
    if raft.raft_state(&s.raft) != raft.RAFT_LEADER or s.removed:
        send_apply_reply(s, frm, request, FWD_NOT_LEADER, 0, 0)
        return
    e = expect_find(f, session, False)
    if not flags & FWD_RESYNC and (e == NULL or e.term != term or e.next != first):
        send_apply_reply(s, frm, request, FWD_OUT_OF_ORDER, 0, 0)
        return
    rv = forward_append(s, session, first, count, <const char *>b + FWD_APPLY_FIXED,
                        len - FWD_APPLY_FIXED)
    if rv != 0:
        if e != NULL:
            e.term = 0                # nothing continues a refused frame
        send_apply_reply(s, frm, request,
                         FWD_NOT_LEADER if rv == raft.RAFT_NOTLEADER else FWD_ERROR, rv, 0)
        return
    if e == NULL:
        e = expect_find(f, session, True)
    f.expect_clock += 1
    e.used = f.expect_clock
    e.term = term
    e.next = first + count
    f.n_appended += count
    f.wanted = raft.raft_last_index(&s.raft)
    send_apply_reply(s, frm, request, FWD_DONE, 0, f.wanted)


cdef void send_apply_reply(NodeState *s, raft.raft_id to, uint64_t request, uint32_t status,
                           uint32_t code, raft.raft_index index) noexcept nogil:
    cdef uint8_t body[FWD_REPLY_SIZE]
    cdef raft.raft_id leader_id = 0
    cdef const char *address = NULL
    raft.raft_leader(&s.raft, &leader_id, &address)
    cr_put64(body, request)
    cr_put32(body + 8, status)
    cr_put32(body + 12, code)
    cr_put64(body + 16, index)
    cr_put64(body + 24, raft.raft_current_term(&s.raft))
    cr_put64(body + 32, leader_id)
    send_to(s, to, FWD_APPLY_REPLY, body, FWD_REPLY_SIZE)


cdef int send_to(NodeState *s, raft.raft_id to, int type, const uint8_t *body,
                 size_t len) noexcept nogil:
    """A small frame to member `to` (its address from the configuration)."""
    cdef unsigned i
    for i in range(s.raft.configuration.n):
        if s.raft.configuration.servers[i].id == to:
            return cr_fl_send(s.fwd.link, to, s.raft.configuration.servers[i].address,
                              type, body, len, NULL, 0)
    return -1


# -- the follower: answers ---------------------------------------------------------------

cdef void follower_apply_reply(NodeState *s, const uint8_t *b) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef uint64_t request = cr_get64(b)
    cdef uint32_t status = cr_get32(b + 8)
    cdef Forwarded *fw = f.head
    cdef bint matched = False
    while fw != NULL:
        if fw.request == request:
            matched = True
            fw.in_doubt = False
            if status == FWD_DONE:
                fw.accepted = True
        fw = fw.next
    if matched and status != FWD_DONE:
        forward_resync(s)            # sent again from the lowest at the next tick
        if status != FWD_OUT_OF_ORDER:
            f.retry_at = uv.uv_hrtime() + RETRY_NS


# -- frames in, links down (forward_link.h's callbacks) ----------------------------------

cdef int forward_on_frame(void *arg, uint64_t frm, int type, const uint8_t *body,
                          uint64_t len) noexcept nogil:
    cdef NodeState *s = <NodeState *>arg
    if s.phase != PHASE_RUNNING or s.fatal:
        return 0
    if not pt_id_allowed(s, frm):
        return 1                     # a member no longer: drop its stream
    if type == FWD_APPLY:
        leader_apply_frame(s, frm, body, len)
    elif type == FWD_APPLY_REPLY:
        follower_apply_reply(s, body)
    elif type == FWD_READ:
        leader_read_request(s, frm, cr_get64(body))
    elif type == FWD_READ_REPLY:
        follower_read_reply(s, body)
    elif type == FWD_PING:
        follower_ping(s, frm, body)
    elif type == FWD_PONG:
        leader_pong(s, frm, body)
    return 0


cdef void forward_on_down(void *arg, uint64_t to) noexcept nogil:
    cdef NodeState *s = <NodeState *>arg
    if s.phase != PHASE_RUNNING:
        return
    if to == s.fwd.target and s.fwd.head != NULL:
        forward_resync(s)
    reads_link_down(s, to)


# -- stats ------------------------------------------------------------------------------

cdef dict forward_stats(NodeState *s):
    """stats()["forwarding"]: counters (read without the lock: hints)."""
    cdef ForwardState *f = &s.fwd
    return {
        "pending": CR_LOAD(f.count),
        "forwarded": CR_LOAD(f.n_forwarded),
        "resent": CR_LOAD(f.n_resent),
        "appended": CR_LOAD(f.n_appended),
        "duplicates": CR_LOAD(f.n_duplicates),
        "refused": CR_LOAD(f.n_refused),
        "sessions": CR_LOAD(f.table.n),
        "read_rounds": CR_LOAD(f.n_rounds),
        "reads": CR_LOAD(f.n_reads),
    }


# -- the session table's part of a snapshot taken for persist() (fsm.pxi, io_guard.pxi) ----

cdef void forward_hold_section(NodeState *s, bytes section) noexcept:
    if s.fwd.section != NULL:
        Py_DecRef(s.fwd.section)
    Py_INCREF(section)
    s.fwd.section = <PyObject *>section


cdef bytes forward_take_section(NodeState *s):
    """The section forward_hold_section() kept (b"" if none), let go."""
    if s.fwd.section == NULL:
        return b""
    cdef bytes section = <bytes>s.fwd.section
    Py_DecRef(s.fwd.section)
    s.fwd.section = NULL
    return section
