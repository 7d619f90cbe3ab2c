# read_barrier(): linearizable reads without a log write each (the Raft
# thesis' ReadIndex, 6.4), concurrent calls sharing one round.
#
# On the leader, a round: note the commit index C, then ask every other
# voter, over the forwarding channel, for its current term (PING term,
# round); once a majority of voters (the leader included) answered with the
# leader's own term, the round is done and each of its reads waits until
# this node has applied C. Why that is enough: a voter answers with its term
# at the time it reads the PING, sent after the round began; a leader of a
# later term would need a majority that had moved to that term before, and
# the two majorities share a voter that would have answered with a later
# term. So at the start of the round this node was the only leader, and C
# covers every write acknowledged before (once an entry of this term has
# committed: the first round of a term waits for a raft_barrier of its own,
# one log write per term). Reads that arrive during a round wait for the
# next one; a round that gets no majority within an election timeout is
# asked again under a new number.
#
# On a follower: one READ to the leader at a time, answered with a round's
# C; the reads waiting meanwhile share the next one. Then wait until C is
# applied here. Reads not done within forward_timeout fail with
# NotLeaderError (no side effects); closing fails them with ShutdownError.

cdef inline void req_list_push(Req **head, Req **tail, Req *req) noexcept nogil:
    req.next = NULL
    if tail != NULL:
        if tail[0] != NULL:
            tail[0].next = req
        else:
            head[0] = req
        tail[0] = req
    else:
        req.next = head[0]
        head[0] = req


cdef inline unsigned long long read_deadline(NodeState *s) noexcept nogil:
    return uv.uv_hrtime() + s.fwd.timeout_ns


cdef void read_take(NodeState *s, Req *req) noexcept nogil:
    """A read barrier from the queue: wait for the next round or READ."""
    req.tag = read_deadline(s)          # a read's tag: its deadline
    req_list_push(&s.fwd.reads, &s.fwd.reads_tail, req)


cdef void reads_close(NodeState *s) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef RemoteRead *r
    fail_requests(s, f.reads, raft.RAFT_SHUTDOWN)
    fail_requests(s, f.round_reqs, raft.RAFT_SHUTDOWN)
    fail_requests(s, f.asked, raft.RAFT_SHUTDOWN)
    fail_requests(s, f.applying, raft.RAFT_SHUTDOWN)
    f.reads = f.reads_tail = f.round_reqs = f.asked = f.applying = NULL
    f.round_active = False
    while f.remote != NULL:
        r = f.remote
        f.remote = r.next
        free(r)
    while f.round_remote != NULL:
        r = f.round_remote
        f.round_remote = r.next
        free(r)


cdef void reads_tick(NodeState *s) noexcept nogil:
    """From forward_tick, once per loop iteration."""
    cdef ForwardState *f = &s.fwd
    if f.applying != NULL:
        reads_resolve_applied(s)
        submit_local(s)                 # the next reads their callbacks made: this tick's
    if f.reads == NULL and f.remote == NULL and not f.round_active and f.asked == NULL:
        return
    reads_expire(s)
    if raft.raft_state(&s.raft) == raft.RAFT_LEADER:
        if f.asked != NULL:             # it asked as a follower: now it leads
            reads_requeue(s, &f.asked)
        leader_reads(s)
    else:
        if f.round_active or f.remote != NULL:
            round_abort(s)
        follower_reads(s)
    if f.applying != NULL:
        reads_resolve_applied(s)


cdef void reads_requeue(NodeState *s, Req **list) noexcept nogil:
    """Put a list of reads back in front of the waiting ones."""
    cdef Req *req = list[0]
    cdef Req *last = req
    if req == NULL:
        return
    while last.next != NULL:
        last = last.next
    last.next = s.fwd.reads
    if s.fwd.reads == NULL:
        s.fwd.reads_tail = last
    s.fwd.reads = req
    list[0] = NULL


cdef void reads_expire(NodeState *s) noexcept nogil:
    """Fail the waiting reads past their deadline (NotLeaderError)."""
    cdef ForwardState *f = &s.fwd
    cdef unsigned long long now = uv.uv_hrtime()
    cdef Req *req = f.reads
    cdef Req *prev = NULL
    cdef Req *next
    while req != NULL:
        next = req.next
        if req.tag <= now:
            if prev != NULL:
                prev.next = next
            else:
                f.reads = next
            if f.reads_tail == req:
                f.reads_tail = prev
            req.next = NULL
            fail_requests(s, req, raft.RAFT_NOTLEADER)
        else:
            prev = req
        req = next


cdef void reads_resolve_applied(NodeState *s) noexcept nogil:
    """Resolve the reads whose index is applied here."""
    cdef ForwardState *f = &s.fwd
    cdef raft.raft_index applied = raft.raft_last_applied(&s.raft)
    cdef Req *req = f.applying
    cdef Req *prev = NULL
    cdef Req *next
    while req != NULL:
        next = req.next
        if req.index <= applied:
            if prev != NULL:
                prev.next = next
            else:
                f.applying = next
            req.next = NULL
            hold_gil(s)
            resolve_single(s, req, False)
            req_free(req)
            f.n_reads += 1
        else:
            prev = req
        req = next


cdef void reads_apply_at(NodeState *s, Req *reqs, raft.raft_index index) noexcept nogil:
    """These reads may return once `index` is applied here."""
    cdef Req *req = reqs
    cdef Req *next
    while req != NULL:
        next = req.next
        req.index = index
        req.next = s.fwd.applying
        s.fwd.applying = req
        req = next


# -- the leader's rounds --------------------------------------------------------------

cdef void leader_reads(NodeState *s) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef raft.raft_term term = raft.raft_current_term(&s.raft)
    cdef unsigned long long now = uv.uv_hrtime()
    if f.round_active:
        if f.round_term != term:
            round_abort(s)
        elif now - f.round_started > <unsigned long long>s.raft.election_timeout * 1000000:
            round_ping(s)               # no majority yet: ask again
        return
    if f.reads == NULL and f.remote == NULL:
        return
    if f.term_ready != term:
        if not f.term_barrier:          # one log write per term, then none
            f.term_barrier_req.data = s
            f.term_barrier_term = term
            if raft.raft_barrier(&s.raft, &f.term_barrier_req, on_term_barrier) == 0:
                f.term_barrier = True
        return
    # A new round for everything waiting.
    f.round_reqs = f.reads
    f.reads = f.reads_tail = NULL
    f.round_remote = f.remote
    f.remote = NULL
    f.round_active = True
    f.round_term = term
    f.round_commit = raft.raft_commit_index(&s.raft)
    round_ping(s)


cdef void on_term_barrier(raft.raft_barrier_req *req, int status) noexcept nogil:
    cdef NodeState *s = <NodeState *>req.data
    s.fwd.term_barrier = False
    if status == 0 and s.phase == PHASE_RUNNING:
        s.fwd.term_ready = s.fwd.term_barrier_term


cdef void round_ping(NodeState *s) noexcept nogil:
    """(Re)start the round under a new number: this node's own vote, then
    a PING to each other voter."""
    cdef ForwardState *f = &s.fwd
    cdef uint8_t body[FWD_PING_SIZE]
    cdef unsigned i
    f.round_no += 1
    f.round_started = uv.uv_hrtime()
    f.acks = 0
    if is_voter(s, s.id):
        f.acked[f.acks] = s.id
        f.acks += 1
    if round_has_majority(s):
        round_done(s)
        return
    fwd_put64(body, f.round_term)
    fwd_put64(body + 8, f.round_no)
    for i in range(s.raft.configuration.n):
        if (s.raft.configuration.servers[i].role == raft.RAFT_VOTER
                and s.raft.configuration.servers[i].id != s.id):
            cr_fl_send(f.link, s.raft.configuration.servers[i].id,
                       s.raft.configuration.servers[i].address, FWD_PING, body,
                       FWD_PING_SIZE, NULL, 0)


cdef bint is_voter(NodeState *s, raft.raft_id id) noexcept nogil:
    cdef unsigned i
    for i in range(s.raft.configuration.n):
        if s.raft.configuration.servers[i].id == id:
            return s.raft.configuration.servers[i].role == raft.RAFT_VOTER
    return False


cdef bint round_has_majority(NodeState *s) noexcept nogil:
    """Acks from a majority of the current configuration's voters."""
    cdef unsigned i, j, voters = 0, votes = 0
    for i in range(s.raft.configuration.n):
        if s.raft.configuration.servers[i].role != raft.RAFT_VOTER:
            continue
        voters += 1
        for j in range(s.fwd.acks):
            if s.fwd.acked[j] == s.raft.configuration.servers[i].id:
                votes += 1
                break
    return voters > 0 and votes * 2 > voters


cdef void leader_pong(NodeState *s, raft.raft_id frm, const uint8_t *b) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef unsigned j
    if (not f.round_active or fwd_get64(b + 8) != f.round_no
            or fwd_get64(b) != f.round_term or f.acks >= ACK_MAX):
        return
    for j in range(f.acks):
        if f.acked[j] == frm:
            return
    f.acked[f.acks] = frm
    f.acks += 1
    if round_has_majority(s):
        round_done(s)


cdef void round_done(NodeState *s) noexcept nogil:
    """Leadership confirmed after every read of the round arrived: each may
    return once round_commit is applied (the follower's, where it is)."""
    cdef ForwardState *f = &s.fwd
    cdef RemoteRead *r
    # A follower learns that an index committed only with the next entries
    # or heartbeat: forward.pxi nudges it, but a nudge is an empty barrier,
    # invisible to the FSM: a read need not wait for the last nudge itself.
    cdef raft.raft_index index = (f.nudge_below if f.round_commit == f.nudge_index
                                  else f.round_commit)
    f.round_active = False
    f.n_rounds += 1
    reads_apply_at(s, f.round_reqs, f.round_commit)
    f.round_reqs = NULL
    if f.round_remote != NULL and index > f.wanted:
        f.wanted = index
    while f.round_remote != NULL:
        r = f.round_remote
        f.round_remote = r.next
        send_read_reply(s, r.frm, r.request, FWD_DONE, index)
        free(r)


cdef void round_abort(NodeState *s) noexcept nogil:
    """Leadership lost (or never confirmed in this term): this node's reads
    go back to waiting (as a follower's now); the followers' are refused."""
    cdef ForwardState *f = &s.fwd
    cdef RemoteRead *r
    f.round_active = False
    reads_requeue(s, &f.round_reqs)
    while f.round_remote != NULL:
        r = f.round_remote
        f.round_remote = r.next
        send_read_reply(s, r.frm, r.request, FWD_NOT_LEADER, 0)
        free(r)
    while f.remote != NULL:
        r = f.remote
        f.remote = r.next
        send_read_reply(s, r.frm, r.request, FWD_NOT_LEADER, 0)
        free(r)


cdef void leader_read_request(NodeState *s, raft.raft_id frm, uint64_t request) noexcept nogil:
    cdef RemoteRead *r
    if raft.raft_state(&s.raft) != raft.RAFT_LEADER:
        send_read_reply(s, frm, request, FWD_NOT_LEADER, 0)
        return
    r = <RemoteRead *>calloc(1, sizeof(RemoteRead))
    if r == NULL:
        send_read_reply(s, frm, request, FWD_ERROR, 0)
        return
    r.frm = frm
    r.request = request
    r.next = s.fwd.remote
    s.fwd.remote = r


cdef void send_read_reply(NodeState *s, raft.raft_id to, uint64_t request, uint32_t status,
                          raft.raft_index index) noexcept nogil:
    cdef uint8_t body[FWD_READ_REPLY_SIZE]
    cdef raft.raft_id leader_id = 0
    cdef const char *address = NULL
    raft.raft_leader(&s.raft, &leader_id, &address)
    fwd_put64(body, request)
    fwd_put32(body + 8, status)
    fwd_put32(body + 12, 0)
    fwd_put64(body + 16, index)
    fwd_put64(body + 24, leader_id)
    send_to(s, to, FWD_READ_REPLY, body, FWD_READ_REPLY_SIZE)


# -- a follower's side --------------------------------------------------------------------

cdef void follower_ping(NodeState *s, raft.raft_id frm, const uint8_t *b) noexcept nogil:
    """Answer with this node's current term (the leader counts it only if
    it is its own)."""
    cdef uint8_t body[FWD_PING_SIZE]
    fwd_put64(body, raft.raft_current_term(&s.raft))
    fwd_put64(body + 8, fwd_get64(b + 8))
    send_to(s, frm, FWD_PONG, body, FWD_PING_SIZE)


cdef void follower_reads(NodeState *s) noexcept nogil:
    """Ask the leader for a read index, one READ at a time."""
    cdef ForwardState *f = &s.fwd
    cdef raft.raft_id leader_id = 0
    cdef const char *address = NULL
    cdef uint8_t body[8]
    raft.raft_leader(&s.raft, &leader_id, &address)
    if f.asked != NULL:
        if (leader_id == f.asked_target and uv.uv_hrtime() - f.asked_at <
                <unsigned long long>s.raft.election_timeout * 1000000):
            return
        reads_requeue(s, &f.asked)      # the leader changed, or no answer: ask again
    if f.reads == NULL or leader_id == 0 or leader_id == s.id:
        return
    if uv.uv_hrtime() < f.read_retry_at or not cr_fl_can_send(f.link, leader_id):
        return
    f.asked_request = f.next_request
    f.next_request += 1
    fwd_put64(body, f.asked_request)
    if cr_fl_send(f.link, leader_id, address, FWD_READ, body, 8, NULL, 0) != 0:
        return
    f.asked = f.reads
    f.reads = f.reads_tail = NULL
    f.asked_target = leader_id
    f.asked_at = uv.uv_hrtime()


cdef void follower_read_reply(NodeState *s, const uint8_t *b) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    if f.asked == NULL or fwd_get64(b) != f.asked_request:
        return
    if fwd_get32(b + 8) == FWD_DONE:
        reads_apply_at(s, f.asked, fwd_get64(b + 16))
        f.asked = NULL
    else:
        reads_requeue(s, &f.asked)      # asked again soon
        f.read_retry_at = uv.uv_hrtime() + RETRY_NS


cdef void reads_link_down(NodeState *s, raft.raft_id to) noexcept nogil:
    if s.fwd.asked != NULL and to == s.fwd.asked_target:
        reads_requeue(s, &s.fwd.asked)


# -- the caller's side (Core.read_barrier) ---------------------------------------------

cdef object read_barrier(Core core):
    core._check_usable()
    cdef NodeState *s = core.s
    if s.close_requested or s.m_phase >= PHASE_CLOSING:
        return core._failed_future(raft_error(
            raft.RAFT_SHUTDOWN, WHY_CLOSED if s.m_phase >= PHASE_CLOSED else WHY_CLOSING))
    if s.m_phase != PHASE_RUNNING:
        return core._failed_future(raft_error(raft.RAFT_NOTLEADER, WHY_NOT_STARTED))
    fut = core._new_future()
    cdef Req *req = single_req_new(s, REQ_READ, fut)
    if not push(s, req, req):
        fail_requests(s, req, raft.RAFT_SHUTDOWN)
    return fut
