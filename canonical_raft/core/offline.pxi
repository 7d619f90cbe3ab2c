# bootstrap and recover: run before start(), on the caller's thread, with a
# throwaway uv loop (libraft needs an initialised io to write the log).

cdef enum OfflineOp:
    OP_BOOTSTRAP = 1
    OP_RECOVER = 2


cdef struct Offline:
    uv.uv_loop_t loop
    raft.raft_uv_transport transport
    raft.raft_io io
    raft.raft_fsm fsm
    raft.raft raft


cdef int offline_fsm_apply(raft.raft_fsm *fsm, const raft.raft_buffer *buf, void **result) noexcept nogil:
    return raft.RAFT_INVALID

cdef int offline_fsm_snapshot(raft.raft_fsm *fsm, raft.raft_buffer **bufs, unsigned *n) noexcept nogil:
    return raft.RAFT_INVALID

cdef int offline_fsm_restore(raft.raft_fsm *fsm, raft.raft_buffer *buf) noexcept nogil:
    return raft.RAFT_INVALID


cdef void offline_closed(raft.raft *r) noexcept nogil:
    cdef Offline *o = <Offline *>r.data
    raft.raft_uv_close(&o.io)
    raft.raft_uv_tcp_close(&o.transport)


cdef int run_offline(int op, const char *data_dir, raft.raft_id id, const char *address,
                     const raft.raft_configuration *conf, bint auto_recovery,
                     char *errmsg) noexcept nogil:
    """Bootstrap or recover the log in data_dir; errmsg gets libraft's text."""
    cdef Offline *o = <Offline *>calloc(1, sizeof(Offline))
    if o == NULL:
        return raft.RAFT_NOMEM
    cdef int rv = uv.uv_loop_init(&o.loop)
    if rv != 0:
        cr_copy(errmsg, uv.uv_strerror(rv), ERROR_MAX)
        free(o)
        return raft.RAFT_IOERR
    o.transport.version = 1
    rv = raft.raft_uv_tcp_init(&o.transport, &o.loop)
    if rv == 0:
        rv = raft.raft_uv_init(&o.io, &o.loop, data_dir, &o.transport)
        if rv != 0:
            cr_copy(errmsg, o.io.errmsg, ERROR_MAX)
            raft.raft_uv_tcp_close(&o.transport)
        else:
            raft.raft_uv_set_auto_recovery(&o.io, auto_recovery)   # recover loads the log
    if rv == 0:
        o.fsm.version = 1
        o.fsm.apply = offline_fsm_apply
        o.fsm.snapshot = offline_fsm_snapshot
        o.fsm.restore = offline_fsm_restore
        rv = raft.raft_init(&o.raft, &o.io, &o.fsm, id, address)
        if rv != 0:
            cr_copy(errmsg, raft.raft_errmsg(&o.raft), ERROR_MAX)
            raft.raft_uv_close(&o.io)
            raft.raft_uv_tcp_close(&o.transport)
        else:
            o.raft.data = o
            if op == OP_BOOTSTRAP:
                rv = raft.raft_bootstrap(&o.raft, conf)
            else:
                rv = raft.raft_recover(&o.raft, conf)
            if rv != 0:
                cr_copy(errmsg, raft.raft_errmsg(&o.raft), ERROR_MAX)
            raft.raft_close(&o.raft, offline_closed)
    uv.uv_run(&o.loop, uv.UV_RUN_DEFAULT)
    uv.uv_loop_close(&o.loop)
    free(o)
    return rv
