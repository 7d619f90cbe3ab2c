# Declarations from <raft.h> and <raft/uv.h> (libraft >= 0.22, legacy v0 API):
# only what the binding uses (cimported qualified: `from .includes cimport
# raft`, then `raft.raft_apply(...)`; struct raft is `raft.raft`).

from .uv cimport uv_loop_t, uv_stream_t

cdef extern from "raft.h" nogil:
    enum:
        RAFT_VERSION_NUMBER

    enum:
        RAFT_NOMEM
        RAFT_BADID
        RAFT_DUPLICATEID
        RAFT_DUPLICATEADDRESS
        RAFT_BADROLE
        RAFT_MALFORMED
        RAFT_NOTLEADER
        RAFT_LEADERSHIPLOST
        RAFT_SHUTDOWN
        RAFT_CANTBOOTSTRAP
        RAFT_CANTCHANGE
        RAFT_CORRUPT
        RAFT_CANCELED
        RAFT_NAMETOOLONG
        RAFT_TOOBIG
        RAFT_NOCONNECTION
        RAFT_BUSY
        RAFT_IOERR
        RAFT_NOTFOUND
        RAFT_INVALID
        RAFT_UNAUTHORIZED
        RAFT_NOSPACE
        RAFT_TOOMANY

    enum:
        RAFT_STANDBY
        RAFT_VOTER
        RAFT_SPARE

    enum:
        RAFT_UNAVAILABLE
        RAFT_FOLLOWER
        RAFT_CANDIDATE
        RAFT_LEADER

    ctypedef unsigned long long raft_id
    ctypedef unsigned long long raft_term
    ctypedef unsigned long long raft_index

    const char *raft_strerror(int errnum)

    struct raft_buffer:
        void *base
        size_t len

    struct raft_server:
        raft_id id
        char *address
        int role

    struct raft_configuration:
        raft_server *servers
        unsigned n

    void raft_configuration_init(raft_configuration *c)
    void raft_configuration_close(raft_configuration *c)
    int raft_configuration_add(raft_configuration *c, raft_id id,
                               const char *address, int role)

    struct raft_fsm:
        int version
        void *data
        int (*apply)(raft_fsm *fsm, const raft_buffer *buf, void **result) noexcept
        int (*snapshot)(raft_fsm *fsm, raft_buffer **bufs, unsigned *n_bufs) noexcept
        int (*restore)(raft_fsm *fsm, raft_buffer *buf) noexcept

    enum:
        RAFT_APPEND_ENTRIES
        RAFT_INSTALL_SNAPSHOT

    struct raft_install_snapshot:
        raft_term term
        raft_index last_index
        raft_configuration conf
        raft_buffer data

    struct raft_append_entries:
        raft_term term
        raft_index leader_commit

    struct raft_message:
        int type
        raft_id server_id
        const char *server_address
        raft_append_entries append_entries
        raft_install_snapshot install_snapshot

    struct raft_snapshot:
        raft_buffer *bufs

    struct raft_io_snapshot_put
    ctypedef void (*raft_io_snapshot_put_cb)(raft_io_snapshot_put *req, int status) noexcept nogil
    struct raft_io_snapshot_put:
        void *data
        raft_io_snapshot_put_cb cb

    struct raft_io
    ctypedef void (*raft_io_tick_cb)(raft_io *io) noexcept nogil
    ctypedef void (*raft_io_recv_cb)(raft_io *io, raft_message *msg) noexcept nogil
    struct raft_io:
        unsigned short capacity     # KiB of log space prepared on disk
        void *data
        char errmsg[256]
        int (*start)(raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                     raft_io_recv_cb recv) noexcept nogil
        int (*snapshot_put)(raft_io *io, unsigned trailing, raft_io_snapshot_put *req,
                            const raft_snapshot *snapshot,
                            raft_io_snapshot_put_cb cb) noexcept nogil
        int (*set_term)(raft_io *io, raft_term term) noexcept nogil
        int (*set_vote)(raft_io *io, raft_id server_id) noexcept nogil

    # Only the fields the binding reads; C resolves them through raft.h's
    # anonymous unions.
    struct raft:
        void *data
        raft_tracer *tracer
        unsigned election_timeout
        unsigned heartbeat_timeout
        raft_configuration configuration
        raft_index configuration_committed_index
        raft_index configuration_uncommitted_index

    ctypedef void (*raft_close_cb)(raft *r) noexcept

    # C keeps struct tags apart from functions; Cython needs other names.
    struct raft_apply_req "raft_apply":
        void *data
        raft_index index
    ctypedef void (*raft_apply_cb)(raft_apply_req *req, int status, void *result) noexcept

    struct raft_barrier_req "raft_barrier":
        void *data
    ctypedef void (*raft_barrier_cb)(raft_barrier_req *req, int status) noexcept

    struct raft_change_req "raft_change":
        void *data
    ctypedef void (*raft_change_cb)(raft_change_req *req, int status) noexcept

    struct raft_transfer_req "raft_transfer":
        void *data
    ctypedef void (*raft_transfer_cb)(raft_transfer_req *req) noexcept

    int raft_add(raft *r, raft_change_req *req, raft_id id, const char *address,
                 raft_change_cb cb)
    int raft_assign(raft *r, raft_change_req *req, raft_id id, int role,
                    raft_change_cb cb)
    int raft_remove(raft *r, raft_change_req *req, raft_id id, raft_change_cb cb)
    int raft_transfer(raft *r, raft_transfer_req *req, raft_id id,
                      raft_transfer_cb cb)

    enum:
        RAFT_TRACER_DIAGNOSTIC

    struct raft_tracer:
        void *impl
        int version
        void (*emit)(raft_tracer *t, int type, const void *info) noexcept nogil

    int raft_init(raft *r, raft_io *io, raft_fsm *fsm, raft_id id,
                  const char *address)
    void raft_close(raft *r, raft_close_cb cb)
    void raft_seed(raft *r, unsigned random)
    int raft_bootstrap(raft *r, const raft_configuration *conf)
    int raft_recover(raft *r, const raft_configuration *conf)
    int raft_start(raft *r)

    int raft_apply(raft *r, raft_apply_req *req, const raft_buffer *bufs,
                   const unsigned n, raft_apply_cb cb)
    int raft_barrier(raft *r, raft_barrier_req *req, raft_barrier_cb cb)

    raft_term raft_current_term(const raft *r)
    raft_index raft_commit_index(const raft *r)
    raft_index raft_last_applied(raft *r)
    raft_index raft_last_index(raft *r)
    int raft_state(raft *r)
    void raft_leader(raft *r, raft_id *id, const char **address)
    const char *raft_errmsg(raft *r)

    void raft_set_election_timeout(raft *r, unsigned msecs)
    void raft_set_heartbeat_timeout(raft *r, unsigned msecs)
    void raft_set_install_snapshot_timeout(raft *r, unsigned msecs)
    void raft_set_pre_vote(raft *r, bint enabled)
    void raft_set_max_catch_up_rounds(raft *r, unsigned n)
    void raft_set_max_catch_up_round_duration(raft *r, unsigned msecs)
    void raft_set_max_inflight_entries(raft *r, unsigned n)
    void raft_set_snapshot_threshold(raft *r, unsigned n)
    void raft_set_snapshot_trailing(raft *r, unsigned n)
    void raft_set_capacity_threshold(raft *r, unsigned short min)

    void *raft_malloc(size_t size)
    void raft_free(void *ptr)


cdef extern from "raft/uv.h" nogil:
    struct raft_uv_transport
    struct raft_uv_connect

    ctypedef void (*raft_uv_accept_cb)(raft_uv_transport *t, raft_id id,
                                       const char *address,
                                       uv_stream_t *stream) noexcept nogil
    ctypedef void (*raft_uv_connect_cb)(raft_uv_connect *req,
                                        uv_stream_t *stream, int status) noexcept nogil
    ctypedef void (*raft_uv_transport_close_cb)(raft_uv_transport *t) noexcept nogil

    struct raft_uv_connect:
        void *data
        raft_uv_connect_cb cb

    struct raft_uv_transport:
        int version
        void *data
        void *impl
        char errmsg[256]
        int (*init)(raft_uv_transport *t, raft_id id, const char *address) noexcept nogil
        int (*listen)(raft_uv_transport *t, raft_uv_accept_cb cb) noexcept nogil
        int (*connect)(raft_uv_transport *t, raft_uv_connect *req, raft_id id,
                       const char *address, raft_uv_connect_cb cb) noexcept nogil
        void (*close)(raft_uv_transport *t, raft_uv_transport_close_cb cb) noexcept nogil

    int raft_uv_init(raft_io *io, uv_loop_t *loop, const char *dir,
                     raft_uv_transport *transport)
    void raft_uv_close(raft_io *io)
    void raft_uv_set_segment_size(raft_io *io, size_t size)
    void raft_uv_set_auto_recovery(raft_io *io, bint flag)
    void raft_uv_set_tracer(raft_io *io, raft_tracer *tracer)
    int raft_uv_tcp_init(raft_uv_transport *t, uv_loop_t *loop)
    void raft_uv_tcp_close(raft_uv_transport *t)


# The types of the raft_io methods the binding wraps (io_guard.pxi).
ctypedef int (*raft_io_start_fn)(raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                                 raft_io_recv_cb recv) noexcept nogil
ctypedef int (*raft_io_snapshot_put_fn)(raft_io *io, unsigned trailing,
                                        raft_io_snapshot_put *req,
                                        const raft_snapshot *snapshot,
                                        raft_io_snapshot_put_cb cb) noexcept nogil
ctypedef int (*raft_io_set_term_fn)(raft_io *io, raft_term term) noexcept nogil
ctypedef int (*raft_io_set_vote_fn)(raft_io *io, raft_id server_id) noexcept nogil
