# On-demand snapshots (node.snapshot()) and backups (node.backup(path)),
# and the backup file's format: the one place that writes or reads it.
#
# snapshot(): libraft 0.22 has no "snapshot now" call, but it asks itself
# "should I take one?" after every event it handles (legacy.c, a tick every
# heartbeat included): commit_index - last snapshot >= the threshold. So a
# request lowers the threshold to 1 until a snapshot that covers the entries
# applied when the request came is written (on_prepare: snapshot_tick), on a
# leader or a follower alike; then the setting comes back. A failed attempt
# (FSM.snapshot() or persist() raised: fsm.pxi and io_guard.pxi move
# snapshot_retry_at) fails the requests waiting.
#
# backup(path): a request handled on the raft thread between applies, where
# the FSM holds exactly the entries up to last_applied: FSM.snapshot() there
# (the cheap copy), with the session table, that index, its term and the
# committed configuration; then persist(), the framing and the file on
# libuv's pool (tmp, fsync, rename, fsync(dir)), off the raft thread. Any
# node, leader or follower.
#
# The backup file (little-endian):
#
#   header (48 bytes): magic "CRBK" u32 | version u16 (1) | flags u16 (0) |
#                      index u64 | term u64 | configuration index u64 |
#                      configuration length u32 | server count u32 |
#                      snapshot length u64
#   configuration:     per server: id u64 | role u32 | address length u32 |
#                      address (UTF-8) | zero padding to 8
#   snapshot:          a snapshot file of entry.pxi's format (its own
#                      header, CRC and inflated length; the session table)
#   trailer (8 bytes): CRC-32 u32 (zlib's, of every byte before it) |
#                      magic "CRBE" u32
#
# Every length is checked against the file's size before anything is read
# past the header; a file that does not check is refused with CorruptError
# naming it, before any of it reaches a data dir or an FSM.

import struct as _struct
import tempfile as _tempfile

cdef extern from "backup.h" nogil:
    const raft.raft_configuration *cr_committed_configuration(const raft.raft *r)
    raft.raft_term cr_applied_term(const raft.raft *r, raft.raft_index index)

BACKUP_MAGIC = 0x4B425243       # b"CRBK"
BACKUP_END = 0x45425243         # b"CRBE"
BACKUP_VERSION = 1
_BACKUP_HEADER = _struct.Struct("<IHHQQQIIQ")
_BACKUP_SERVER = _struct.Struct("<QII")
_BACKUP_TRAILER = _struct.Struct("<II")


# -- the format ---------------------------------------------------------------

cdef bytes backup_head(uint64_t index, uint64_t term, uint64_t conf_index, list servers,
                       size_t snapshot_length):
    """The header and configuration of a backup of `snapshot_length`
    snapshot bytes; servers: (id, address, role) tuples."""
    parts = []
    for id, address, role in servers:
        encoded = address.encode()
        parts.append(_BACKUP_SERVER.pack(id, role, len(encoded)))
        parts.append(encoded + bytes(pad8(len(encoded)) - len(encoded)))
    conf = b"".join(parts)
    return _BACKUP_HEADER.pack(BACKUP_MAGIC, BACKUP_VERSION, 0, index, term, conf_index,
                               len(conf), len(servers), snapshot_length) + conf


def _backup_corrupt(path, what):
    return _errors.CorruptError(f"backup {path}: {what}; it cannot be restored (take "
                                "another backup, or use an older copy)", raft.RAFT_CORRUPT)


def read_backup(path):
    """A backup file's (index, term, configuration index, servers as
    (id, address, role), snapshot bytes), each length and checksum checked;
    CorruptError naming the file if it is not a whole, sound backup."""
    with open(path, "rb") as f:
        data = f.read()
    view = memoryview(data)
    size = len(data)
    need = _BACKUP_HEADER.size + _BACKUP_TRAILER.size
    if size < 4 or _struct.unpack_from("<I", data)[0] != BACKUP_MAGIC:
        raise _backup_corrupt(path, "not a canonical_raft backup")
    if size < need:
        raise _backup_corrupt(path, f"truncated: {size} bytes, shorter than a backup's "
                              f"header and trailer ({need})")
    (_, version, _, index, term, conf_index, conf_length, count,
     snapshot_length) = _BACKUP_HEADER.unpack_from(data)
    if version != BACKUP_VERSION:
        raise _backup_corrupt(path, f"format version {version}, this release reads "
                              f"version {BACKUP_VERSION}")
    declared = need + conf_length + snapshot_length
    if size < declared:
        raise _backup_corrupt(path, f"truncated: {size} bytes, its header declares {declared}")
    if size > declared:
        raise _backup_corrupt(path, f"{size} bytes, its header declares {declared}: "
                              "bytes past its end")
    crc, end = _BACKUP_TRAILER.unpack_from(data, size - _BACKUP_TRAILER.size)
    if end != BACKUP_END or <uint32_t>zlib.crc32(view[:size - _BACKUP_TRAILER.size]) != crc:
        raise _backup_corrupt(path, "checksum mismatch: the file is damaged")
    servers = []
    off = _BACKUP_HEADER.size
    conf_end = off + conf_length
    for _ in range(count):
        if conf_end - off < _BACKUP_SERVER.size:
            raise _backup_corrupt(path, "its configuration is shorter than its server count")
        id, role, length = _BACKUP_SERVER.unpack_from(data, off)
        off += _BACKUP_SERVER.size
        if length > conf_end - off:
            raise _backup_corrupt(path, "a server address runs past its configuration")
        servers.append((id, bytes(view[off:off + length]).decode(errors="replace"), role))
        off += pad8(length)
    if off != conf_end or index == 0 or term == 0 or not servers:
        raise _backup_corrupt(path, "its header or configuration does not parse")
    snapshot = view[conf_end:conf_end + snapshot_length]
    problem = snapshot_problem(snapshot)        # entry.pxi
    if problem is not None:
        raise _backup_corrupt(path, f"its snapshot does not check ({problem})")
    return index, term, conf_index, servers, bytes(snapshot)


def _write_backup(path, bytes head, snapshot):
    """Write head, snapshot (a buffer) and the trailer to `path`, durably:
    a temporary file beside it, fsync, rename, fsync of the directory."""
    crc = zlib.crc32(snapshot, zlib.crc32(head))
    path = os.path.abspath(os.fsdecode(path))
    # A name of its own (0600): two backups to one path do not mix.
    fd, tmp = _tempfile.mkstemp(dir=os.path.dirname(path),
                                prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with open(fd, "wb", closefd=True) as f:
            f.write(head)
            f.write(snapshot)
            f.write(_BACKUP_TRAILER.pack(crc, BACKUP_END))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# -- the caller's side ----------------------------------------------------------

cdef object backup_request(Core core, int kind, bytes path):
    """A future for snapshot() (kind REQ_SNAPSHOT) or backup(path): on any
    running node; ShutdownError at once if it is not running."""
    core._check_usable()
    cdef NodeState *s = core.s
    fut = core._new_future()
    if s.close_requested or s.m_phase >= PHASE_CLOSING or s.m_phase == PHASE_NEW:
        fut.set_exception(raft_error(raft.RAFT_SHUTDOWN, WHY_NOT_STARTED if
                                     s.m_phase == PHASE_NEW else WHY_CLOSING))
        return fut
    cdef Req *req = single_req_new(s, kind, fut)
    if path is not None:
        req.path = <char *>calloc(len(path) + 1, 1)
        if req.path == NULL:
            fail_requests(s, req, raft.RAFT_NOMEM)
            raise MemoryError()
        memcpy(req.path, <char *>path, len(path))
    if not push(s, req, req):
        fail_requests(s, req, raft.RAFT_SHUTDOWN)
    return fut


cdef void backup_submit(NodeState *s, Req *req) noexcept nogil:
    """From the queue's drain (between applies, on the raft thread)."""
    if req.kind == REQ_SNAPSHOT:
        snapshot_submit(s, req)
    else:
        hold_gil(s)
        backup_start(s, req)


# -- snapshot() -----------------------------------------------------------------

cdef void snapshot_submit(NodeState *s, Req *req) noexcept nogil:
    cdef raft.raft_index applied = raft.raft_last_applied(&s.raft)
    if cr_snapshot_index(&s.raft) >= applied:
        hold_gil(s)               # nothing applied since the last one: that one
        resolve_index(s, req, cr_snapshot_index(&s.raft))
        return
    req.index = applied
    if s.snapshot_waiting == NULL:
        s.snapshot_failed_seen = s.snapshot_retry_at
    req.next = s.snapshot_waiting
    s.snapshot_waiting = req
    raft.raft_set_snapshot_threshold(&s.raft, 1)      # at libraft's next event


cdef void snapshot_tick(NodeState *s) noexcept nogil:
    """From on_prepare: resolve the requests a written snapshot covers,
    fail them all if an attempt failed, keep the threshold lowered while
    any waits."""
    if s.snapshot_waiting == NULL or s.phase != PHASE_RUNNING:
        return
    cdef raft.raft_index index = cr_snapshot_index(&s.raft)
    cdef bint failed = s.snapshot_retry_at != s.snapshot_failed_seen
    s.snapshot_failed_seen = s.snapshot_retry_at
    cdef Req *req = s.snapshot_waiting
    cdef Req *next
    cdef Req *keep = NULL
    s.snapshot_waiting = NULL
    while req != NULL:
        next = req.next
        req.next = NULL
        if req.index <= index:
            hold_gil(s)
            resolve_index(s, req, index)
        elif failed:
            hold_gil(s)
            fail_snapshot(s, req)
        else:
            req.next = keep
            keep = req
        req = next
    s.snapshot_waiting = keep
    if keep != NULL:
        raft.raft_set_snapshot_threshold(&s.raft, 1)  # fsm.pxi's reset may have restored it
    elif not s.snapshot_hurried:
        raft.raft_set_snapshot_threshold(&s.raft, s.snapshot_threshold)


cdef void snapshot_drop(NodeState *s) noexcept nogil:
    """Closing: the requests still waiting fail with ShutdownError."""
    cdef Req *req = s.snapshot_waiting
    cdef Req *next
    s.snapshot_waiting = NULL
    while req != NULL:
        next = req.next
        req.next = NULL
        fail_requests(s, req, raft.RAFT_SHUTDOWN)
        req = next


cdef void resolve_index(NodeState *s, Req *req, raft.raft_index index) noexcept with gil:
    resolve_future(s, <object>req.futures[0], index)
    req_release_futures(req)
    req_free(req)


cdef void fail_snapshot(NodeState *s, Req *req) noexcept with gil:
    fail_future(s, <object>req.futures[0], _errors.RaftError(
        "the snapshot failed: FSM.snapshot() or persist() raised (logged at ERROR on "
        "canonical_raft); libraft retries later", raft.RAFT_CANCELED))
    req_release_futures(req)
    req_free(req)


# -- backup(path) -----------------------------------------------------------------

cdef struct BackupJob:
    uv.uv_work_t work
    NodeState *node
    Req *req
    PyObject *job              # a list: the snapshot and what frames it, then the outcome


cdef void backup_start(NodeState *s, Req *req) noexcept with gil:
    """On the raft thread: FSM.snapshot() at last_applied, the rest queued
    on libuv's pool."""
    cdef raft.raft_index index = raft.raft_last_applied(&s.raft)
    cdef raft.raft_term term = cr_applied_term(&s.raft, index)
    cdef const raft.raft_configuration *conf = cr_committed_configuration(&s.raft)
    cdef unsigned i
    cdef unsigned long long began
    cdef BackupJob *job = NULL
    fut = <object>req.futures[0]
    try:
        if s.fatal:
            raise raft_error(raft.RAFT_SHUTDOWN, WHY_FSM_UNKNOWN)
        if index == 0 or term == 0 or conf.n == 0:
            raise _errors.RaftError("nothing to back up yet: this node has applied no "
                                    "entry", raft.RAFT_BUSY)
        servers = [(conf.servers[i].id, conf.servers[i].address.decode(errors="replace"),
                    conf.servers[i].role) for i in range(conf.n)]
        section = sessions_dump(&s.fwd.table)
        began = uv.uv_hrtime()
        try:
            snapshot = (<Core>s.core).fsm.snapshot()
        finally:
            check_held(s, HELD_SNAPSHOT, began)      # slow_fsm.pxi
        work = [snapshot, section, servers, index, term, s.raft.configuration_committed_index,
                req.path, s.snapshot_compression]
    except BaseException as exc:
        fail_future(s, fut, exc)
        req_release_futures(req)
        req_free(req)
        return
    job = <BackupJob *>calloc(1, sizeof(BackupJob))
    if job != NULL:
        job.node = s
        job.req = req
        job.work.data = job
        job.job = <PyObject *>work
        Py_INCREF(work)
        if uv.uv_queue_work(&s.loop, &job.work, backup_work, backup_done) == 0:
            s.backups_running += 1     # begin_close waits for it (thread.pxi)
            return
        Py_DECREF(work)
        free(job)
    release_object(snapshot)
    fail_future(s, fut, MemoryError("cannot queue the backup"))
    req_release_futures(req)
    req_free(req)


cdef void backup_work(uv.uv_work_t *work) noexcept nogil:
    """On a libuv pool thread."""
    run_backup(<BackupJob *>work.data)


cdef void run_backup(BackupJob *job) noexcept with gil:
    cdef list work = <list>job.job
    cdef raft.raft_buffer buf
    snapshot, section, servers, index, term, conf_index, path, compress = work
    del work[:]
    buf.base = NULL
    try:
        try:
            persist = getattr(snapshot, "persist", None)
            data = persist() if persist is not None else snapshot
        finally:
            release_object(snapshot)
        snapshot = None
        frame_snapshot(data, compress, &buf, section)    # entry.pxi
        data = None
        try:
            _write_backup(path, backup_head(index, term, conf_index, servers, buf.len),
                          PyMemoryView_FromMemory(<char *>buf.base, buf.len, PyBUF_READ))
        finally:
            raft.raft_free(buf.base)
        work.append(index)
    except BaseException as exc:
        work.append(exc)


cdef void release_object(snapshot) noexcept:
    """A persist() snapshot's release(), if it has one."""
    try:
        release = getattr(snapshot, "release", None)
        if release is not None:
            release()
    except BaseException as exc:
        log.error("snapshot release() failed: %r", exc)


cdef void backup_done(uv.uv_work_t *work, int status) noexcept nogil:
    """Back on the loop: settle the future (even while a close waits for
    it: the file is written or it is not), then let a close go on."""
    cdef BackupJob *job = <BackupJob *>work.data
    cdef NodeState *s = job.node
    hold_gil(s)
    backup_settle(job, status)
    free(job)
    s.backups_running -= 1
    if s.close_pending and s.backups_running == 0 and not s.persisting:
        s.close_pending = False
        begin_close(s)


cdef void backup_settle(BackupJob *job, int status) noexcept with gil:
    cdef NodeState *s = job.node
    cdef Req *req = job.req
    cdef list work = <list>job.job
    Py_DECREF(work)                 # the job's reference; `work` holds one
    fut = <object>req.futures[0]
    if status != 0 and work:        # never ran (cancelled): the snapshot is still there
        release_object(work[0])
        del work[:]
    outcome = work[0] if status == 0 and work else _errors.RaftError(
        "the backup was cancelled", raft.RAFT_CANCELED)
    if isinstance(outcome, BaseException):
        fail_future(s, fut, outcome)
    else:
        resolve_future(s, fut, outcome)
    req_release_futures(req)
    req_free(req)
