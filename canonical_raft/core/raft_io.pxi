# The node's raft_io, by its storage setting: "uv" is libraft's own
# (raft_uv_init, segment files), "lmdb" the binding's own (core/raft_io.c
# over core/lmdb_store.c, its messages in core/codec_io.h's frames on the
# same peer transport). This file is the one place that tells them apart:
# io_init() and io_free() where thread.pxi creates and frees the io,
# io_configure() for the knobs only one of them has, the offline
# bootstrap/recover of an lmdb store, and the store's own checks and
# counts for storage.py, convert.py and the tests.

cdef extern from "firewall.h" nogil:
    unsigned long long FW_IO_PROTOCOL

cdef extern from "lmdb_store.h" nogil:
    enum:
        CR_STORE_ERRMSG
    struct cr_store:
        pass
    struct store_stat "cr_store_stat":
        raft.raft_term term
        raft.raft_id vote
        raft.raft_index first_index
        raft.raft_index last_index
        uint64_t n_entries
        raft.raft_index snapshot_index
        raft.raft_term snapshot_term
        uint64_t snapshot_size
        uint64_t file_size
        uint64_t used_bytes
    int cr_store_open(const char *dir, int create, cr_store **out, char *errmsg)
    void cr_store_close(cr_store *s)
    int cr_store_bootstrap(cr_store *s, const raft.raft_configuration *conf, char *errmsg)
    int cr_store_recover(cr_store *s, const raft.raft_configuration *conf, char *errmsg)
    int cr_store_stat(cr_store *s, store_stat *out, char *errmsg)

cdef extern from "raft_io.h" nogil:
    struct cr_io_config:
        const char *data_dir
        int create
        raft.raft_uv_transport *transport
        uint64_t max_message_size
        uint32_t max_entries
        unsigned idle_timeout_ms
        unsigned seed
        void (*refuse)(void *arg, const char *peer, const char *detail) noexcept nogil
        void (*log)(void *arg, int level, const char *message) noexcept nogil
        void *arg
    int cr_io_init(raft.raft_io *io, uv.uv_loop_t *loop, const cr_io_config *cfg)
    void cr_io_free(raft.raft_io *io)
    const char *cr_io_errmsg(raft.raft_io *io)
    long long cr_io_live()

cdef extern from "lmdb_convert.h" nogil:
    int cr_convert_uv_to_lmdb(const char *dir, char *errmsg)
    int cr_convert_lmdb_to_uv(const char *dir, char *errmsg)

cdef extern from "peer_transport.h" nogil:
    void cr_pt_refuse_io(raft.raft_uv_transport *t, const char *peer, const char *detail)


cdef int io_init(NodeState *s) noexcept with gil:
    """Create the node's io (after transport_init); 0 or libraft's code
    with s.io.errmsg set."""
    cdef cr_io_config cfg
    memset(&cfg, 0, sizeof(cfg))
    c = (<Core>s.core)._config
    try:
        s.own_io = c.storage == "lmdb"
        if s.own_io:
            cfg.max_message_size = c.max_message_size
            cfg.max_entries = max(1024, c.max_inflight_entries)   # as the firewall's
            cfg.idle_timeout_ms = ms(c.peer_idle_timeout)
    except BaseException as exc:
        cr_copy(s.io.errmsg, f"bad node settings: {exc!r}".encode(errors="replace"),
                sizeof(s.io.errmsg))
        return raft.RAFT_INVALID
    if not s.own_io:
        return raft.raft_uv_init(&s.io, &s.loop, s.data_dir, &s.transport)
    cfg.data_dir = s.data_dir
    cfg.create = 0               # storage.py creates a new store, under the lock
    cfg.transport = &s.transport
    cfg.seed = <unsigned>(uv.uv_hrtime() ^ (s.id * <unsigned long long>2654435761))
    cfg.refuse = io_refuse
    cfg.log = io_log
    cfg.arg = s
    cdef int rv = cr_io_init(&s.io, &s.loop, &cfg)
    if rv != 0:
        cr_copy(s.io.errmsg, "out of memory", sizeof(s.io.errmsg))
    return rv


cdef void io_free(NodeState *s) noexcept nogil:
    """Free the io once libraft closed it (or raft_init failed)."""
    if s.own_io:
        cr_io_free(&s.io)
    else:
        raft.raft_uv_close(&s.io)


cdef int io_configure(NodeState *s, c) except -1:
    """The knobs of one kind of io (thread.pxi's configure())."""
    if s.own_io:
        s.pt.protocol = FW_IO_PROTOCOL     # our frames, not libraft's
    else:
        s.pt.protocol = 0
        raft.raft_uv_set_segment_size(&s.io, <size_t>c.segment_size)
        raft.raft_uv_set_auto_recovery(&s.io, c.auto_recovery)
    return 0


cdef const char *io_failure(NodeState *s) noexcept nogil:
    """Why raft_init/raft_start failed, in full: libraft keeps 256 bytes of
    the io's message, which may cut the file's name."""
    cdef const char *msg
    if s.own_io:
        msg = cr_io_errmsg(&s.io)
        if msg != NULL and msg[0] != 0:
            return msg
    return raft.raft_errmsg(&s.raft)


cdef void io_refuse(void *arg, const char *peer, const char *detail) noexcept nogil:
    cr_pt_refuse_io(&(<NodeState *>arg).transport, peer, detail)


cdef void io_log(void *arg, int level, const char *message) noexcept nogil:
    cdef NodeState *s = <NodeState *>arg
    hold_gil(s)
    io_log_line(s, level, message)


cdef void io_log_line(NodeState *s, int level, const char *message) noexcept with gil:
    try:
        log.log(level, "node %d: %s", s.id, message.decode(errors="replace"))
    except BaseException:
        pass


def io_live():
    """The binding's own raft_io objects alive in this process (0 when idle)."""
    return cr_io_live()


# -- the store outside a running node --------------------------------------------


cdef int store_open(str data_dir, bint create, cr_store **out) except -1:
    cdef bytes path = os.fsencode(data_dir)
    cdef const char *c_path = path
    cdef char errmsg[CR_STORE_ERRMSG]
    cdef int rv
    errmsg[0] = 0
    with nogil:
        rv = cr_store_open(c_path, create, out, errmsg)
    if rv != 0:
        raise _errors.error_for(rv, errmsg.decode(errors="replace"))
    return 0


def lmdb_create(str data_dir):
    """Create an empty lmdb store in data_dir (storage.py, under the lock)."""
    cdef cr_store *st = NULL
    store_open(data_dir, True, &st)
    cr_store_close(st)


def lmdb_stat(str data_dir):
    """The lmdb store's counts: term, vote, first/last index, entries,
    snapshot index/term/size, file size and bytes in use."""
    cdef cr_store *st = NULL
    cdef store_stat out
    cdef char errmsg[CR_STORE_ERRMSG]
    cdef int rv
    store_open(data_dir, False, &st)
    with nogil:
        rv = cr_store_stat(st, &out, errmsg)
        cr_store_close(st)
    if rv != 0:
        raise _errors.error_for(rv, errmsg.decode(errors="replace"))
    return {"term": out.term, "vote": out.vote, "first_index": out.first_index,
            "last_index": out.last_index, "entries": out.n_entries,
            "snapshot_index": out.snapshot_index, "snapshot_term": out.snapshot_term,
            "snapshot_size": out.snapshot_size, "file_size": out.file_size,
            "used_bytes": out.used_bytes}


def convert_files(str data_dir, str to):
    """Write data_dir's state in the other storage kind beside the old files
    (convert.py: under the lock, then it commits the storage record)."""
    cdef bytes path = os.fsencode(data_dir)
    cdef const char *c_path = path
    cdef char errmsg[CR_STORE_ERRMSG]
    cdef bint to_lmdb = to == "lmdb"
    cdef int rv
    errmsg[0] = 0
    with nogil:
        if to_lmdb:
            rv = cr_convert_uv_to_lmdb(c_path, errmsg)
        else:
            rv = cr_convert_lmdb_to_uv(c_path, errmsg)
    if rv != 0:
        raise _errors.error_for(rv, errmsg.decode(errors="replace") or
                                raft.raft_strerror(rv).decode())


cdef int lmdb_offline(int op, const char *data_dir, const raft.raft_configuration *conf,
                      char *errmsg) noexcept nogil:
    """bootstrap() and recover() of an lmdb data dir: straight to the store."""
    cdef cr_store *st = NULL
    cdef char msg[CR_STORE_ERRMSG]
    msg[0] = 0
    cdef int rv = cr_store_open(data_dir, 0, &st, msg)
    if rv == 0:
        if op == OP_BOOTSTRAP:
            rv = cr_store_bootstrap(st, conf, msg)
        else:
            rv = cr_store_recover(st, conf, msg)
        cr_store_close(st)
    if rv != 0:
        cr_copy(errmsg, msg, ERROR_MAX)
    return rv
