# A raft_uv_transport that delegates to libraft's TCP transport and sets
# TCP_NODELAY on every connection: libraft never does, and Nagle's algorithm
# plus delayed ACKs then stall small appends for up to 40 ms.
#
# NodeState.transport is this wrapper (what raft_uv_init gets);
# NodeState.tcp is libraft's TCP transport inside it.

cdef struct Connect:
    raft.raft_uv_connect inner
    raft.raft_uv_connect *outer
    NodeState *node


cdef inline void copy_errmsg(NodeState *s) noexcept nogil:
    cr_copy(s.transport.errmsg, s.tcp.errmsg, sizeof(s.transport.errmsg))


cdef inline void set_nodelay(NodeState *s, uv.uv_stream_t *stream) noexcept nogil:
    if s.tcp_nodelay and stream != NULL:
        uv.uv_tcp_nodelay(<uv.uv_tcp_t *>stream, 1)


cdef int transport_init(NodeState *s) noexcept nogil:
    s.tcp.version = 1
    cdef int rv = raft.raft_uv_tcp_init(&s.tcp, &s.loop)
    if rv != 0:
        return rv
    s.tcp.data = s
    s.transport.version = 1
    s.transport.impl = s
    s.transport.init = tr_init
    s.transport.listen = tr_listen
    s.transport.connect = tr_connect
    s.transport.close = tr_close
    return 0


cdef int tr_init(raft.raft_uv_transport *t, raft.raft_id id, const char *address) noexcept nogil:
    cdef NodeState *s = <NodeState *>t.impl
    cdef int rv = s.tcp.init(&s.tcp, id, address)
    if rv != 0:
        copy_errmsg(s)
    return rv


cdef int tr_listen(raft.raft_uv_transport *t, raft.raft_uv_accept_cb cb) noexcept nogil:
    cdef NodeState *s = <NodeState *>t.impl
    s.accept_cb = cb
    cdef int rv = s.tcp.listen(&s.tcp, tr_accepted)
    if rv != 0:
        copy_errmsg(s)
    return rv


cdef void tr_accepted(raft.raft_uv_transport *tcp, raft.raft_id id, const char *address,
                      uv.uv_stream_t *stream) noexcept nogil:
    cdef NodeState *s = <NodeState *>tcp.data
    set_nodelay(s, stream)
    s.accept_cb(&s.transport, id, address, stream)


cdef int tr_connect(raft.raft_uv_transport *t, raft.raft_uv_connect *req, raft.raft_id id,
                    const char *address, raft.raft_uv_connect_cb cb) noexcept nogil:
    cdef NodeState *s = <NodeState *>t.impl
    cdef Connect *c = <Connect *>calloc(1, sizeof(Connect))
    if c == NULL:
        return raft.RAFT_NOMEM
    req.cb = cb
    c.outer = req
    c.node = s
    c.inner.data = c
    cdef int rv = s.tcp.connect(&s.tcp, &c.inner, id, address, tr_connected)
    if rv != 0:
        copy_errmsg(s)
        free(c)
    return rv


cdef void tr_connected(raft.raft_uv_connect *inner, uv.uv_stream_t *stream, int status) noexcept nogil:
    cdef Connect *c = <Connect *>inner.data
    cdef raft.raft_uv_connect *outer = c.outer
    cdef NodeState *s = c.node
    free(c)
    if status == 0:
        set_nodelay(s, stream)
    outer.cb(outer, stream, status)


cdef void tr_close(raft.raft_uv_transport *t, raft.raft_uv_transport_close_cb cb) noexcept nogil:
    cdef NodeState *s = <NodeState *>t.impl
    s.transport_closed_cb = cb
    s.tcp.close(&s.tcp, tr_closed)


cdef void tr_closed(raft.raft_uv_transport *tcp) noexcept nogil:
    cdef NodeState *s = <NodeState *>tcp.data
    s.transport_closed_cb(&s.transport)
