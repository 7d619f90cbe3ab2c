# Completions for asyncio, in batches: the asyncio futures the raft thread
# settles in one loop iteration reach their event loop with one wake-up,
# and that loop settles them all in one callback, in log order. Settling
# there skips a future whose awaiting task was cancelled (the command
# itself still runs); a closed loop's batch is dropped, since nobody can
# await its futures any more.
#
# The wake-up: a selector event loop (asyncio's default on Unix) gets an
# eventfd of its own (a _LoopWaker, made on the loop's thread by the first
# *_async call there and kept as an attribute of the loop, so that it goes
# with it). The raft thread appends the batch to the waker with the GIL and
# writes the eventfd only once it has dropped the GIL: the loop wakes to a
# free GIL, and the raft thread never lets the GIL go halfway through its
# iteration, as call_soon_threadsafe's write to the loop's self-pipe does
# (and the loop then holds it for up to the switch interval). Any other
# loop gets one call_soon_threadsafe per batch.

from asyncio import get_running_loop as _get_running_loop
from asyncio.selector_events import BaseSelectorEventLoop as _SelectorLoop

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    int EFD_NONBLOCK
    int EFD_CLOEXEC

cdef extern from "<unistd.h>" nogil:
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)
    int close(int fd)

cdef str WAKER_ATTRIBUTE = "_canonical_raft_waker"


cdef class _LoopWaker:
    """One event loop's wake-up: an eventfd that the loop watches, and the
    results handed to it and not yet settled."""
    cdef int fd
    cdef list items             # (future, result, exception), in order
    cdef bint signaled          # the eventfd is written or about to be

    def __cinit__(self):
        self.fd = -1
        self.items = []

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)

    def _run(self):
        """On the loop: settle everything handed over so far."""
        cdef uint64_t count
        self.signaled = False           # then take the items: see hand_over_to
        read(self.fd, &count, sizeof(count))
        items = self.items
        self.items = []
        _settle_batch(items)


cdef object loop_waker(loop):
    """The running `loop`'s waker, made now if it has none (on the loop's
    thread); None for a loop that cannot watch an eventfd of ours."""
    waker = getattr(loop, WAKER_ATTRIBUTE, None)
    if waker is not None or not isinstance(loop, _SelectorLoop):
        return waker
    cdef _LoopWaker made = _LoopWaker.__new__(_LoopWaker)
    made.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
    if made.fd < 0:
        return None
    try:
        loop.add_reader(made.fd, made._run)
    except BaseException:
        return None                     # made's __dealloc__ closes the fd
    setattr(loop, WAKER_ATTRIBUTE, made)
    return made


cdef object new_loop_future():
    """A future of the running loop, whose waker exists from now on."""
    loop = _get_running_loop()
    loop_waker(loop)
    return loop.create_future()


cdef void aio_settle(NodeState *s, fut, value, exc) except *:
    """Queue asyncio future `fut` for its loop: at the end of this loop
    iteration on the raft thread, at once from any other thread."""
    loop = fut.get_loop()
    if current_node() != s or not s.gil_held:
        hand_over(loop, [(fut, value, exc)])
        return
    cdef dict batches
    if s.aio_batches == NULL:
        batches = {}
        Py_INCREF(batches)
        s.aio_batches = <PyObject *>batches
    else:
        batches = <dict>s.aio_batches
    items = batches.get(loop)
    if items is None:
        batches[loop] = [(fut, value, exc)]
    else:
        (<list>items).append((fut, value, exc))


cdef void aio_hand_over(NodeState *s) noexcept with gil:
    """Each event loop's batch of this iteration, with one wake-up each
    (an eventfd's: written by drop_gil, once the GIL is dropped)."""
    cdef dict batches = <dict>s.aio_batches
    cdef _LoopWaker waker
    cdef list signaled
    s.aio_batches = NULL
    Py_DECREF(batches)              # `batches` holds its own reference
    for loop, items in batches.items():
        waker = getattr(loop, WAKER_ATTRIBUTE, None)
        if waker is None or s.n_aio_fds == AIO_FDS_MAX or loop.is_closed():
            hand_over(loop, items)
            continue
        waker.items.extend(items)           # atomic with the check below
        if waker.signaled:
            continue                        # the loop has not run it yet
        waker.signaled = True
        if s.aio_wakers == NULL:            # their fds stay open until then
            signaled = []
            Py_INCREF(signaled)
            s.aio_wakers = <PyObject *>signaled
        (<list>s.aio_wakers).append(waker)
        s.aio_fds[s.n_aio_fds] = waker.fd
        s.n_aio_fds += 1


cdef void forget_aio_wakers(NodeState *s) noexcept nogil:
    """Drop the references that kept the eventfds drop_gil wrote open
    (with the GIL: the next hold_gil)."""
    Py_DecRef(s.aio_wakers)
    s.aio_wakers = NULL


cdef inline void signal_eventfd(int fd) noexcept nogil:
    cdef uint64_t one = 1
    write(fd, &one, sizeof(one))


cdef void hand_over(loop, list items) noexcept:
    try:
        loop.call_soon_threadsafe(_settle_batch, items)
    except RuntimeError:
        pass                        # the loop is closed: nobody awaits these
    except BaseException as exc:
        log.error("handing results to event loop %r raised %r", loop, exc)


def _settle_batch(list items):
    """On the event loop: settle a batch of its futures."""
    for fut, value, exc in items:
        if fut.done():
            continue                # cancelled while it waited
        try:
            if exc is None:
                fut.set_result(value)
            else:
                fut.set_exception(exc)
        except BaseException as exc2:
            # e.g. FSM.apply raised StopIteration, which asyncio refuses
            fut.set_exception(RuntimeError(f"FSM.apply raised {exc!r}"))
            log.debug("settling %r with %r raised %r", fut, exc, exc2)


# -- apply_many_async(): one asyncio future for a burst of commands --------------

cdef class _Burst:
    """Collects the results of a burst's commands; settles its asyncio
    future (with the list, or the first failure) once all are in."""
    cdef object future
    cdef list results
    cdef Py_ssize_t left
    cdef Py_ssize_t failed_at       # smallest failed index, -1: none
    cdef bint return_exceptions

    def __cinit__(self, future, Py_ssize_t n, bint return_exceptions):
        self.future = future
        self.results = [None] * n
        self.left = n
        self.failed_at = -1
        self.return_exceptions = return_exceptions


cdef class _BurstSlot:
    """One command's place in a _Burst: what a request holds as its future."""
    cdef _Burst burst
    cdef Py_ssize_t index
    cdef bint done

    cdef void settle(self, NodeState *s, value, exc) except *:
        if self.done:
            return
        self.done = True
        cdef _Burst b = self.burst
        if exc is not None:
            b.results[self.index] = exc
            if b.failed_at < 0 or self.index < b.failed_at:
                b.failed_at = self.index
        else:
            b.results[self.index] = value
        b.left -= 1
        if b.left == 0:
            if b.failed_at >= 0 and not b.return_exceptions:
                settle(s, b.future, None, b.results[b.failed_at])
            else:
                settle(s, b.future, b.results, None)


cdef list burst_slots(object future, Py_ssize_t n, bint return_exceptions):
    cdef _Burst burst = _Burst(future, n, return_exceptions)
    cdef _BurstSlot slot
    cdef list slots = []
    cdef Py_ssize_t i
    for i in range(n):
        slot = _BurstSlot.__new__(_BurstSlot)
        slot.burst = burst
        slot.index = i
        slots.append(slot)
    return slots
