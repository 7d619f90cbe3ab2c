# Core: the Python face of one native node. canonical_raft.Node (node.py)
# validates arguments and wraps it; Core trusts what it is given.

from concurrent.futures import InvalidStateError
import threading

from .futures import future_type_for_node

cdef extern from "<pthread.h>" nogil:
    int pthread_detach(uv_thread_t thread)
    uv_thread_t pthread_self()


cdef bint push(NodeState *s, Req *first, Req *last) noexcept nogil:
    """Append requests to the submission queue and wake the raft thread;
    False if the node no longer accepts work."""
    uv_mutex_lock(&s.lock)
    if not s.accepting or s.close_requested:
        uv_mutex_unlock(&s.lock)
        return False
    cdef bint was_empty = s.queue_head == NULL
    cdef Req *req = first
    if was_empty:
        s.queue_head = first
    else:
        s.queue_tail.next = first
    s.queue_tail = last
    while req != NULL:
        s.queued += req.n
        req = req.next
    if was_empty:
        # Under the lock: the handle cannot be closing while accepting.
        uv_async_send(&s.wakeup)
    uv_mutex_unlock(&s.lock)
    return True


cdef int _get_buffer(command, Py_buffer *view) except -1:
    """A command's bytes; TypeError unless it is bytes-like."""
    try:
        return PyObject_GetBuffer(command, view, PyBUF_SIMPLE)
    except BufferError:         # bytes-like but not contiguous
        return PyObject_GetBuffer(bytes(memoryview(command)), view, PyBUF_SIMPLE)


def _contiguous(command):
    """bytes of a command without the buffer protocol; TypeError if none."""
    return bytes(memoryview(command))


cdef class Core:
    cdef NodeState *s
    cdef object fsm
    cdef public object _future_type
    cdef list _observers
    cdef object _owner            # weak reference to the public Node
    cdef object _start_error      # exception raised by restore() in start()
    cdef object _close_lock
    cdef int _generation
    cdef bint _self_release       # the raft thread drops its own reference
    cdef public object _persisting  # the snapshot whose persist() runs next

    def __cinit__(self):
        self.s = <NodeState *>calloc(1, sizeof(NodeState))
        if self.s == NULL:
            raise MemoryError()
        uv_mutex_init(&self.s.lock)
        uv_cond_init(&self.s.changed)
        raft_configuration_init(&self.s.m_configuration)
        self.s.core = <PyObject *>self
        CR_COUNT_ADD(live_nodes, 1)

    def __init__(self, owner, unsigned long long id, str address, str data_dir, fsm,
                 *, double election_timeout, double heartbeat_timeout,
                 unsigned snapshot_threshold, unsigned snapshot_trailing,
                 bint pre_vote, double install_snapshot_timeout,
                 unsigned max_catch_up_rounds, double max_catch_up_round_duration,
                 unsigned max_inflight_entries, size_t segment_size,
                 bint snapshot_compression, bint tcp_nodelay, size_t max_batch_bytes,
                 size_t snapshot_log_bytes):
        cdef NodeState *s = self.s
        cdef bytes addr = address.encode()
        cdef bytes path = os.fsencode(data_dir)
        s.id = id
        cr_copy(s.address, addr, ADDRESS_MAX)
        s.data_dir = <char *>calloc(len(path) + 1, 1)
        if s.data_dir == NULL:
            raise MemoryError()
        memcpy(s.data_dir, <char *>path, len(path))
        s.election_ms = <unsigned>(election_timeout * 1000)
        s.heartbeat_ms = <unsigned>(heartbeat_timeout * 1000)
        s.install_snapshot_ms = <unsigned>(install_snapshot_timeout * 1000)
        s.snapshot_threshold = snapshot_threshold
        s.snapshot_trailing = snapshot_trailing
        s.pre_vote = pre_vote
        s.max_catch_up_rounds = max_catch_up_rounds
        s.max_catch_up_round_ms = <unsigned>(max_catch_up_round_duration * 1000)
        s.max_inflight_entries = max_inflight_entries
        s.segment_size = segment_size
        s.snapshot_compression = snapshot_compression
        s.tcp_nodelay = tcp_nodelay
        s.max_batch_bytes = max_batch_bytes
        s.snapshot_log_bytes = snapshot_log_bytes
        s.next_tag = (<uint64_t>int.from_bytes(os.urandom(8), "little")) | 1
        self.fsm = fsm
        self._owner = owner
        self._observers = []
        self._future_type = future_type_for_node()
        self._future_type._Wakeup = Wakeup
        self._close_lock = threading.Lock()
        self._generation = fork_generation

    def __dealloc__(self):
        cdef NodeState *s = self.s
        if s == NULL:
            return
        self.s = NULL
        if self._generation != fork_generation:
            return      # a forked child's copy: its locks may be held forever
        # Unreachable with a live thread: the thread holds a reference.
        raft_configuration_close(&s.m_configuration)
        uv_cond_destroy(&s.changed)
        uv_mutex_destroy(&s.lock)
        free(s.data_dir)
        free(s.wakeups)
        free(s)
        CR_COUNT_ADD(live_nodes, -1)

    # -- checks -----------------------------------------------------------

    cdef inline int _check_usable(self) except -1:
        if self._generation != fork_generation:
            raise RuntimeError(
                "this node was created before fork(): a forked child cannot "
                "use it (create a new node in the child)")
        return 0

    cdef int _check_not_raft_thread(self, str what) except -1:
        if self.s.thread_ident != 0 and threading.get_ident() == self.s.thread_ident:
            raise RuntimeError(
                f"{what} cannot be called from the node's own raft thread "
                "(inside an FSM method or a callback): it would deadlock")
        return 0

    cdef object _refusal(self):
        """None if requests may be submitted now, else the exception that
        their futures fail with at once."""
        cdef NodeState *s = self.s
        if s.close_requested or s.m_phase >= PHASE_CLOSING:
            return ShutdownError("node is closed" if s.m_phase >= PHASE_CLOSED
                                 else "node is closing", RAFT_SHUTDOWN)
        if s.m_phase == PHASE_NEW:
            return NotLeaderError("node is not started", RAFT_NOTLEADER, None)
        if CR_LOAD(s.m_state) != RAFT_LEADER:
            return NotLeaderError("this node is not the leader", RAFT_NOTLEADER,
                                  self.leader)
        return None

    cdef inline object _new_future(self):
        return self._future_type()      # RUNNING already: cannot be cancelled

    cdef object _failed_future(self, exc):
        fut = self._future_type()
        fut.set_exception(exc)
        return fut

    cdef void _discard(self, Req *req, int code) noexcept:
        """Fail and free requests that never reached the raft thread."""
        cdef Req *next
        while req != NULL:
            next = req.next
            self._fail_req(req, code)
            req_release_futures(req)
            if req.kind == REQ_APPLY:
                raft_free(req.buf.base)
            req_free(req)
            req = next

    # -- submitting ---------------------------------------------------------

    cdef Req *_command_req(self, command, fut) except NULL:
        cdef Py_buffer view
        _get_buffer(command, &view)
        try:
            return apply_req_new(self.s, <const char *>view.buf, <size_t>view.len, fut)
        finally:
            PyBuffer_Release(&view)

    def apply(self, command):
        self._check_usable()
        refusal = self._refusal()
        if refusal is not None:
            memoryview(command)      # TypeError at once for non bytes-like
            return self._failed_future(refusal)
        fut = self._new_future()
        cdef Req *req = self._command_req(command, fut)
        if not push(self.s, req, req):
            self._discard(req, RAFT_SHUTDOWN)
        return fut

    def apply_many(self, commands):
        self._check_usable()
        commands = [c if PyObject_CheckBuffer(c) else _contiguous(c) for c in commands]
        refusal = self._refusal()
        if refusal is not None:
            return [self._failed_future(refusal) for _ in commands]
        cdef Py_ssize_t n = len(commands)
        if n == 0:
            return []
        cdef Py_buffer *views = <Py_buffer *>calloc(n, sizeof(Py_buffer))
        if views == NULL:
            raise MemoryError()
        cdef Py_ssize_t i, got = 0
        cdef Req *first = NULL
        try:
            for i in range(n):
                _get_buffer(commands[i], &views[i])
                got += 1
            futures = [self._new_future() for _ in range(n)]
            first = self._entries_req(views, futures, n)
        finally:
            for i in range(got):
                PyBuffer_Release(&views[i])
            free(views)
        cdef Req *last = first
        while last.next != NULL:
            last = last.next
        if not push(self.s, first, last):
            self._discard(first, RAFT_SHUTDOWN)
        return futures

    cdef Req *_entries_req(self, Py_buffer *views, list futures, Py_ssize_t n) except NULL:
        """Frame commands into entries of at most max_batch_bytes (a larger
        command alone), one request per entry, chained."""
        cdef Req *first = NULL
        cdef Req *last = NULL
        cdef Req *req
        cdef Py_ssize_t start = 0, end, i
        cdef size_t size, part
        cdef char *p
        try:
            while start < n:
                size = ENTRY_HEADER + 8 + pad8(views[start].len)
                end = start + 1
                while end < n:
                    part = 8 + pad8(views[end].len)
                    if size + part > self.s.max_batch_bytes:
                        break
                    size += part
                    end += 1
                req = req_new(self.s, REQ_APPLY, <unsigned>(end - start))
                if req == NULL:
                    raise MemoryError()
                if last == NULL:
                    first = req
                else:
                    last.next = req
                last = req
                p = <char *>raft_malloc(size)
                if p == NULL:
                    raise MemoryError()
                req.buf.base = p
                req.buf.len = size
                write_entry_header(p, <uint32_t>(end - start))
                p += ENTRY_HEADER
                for i in range(start, end):
                    cr_put64(p, views[i].len)
                    memcpy(p + 8, views[i].buf, views[i].len)
                    memset(p + 8 + views[i].len, 0, pad8(views[i].len) - views[i].len)
                    p += 8 + pad8(views[i].len)
                    fut = futures[i]
                    Py_INCREF(fut)
                    req.futures[i - start] = <PyObject *>fut
                start = end
        except BaseException:
            self._discard(first, RAFT_CANCELED)
            raise
        return first

    def barrier(self):
        return self._submit(REQ_BARRIER, 0, 0, 0, None)

    def change(self, int op, unsigned long long target, int role=RAFT_VOTER,
               address=None):
        """A configuration change: CHANGE_ADD / _ASSIGN / _REMOVE."""
        return self._submit(REQ_CHANGE, op, target, role, address)

    def transfer(self, unsigned long long target):
        return self._submit(REQ_TRANSFER, 0, target, 0, None)

    cdef object _submit(self, int kind, int op, raft_id target, int role, address):
        """Submit a one-future request; its future fails at once if this
        node cannot take it."""
        self._check_usable()
        refusal = self._refusal()
        if refusal is not None:
            return self._failed_future(refusal)
        fut = self._new_future()
        cdef Req *req = single_req_new(self.s, kind, fut)
        cdef bytes encoded
        req.change_op = op
        req.target = target
        req.role = role
        if address is not None:
            encoded = address.encode()
            req.address = <char *>calloc(len(encoded) + 1, 1)
            if req.address == NULL:
                self._discard(req, RAFT_NOMEM)
                raise MemoryError()
            memcpy(req.address, <char *>encoded, len(encoded))
        if not push(self.s, req, req):
            self._discard(req, RAFT_SHUTDOWN)
        return fut

    # -- lifecycle ------------------------------------------------------------

    def bootstrap(self, servers, bint recover=False):
        """Write the initial (or, recovering, a forced) configuration."""
        self._check_usable()
        if self.s.m_phase != PHASE_NEW:
            raise RaftError("bootstrap and recover must come before start()",
                            RAFT_BUSY)
        cdef raft_configuration conf
        cdef char errmsg[ERROR_MAX]
        cdef int rv
        cdef int op = OP_RECOVER if recover else OP_BOOTSTRAP
        errmsg[0] = 0
        raft_configuration_init(&conf)
        try:
            for server in servers:
                address = server.address.encode()
                rv = raft_configuration_add(&conf, server.id, address, int(server.role))
                if rv != 0:
                    raise ValueError(f"bad server {server!r}: {raft_strerror(rv).decode()}")
            with nogil:
                rv = run_offline(op, self.s.data_dir, self.s.id, self.s.address,
                                 &conf, errmsg)
        finally:
            raft_configuration_close(&conf)
        if rv != 0:
            raise error_for(rv, (errmsg.decode(errors="replace")
                                 or raft_strerror(rv).decode()))

    def start(self):
        self._check_usable()
        cdef NodeState *s = self.s
        if s.m_phase != PHASE_NEW or s.close_requested:
            raise RaftError("node was already started or closed", RAFT_BUSY)
        s.trace = trace_log.isEnabledFor(logging.DEBUG)
        s.trace_stderr = "LIBRAFT_TRACE" in os.environ
        s.phase = PHASE_STARTING
        s.m_phase = PHASE_STARTING
        Py_INCREF(self)                 # the raft thread's reference
        cdef int rv = uv_thread_create(&s.thread, thread_main, s)
        if rv != 0:
            Py_DECREF(self)
            s.phase = s.m_phase = PHASE_CLOSED
            raise OSError(-rv, uv_strerror(rv).decode())
        s.thread_joinable = True
        self._wait_phase_beyond(PHASE_STARTING)
        if s.m_phase == PHASE_FAILED:
            self._join()
            error = self._start_error
            self._start_error = None
            if error is None:
                error = RaftError(s.m_error.decode(errors="replace")
                                  or "start failed", RAFT_IOERR)
            raise error

    cdef int _wait_phase_beyond(self, int phase) except -1:
        cdef NodeState *s = self.s
        while True:
            with nogil:
                uv_mutex_lock(&s.lock)
                if s.m_phase <= phase:
                    uv_cond_timedwait(&s.changed, &s.lock, 100000000)
                uv_mutex_unlock(&s.lock)
            if s.m_phase > phase:
                return 0
            PyErr_CheckSignals()

    cdef int _join(self) except -1:
        cdef NodeState *s = self.s
        if not s.thread_joinable:
            return 0
        if self._self_release:          # the thread detaches itself
            return self._wait_phase_beyond(PHASE_CLOSING)
        with nogil:
            uv_thread_join(&s.thread)
        s.thread_joinable = False
        # Fail whatever was queued after the loop's last drain.
        uv_mutex_lock(&s.lock)
        cdef Req *head = s.queue_head
        s.queue_head = s.queue_tail = NULL
        s.accepting = False
        uv_mutex_unlock(&s.lock)
        self._discard(head, RAFT_SHUTDOWN)
        Py_DECREF(self)                 # the raft thread's reference
        return 0

    def close(self):
        if self._generation != fork_generation:
            return                      # nothing of the parent's to close here
        self._check_not_raft_thread("close()")
        with self._close_lock:
            self._close_now()

    def close_from_raft_thread(self):
        """Ask the loop to stop without joining (the caller is the raft
        thread, e.g. a finalizer): the thread releases itself when done."""
        cdef NodeState *s = self.s
        uv_mutex_lock(&s.lock)
        if s.accepting and not s.close_requested:
            s.close_requested = True
            self._self_release = True
            uv_async_send(&s.wakeup)
        uv_mutex_unlock(&s.lock)

    cdef int _close_now(self) except -1:
        cdef NodeState *s = self.s
        uv_mutex_lock(&s.lock)
        s.close_requested = True
        if s.accepting:
            uv_async_send(&s.wakeup)
        if s.m_phase == PHASE_NEW:
            s.phase = s.m_phase = PHASE_CLOSED
        uv_mutex_unlock(&s.lock)
        self._join()
        self.fsm = None
        self._observers = []
        return 0

    @property
    def started(self):
        return self.s.m_phase != PHASE_NEW

    @property
    def closed(self):
        return self.s.close_requested or self.s.m_phase >= PHASE_CLOSED

    # -- waiting --------------------------------------------------------------

    def wait_for_leader(self, timeout=None):
        self._check_usable()
        self._check_not_raft_thread("wait_for_leader()")
        cdef NodeState *s = self.s
        cdef unsigned long long deadline = 0
        cdef unsigned long long now
        cdef bint found
        if timeout is not None:
            deadline = uv_hrtime() + <unsigned long long>(max(timeout, 0) * 1e9)
        while True:
            with nogil:
                uv_mutex_lock(&s.lock)
                if s.m_leader_id == 0 and s.m_phase == PHASE_RUNNING:
                    uv_cond_timedwait(&s.changed, &s.lock, 50000000)
                found = s.m_leader_id != 0
                uv_mutex_unlock(&s.lock)
            if found:
                leader = self.leader
                if leader is not None:
                    return leader
            if s.m_phase != PHASE_RUNNING and s.m_phase != PHASE_STARTING:
                raise ShutdownError("node is not running", RAFT_SHUTDOWN)
            PyErr_CheckSignals()
            now = uv_hrtime()
            if deadline and now >= deadline:
                raise TimeoutError(f"no leader known after {timeout} s")

    # -- status ---------------------------------------------------------------

    @property
    def thread_ident(self):
        return self.s.thread_ident

    @property
    def state(self):
        self._check_usable()
        return State(CR_LOAD(self.s.m_state))

    # The readers below copy the mirror into C locals under the lock and
    # build Python objects after unlocking: Python code (even an allocation,
    # which can run the garbage collector) may let the GIL go, and the raft
    # thread may hold the GIL while it waits for this lock.

    @property
    def leader(self):
        self._check_usable()
        cdef NodeState *s = self.s
        cdef char address[ADDRESS_MAX]
        cdef int role = RAFT_VOTER
        cdef unsigned i
        uv_mutex_lock(&s.lock)
        cdef raft_id id = s.m_leader_id
        memcpy(address, s.m_leader_address, ADDRESS_MAX)
        for i in range(s.m_configuration.n):
            if s.m_configuration.servers[i].id == id:
                role = s.m_configuration.servers[i].role
        uv_mutex_unlock(&s.lock)
        if id == 0:
            return None
        return Server(id, address.decode(errors="replace"), Role(role))

    @property
    def configuration(self):
        self._check_usable()
        cdef NodeState *s = self.s
        cdef raft_configuration conf
        cdef unsigned i
        cdef int rv = 0
        raft_configuration_init(&conf)
        uv_mutex_lock(&s.lock)
        for i in range(s.m_configuration.n):
            rv = raft_configuration_add(&conf, s.m_configuration.servers[i].id,
                                        s.m_configuration.servers[i].address,
                                        s.m_configuration.servers[i].role)
            if rv != 0:
                break
        uv_mutex_unlock(&s.lock)
        try:
            if rv != 0:
                raise MemoryError()
            return [Server(conf.servers[i].id,
                           conf.servers[i].address.decode(errors="replace"),
                           Role(conf.servers[i].role))
                    for i in range(conf.n)]
        finally:
            raft_configuration_close(&conf)

    def stats(self):
        self._check_usable()
        cdef NodeState *s = self.s
        cdef char error[ERROR_MAX]
        cdef unsigned i, voters = 0
        uv_mutex_lock(&s.lock)
        cdef int state = s.m_state
        cdef raft_term term = s.m_term
        cdef raft_id leader_id = s.m_leader_id
        cdef raft_index commit_index = s.m_commit_index
        cdef raft_index last_applied = s.m_last_applied
        cdef raft_index last_index = s.m_last_index
        cdef raft_index snapshot_index = s.m_snapshot_index
        cdef unsigned servers = s.m_configuration.n
        cdef unsigned pending = s.m_pending
        cdef unsigned log_capacity = s.m_log_capacity
        cdef unsigned long long contact = s.m_leader_contact
        for i in range(servers):
            if s.m_configuration.servers[i].role == RAFT_VOTER:
                voters += 1
        memcpy(error, s.m_error, ERROR_MAX)
        uv_mutex_unlock(&s.lock)
        return {
            "state": State(state),
            "term": term,
            "leader_id": leader_id,
            "commit_index": commit_index,
            "last_applied": last_applied,
            "last_index": last_index,
            "snapshot_index": snapshot_index,
            "error": error.decode(errors="replace") or None,
            "voters": voters,
            "servers": servers,
            "pending_applies": pending,
            "log_capacity": log_capacity * 1024,   # bytes prepared for the log
            # seconds since a leader last reached this node (None: never,
            # 0.0 on the leader itself)
            "last_contact": (0.0 if state == RAFT_LEADER else
                             (uv_hrtime() - contact) / 1e9 if contact else None),
        }

    def add_observer(self, fn):
        self._observers.append(fn)

    # -- called on the raft thread, with the GIL ------------------------------

    cdef void _notify_state_change(self) noexcept:
        if not self._observers:
            return
        owner = self._owner() if self._owner is not None else None
        if owner is None:
            return
        for fn in list(self._observers):
            try:
                fn(owner)
            except BaseException as exc:
                log.error("node %d: state-change callback %r raised %r",
                          self.s.id, fn, exc, exc_info=exc)

    cdef void _apply_command(self, bytes command, object fut, raft_index index) noexcept:
        if self.s.fatal:
            if fut is not None:
                self._set_exception(fut, ShutdownError(
                    "node stopped: its FSM state is unknown", RAFT_SHUTDOWN))
            return
        try:
            result = self.fsm.apply(command)
        except BaseException as exc:
            if fut is not None:
                self._set_exception(fut, exc)
            else:
                log.debug("node %d: FSM.apply raised at index %d: %r",
                          self.s.id, index, exc)
            return
        if fut is not None:
            self._resolve(fut, result)

    cdef void _entry_error(self, Req *req, raft_index index, str why) noexcept:
        log.error("node %d: cannot apply entry %d: %s", self.s.id, index, why)
        cdef unsigned i
        if req != NULL:
            for i in range(req.n):
                self._set_exception(<object>req.futures[i],
                                    RaftError(f"entry {index}: {why}", RAFT_MALFORMED))
            req_release_futures(req)

    cdef void _resolve(self, fut, value) noexcept:
        try:
            fut.set_result(value)
        except InvalidStateError:
            pass
        except BaseException as exc:
            log.error("node %d: resolving a future raised %r", self.s.id, exc)

    cdef void _set_exception(self, fut, exc) noexcept:
        try:
            fut.set_exception(exc)
        except InvalidStateError:
            pass
        except BaseException as exc2:
            log.error("node %d: failing a future raised %r", self.s.id, exc2)

    cdef void _fail_req(self, Req *req, int code) noexcept:
        cdef unsigned i
        cdef raft_id leader_id = 0
        cdef const char *leader_address = NULL
        leader = None
        if code == RAFT_NOTLEADER and self.s.phase == PHASE_RUNNING:
            raft_leader(&self.s.raft, &leader_id, &leader_address)
            if leader_id:
                leader = Server(leader_id, leader_address.decode(errors="replace"))
        if code == RAFT_SHUTDOWN or code == RAFT_CANCELED:
            message = "node is closing: the command was not applied here"
        else:
            message = raft_strerror(code).decode()
        for i in range(req.n):
            if req.futures[i] != NULL:
                self._set_exception(<object>req.futures[i],
                                    error_for(code, message, leader))

    cdef object _snapshot_begin(self):
        """FSM.snapshot(): its data, or None when it returned an object
        whose persist() must run next (off the raft thread)."""
        snapshot = self.fsm.snapshot()
        if getattr(snapshot, "persist", None) is None:
            return snapshot
        self._persisting = snapshot
        return None

    cdef object _snapshot_persist(self):
        """Run persist() of the pending snapshot object; release() always."""
        snapshot = self._persisting
        self._persisting = None
        try:
            return snapshot.persist()
        finally:
            release = getattr(snapshot, "release", None)
            if release is not None:
                release()

    cdef void _restore_bytes(self, bytes data, int flags) except *:
        if flags & SNAPSHOT_ZLIB:
            data = zlib.decompress(data)
        self.fsm.restore(data)

    cdef void _restore_failed(self, exc) noexcept:
        message = f"FSM.restore raised {exc!r}"
        set_error(self.s, message.encode(errors="replace"))
        if self.s.in_start:
            self._start_error = exc
        else:
            log.error("node %d: %s; stopping the node, its state is unknown",
                      self.s.id, message, exc_info=exc)
