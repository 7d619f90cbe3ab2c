# A WARNING when an FSM method holds the raft thread too long. While
# apply(), snapshot() or restore() runs, the node sends no heartbeats and
# answers no votes: past the election timeout the followers elect another
# leader. A quarter of it is the limit (configure() sets it); the line names
# the method and what to do, once per method per LOG_EVERY_NS.

cdef enum:
    HELD_APPLY = 0
    HELD_SNAPSHOT = 1
    HELD_RESTORE = 2

DEF LOG_EVERY_NS = 5 * 1000 * 1000 * 1000

cdef object _HELD_ADVICE = (
    ("apply", "keep apply() short: hand slow work to another thread"),
    ("snapshot", "return a cheap copy from snapshot() and serialise it in its "
                 "persist(), which runs off the raft thread (docs/howto/snapshots.md)"),
    ("restore", "make restore() cheaper, or snapshots smaller (docs/howto/snapshots.md)"),
)


cdef inline void check_held(NodeState *s, int method, unsigned long long began) noexcept nogil:
    """After an FSM method that began at uv_hrtime() `began`."""
    cdef unsigned long long held = uv.uv_hrtime() - began
    if held > s.held.limit_ns and s.held.limit_ns:
        warn_held(s, method, held)


cdef void warn_held(NodeState *s, int method, unsigned long long held) noexcept with gil:
    cdef unsigned long long now = uv.uv_hrtime()
    s.held.count[method] += 1
    if s.held.logged_at[method] and now - s.held.logged_at[method] < LOG_EVERY_NS:
        s.held.suppressed[method] += 1
        return
    more = (f" ({s.held.suppressed[method]} more not logged)"
            if s.held.suppressed[method] else "")
    s.held.logged_at[method] = now
    s.held.suppressed[method] = 0
    name, advice = _HELD_ADVICE[method]
    try:
        log.warning("node %d: FSM.%s() held the raft thread for %.0f ms, more than a "
                    "quarter of the election timeout (%.0f ms): meanwhile the node sends "
                    "no heartbeats and may lose its leadership; %s%s", s.id, name,
                    held / 1e6, s.held.limit_ns * 4 / 1e6, advice, more)
    except BaseException:
        pass


def held_counts(Core core):
    """{method: times it held the raft thread past the limit} (tests, stats)."""
    cdef NodeState *s = core.s
    return {name: s.held.count[i] for i, (name, _) in enumerate(_HELD_ADVICE)}
