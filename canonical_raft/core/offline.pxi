# bootstrap and recover: run before start(), on the caller's thread, with a
# throwaway uv loop (libraft needs an initialised io to write the log).

cdef enum OfflineOp:
    OP_BOOTSTRAP = 1
    OP_RECOVER = 2


cdef struct Offline:
    uv_loop_t loop
    raft_uv_transport transport
    raft_io io
    raft_fsm fsm
    raft raft


cdef int offline_fsm_apply(raft_fsm *fsm, const raft_buffer *buf, void **result) noexcept nogil:
    return RAFT_INVALID

cdef int offline_fsm_snapshot(raft_fsm *fsm, raft_buffer **bufs, unsigned *n) noexcept nogil:
    return RAFT_INVALID

cdef int offline_fsm_restore(raft_fsm *fsm, raft_buffer *buf) noexcept nogil:
    return RAFT_INVALID


cdef void offline_closed(raft *r) noexcept nogil:
    cdef Offline *o = <Offline *>r.data
    raft_uv_close(&o.io)
    raft_uv_tcp_close(&o.transport)


cdef int run_offline(int op, const char *data_dir, raft_id id, const char *address,
                     const raft_configuration *conf, char *errmsg) noexcept nogil:
    """Bootstrap or recover the log in data_dir; errmsg gets libraft's text."""
    cdef Offline *o = <Offline *>calloc(1, sizeof(Offline))
    if o == NULL:
        return RAFT_NOMEM
    cdef int rv = uv_loop_init(&o.loop)
    if rv != 0:
        cr_copy(errmsg, uv_strerror(rv), ERROR_MAX)
        free(o)
        return RAFT_IOERR
    o.transport.version = 1
    rv = raft_uv_tcp_init(&o.transport, &o.loop)
    if rv == 0:
        rv = raft_uv_init(&o.io, &o.loop, data_dir, &o.transport)
        if rv != 0:
            cr_copy(errmsg, o.io.errmsg, ERROR_MAX)
            raft_uv_tcp_close(&o.transport)
    if rv == 0:
        o.fsm.version = 1
        o.fsm.apply = offline_fsm_apply
        o.fsm.snapshot = offline_fsm_snapshot
        o.fsm.restore = offline_fsm_restore
        rv = raft_init(&o.raft, &o.io, &o.fsm, id, address)
        if rv != 0:
            cr_copy(errmsg, raft_errmsg(&o.raft), ERROR_MAX)
            raft_uv_close(&o.io)
            raft_uv_tcp_close(&o.transport)
        else:
            o.raft.data = o
            if op == OP_BOOTSTRAP:
                rv = raft_bootstrap(&o.raft, conf)
            else:
                rv = raft_recover(&o.raft, conf)
            if rv != 0:
                cr_copy(errmsg, raft_errmsg(&o.raft), ERROR_MAX)
            raft_close(&o.raft, offline_closed)
    uv_run(&o.loop, UV_RUN_DEFAULT)
    uv_loop_close(&o.loop)
    free(o)
    return rv
