# read_barrier(): linearizable reads without a log write each (the Raft
# thesis' ReadIndex, 6.4), concurrent calls sharing rounds.
#
# On the leader, a round: note the commit index C, then ask every other
# voter, over the forwarding channel, for its current term (PING term,
# round number); once a majority of voters (the leader included) answered
# with the leader's own term, the round is done and each of its reads waits
# until this node has applied C. Why that is enough: a voter answers with
# its term at the time it reads the PING, sent after the round began; a
# leader of a later term would need a majority that had moved to that term
# before, and the two majorities share a voter that would have answered
# with a later term. So at the start of the round this node was the only
# leader, and C covers every write acknowledged before (once an entry of
# this term has committed: the first round of a term waits for a
# raft_barrier of its own, one log write per term).
#
# Rounds overlap: reads that arrive while rounds are under way start the
# next one at once (up to ROUNDS_MAX under way), never joining one that
# started before them. Round numbers only grow, and a voter's answer to
# round k was sent after every round numbered k or less began, so it counts
# for all of them: the leader keeps each voter's latest answer, and a round
# is done once a majority answered it or a later one. A round with no
# majority within an election timeout is asked again under a new number.
#
# On a follower: a READ to the leader for the reads waiting, answered with
# a round's C (up to ASKS_MAX READs under way: reads that arrive meanwhile
# send the next one); then wait until C is applied here. Reads not done
# within forward_timeout fail with NotLeaderError (no side effects);
# closing fails them with ShutdownError.

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


cdef inline unsigned long long election_ns(NodeState *s) noexcept nogil:
    return <unsigned long long>s.raft.election_timeout * 1000000


cdef void read_take(NodeState *s, Req *req) noexcept nogil:
    """A read barrier from the queue: wait for the next round or READ."""
    req.tag = read_deadline(s)          # a read's tag: its deadline
    req_list_push(&s.fwd.reads, &s.fwd.reads_tail, req)


cdef void remote_free(RemoteRead **list) noexcept nogil:
    cdef RemoteRead *r
    while list[0] != NULL:
        r = list[0]
        list[0] = r.next
        free(r)


cdef void reads_close(NodeState *s) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef Round *r
    cdef unsigned i
    fail_requests(s, f.reads, raft.RAFT_SHUTDOWN)
    fail_requests(s, f.applying, raft.RAFT_SHUTDOWN)
    f.reads = f.reads_tail = f.applying = NULL
    while f.rounds_n > 0:
        r = round_at(f, 0)
        fail_requests(s, r.reqs, raft.RAFT_SHUTDOWN)
        r.reqs = NULL
        remote_free(&r.remote)
        rounds_pop(f)
    for i in range(f.asks_n):
        fail_requests(s, f.asks[i].reqs, raft.RAFT_SHUTDOWN)
        f.asks[i].reqs = NULL
    f.asks_n = 0
    remote_free(&f.remote)


cdef void reads_tick(NodeState *s) noexcept nogil:
    """From forward_tick, once per loop iteration."""
    cdef ForwardState *f = &s.fwd
    if f.applying != NULL:
        reads_resolve_applied(s)
        submit_local(s)                 # the next reads their callbacks made: this tick's
    if f.reads == NULL and f.remote == NULL and f.rounds_n == 0 and f.asks_n == 0:
        return
    reads_expire(s)
    if raft.raft_state(&s.raft) == raft.RAFT_LEADER:
        while f.asks_n > 0:             # it asked as a follower: now it leads
            ask_drop(s, 0)
        leader_reads(s)
    else:
        if f.rounds_n > 0 or f.remote != NULL:
            rounds_abort(s)
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

cdef inline Round *round_at(ForwardState *f, unsigned i) noexcept nogil:
    """The i-th oldest round under way."""
    return &f.rounds[(f.rounds_first + i) % ROUNDS_MAX]


cdef inline void rounds_pop(ForwardState *f) noexcept nogil:
    """The oldest round is over (its reads and READs handed on)."""
    f.rounds_first = (f.rounds_first + 1) % ROUNDS_MAX
    f.rounds_n -= 1


cdef void leader_reads(NodeState *s) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef raft.raft_term term = raft.raft_current_term(&s.raft)
    cdef Round *newest
    if f.rounds_n > 0:
        if f.round_term != term:
            rounds_abort(s)
        else:
            newest = round_at(f, f.rounds_n - 1)
            if uv.uv_hrtime() - newest.started > election_ns(s):
                round_ping(s, newest)   # no majority for any yet: ask again
    if (f.reads == NULL and f.remote == NULL) or f.rounds_n == ROUNDS_MAX:
        return
    if f.term_ready != term:
        if not f.term_barrier:          # one log write per term, then none
            f.term_barrier_req.data = s
            f.term_barrier_term = term
            if raft.raft_barrier(&s.raft, &f.term_barrier_req, on_term_barrier) == 0:
                f.term_barrier = True
        return
    # A new round for everything waiting, whatever is under way.
    if f.rounds_n == 0 and f.round_term != term:
        f.round_term = term
        f.voters_seen = 0               # answers of another term count for nothing
    cdef Round *r = round_at(f, f.rounds_n)
    f.rounds_n += 1
    r.reqs = f.reads
    f.reads = f.reads_tail = NULL
    r.remote = f.remote
    f.remote = NULL
    r.commit = raft.raft_commit_index(&s.raft)
    round_ping(s, r)


cdef void on_term_barrier(raft.raft_barrier_req *req, int status) noexcept nogil:
    cdef NodeState *s = <NodeState *>req.data
    s.fwd.term_barrier = False
    if status == 0 and s.phase == PHASE_RUNNING:
        s.fwd.term_ready = s.fwd.term_barrier_term


cdef void round_ping(NodeState *s, Round *r) noexcept nogil:
    """(Re)start round `r`, the newest, under a new number: a PING to each
    other voter (this node's own answer is every round it started)."""
    cdef ForwardState *f = &s.fwd
    cdef uint8_t body[FWD_PING_SIZE]
    cdef unsigned i
    f.round_no += 1
    r.no = f.round_no
    r.started = uv.uv_hrtime()
    if rounds_confirm(s):
        return                          # this node's vote is a majority
    cr_put64(body, f.round_term)
    cr_put64(body + 8, r.no)
    for i in range(s.raft.configuration.n):
        if (s.raft.configuration.servers[i].role == raft.RAFT_VOTER
                and s.raft.configuration.servers[i].id != s.id):
            cr_fl_send(f.link, s.raft.configuration.servers[i].id,
                       s.raft.configuration.servers[i].address, FWD_PING, body,
                       FWD_PING_SIZE, NULL, 0)


cdef uint64_t voter_answered(NodeState *s, raft.raft_id id) noexcept nogil:
    """The latest round voter `id` answered in round_term (every round, for
    this node itself; 0: none)."""
    cdef unsigned j
    if id == s.id:
        return s.fwd.round_no
    for j in range(s.fwd.voters_seen):
        if s.fwd.voter_id[j] == id:
            return s.fwd.voter_round[j]
    return 0


cdef uint64_t rounds_confirmed(NodeState *s) noexcept nogil:
    """The latest round a majority of the configuration's voters answered
    (it or a later one): every round up to it is done. 0: none."""
    cdef unsigned i, j, voters = 0, votes
    cdef uint64_t k, best = 0
    cdef raft.raft_configuration *c = &s.raft.configuration
    for i in range(c.n):
        if c.servers[i].role == raft.RAFT_VOTER:
            voters += 1
    for i in range(c.n):                # the largest k that a majority reached
        if c.servers[i].role != raft.RAFT_VOTER:
            continue
        k = voter_answered(s, c.servers[i].id)
        if k <= best:
            continue
        votes = 0
        for j in range(c.n):
            if c.servers[j].role == raft.RAFT_VOTER and voter_answered(s, c.servers[j].id) >= k:
                votes += 1
        if votes * 2 > voters:
            best = k
    return best


cdef bint rounds_confirm(NodeState *s) noexcept nogil:
    """End, oldest first, the rounds a majority answered; True if any."""
    cdef ForwardState *f = &s.fwd
    cdef uint64_t confirmed = rounds_confirmed(s)
    cdef bint any = False
    while f.rounds_n > 0 and round_at(f, 0).no <= confirmed:
        round_done(s, round_at(f, 0))
        rounds_pop(f)
        any = True
    return any


cdef void leader_pong(NodeState *s, raft.raft_id frm, const uint8_t *b) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef uint64_t no = cr_get64(b + 8)
    cdef unsigned j
    if f.rounds_n == 0 or cr_get64(b) != f.round_term or no > f.round_no or frm == s.id:
        return
    for j in range(f.voters_seen):
        if f.voter_id[j] == frm:
            break
    else:
        if f.voters_seen == ACK_MAX:
            return
        j = f.voters_seen
        f.voters_seen += 1
        f.voter_id[j] = frm
        f.voter_round[j] = 0
    if no > f.voter_round[j]:
        f.voter_round[j] = no
        rounds_confirm(s)


cdef void round_done(NodeState *s, Round *r) noexcept nogil:
    """Leadership confirmed after every read of the round arrived: each may
    return once r.commit is applied (the follower's, where it is)."""
    cdef ForwardState *f = &s.fwd
    cdef RemoteRead *rr
    # A follower learns that an index committed only with the next entries
    # or heartbeat: forward.pxi nudges it, but a nudge is an empty barrier,
    # invisible to the FSM: a read need not wait for the last nudge itself.
    cdef raft.raft_index index = (f.nudge_below if r.commit == f.nudge_index
                                  else r.commit)
    f.n_rounds += 1
    reads_apply_at(s, r.reqs, r.commit)
    r.reqs = NULL
    if r.remote != NULL and index > f.wanted:
        f.wanted = index
    while r.remote != NULL:
        rr = r.remote
        r.remote = rr.next
        send_read_reply(s, rr.frm, rr.request, FWD_DONE, index)
        free(rr)


cdef void refuse_remote(NodeState *s, RemoteRead **list) noexcept nogil:
    cdef RemoteRead *r
    while list[0] != NULL:
        r = list[0]
        list[0] = r.next
        send_read_reply(s, r.frm, r.request, FWD_NOT_LEADER, 0)
        free(r)


cdef void rounds_abort(NodeState *s) noexcept nogil:
    """Leadership lost (or never confirmed in this term): this node's reads
    go back to waiting (as a follower's now); the followers' are refused."""
    cdef ForwardState *f = &s.fwd
    cdef Round *r
    while f.rounds_n > 0:
        r = round_at(f, f.rounds_n - 1)     # newest first: the oldest end up in front
        reads_requeue(s, &r.reqs)
        refuse_remote(s, &r.remote)
        f.rounds_n -= 1
    refuse_remote(s, &f.remote)


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
    cr_put64(body, request)
    cr_put32(body + 8, status)
    cr_put32(body + 12, 0)
    cr_put64(body + 16, index)
    cr_put64(body + 24, leader_id)
    send_to(s, to, FWD_READ_REPLY, body, FWD_READ_REPLY_SIZE)


# -- a follower's side --------------------------------------------------------------------

cdef void follower_ping(NodeState *s, raft.raft_id frm, const uint8_t *b) noexcept nogil:
    """Answer with this node's current term (the leader counts it only if
    it is its own)."""
    cdef uint8_t body[FWD_PING_SIZE]
    cr_put64(body, raft.raft_current_term(&s.raft))
    cr_put64(body + 8, cr_get64(b + 8))
    send_to(s, frm, FWD_PONG, body, FWD_PING_SIZE)


cdef void ask_drop(NodeState *s, unsigned i) noexcept nogil:
    """READ i is over without an index: its reads wait again."""
    cdef ForwardState *f = &s.fwd
    reads_requeue(s, &f.asks[i].reqs)
    f.asks_n -= 1
    f.asks[i] = f.asks[f.asks_n]


cdef void follower_reads(NodeState *s) noexcept nogil:
    """Ask the leader for a read index for the reads waiting."""
    cdef ForwardState *f = &s.fwd
    cdef raft.raft_id leader_id = 0
    cdef const char *address = NULL
    cdef unsigned long long now = uv.uv_hrtime()
    cdef uint8_t body[8]
    cdef unsigned i = 0
    raft.raft_leader(&s.raft, &leader_id, &address)
    while i < f.asks_n:                 # the leader changed, or no answer: ask again
        if f.asks[i].target != leader_id or now - f.asks[i].at >= election_ns(s):
            ask_drop(s, i)
        else:
            i += 1
    if f.reads == NULL or leader_id == 0 or leader_id == s.id or f.asks_n == ASKS_MAX:
        return
    if now < f.read_retry_at or not cr_fl_can_send(f.link, leader_id):
        return
    cdef uint64_t request = f.next_request
    f.next_request += 1
    cr_put64(body, request)
    if cr_fl_send(f.link, leader_id, address, FWD_READ, body, 8, NULL, 0) != 0:
        return
    cdef Ask *a = &f.asks[f.asks_n]
    f.asks_n += 1
    a.reqs = f.reads
    f.reads = f.reads_tail = NULL
    a.request = request
    a.target = leader_id
    a.at = now


cdef void follower_read_reply(NodeState *s, const uint8_t *b) noexcept nogil:
    cdef ForwardState *f = &s.fwd
    cdef uint64_t request = cr_get64(b)
    cdef unsigned i
    for i in range(f.asks_n):
        if f.asks[i].request == request:
            break
    else:
        return
    if cr_get32(b + 8) == FWD_DONE:
        reads_apply_at(s, f.asks[i].reqs, cr_get64(b + 16))
        f.asks[i].reqs = NULL
        ask_drop(s, i)
    else:
        ask_drop(s, i)                  # asked again soon
        f.read_retry_at = uv.uv_hrtime() + RETRY_NS


cdef void reads_link_down(NodeState *s, raft.raft_id to) noexcept nogil:
    cdef unsigned i = 0
    while i < s.fwd.asks_n:
        if s.fwd.asks[i].target == to:
            ask_drop(s, i)
        else:
            i += 1


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
