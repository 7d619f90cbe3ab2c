# Declarations of the peer transport's C parts (peer_transport.h,
# tls_stream.h), before the data model that holds them.

cdef extern from "<openssl/ssl.h>" nogil:
    ctypedef struct SSL_CTX:
        pass
    void SSL_CTX_free(SSL_CTX *ctx)
    int SSL_CTX_up_ref(SSL_CTX *ctx)

cdef extern from "tls_stream.h" nogil:
    SSL_CTX *cr_tls_ctx_new(const char *certfile, const char *keyfile,
                            const char *cafile, char *errmsg, size_t errlen)
    int cr_tls_ctx_id(SSL_CTX *ctx, uint64_t *id)

cdef extern from "peer_transport.h" nogil:
    enum:
        CR_PT_REASONS
        CR_PT_BIND_MAX
    struct cr_pt_config:
        int tls
        char bind_address[CR_PT_BIND_MAX]
        int tcp_nodelay
        SSL_CTX *(*get_ctx)(void *arg) noexcept nogil
        uint64_t max_message_size
        uint32_t max_entries
        unsigned handshake_timeout_ms
        unsigned idle_timeout_ms
        unsigned max_pending
        unsigned max_inbound
        unsigned max_per_peer
        int (*id_allowed)(void *arg, uint64_t id) noexcept nogil
        void (*log)(void *arg, const char *reason, const char *peer,
                    const char *detail, unsigned long long suppressed) noexcept nogil
        void (*forward_accept)(void *arg, uint64_t id, const char *address,
                               uv.uv_stream_t *stream) noexcept nogil
        void *arg
        uint64_t *refused
        uint64_t protocol
    const char *cr_pt_reason_name(int reason)
    uint64_t cr_pt_count(const uint64_t *p)
    int cr_pt_init(raft.raft_uv_transport *t, uv.uv_loop_t *loop, const cr_pt_config *cfg)
    void cr_pt_free(raft.raft_uv_transport *t)
    long long cr_pt_live()
    unsigned cr_pt_inbound(raft.raft_uv_transport *t)
    void cr_pt_refuse_log_conflict(raft.raft_uv_transport *t, const char *peer)

cdef extern from "log_guard.h" nogil:
    int cr_conflicts_with_committed(const raft.raft *r, const raft.raft_message *m)
    void cr_discard_append_entries(raft.raft_message *m)
