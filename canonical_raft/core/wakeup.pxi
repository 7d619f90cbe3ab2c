# Waking a thread blocked in Future.result() without handing it a GIL that
# the raft thread still holds.
#
# The raft thread resolves futures with the GIL and keeps it until the end
# of its loop iteration (status.pxi). A waiter woken at once would run, find
# the GIL taken, and sleep again until on_prepare lets it go: two extra
# context switches per blocking apply().result(). So a future's one direct
# waiter sleeps on a Wakeup instead of a Condition, and when the raft
# thread sets it, the lock is released only after the raft thread has
# dropped the GIL (drop_gil). Anywhere else (another thread, or the raft
# thread inside a plain `with gil` section) it is released at once.

cdef enum:
    TIMEOUT_MAX = 1000000000    # seconds; longer is forever (and fits the C call)


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
        cdef NodeState *s = <NodeState *>cr_current_node()
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
