# Core: the Python face of one native node, on the caller's side.
# canonical_raft.Node (node.py) validates arguments and wraps it; Core
# trusts what it is given. Its settings are one object (`config`), read by
# thread.pxi's configure() when the node starts.

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
    cdef GroupState lane          # lane.pxi: the batteries Group it may apply for
    cdef object _future_type      # futures.Future (imported after this module)
    cdef list _observers
    cdef list _event_observers
    cdef object _owner            # weak reference to the public Node
    cdef object _start_error      # exception raised by restore() in start()
    cdef object _close_lock
    cdef int _generation
    cdef bint _self_release       # the raft thread drops its own reference
    cdef public object _persisting  # the snapshot whose persist() runs next
    cdef object _config           # the settings (configure() reads them)
    cdef readonly unsigned long long key   # on_raft_thread(key): this node's thread

    def __cinit__(self):
        self.s = <NodeState *>calloc(1, sizeof(NodeState))
        if self.s == NULL:
            raise MemoryError()
        uv.uv_mutex_init(&self.s.lock)
        uv.uv_cond_init(&self.s.changed)
        raft.raft_configuration_init(&self.s.m_configuration)
        self.s.core = <PyObject *>self
        global last_key
        last_key += 1
        self.key = self.s.key = last_key
        CR_COUNT_ADD(live_nodes, 1)

    def __init__(self, owner, unsigned long long id, str address, str data_dir, fsm,
                 config):
        cdef NodeState *s = self.s
        cdef bytes addr = address.encode()
        cdef bytes path = os.fsencode(data_dir)
        s.id = id
        cr_copy(s.address, addr, ADDRESS_MAX)
        s.data_dir = <char *>calloc(len(path) + 1, 1)
        if s.data_dir == NULL:
            raise MemoryError()
        memcpy(s.data_dir, <char *>path, len(path))
        self._config = config
        s.next_tag = (<uint64_t>int.from_bytes(os.urandom(8), "little")) | 1
        self.fsm = fsm
        self.lane = lane_of(fsm)
        self._owner = owner
        self._observers = []
        self._event_observers = []
        self._future_type = _futures.Future
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
        raft.raft_configuration_close(&s.m_configuration)
        uv.uv_cond_destroy(&s.changed)
        uv.uv_mutex_destroy(&s.lock)
        free(s.data_dir)
        free(s.wakeups)
        if s.aio_batches != NULL:       # handed over before the thread ends
            Py_DecRef(s.aio_batches)
        if s.aio_wakers != NULL:
            Py_DecRef(s.aio_wakers)
        free_tls(s)
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
        if current_node() == self.s:
            raise RuntimeError(
                f"{what} cannot be called from the node's own raft thread "
                "(inside an FSM method or a callback): it would deadlock")
        return 0

    cdef object _refusal(self):
        """None if requests may be submitted now, else the exception that
        their futures fail with at once."""
        cdef NodeState *s = self.s
        if s.close_requested or s.m_phase >= PHASE_CLOSING:
            return raft_error(raft.RAFT_SHUTDOWN, WHY_CLOSED if s.m_phase >= PHASE_CLOSED
                              else WHY_CLOSING)
        if s.m_phase == PHASE_NEW:
            return raft_error(raft.RAFT_NOTLEADER, WHY_NOT_STARTED)
        if CR_LOAD(s.m_state) != raft.RAFT_LEADER:
            return raft_error(raft.RAFT_NOTLEADER, WHY_NOT_LEADER, self.leader)
        return None

    cdef inline FutureCore _new_future(self):
        # RUNNING already: cannot be cancelled. __new__: no __init__ to run.
        cdef FutureCore fut = FutureCore.__new__(self._future_type)
        fut.node_key = self.key         # its waiters must not be this raft thread
        return fut

    cdef object _failed_future(self, exc):
        fut = self._new_future()
        future_finish(fut, None, exc)
        return fut

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
            if forward_wanted(self.s, refusal):
                return forward_apply(self, command)
            return self._failed_future(refusal)
        fut = self._new_future()
        cdef Req *req = self._command_req(command, fut)
        if not push(self.s, req, req):
            fail_requests(self.s, req, raft.RAFT_SHUTDOWN)
        return fut

    def apply_many(self, commands):
        self._check_usable()
        commands = [c if PyObject_CheckBuffer(c) else _contiguous(c) for c in commands]
        refusal = self._refusal()
        if refusal is not None:
            if forward_wanted(self.s, refusal):
                return forward_apply_many(self, commands)
            return [self._failed_future(refusal) for _ in commands]
        futures = [self._new_future() for _ in range(len(commands))]
        self._push_commands(commands, futures)
        return futures

    cdef int _push_commands(self, list commands, list futures) except -1:
        """Submit bytes-like `commands` (contiguous), futures[i] for each."""
        cdef Py_ssize_t n = len(commands)
        if n == 0:
            return 0
        cdef Py_buffer *views = <Py_buffer *>calloc(n, sizeof(Py_buffer))
        if views == NULL:
            raise MemoryError()
        cdef Py_ssize_t i, got = 0
        cdef Req *first = NULL
        try:
            for i in range(n):
                _get_buffer(commands[i], &views[i])
                got += 1
            first = entries_req_new(self.s, views, futures, n)
        finally:
            for i in range(got):
                PyBuffer_Release(&views[i])
            free(views)
        cdef Req *last = first
        while last.next != NULL:
            last = last.next
        if not push(self.s, first, last):
            fail_requests(self.s, first, raft.RAFT_SHUTDOWN)
        return 0

    # -- asyncio: futures of the running event loop, settled there in
    # batches (asyncio.pxi) --------------------------------------------------

    async def apply_async(self, command):
        """apply(command) for asyncio: awaits its result (compiled: one
        coroutine layer fewer than a Python wrapper)."""
        return await self.apply_future(command)

    def apply_future(self, command):
        """An asyncio future of the running loop for apply(command)."""
        self._check_usable()
        fut = new_loop_future()
        refusal = self._refusal()
        if refusal is not None:
            memoryview(command)      # TypeError at once for non bytes-like
            if forward_wanted(self.s, refusal):
                return forward_apply(self, command, fut)
            fut.set_exception(refusal)
            return fut
        cdef Req *req = self._command_req(command, fut)
        if not push(self.s, req, req):
            fail_requests(self.s, req, raft.RAFT_SHUTDOWN)
        return fut

    def apply_many_async(self, commands, bint return_exceptions=False):
        """One asyncio future for a burst: the list of results, in order
        (with return_exceptions, failures in place; else the first failure)."""
        self._check_usable()
        commands = [c if PyObject_CheckBuffer(c) else _contiguous(c) for c in commands]
        fut = new_loop_future()
        refusal = self._refusal()
        if refusal is not None and commands and forward_wanted(self.s, refusal):
            for c in commands:
                too_big = forward_too_big(self.s, memoryview(c).nbytes)
                if too_big is not None:
                    fut.set_exception(too_big)
                    return fut
            forward_apply_many(self, commands, burst_slots(fut, len(commands),
                                                           return_exceptions))
            return fut
        if refusal is not None:
            if return_exceptions:       # one exception object each
                fut.set_result([refusal] + [self._refusal() or refusal for _ in commands[1:]])
            else:
                fut.set_exception(refusal)
            return fut
        if not commands:
            fut.set_result([])
            return fut
        self._push_commands(commands, burst_slots(fut, len(commands), return_exceptions))
        return fut

    def barrier_async(self):
        """An asyncio future of the running loop for barrier()."""
        return self._submit(REQ_BARRIER, 0, 0, 0, None, new_loop_future())

    def barrier(self):
        return self._submit(REQ_BARRIER, 0, 0, 0, None, None)

    def read_barrier(self):
        """reads.pxi: a future resolved once this node may serve a
        linearizable read (on any node, leader or follower)."""
        return read_barrier(self)

    def snapshot(self):
        """backup.pxi: a future resolved with the index of a snapshot
        written here that covers every entry applied here before the call."""
        return backup_request(self, REQ_SNAPSHOT, None)

    def backup(self, path):
        """backup.pxi: a future resolved with the index of the backup file
        written at `path` (str or bytes path)."""
        return backup_request(self, REQ_BACKUP, os.fsencode(path))

    def change(self, int op, unsigned long long target, int role=raft.RAFT_VOTER,
               address=None):
        """A configuration change; op is one of CHANGES (add, assign, remove)."""
        return self._submit(REQ_CHANGE, op, target, role, address, None)

    def transfer(self, unsigned long long target):
        return self._submit(REQ_TRANSFER, 0, target, 0, None, None)

    cdef object _submit(self, int kind, int op, raft.raft_id target, int role, address,
                        fut):
        """Submit a one-future request with `fut` (None: a new Future); the
        future fails at once if this node cannot take it."""
        self._check_usable()
        refusal = self._refusal()
        if fut is None:
            fut = self._new_future()
        if refusal is not None:
            fut.set_exception(refusal)
            return fut
        cdef Req *req = single_req_new(self.s, kind, fut)
        cdef bytes encoded
        req.change_op = op
        req.target = target
        req.role = role
        if address is not None:
            encoded = address.encode()
            req.address = <char *>calloc(len(encoded) + 1, 1)
            if req.address == NULL:
                fail_requests(self.s, req, raft.RAFT_NOMEM)
                raise MemoryError()
            memcpy(req.address, <char *>encoded, len(encoded))
        if not push(self.s, req, req):
            fail_requests(self.s, req, raft.RAFT_SHUTDOWN)
        return fut

    # -- lifecycle ------------------------------------------------------------

    def bootstrap(self, servers, bint recover=False):
        """Write the initial (or, recovering, a forced) configuration."""
        self._check_usable()
        if self.s.m_phase != PHASE_NEW:
            raise raft_error(raft.RAFT_BUSY, WHY_NOT_BEFORE_START)
        cdef raft.raft_configuration conf
        cdef char errmsg[ERROR_MAX]
        cdef int rv
        cdef int op = OP_RECOVER if recover else OP_BOOTSTRAP
        cdef bint auto_recovery = self._config.auto_recovery
        cdef bint lmdb = self._config.storage == "lmdb"
        errmsg[0] = 0
        raft.raft_configuration_init(&conf)
        try:
            for server in servers:
                address = server.address.encode()
                rv = raft.raft_configuration_add(&conf, server.id, address, int(server.role))
                if rv != 0:
                    raise ValueError(f"bad server {server!r}: {raft.raft_strerror(rv).decode()}")
            with nogil:
                if lmdb:                # raft_io.pxi: straight to the store
                    rv = lmdb_offline(op, self.s.data_dir, &conf, errmsg)
                else:
                    rv = run_offline(op, self.s.data_dir, self.s.id, self.s.address,
                                     &conf, auto_recovery, errmsg)
        finally:
            raft.raft_configuration_close(&conf)
        if rv != 0:
            raise _errors.error_for(rv, (errmsg.decode(errors="replace")
                                         or raft.raft_strerror(rv).decode()))

    def start(self):
        self._check_usable()
        cdef NodeState *s = self.s
        if s.m_phase != PHASE_NEW or s.close_requested:
            raise raft_error(raft.RAFT_BUSY, WHY_STARTED)
        s.trace = trace_log.isEnabledFor(logging.DEBUG)
        s.trace_stderr = "LIBRAFT_TRACE" in os.environ
        s.phase = PHASE_STARTING
        s.m_phase = PHASE_STARTING
        Py_INCREF(self)                 # the raft thread's reference
        cdef int rv = uv.uv_thread_create(&s.thread, thread_main, s)
        if rv != 0:
            Py_DECREF(self)
            s.phase = s.m_phase = PHASE_CLOSED
            raise OSError(-rv, uv.uv_strerror(rv).decode())
        s.thread_joinable = True
        self._wait_phase_beyond(PHASE_STARTING)
        if s.m_phase == PHASE_FAILED:
            self._join()
            error = self._start_error
            self._start_error = None
            if error is None:
                code = s.start_code or raft.RAFT_IOERR      # libraft's own, if it said
                error = (_errors.error_for(code, s.m_error.decode(errors="replace"))
                         if s.m_error[0] else raft_error(code, WHY_START_FAILED))
            raise error

    cdef int _wait_phase_beyond(self, int phase) except -1:
        cdef NodeState *s = self.s
        while True:
            with nogil:
                uv.uv_mutex_lock(&s.lock)
                if s.m_phase <= phase:
                    uv.uv_cond_timedwait(&s.changed, &s.lock, 100000000)
                uv.uv_mutex_unlock(&s.lock)
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
            uv.uv_thread_join(&s.thread)
        s.thread_joinable = False
        # Fail whatever was queued after the loop's last drain.
        cdef bint closing = True
        fail_requests(s, take_queue(s, &closing), raft.RAFT_SHUTDOWN)
        fail_requests(s, take_local(s), raft.RAFT_SHUTDOWN)
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
        uv.uv_mutex_lock(&s.lock)
        if s.accepting and not s.close_requested:
            s.close_requested = True
            self._self_release = True
            uv.uv_async_send(&s.wakeup)
        uv.uv_mutex_unlock(&s.lock)

    cdef int _close_now(self) except -1:
        cdef NodeState *s = self.s
        uv.uv_mutex_lock(&s.lock)
        s.close_requested = True
        if s.accepting:
            uv.uv_async_send(&s.wakeup)
        if s.m_phase == PHASE_NEW:
            s.phase = s.m_phase = PHASE_CLOSED
        uv.uv_mutex_unlock(&s.lock)
        self._join()
        self.fsm = None
        self.lane = None
        self._observers = []
        self._event_observers = []
        CR_STORE(self.s.ev.watching, 0)
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
            deadline = uv.uv_hrtime() + <unsigned long long>(max(timeout, 0) * 1e9)
        while True:
            with nogil:
                uv.uv_mutex_lock(&s.lock)
                if s.m_leader_id == 0 and s.m_phase == PHASE_RUNNING:
                    uv.uv_cond_timedwait(&s.changed, &s.lock, 50000000)
                found = s.m_leader_id != 0
                uv.uv_mutex_unlock(&s.lock)
            if found:
                leader = self.leader
                if leader is not None:
                    return leader
            if s.m_phase != PHASE_RUNNING and s.m_phase != PHASE_STARTING:
                raise raft_error(raft.RAFT_SHUTDOWN, WHY_NOT_RUNNING)
            PyErr_CheckSignals()
            now = uv.uv_hrtime()
            if deadline and now >= deadline:
                raise TimeoutError(f"no leader known after {timeout} s")

    # -- status ---------------------------------------------------------------

    @property
    def state(self):
        self._check_usable()
        return _types.State(CR_LOAD(self.s.m_state))

    # The readers below copy the mirror into C locals under the lock and
    # build Python objects after unlocking: Python code (even an allocation,
    # which can run the garbage collector) may let the GIL go, and the raft
    # thread may hold the GIL while it waits for this lock.

    @property
    def leader(self):
        self._check_usable()
        cdef NodeState *s = self.s
        cdef char address[ADDRESS_MAX]
        cdef int role = raft.RAFT_VOTER
        cdef unsigned i
        uv.uv_mutex_lock(&s.lock)
        cdef raft.raft_id id = s.m_leader_id
        memcpy(address, s.m_leader_address, ADDRESS_MAX)
        for i in range(s.m_configuration.n):
            if s.m_configuration.servers[i].id == id:
                role = s.m_configuration.servers[i].role
        uv.uv_mutex_unlock(&s.lock)
        if id == 0:
            return None
        return _types.Server(id, address.decode(errors="replace"), _types.Role(role))

    @property
    def configuration(self):
        self._check_usable()
        cdef NodeState *s = self.s
        cdef raft.raft_configuration conf
        cdef unsigned i
        cdef int rv = 0
        raft.raft_configuration_init(&conf)
        uv.uv_mutex_lock(&s.lock)
        for i in range(s.m_configuration.n):
            rv = raft.raft_configuration_add(&conf, s.m_configuration.servers[i].id,
                                        s.m_configuration.servers[i].address,
                                        s.m_configuration.servers[i].role)
            if rv != 0:
                break
        uv.uv_mutex_unlock(&s.lock)
        try:
            if rv != 0:
                raise MemoryError()
            return [_types.Server(conf.servers[i].id,
                                  conf.servers[i].address.decode(errors="replace"),
                                  _types.Role(conf.servers[i].role))
                    for i in range(conf.n)]
        finally:
            raft.raft_configuration_close(&conf)

    def stats(self):
        self._check_usable()
        cdef NodeState *s = self.s
        cdef char error[ERROR_MAX]
        cdef unsigned i, voters = 0
        uv.uv_mutex_lock(&s.lock)
        cdef int state = s.m_state
        cdef raft.raft_term term = s.m_term
        cdef raft.raft_id leader_id = s.m_leader_id
        cdef raft.raft_index commit_index = s.m_commit_index
        cdef raft.raft_index last_applied = s.m_last_applied
        cdef raft.raft_index last_index = s.m_last_index
        cdef raft.raft_index snapshot_index = s.m_snapshot_index
        cdef unsigned servers = s.m_configuration.n
        cdef unsigned pending = s.m_pending
        cdef unsigned log_capacity = s.m_log_capacity
        cdef unsigned long long contact = s.m_leader_contact
        for i in range(servers):
            if s.m_configuration.servers[i].role == raft.RAFT_VOTER:
                voters += 1
        memcpy(error, s.m_error, ERROR_MAX)
        uv.uv_mutex_unlock(&s.lock)
        return {
            "state": _types.State(state),
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
            "last_contact": (0.0 if state == raft.RAFT_LEADER else
                             (uv.uv_hrtime() - contact) / 1e9 if contact else None),
            "refused": refused_counts(s),     # peer connections dropped, by reason
            "forwarding": forward_stats(s),   # forward.pxi's counters
        }

    def load_tls(self, tls):
        """Use raft.TLS ``tls`` for new peer connections (transport.pxi);
        a node started without TLS cannot switch to it while running."""
        self._check_usable()
        cdef NodeState *s = self.s
        if s.m_phase != PHASE_NEW and s.m_phase != PHASE_CLOSED and not s.pt.tls:
            raise RuntimeError("this node was started without tls: restart it with tls= "
                               "to use TLS")
        load_tls(s, tls)

    def set_bind(self, address):
        """Listen on ``address`` (a checked "host:port" str); before start()."""
        self._check_usable()
        if self.s.m_phase != PHASE_NEW:
            raise RuntimeError("the bind address is set before start()")
        transport_set_bind(self.s, address.encode())

    def add_observer(self, fn):
        self._observers.append(fn)

    def add_event_observer(self, fn):
        """Call fn(event) for every canonical_raft.events.Event (events.pxi)."""
        self._event_observers.append(fn)
        if len(self._event_observers) == 1:
            # Nobody watched: diff from what is now, not from when the
            # last observer left (the raft thread sees this before watching).
            self.s.ev.baseline = False
        CR_STORE(self.s.ev.watching, len(self._event_observers))

    def remove_event_observer(self, fn):
        """Unregister fn (once per add_event_observer); True if it was there."""
        for i, each in enumerate(self._event_observers):
            if each is fn:
                del self._event_observers[i]
                CR_STORE(self.s.ev.watching, len(self._event_observers))
                return True
        return False

    def remove_observer(self, fn):
        """Unregister fn (added once per add_observer); True if it was there.
        Observers run from a copy of the list, so this is safe from one."""
        for i, each in enumerate(self._observers):
            if each is fn:
                del self._observers[i]
                return True
        return False
