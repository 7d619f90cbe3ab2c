# The raft thread's hold on the GIL, and waking the threads that wait on
# its futures.
#
# The GIL is taken lazily, at the first Python work of a loop iteration
# (hold_gil), kept for the rest of it, and let go in on_prepare, the last
# callback before the loop blocks (drop_gil).
#
# Waking a thread blocked in Future.result() must not hand it a GIL that
# the raft thread still holds: a waiter woken at once would run, find the
# GIL taken, and sleep again until on_prepare lets it go: two extra context
# switches per blocking apply().result(). So a future's one direct waiter
# sleeps on a Wakeup instead of a Condition, and when the raft thread sets
# it, the lock is released only after the raft thread has dropped the GIL
# (drop_gil). Anywhere else (another thread, or the raft thread inside a
# plain `with gil` section) it is released at once. Event loops waiting for
# asyncio futures get their batch just before the drop and their wake-up
# just after it (asyncio.pxi).

cdef enum:
    TIMEOUT_MAX = 1000000000    # seconds; longer is forever (and fits the C call)


cdef inline NodeState *current_node() noexcept nogil:
    """The node whose raft thread is calling, or NULL on any other thread:
    the one answer to "am I on a raft thread?" (thread_main sets it for the
    thread's whole life, so a reused thread ident cannot fool it)."""
    return <NodeState *>cr_current_node()


cdef inline void hold_gil(NodeState *s) noexcept nogil:
    """Take the GIL for the rest of this loop iteration (see on_prepare)."""
    if not s.gil_held:
        PyEval_RestoreThread(s.tstate)
        s.gil_held = True
        if s.n_wakeups:
            forget_wakeups(s)
        if s.aio_wakers != NULL:
            forget_aio_wakers(s)      # asyncio.pxi


cdef inline void drop_gil(NodeState *s) noexcept nogil:
    """Let the GIL go, then wake the waiters of the futures resolved while
    it was held: they find it free."""
    cdef unsigned i
    if s.gil_held:
        if s.aio_batches != NULL:
            aio_hand_over(s)        # asyncio.pxi: one wake-up per event loop
        s.gil_held = False
        s.tstate = PyEval_SaveThread()
        for i in range(s.n_aio_fds):
            signal_eventfd(s.aio_fds[i])
        s.n_aio_fds = 0
        for i in range(s.n_wakeups):
            PyThread_release_lock(s.wakeups[i].lock)


cdef void forget_wakeups(NodeState *s) noexcept nogil:
    """Drop the references to the waiters drop_gil released (with the
    GIL: the next hold_gil, or the end of the thread)."""
    cdef unsigned i
    for i in range(s.n_wakeups):
        Py_DecRef(s.wakeups[i].obj)
    s.n_wakeups = 0


cdef class Wakeup:
    """A one-shot event for one waiting thread."""
    cdef PyThread_type_lock lock
    cdef bint is_set         # set() was called (with the GIL)
    cdef bint taken          # wait() acquired the lock: it is held

    def __cinit__(self):
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()
        PyThread_acquire_lock(self.lock, 1)     # held until set()
        CR_COUNT_ADD(live_wakeups, 1)

    def __dealloc__(self):
        if self.lock != NULL:
            if self.taken or not self.is_set:
                PyThread_release_lock(self.lock)    # free it unlocked
            PyThread_free_lock(self.lock)
            CR_COUNT_ADD(live_wakeups, -1)

    def wait(self, timeout=None):
        """Block until set(), at most `timeout` seconds (None: no limit);
        True if set. Signal handlers run meanwhile, as in Lock.acquire()."""
        cdef long long micros = -1
        cdef double deadline = 0.0
        cdef PyLockStatus r
        if self.taken:
            return True
        if timeout is not None and timeout > TIMEOUT_MAX:
            timeout = None              # as good as forever
        if timeout is not None:
            if timeout < 0:
                timeout = 0
            deadline = monotonic() + timeout
        while True:
            if timeout is not None:
                micros = <long long>(max(deadline - monotonic(), 0.0) * 1e6)
            with nogil:
                r = PyThread_acquire_lock_timed(self.lock, micros, 1)
            if r == PY_LOCK_ACQUIRED:
                self.taken = True
                return True
            if r == PY_LOCK_FAILURE:
                return False
            PyErr_CheckSignals()        # PY_LOCK_INTR: a signal came in

    def set(self):
        """Wake the waiter; from the raft thread, once it lets the GIL go."""
        if self.is_set:
            return
        self.is_set = True
        cdef NodeState *s = current_node()
        if s == NULL or not s.gil_held or not defer_wakeup(s, self):
            PyThread_release_lock(self.lock)


cdef bint defer_wakeup(NodeState *s, Wakeup w) noexcept:
    """Queue w for release when the raft thread drops the GIL; False if
    there is no memory for that (then the caller releases it at once)."""
    cdef unsigned cap
    cdef WakeupRef *items
    if s.n_wakeups == s.cap_wakeups:
        cap = s.cap_wakeups * 2 if s.cap_wakeups else 16
        items = <WakeupRef *>realloc(s.wakeups, cap * sizeof(WakeupRef))
        if items == NULL:
            return False
        s.wakeups = items
        s.cap_wakeups = cap
    Py_INCREF(w)
    s.wakeups[s.n_wakeups].obj = <PyObject *>w
    s.wakeups[s.n_wakeups].lock = w.lock
    s.n_wakeups += 1
    return True
