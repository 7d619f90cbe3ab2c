# The peer transport: the binding's own raft_uv_transport (core/peer_transport.c,
# in C: no Python in the data path), with mutual TLS (core/tls_stream.c) or
# plaintext, and the protocol firewall (core/firewall.h) on every inbound
# stream. This file wires it to the node: the knobs (transport_configure,
# called by thread.pxi's configure()), the three callbacks it needs (the TLS
# context for new connections, "is this id in the configuration", the log
# of refusals), loading and swapping TLS contexts, and the refusal counters.
#
# NodeState.transport is what raft_uv_init gets; its impl is freed by
# transport_free() once libraft has closed it (or if it never listened).

import errno

# Inbound connections: at most this many part-way through their handshakes
# (the oldest is dropped for a new one), in all (new ones refused beyond),
# and per declared raft id (the oldest is dropped: a peer that restarted
# leaves a dead one behind).
DEF MAX_PENDING = 64
DEF MAX_INBOUND = 256
DEF MAX_PER_PEER = 4
# Room for the message headers around the largest InstallSnapshot payload.
DEF MESSAGE_OVERHEAD = 64 * 1024


cdef int transport_init(NodeState *s) noexcept nogil:
    s.pt.arg = s
    s.pt.get_ctx = pt_get_ctx
    s.pt.id_allowed = pt_id_allowed
    s.pt.log = pt_log
    s.pt.refused = s.refused
    s.transport.version = 1
    cdef int rv = cr_pt_init(&s.transport, &s.loop, &s.pt)
    if rv != 0:
        cr_copy(s.transport.errmsg, "out of memory", sizeof(s.transport.errmsg))
    return rv


cdef void transport_free(NodeState *s) noexcept nogil:
    cr_pt_free(&s.transport)


cdef int transport_set_bind(NodeState *s, bytes address) except -1:
    """Listen on ``address`` ("host:port") instead of the node's own; the
    address peers dial stays the node's. Read at listen (start)."""
    cdef Py_ssize_t n = len(address)
    if n >= CR_PT_BIND_MAX:
        raise ValueError(f"bind address longer than {CR_PT_BIND_MAX - 1} bytes")
    memcpy(s.pt.bind_address, <const char *>address, n)
    s.pt.bind_address[n] = 0
    return 0


cdef int transport_configure(NodeState *s, c) except -1:
    """The transport's knobs, from the settings (thread.pxi's configure())."""
    uv.uv_mutex_lock(&s.lock)
    s.pt.tls = s.tls_ctx != NULL
    uv.uv_mutex_unlock(&s.lock)
    s.pt.tcp_nodelay = c.tcp_nodelay
    s.pt.max_message_size = c.max_message_size
    # libraft sends at most the sender's max_inflight_entries per message.
    s.pt.max_entries = max(1024, c.max_inflight_entries)
    s.pt.handshake_timeout_ms = ms(c.peer_handshake_timeout)
    s.pt.idle_timeout_ms = ms(c.peer_idle_timeout)
    s.pt.max_pending = MAX_PENDING
    s.pt.max_inbound = MAX_INBOUND
    s.pt.max_per_peer = MAX_PER_PEER
    return 0


cdef SSL_CTX *pt_get_ctx(void *arg) noexcept nogil:
    cdef NodeState *s = <NodeState *>arg
    cdef SSL_CTX *ctx
    uv.uv_mutex_lock(&s.lock)
    ctx = s.tls_ctx
    if ctx != NULL:
        SSL_CTX_up_ref(ctx)
    uv.uv_mutex_unlock(&s.lock)
    return ctx


cdef int pt_id_allowed(void *arg, uint64_t id) noexcept nogil:
    """A peer may only speak for an id of the current configuration (the
    last one, committed or not): libraft keeps a client, retrying forever,
    for every id that ever wrote to it. A node with no configuration yet
    (joining) hears anyone: its leader is not known."""
    cdef NodeState *s = <NodeState *>arg
    cdef unsigned i
    if s.raft.configuration.n == 0:
        return 1
    for i in range(s.raft.configuration.n):
        if s.raft.configuration.servers[i].id == id:
            return 1
    return 0


cdef void pt_log(void *arg, const char *reason, const char *peer, const char *detail,
                 unsigned long long suppressed) noexcept nogil:
    cdef NodeState *s = <NodeState *>arg
    hold_gil(s)
    log_refusal(s, reason, peer, detail, suppressed)


cdef void log_refusal(NodeState *s, const char *reason, const char *peer, const char *detail,
                      unsigned long long suppressed) noexcept with gil:
    try:
        more = f" ({suppressed} more of this reason not logged)" if suppressed else ""
        why = detail.decode(errors="replace")
        log.warning("node %d: refused peer %s: %s%s%s", s.id,
                    peer.decode(errors="replace"), reason.decode(),
                    f" ({why})" if why else "", more)
    except BaseException:
        pass


def refusal_reasons():
    """Every refusal reason's name, in counter order (index 0 unused)."""
    names = [None]
    cdef int i = 1
    cdef const char *n
    while True:
        n = cr_pt_reason_name(i)
        if n == NULL:
            return names
        names.append(n.decode())
        i += 1


cdef dict refused_counts(NodeState *s):
    """{reason: count} of the refusals so far, nonzero ones only."""
    cdef dict out = {}
    cdef int i
    cdef uint64_t n
    cdef const char *name
    for i in range(1, CR_PT_REASONS):
        n = cr_pt_count(&s.refused[i])
        if n:
            name = cr_pt_reason_name(i)
            if name != NULL:
                out[name.decode()] = n
    return out


def transport_live():
    """Transports and connections of the peer transport alive in this process."""
    return cr_pt_live()


cdef int load_tls(NodeState *s, tls) except -1:
    """Make an SSL_CTX from a raft.TLS and put it in place for new
    connections (the old one lives on in the connections that use it).
    OSError naming the file that failed; ValueError if the certificate
    does not name this node's id."""
    cdef char errmsg[512]
    cdef bytes cert = os.fsencode(tls.certfile)
    cdef bytes key = os.fsencode(tls.keyfile)
    cdef bytes ca = os.fsencode(tls.cafile)
    cdef const char *c_cert = cert
    cdef const char *c_key = key
    cdef const char *c_ca = ca
    cdef SSL_CTX *ctx
    cdef SSL_CTX *old
    cdef uint64_t cert_id = 0
    errmsg[0] = 0
    with nogil:
        ctx = cr_tls_ctx_new(c_cert, c_key, c_ca, errmsg, sizeof(errmsg))
    if ctx == NULL:
        raise OSError(errno.EINVAL, "TLS: " + errmsg.decode(errors="replace"))
    if cr_tls_ctx_id(ctx, &cert_id) != 0:
        SSL_CTX_free(ctx)
        raise ValueError(f"TLS certfile {tls.certfile!r} names no raft id (it needs one "
                         f"subjectAltName URI urn:canonical-raft:id:<id>)")
    if cert_id != s.id:
        SSL_CTX_free(ctx)
        raise ValueError(f"TLS certfile {tls.certfile!r} is for raft id {cert_id}, "
                         f"not this node's id {s.id}")
    uv.uv_mutex_lock(&s.lock)
    old = s.tls_ctx
    s.tls_ctx = ctx
    uv.uv_mutex_unlock(&s.lock)
    if old != NULL:
        SSL_CTX_free(old)
    return 0


cdef void free_tls(NodeState *s) noexcept nogil:
    if s.tls_ctx != NULL:
        SSL_CTX_free(s.tls_ctx)
        s.tls_ctx = NULL
