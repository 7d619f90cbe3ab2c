# A node's futures, their C half: the state of canonical_raft.Future
# (futures.py adds concurrent.futures.Future as the second base), and how
# the raft thread settles one.
#
# Every change of state is a few C stores made while holding the GIL with
# no Python code in between, so each is atomic for every other thread: no
# lock of our own. Whatever may run Python code (making a Condition, a
# Wakeup or a list) is done before such a section, never inside it.
#
# What stays lazy: the Condition (only for a second waiter, wait() or
# as_completed()), the callback list and wait()'s list of waiters. A
# future that is resolved before anybody looks at it, or that has done
# callbacks, or one thread waiting, needs none of them.

from concurrent.futures import _base as _cf

# concurrent.futures' own state objects (tests/test_futures_internals.py
# checks that the running CPython still has them).
cdef object RUNNING = _cf.RUNNING
cdef object FINISHED = _cf.FINISHED
cdef object CANCELLED = _cf.CANCELLED
cdef object CANCELLED_AND_NOTIFIED = _cf.CANCELLED_AND_NOTIFIED


cdef class FutureCore:
    """The state of one future and every operation on it (futures.Future
    is this plus the concurrent.futures.Future base class)."""
    # The base class's methods and concurrent.futures.wait() read these by
    # name; our own code reads the C fields.
    cdef public object _state
    cdef public object _result
    cdef public object _exception
    cdef readonly object _cond          # a threading.Condition, made on first use
    cdef readonly Wakeup _wakeup        # the lone waiter's, if one waits
    cdef list callbacks                 # add_done_callback()'s, made on first use
    cdef list waiters                   # wait()/as_completed()'s, made on first use
    cdef unsigned long long node_key    # the node whose raft thread must not wait

    def __cinit__(self):
        self._state = RUNNING

    cdef inline bint is_done(self) noexcept:
        return self._state is FINISHED or self._state is CANCELLED or \
            self._state is CANCELLED_AND_NOTIFIED

    # -- what the base class and concurrent.futures.wait() use -------------

    @property
    def _condition(self):
        cdef object cond
        if self._cond is None:
            cond = threading.Condition()
            if self._cond is None:
                self._cond = cond
        return self._cond

    @property
    def _waiters(self):
        cdef list made
        if self.waiters is None:
            made = []
            if self.waiters is None:
                self.waiters = made
        return self.waiters

    @property
    def _done_callbacks(self):
        cdef list made
        if self.callbacks is None:
            made = []
            if self.callbacks is None:
                self.callbacks = made
        return self.callbacks

    # -- the public methods --------------------------------------------------

    def done(self):
        return self.is_done()

    def running(self):
        return self._state is RUNNING

    def cancelled(self):
        return self._state is CANCELLED or self._state is CANCELLED_AND_NOTIFIED

    def cancel(self):
        """False: a submitted command cannot be taken back."""
        return False

    def add_done_callback(self, fn):
        """Call ``fn(future)`` once it is done (at once if it is): on the raft
        thread for a node's future, so it must not block."""
        cdef list made
        if not self.is_done():
            if self.callbacks is None:
                made = []
                if self.callbacks is None:
                    self.callbacks = made
            if not self.is_done():
                self.callbacks.append(fn)       # atomic with the check above
                return
        call_done_callback(self, fn)

    def set_result(self, result):
        if not future_finish(self, result, None):
            raise InvalidStateError(f"{self!r} is already done")

    def set_exception(self, exception):
        if not future_finish(self, None, exception):
            raise InvalidStateError(f"{self!r} is already done")

    def result(self, timeout=None):
        if self._state is not FINISHED:
            self.wait_done(timeout)
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self, timeout=None):
        if self._state is not FINISHED:
            self.wait_done(timeout)
        return self._exception

    cdef int wait_done(self, timeout) except -1:
        """Return once done (TimeoutError after `timeout`; CancelledError if
        cancelled). The first waiter sleeps on a Wakeup, the others on the
        Condition."""
        cdef Wakeup wakeup
        cdef NodeState *s
        if not self.is_done():
            s = current_node()
            if s != NULL and s.key == self.node_key:
                raise RuntimeError(
                    "cannot wait for a pending future of a node from its own raft "
                    "thread (inside an FSM method or a callback): it would deadlock")
            if self._wakeup is None and self._cond is None:
                wakeup = Wakeup()
                if self.is_done():
                    return 0
                if self._wakeup is None and self._cond is None:
                    self._wakeup = wakeup       # atomic with the checks above
                    if not wakeup.wait(timeout):
                        raise TimeoutError()
                    return 0
            cond = self._condition
            with cond:
                if not self.is_done():
                    cond.wait(timeout)
                if not self.is_done():
                    raise TimeoutError()
        if self._state is not FINISHED:
            raise _cf.CancelledError()
        return 0


cdef bint future_finish(FutureCore f, object result, object exc) except -1:
    """Resolve `f` with `result`, or with `exc` if that is not None; False
    if it was done already. Wakes its waiters (from the raft thread once
    it drops the GIL) and runs its callbacks, each on its own."""
    cdef object cond = f._cond
    cdef list waiters
    if f.is_done():
        return False
    if cond is None:
        f._result = result          # atomic: nobody can wait on a Condition
        f._exception = exc
        f._state = FINISHED
    else:
        with cond:
            if f.is_done():
                return False
            f._result = result
            f._exception = exc
            f._state = FINISHED
            waiters = f.waiters
            if waiters:
                for waiter in list(waiters):
                    if exc is None:
                        waiter.add_result(f)
                    else:
                        waiter.add_exception(f)
            cond.notify_all()
    if f._wakeup is not None:
        f._wakeup.set()
    if f.callbacks:                 # nobody adds to it once the future is done
        for fn in f.callbacks:
            call_done_callback(f, fn)
    return True


cdef void call_done_callback(FutureCore f, fn) noexcept:
    """One callback; if it raises, log it and go on with the others."""
    try:
        fn(f)
    except BaseException as exc:
        log.error("a done callback of %r raised %r", f, exc, exc_info=exc)


# -- settling the futures of a request (with the GIL; a future may be done) --

cdef void resolve_future(NodeState *s, fut, value) noexcept:
    settle(s, fut, value, None)


cdef void fail_future(NodeState *s, fut, exc) noexcept:
    settle(s, fut, None, exc)


cdef void settle(NodeState *s, fut, value, exc) noexcept:
    """A request's future, whatever kind: a node's Future, a slot of an
    apply_many_async() burst, or an asyncio future (asyncio.pxi)."""
    try:
        if isinstance(fut, FutureCore):
            future_finish(<FutureCore>fut, value, exc)
        elif type(fut) is _BurstSlot:
            (<_BurstSlot>fut).settle(s, value, exc)
        else:
            aio_settle(s, fut, value, exc)
    except BaseException as exc2:
        log.error("node %d: settling a future raised %r", s.id, exc2)
