# libraft's tracer, routed to the logging logger canonical_raft.libraft.
#
# Installed only when that logger is enabled for DEBUG when the node starts;
# otherwise the tracer is NULL, which makes libraft skip even formatting its
# messages (its default tracer formats every one, then checks an env var).
# Set LIBRAFT_TRACE to keep libraft's own stderr tracer instead.

trace_log = logging.getLogger("canonical_raft.libraft")
_TRACE_LEVELS = {1: "ERROR", 2: "WARNING", 3: "INFO", 4: "DEBUG", 5: "TRACE"}


cdef void tracer_configure(NodeState *s) noexcept nogil:
    if s.trace:
        s.tracer.impl = s
        s.tracer.version = 2
        s.tracer.emit = trace_emit
        s.raft.tracer = &s.tracer
        if not s.own_io:
            raft.raft_uv_set_tracer(&s.io, &s.tracer)
    elif not s.trace_stderr:
        s.raft.tracer = NULL
        if not s.own_io:
            raft.raft_uv_set_tracer(&s.io, NULL)


cdef void trace_emit(raft.raft_tracer *t, int type, const void *info) noexcept nogil:
    if type != raft.RAFT_TRACER_DIAGNOSTIC:
        return
    # libraft formats into a static buffer: copy it before taking the GIL.
    cdef char message[1024]
    cr_copy(message, cr_trace_message(info), sizeof(message))
    trace_write(<NodeState *>t.impl, cr_trace_level(info), message,
                cr_trace_file(info), cr_trace_line(info))


cdef void trace_write(NodeState *s, int level, const char *message,
                      const char *file, int line) noexcept with gil:
    # Any thread: libraft may trace from libuv's pool too.
    try:
        trace_log.debug("node %d %s %s:%d %s", s.id, _TRACE_LEVELS.get(level, level),
                        file.decode(errors="replace"), line,
                        message.decode(errors="replace"))
    except BaseException:
        pass
