# Completions for asyncio, in batches: the asyncio futures the raft thread
# settles in one loop iteration reach their event loop with one wake-up
# (one call_soon_threadsafe per event loop, made just before the raft
# thread drops the GIL), and that loop settles them all in one callback,
# in log order. Settling there skips a future whose awaiting task was
# cancelled (the command itself still runs); a closed loop's batch is
# dropped, since nobody can await its futures any more.

from asyncio import get_running_loop as _get_running_loop


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
    """Each event loop's batch of this iteration, with one wake-up each."""
    cdef dict batches = <dict>s.aio_batches
    s.aio_batches = NULL
    Py_DECREF(batches)              # `batches` holds its own reference
    for loop, items in batches.items():
        hand_over(loop, items)


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
