# The data model of forwarding (forward.pxi), the session table
# (sessions.pxi) and read barriers (reads.pxi): what NodeState.fwd holds.
# All of it is the raft thread's alone, except the counters that stats()
# reads with atomic loads.

cdef extern from "forward_wire.h" nogil:
    enum:
        FWD_HEADER
        FWD_APPLY_FIXED
        FWD_RESYNC
        FWD_MAX_COMMANDS
        FWD_APPLY
        FWD_APPLY_REPLY
        FWD_READ
        FWD_READ_REPLY
        FWD_PING
        FWD_PONG
        FWD_DONE
        FWD_NOT_LEADER
        FWD_OUT_OF_ORDER
        FWD_ERROR
    void fwd_put_apply(uint8_t *p, uint64_t session, uint64_t first, uint32_t count,
                       uint32_t flags, uint64_t request)

cdef extern from "forward_link.h" nogil:
    struct cr_fl:
        pass
    struct cr_fl_config:
        uint64_t max_frame
        unsigned idle_timeout_ms
        int (*on_frame)(void *arg, uint64_t frm, int type, const uint8_t *body,
                        uint64_t len) noexcept nogil
        void (*on_down)(void *arg, uint64_t to) noexcept nogil
        void *arg
    cr_fl *cr_fl_new(uv.uv_loop_t *loop, raft.raft_uv_transport *transport,
                     const cr_fl_config *cfg)
    void cr_fl_accept(cr_fl *fl, uint64_t id, const char *address, uv.uv_stream_t *stream)
    int cr_fl_send(cr_fl *fl, uint64_t to, const char *address, int type,
                   const void *a, size_t alen, const void *b, size_t blen)
    int cr_fl_can_send(cr_fl *fl, uint64_t to)
    void cr_fl_close(cr_fl *fl)
    void cr_fl_free(cr_fl *fl)
    long long cr_fl_live()

cdef enum:
    EXPECT_SLOTS = 64          # remote sessions a leader tracks the order of
    ACK_MAX = 64               # voters a read round counts
    ROUNDS_MAX = 4             # a leader's read rounds under way at once
    ASKS_MAX = 4               # a follower's READs under way at once


cdef struct Session:           # one row of the replicated session table
    uint64_t id                # 0: a free slot
    uint64_t base              # every seq below is done
    uint64_t window            # bit i: seq base + i applied (bit 0 never set)
    uint64_t last              # log index of its last use


cdef struct Sessions:          # open addressing, linear probing
    Session *slots
    unsigned cap               # a power of 2, at least twice max
    unsigned n
    unsigned max               # max_sessions
    uint64_t expiry            # session_expiry (entries)
    uint64_t sweep_at          # no session expires before this index


cdef struct Forwarded:         # a follower's request in flight to the leader
    Forwarded *prev
    Forwarded *next            # in seq order
    Req *req                   # its futures, and its entry (header + commands)
    uint64_t first             # seq of its first command
    unsigned settled           # futures settled so far
    unsigned long long deadline    # uv_hrtime()
    uint64_t request           # the request id of its last send (0: none)
    bint sent                  # sent (or appended here) since the last resync
    bint accepted              # a leader said "appended"
    bint in_doubt              # its last send was neither answered nor refused
    bint unknown               # an earlier send was never answered


cdef struct Expect:            # the leader's order check for one remote session
    uint64_t session
    uint64_t next              # the seq its next frame must start at
    raft.raft_term term        # ... in this term only
    uint64_t used              # for replacement (the least recently used goes)


cdef struct RemoteRead:        # a follower's READ waiting for a round
    RemoteRead *next
    raft.raft_id frm
    uint64_t request


cdef struct Round:             # a leader's read round under way
    uint64_t no                # its PING's round number
    raft.raft_index commit     # the commit index when it started
    unsigned long long started     # uv_hrtime() of its (last) PING
    Req *reqs                  # this node's reads in it
    RemoteRead *remote         # followers' READs in it


cdef struct Ask:               # a follower's READ under way
    Req *reqs                  # the reads it asks for
    uint64_t request
    raft.raft_id target
    unsigned long long at


cdef struct FwdApply:          # a forwarded entry libraft is appending
    raft.raft_apply_req req
    NodeState *node


cdef struct ForwardState:
    bint enabled               # forward=True: a follower's apply() forwards
    cr_fl *link
    cr_fl_config link_config
    unsigned long long timeout_ns    # forward_timeout
    size_t max_frame           # max_message_size, less the frame headers

    # the follower side: this node's session and its requests in flight
    uint64_t session
    uint64_t next_seq
    uint64_t next_request
    Forwarded *head
    Forwarded *tail
    Forwarded *unsent          # the first one not sent since the last resync
    unsigned count
    bint resync                # the next frame says RESYNC
    uint64_t sent_next         # the seq the next continuation frame starts at
    raft.raft_id target        # the leader the frames went to
    unsigned long long retry_at    # uv_hrtime(): not before, after a refusal

    # the leader side
    Expect expect[EXPECT_SLOTS]
    uint64_t expect_clock
    raft.raft_index wanted     # followers wait to learn this index committed
    raft.raft_index nudged     # ... and were nudged up to this one
    bint nudging               # a nudge (raft_barrier) is under way
    raft.raft_index nudge_index    # the last nudge's entry
    raft.raft_index nudge_below    # the commit index it carried
    raft.raft_index commit_seen    # the commit index, and since when (uv_hrtime)
    unsigned long long commit_at
    raft.raft_barrier_req nudge_req

    # the replicated session table, and the part of it a snapshot took
    Sessions table
    PyObject *section          # bytes for persist() (a reference), or NULL

    # read barriers (reads.pxi)
    Req *reads                 # waiting for a round (leader) or a READ (follower)
    Req *reads_tail
    RemoteRead *remote         # followers' READs waiting for a round
    Round rounds[ROUNDS_MAX]   # the leader's rounds under way, a ring, oldest first
    unsigned rounds_first
    unsigned rounds_n
    uint64_t round_no          # the number of the last round started
    raft.raft_term round_term  # the term the rounds under way were started in
    unsigned voters_seen       # voters in voter_id (their latest answers)
    raft.raft_id voter_id[ACK_MAX]
    uint64_t voter_round[ACK_MAX]  # the latest round it answered in round_term
    raft.raft_term term_ready  # a barrier of this term has committed
    bint term_barrier          # that barrier is under way
    raft.raft_barrier_req term_barrier_req
    raft.raft_term term_barrier_term
    Ask asks[ASKS_MAX]         # follower: its READs under way
    unsigned asks_n
    unsigned long long read_retry_at   # not before, after a refusal
    Req *applying              # reads that know their index, waiting to apply it

    # counters (stats()["forwarding"])
    uint64_t n_forwarded       # commands sent to a leader (first sends)
    uint64_t n_resent          # ... sent again
    uint64_t n_duplicates      # commands the session table skipped
    uint64_t n_refused         # commands refused (session expired, window)
    uint64_t n_appended        # forwarded commands this node appended as leader
    uint64_t n_rounds          # read rounds completed
    uint64_t n_reads           # read barriers resolved
