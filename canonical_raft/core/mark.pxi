# The binding's own records in the data dir, beside libraft's files, for
# what libraft 0.22 keeps nowhere (integrity.py checks them at start):
#
# canonical_raft.mark, the high-water mark: the node's last_applied index.
# Applied entries are committed and no node truncates them, so the
# log (or a snapshot) must still reach it: a newest segment deleted whole is
# found. (The last stored index would not do: a new leader may truncate a
# follower's uncommitted tail.) It is written on libuv's thread pool, one
# write in flight, at most every MARK_INTERVAL_NS while entries are applied
# (on_prepare checks: nothing on the apply path), and once more at close.
# Each write replaces the file whole: tmp, fsync, rename, fsync(dir).
#
# canonical_raft.vote: the term and vote of libraft's metadata1/2, which
# have no checksum. io->set_term and io->set_vote (synchronous in libraft's
# uv backend) record the new value first, in the slot that does not hold
# the current one (in place, fdatasync), then call libraft: whatever a crash
# leaves, the metadata equals one of the two slots; anything else is damage.
#
#   mark:      magic "CRMK" u32 | version u16 (1) | reserved u16 |
#              applied index u64 | CRC-32 u32 (zlib's, of bytes 0-15) | reserved u32
#   vote slot: magic "CRVT" u32 | version u16 (1) | reserved u16 |
#              term u64 | vote u64 | CRC-32 u32 (zlib's, of bytes 0-23) | reserved u32
#   vote file: two slots (64 bytes)
#
# Both describe libraft's uv files only: with storage="lmdb" the term, vote
# and log are checksummed records of one LMDB file, changed in durable
# transactions, and the store refuses a hole or a missing file itself
# (core/lmdb_store.c). So an lmdb node keeps neither (records_kept).

from libc.errno cimport EIO, ENAMETOOLONG
from libc.stdio cimport rename, snprintf
from libc.string cimport strerror
from posix.fcntl cimport O_WRONLY, O_RDONLY, O_CREAT, O_TRUNC, O_CLOEXEC, O_DIRECTORY
from posix.unistd cimport fsync, fdatasync, pwrite

cdef extern from "<fcntl.h>" nogil:
    int c_open "open"(const char *path, int flags, ...)
cdef extern from "<unistd.h>" nogil:
    int c_close "close"(int fd)
cdef extern from "<errno.h>" nogil:
    int c_errno "errno"            # the module's `errno` is Python's (transport.pxi)

cdef enum:
    MARK_MAGIC = 0x4B4D5243        # b"CRMK"
    VOTE_MAGIC = 0x54565243        # b"CRVT"
    RECORD_VERSION = 1
    MARK_SIZE = 24
    VOTE_SLOT_SIZE = 32
    VOTE_SIZE = 2 * VOTE_SLOT_SIZE
    RECORD_PATH_MAX = 4096

# At most one mark write per this (5 a second) while entries are applied.
DEF MARK_INTERVAL_NS = 200000000

cdef const char *MARK_FILE = b"canonical_raft.mark"
cdef const char *VOTE_FILE = b"canonical_raft.vote"
MARK_NAME = (<bytes>MARK_FILE).decode()
VOTE_NAME = (<bytes>VOTE_FILE).decode()


cdef uint32_t record_crc(const char *p, size_t n) noexcept nogil:
    """zlib's CRC-32 (reflected 0xEDB88320), bitwise: records are tiny."""
    cdef uint32_t crc = <uint32_t>0xFFFFFFFFu
    cdef uint32_t poly = <uint32_t>0xEDB88320u
    cdef size_t i
    cdef int k
    for i in range(n):
        crc ^= <unsigned char>p[i]
        for k in range(8):
            crc = (crc >> 1) ^ (poly & (<uint32_t>0 - (crc & 1)))
    return crc ^ <uint32_t>0xFFFFFFFFu


cdef void mark_encode(char *p, uint64_t applied) noexcept nogil:
    memset(p, 0, MARK_SIZE)
    cr_put32(p, MARK_MAGIC)
    cr_put16(p + 4, RECORD_VERSION)
    cr_put64(p + 8, applied)
    cr_put32(p + 16, record_crc(p, 16))


cdef void vote_encode(char *p, uint64_t term, uint64_t vote) noexcept nogil:
    memset(p, 0, VOTE_SLOT_SIZE)
    cr_put32(p, VOTE_MAGIC)
    cr_put16(p + 4, RECORD_VERSION)
    cr_put64(p + 8, term)
    cr_put64(p + 16, vote)
    cr_put32(p + 24, record_crc(p, 24))


def mark_decode(data):
    """The applied index of a canonical_raft.mark file's bytes;
    ValueError saying why they are not one."""
    cdef bytes b = bytes(data)
    cdef const char *p = b
    if len(b) != MARK_SIZE:
        raise ValueError(f"size {len(b)} instead of {MARK_SIZE}")
    if cr_get32(p) != MARK_MAGIC or cr_get16(p + 4) != RECORD_VERSION:
        raise ValueError("not a mark of this format")
    if cr_get32(p + 16) != record_crc(p, 16):
        raise ValueError("checksum mismatch")
    return cr_get64(p + 8)


def vote_decode(data):
    """The (term, vote) slots of a canonical_raft.vote file's bytes that
    check (a torn in-place write spoils one slot at most)."""
    cdef bytes b = bytes(data)
    cdef const char *base = b
    cdef const char *p
    cdef Py_ssize_t i
    slots = []
    for i in range(min(len(b), VOTE_SIZE) // VOTE_SLOT_SIZE):
        p = base + i * VOTE_SLOT_SIZE
        if (cr_get32(p) == VOTE_MAGIC and cr_get16(p + 4) == RECORD_VERSION
                and cr_get32(p + 24) == record_crc(p, 24)):
            slots.append((cr_get64(p + 8), cr_get64(p + 16)))
    return slots


# -- writing files ----------------------------------------------------------

cdef int record_path(char *out, const char *dir, const char *name,
                     const char *suffix) noexcept nogil:
    cdef int n = snprintf(out, RECORD_PATH_MAX, "%s/%s%s", dir, name, suffix)
    return 0 if 0 < n < RECORD_PATH_MAX else -1


cdef int replace_file(const char *dir, const char *name, const char *data,
                      size_t size) noexcept nogil:
    """Replace dir/name with data, durably: tmp, fsync, rename, fsync(dir).
    0, or an errno."""
    cdef char path[RECORD_PATH_MAX]
    cdef char tmp[RECORD_PATH_MAX]
    if record_path(path, dir, name, "") != 0 or record_path(tmp, dir, name, ".tmp") != 0:
        return ENAMETOOLONG
    cdef int fd = c_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    if fd < 0:
        return c_errno
    cdef int err = 0
    if pwrite(fd, data, size, 0) != <ssize_t>size or fsync(fd) != 0:
        err = c_errno or EIO       # a short write sets none
    c_close(fd)
    if err == 0 and rename(tmp, path) != 0:
        err = c_errno
    if err != 0:
        return err
    fd = c_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd < 0:
        return c_errno
    if fsync(fd) != 0:
        err = c_errno
    c_close(fd)
    return err


cdef int write_vote_slot(const char *dir, int slot, uint64_t term,
                         uint64_t vote) noexcept nogil:
    """One slot of the vote file, in place; 0 or an errno."""
    cdef char path[RECORD_PATH_MAX]
    cdef char buf[VOTE_SLOT_SIZE]
    if record_path(path, dir, VOTE_FILE, "") != 0:
        return ENAMETOOLONG
    vote_encode(buf, term, vote)
    cdef int fd = c_open(path, O_WRONLY | O_CLOEXEC)
    if fd < 0:
        return c_errno
    cdef int err = 0
    if (pwrite(fd, buf, VOTE_SLOT_SIZE, slot * VOTE_SLOT_SIZE) != VOTE_SLOT_SIZE
            or fdatasync(fd) != 0):
        err = c_errno or EIO
    c_close(fd)
    return err


# -- at start -----------------------------------------------------------------

cdef inline bint records_kept(NodeState *s) noexcept nogil:
    """Does this node keep the mark and the vote record (storage="uv")?"""
    return not s.own_io


cdef int mark_configure(NodeState *s) noexcept with gil:
    """From configure(), before raft_start: the vote file made afresh from
    the metadata libraft just read (both slots), and the mark to keep (the
    file's, checked by integrity.check; with auto_recovery, which accepts
    loss, it starts again from 0). 0, or -1 with the error set."""
    cdef char buf[VOTE_SIZE]
    cdef char mark[MARK_SIZE]
    cdef uint64_t term, vote
    cdef int err = 0
    cdef bint reset
    s.mark_busy = False
    s.mark_closing = False
    if not records_kept(s):
        return 0
    data_dir = s.data_dir.decode(errors="surrogateescape")
    try:
        term, vote = _integrity.current_metadata(data_dir)
        reset = (<Core>s.core)._config.auto_recovery
        s.mark_written = 0 if reset else _integrity.read_mark(data_dir)
    except BaseException as exc:
        set_error(s, f"cannot read the data dir's records: {exc!r}".encode(errors="replace"))
        return -1
    s.vote_term = term
    s.vote_slot = 0
    s.mark_final = 0
    s.mark_due = 0
    s.mark_error_logged = False
    with nogil:
        vote_encode(buf, term, vote)
        vote_encode(buf + VOTE_SLOT_SIZE, term, vote)
        err = replace_file(s.data_dir, VOTE_FILE, buf, VOTE_SIZE)
        if err == 0 and reset:
            mark_encode(mark, 0)
            err = replace_file(s.data_dir, MARK_FILE, mark, MARK_SIZE)
    if err != 0:
        set_error(s, f"cannot write the records in {data_dir}: {os.strerror(err)}"
                     .encode(errors="replace"))
        return -1
    return 0


# -- the term and vote (io_guard.pxi installs these) ---------------------------

cdef int vote_record(NodeState *s, raft.raft_term term, raft.raft_id vote) noexcept nogil:
    """Record (term, vote) in the slot that does not hold the current value."""
    cdef int slot = 1 - s.vote_slot
    cdef int err = write_vote_slot(s.data_dir, slot, term, vote)
    if err != 0:
        snprintf(s.io.errmsg, sizeof(s.io.errmsg), "write %s: %s", VOTE_FILE, strerror(err))
        hold_gil(s)
        log_record_error(s, VOTE_FILE, err)
        return raft.RAFT_IOERR
    s.vote_slot = slot
    s.vote_term = term
    return 0


cdef int guard_set_term(raft.raft_io *io, raft.raft_term term) noexcept nogil:
    cdef NodeState *s = io_node(io)
    cdef int rv = vote_record(s, term, 0)      # libraft's set_term clears the vote
    if rv != 0:
        return rv
    return s.io_set_term(io, term)


cdef int guard_set_vote(raft.raft_io *io, raft.raft_id server_id) noexcept nogil:
    cdef NodeState *s = io_node(io)
    cdef int rv = vote_record(s, s.vote_term, server_id)
    if rv != 0:
        return rv
    return s.io_set_vote(io, server_id)


# -- the high-water mark ----------------------------------------------------------

cdef inline void mark_tick(NodeState *s) noexcept nogil:
    """From on_prepare: write the mark if last_applied passed it and the
    last write is done and old enough."""
    if s.phase != PHASE_RUNNING or s.mark_busy or not records_kept(s):
        return
    cdef raft.raft_index applied = raft.raft_last_applied(&s.raft)
    if applied <= s.mark_written:
        return
    cdef unsigned long long now = uv.uv_hrtime()
    if now < s.mark_due:
        return
    s.mark_due = now + MARK_INTERVAL_NS
    mark_queue(s, applied)


cdef void mark_close(NodeState *s) noexcept nogil:
    """From begin_close, before raft_close (struct raft is readable): the
    last value, written now or after the write in flight."""
    if not records_kept(s):
        return
    s.mark_closing = True
    s.mark_final = raft.raft_last_applied(&s.raft)
    if not s.mark_busy and s.mark_final > s.mark_written:
        mark_queue(s, s.mark_final)


cdef void mark_queue(NodeState *s, raft.raft_index applied) noexcept nogil:
    s.mark_queued = applied
    s.mark_work.data = s
    if uv.uv_queue_work(&s.loop, &s.mark_work, mark_work, mark_done) == 0:
        s.mark_busy = True


cdef void mark_work(uv.uv_work_t *work) noexcept nogil:
    """On a libuv pool thread; the loop leaves mark_queued alone meanwhile."""
    cdef NodeState *s = <NodeState *>work.data
    cdef char buf[MARK_SIZE]
    mark_encode(buf, s.mark_queued)
    s.mark_status = replace_file(s.data_dir, MARK_FILE, buf, MARK_SIZE)


cdef void mark_done(uv.uv_work_t *work, int status) noexcept nogil:
    cdef NodeState *s = <NodeState *>work.data
    s.mark_busy = False
    if status == 0 and s.mark_status == 0:
        s.mark_written = s.mark_queued
        s.mark_error_logged = False
        # Closing: mark_close's value came while this write was on the pool.
        if s.mark_closing and s.mark_final > s.mark_written:
            mark_queue(s, s.mark_final)
    elif not s.mark_error_logged:      # retried at the next interval, not at close
        s.mark_error_logged = True
        hold_gil(s)
        log_record_error(s, MARK_FILE, s.mark_status or -status)


cdef void log_record_error(NodeState *s, const char *name, int err) noexcept with gil:
    log.error("node %d: cannot write %s in %s: %s", s.id, name.decode(),
              s.data_dir.decode(errors="replace"), os.strerror(err))
