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


# restore_backup: a backup's snapshot seeds an empty data dir (backup.h
# does it through libraft's uv backend), then the high-water mark records
# its index (mark.pxi).

cdef extern from "backup.h" nogil:
    int cr_seed_snapshot(const char *dir, raft.raft_id id, const char *address,
                         raft.raft_index index, raft.raft_term term,
                         const raft.raft_configuration *conf, raft.raft_index conf_index,
                         void *data, size_t len, char *errmsg, size_t errlen)


def seed_snapshot(data_dir, unsigned long long index, unsigned long long term,
                  unsigned long long conf_index, servers, bytes snapshot):
    """Write `snapshot` (a snapshot file's bytes, checked by the caller)
    at (index, term) with the configuration `servers` (raft.Server), into
    the empty data dir `data_dir`, and the term into its metadata."""
    cdef bytes path = os.fsencode(data_dir)
    cdef raft.raft_configuration conf
    cdef char errmsg[ERROR_MAX]
    cdef char mark[MARK_SIZE]
    cdef int rv = 0, err = 0
    cdef const char *dir = path
    cdef const char *address
    cdef raft.raft_id first_id
    cdef char *data = PyBytes_AS_STRING(snapshot)
    cdef size_t size = len(snapshot)
    raft.raft_configuration_init(&conf)
    try:
        for server in servers:
            rv = raft.raft_configuration_add(&conf, server.id, server.address.encode(),
                                             int(server.role))
            if rv != 0:
                raise ValueError(f"bad server {server!r}: {raft.raft_strerror(rv).decode()}")
        if conf.n == 0:
            raise ValueError("servers must not be empty")
        # libraft's io wants an id and address; the seeded files hold neither.
        first_id = conf.servers[0].id
        address = conf.servers[0].address
        with nogil:
            rv = cr_seed_snapshot(dir, first_id, address, index, term, &conf, conf_index,
                                  data, size, errmsg, ERROR_MAX)
            if rv == 0:
                mark_encode(mark, index)
                err = replace_file(dir, MARK_FILE, mark, MARK_SIZE)
    finally:
        raft.raft_configuration_close(&conf)
    if rv != 0:
        raise _errors.error_for(rv, f"{data_dir}: {errmsg.decode(errors='replace')}")
    if err != 0:
        raise OSError(err, f"cannot write {MARK_NAME} in {data_dir}: {os.strerror(err)}")
