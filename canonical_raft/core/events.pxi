# on_event (Node.on_event): what the raft thread tells event observers and
# when. At the end of each loop iteration (thread.pxi's on_prepare) the node
# is compared with what the observers were last told: its state, its leader,
# the committed configuration, the snapshot index. A leader also listens
# for each other voter and standby (io_guard.pxi's recv calls heard_from):
# one that sends nothing for an election timeout is reported lost, and
# resumed when it is heard again. None of this runs while no observer is
# registered. The kinds' names and the Event type are canonical_raft/events.py.

cdef enum:
    EV_STATE = 0              # indexes into events.KINDS
    EV_LEADER = 1
    EV_CONFIGURATION = 2
    EV_SNAPSHOT_TAKEN = 3
    EV_SNAPSHOT_INSTALLED = 4
    EV_PEER_LOST = 5
    EV_PEER_RESUMED = 6
    MAX_EVENTS = 8 + 2 * PEERS_TRACKED

DEF SWEEP_NS = 100 * 1000 * 1000   # how often a leader looks for silent peers


cdef struct PendingEvent:
    int kind
    uint64_t value            # the state, the leader's id, an index or a peer's id


cdef void heard_from(NodeState *s, raft.raft_id id) noexcept nogil:
    """A message from server `id` arrived (io_guard.pxi's recv)."""
    cdef unsigned i
    for i in range(s.ev.n_peers):
        if s.ev.peers[i].id == id:
            s.ev.peers[i].heard = uv.uv_hrtime()
            if s.ev.peers[i].lost:
                s.ev.peers[i].lost = False
                s.ev.peers[i].resumed = True
            return


cdef void track_peers(NodeState *s, unsigned long long now) noexcept nogil:
    """As leader: watch the configuration's other voters and standbys,
    keeping what is known of those watched already (at most PEERS_TRACKED)."""
    cdef PeerContact kept[PEERS_TRACKED]
    cdef unsigned n = 0, i, j
    cdef raft.raft_server *server
    for i in range(s.raft.configuration.n):
        server = &s.raft.configuration.servers[i]
        if server.id == s.id or server.role == raft.RAFT_SPARE or n == PEERS_TRACKED:
            continue
        kept[n].id = server.id
        kept[n].heard = now
        kept[n].lost = False
        kept[n].resumed = False
        for j in range(s.ev.n_peers):
            if s.ev.peers[j].id == server.id:
                kept[n] = s.ev.peers[j]
                break
        n += 1
    memcpy(s.ev.peers, kept, n * sizeof(PeerContact))
    s.ev.n_peers = n


cdef inline void pend(PendingEvent *evs, unsigned *n, int kind, uint64_t value) noexcept nogil:
    if n[0] < MAX_EVENTS:
        evs[n[0]].kind = kind
        evs[n[0]].value = value
        n[0] += 1


cdef void collect_events(NodeState *s) noexcept nogil:
    """What changed since the observers were last told; tell them."""
    cdef PendingEvent evs[MAX_EVENTS]
    cdef unsigned n = 0, i
    cdef int state = raft.raft_state(&s.raft)
    cdef raft.raft_id leader = 0
    cdef const char *address = NULL
    raft.raft_leader(&s.raft, &leader, &address)
    cdef raft.raft_index conf = s.raft.configuration_committed_index
    cdef raft.raft_index snapshot = cr_snapshot_index(&s.raft)
    cdef unsigned long long now = uv.uv_hrtime()
    cdef unsigned long long silence = <unsigned long long>s.raft.election_timeout * 1000000
    if not s.ev.baseline:
        # The first look: the observers hear the state and leader as they
        # are now (from "unavailable"), the rest from here on.
        s.ev.baseline = True
        s.ev.state, s.ev.leader = raft.RAFT_UNAVAILABLE, 0
        s.ev.conf_committed, s.ev.snapshot_index = conf, snapshot
        s.ev.taken = s.ev.installed = False
        s.ev.n_peers = 0
    if state != s.ev.state:
        if state == raft.RAFT_LEADER or s.ev.state == raft.RAFT_LEADER:
            s.ev.n_peers = 0    # a new term of leadership starts in contact
            if state == raft.RAFT_LEADER:
                track_peers(s, now)
        s.ev.state = state
        pend(evs, &n, EV_STATE, <uint64_t>state)
    if leader != s.ev.leader:
        s.ev.leader = leader
        pend(evs, &n, EV_LEADER, leader)
    if conf != s.ev.conf_committed:
        s.ev.conf_committed = conf
        pend(evs, &n, EV_CONFIGURATION, conf)
    if snapshot != s.ev.snapshot_index:
        # libraft moves the index before it restores an installed snapshot:
        # that one is told once FSM.restore() has run (fsm.pxi sets the flag).
        if s.ev.taken or s.ev.installed:
            pend(evs, &n, EV_SNAPSHOT_TAKEN if s.ev.taken else EV_SNAPSHOT_INSTALLED, snapshot)
            s.ev.snapshot_index = snapshot
            s.ev.taken = s.ev.installed = False
    if state == raft.RAFT_LEADER:
        if now - s.ev.swept >= SWEEP_NS:
            s.ev.swept = now
            track_peers(s, now)
            for i in range(s.ev.n_peers):
                if not s.ev.peers[i].lost and now - s.ev.peers[i].heard > silence:
                    s.ev.peers[i].lost = True
                    pend(evs, &n, EV_PEER_LOST, s.ev.peers[i].id)
        for i in range(s.ev.n_peers):
            if s.ev.peers[i].resumed:
                s.ev.peers[i].resumed = False
                pend(evs, &n, EV_PEER_RESUMED, s.ev.peers[i].id)
    if n:
        hold_gil(s)
        dispatch_events(s, evs, n)


cdef object server_of(NodeState *s, raft.raft_id id):
    """The configuration's Server for id (raft thread), or None."""
    cdef unsigned i
    for i in range(s.raft.configuration.n):
        if s.raft.configuration.servers[i].id == id:
            return _types.Server(id, s.raft.configuration.servers[i].address.decode(
                errors="replace"), _types.Role(s.raft.configuration.servers[i].role))
    return None


cdef object make_event(NodeState *s, PendingEvent *ev):
    cdef unsigned i
    kind = _events.KINDS[ev.kind]
    term = raft.raft_current_term(&s.raft)
    if ev.kind == EV_STATE:
        return _events.Event(kind, s.id, term, state=_types.State(ev.value))
    cdef raft.raft_id leader_id = 0
    cdef const char *address = NULL
    if ev.kind == EV_LEADER:
        leader = None
        if ev.value:
            leader = server_of(s, ev.value)
            raft.raft_leader(&s.raft, &leader_id, &address)
            if leader is None and leader_id == ev.value and address != NULL:
                leader = _types.Server(leader_id, address.decode(errors="replace"))
        return _events.Event(kind, s.id, term, leader=leader)
    if ev.kind == EV_CONFIGURATION:
        servers = tuple(server_of(s, s.raft.configuration.servers[i].id)
                        for i in range(s.raft.configuration.n))
        return _events.Event(kind, s.id, term, index=ev.value, servers=servers)
    if ev.kind == EV_SNAPSHOT_TAKEN or ev.kind == EV_SNAPSHOT_INSTALLED:
        return _events.Event(kind, s.id, term, index=ev.value)
    return _events.Event(kind, s.id, term, peer=server_of(s, ev.value)
                         or _types.Server(ev.value, "?"))


cdef void dispatch_events(NodeState *s, PendingEvent *evs, unsigned n) noexcept with gil:
    cdef Core core = <Core>s.core
    cdef unsigned i
    observers = list(core._event_observers)
    for i in range(n):
        if not observers:
            return
        try:
            event = make_event(s, &evs[i])
        except BaseException as exc:
            log.error("node %d: could not build an event: %r", s.id, exc, exc_info=exc)
            continue
        for fn in observers:
            try:
                fn(event)
            except BaseException as exc:
                log.error("node %d: event callback %r raised %r", s.id, fn, exc,
                          exc_info=exc)
