# The status mirror: the raft thread copies what other threads may ask
# about out of struct raft (which only it may read) into NodeState's m_*
# fields, under the lock; Core's properties read the copy (core.pxi).

cdef void set_error(NodeState *s, const char *message) noexcept nogil:
    uv.uv_mutex_lock(&s.lock)
    cr_copy(s.m_error, message, ERROR_MAX)
    uv.uv_mutex_unlock(&s.lock)


cdef bint publish_status(NodeState *s) noexcept nogil:
    """Copy raft's state into the mirror; True if the state or leader changed."""
    cdef int state = raft.RAFT_UNAVAILABLE
    cdef raft.raft_id leader_id = 0
    cdef const char *leader_address = NULL
    cdef bint running = s.phase == PHASE_RUNNING and not s.fatal
    cdef bint changed
    cdef unsigned i
    if running:
        state = raft.raft_state(&s.raft)
        raft.raft_leader(&s.raft, &leader_id, &leader_address)
    uv.uv_mutex_lock(&s.lock)
    changed = (state != s.m_state or leader_id != s.m_leader_id
               or s.phase != s.m_phase)
    s.m_phase = s.phase
    CR_STORE(s.m_state, state)
    if leader_id != s.m_leader_id:
        s.m_leader_id = leader_id
        s.m_leader_address[0] = 0
        if leader_address != NULL:
            cr_copy(s.m_leader_address, leader_address, ADDRESS_MAX)
    if running:    # once raft_close ran, struct raft is no longer readable
        s.m_term = raft.raft_current_term(&s.raft)
        s.m_commit_index = raft.raft_commit_index(&s.raft)
        s.m_last_applied = raft.raft_last_applied(&s.raft)
        s.m_last_index = raft.raft_last_index(&s.raft)
        s.m_snapshot_index = cr_snapshot_index(&s.raft)
        s.m_pending = s.inflight_count + s.queued
        s.m_log_capacity = s.io.capacity
        s.m_leader_contact = s.leader_contact
        if (s.raft.configuration_committed_index != s.m_conf_committed or
                s.raft.configuration_uncommitted_index != s.m_conf_uncommitted or
                s.raft.configuration.n != s.m_configuration.n):
            s.m_conf_committed = s.raft.configuration_committed_index
            s.m_conf_uncommitted = s.raft.configuration_uncommitted_index
            raft.raft_configuration_close(&s.m_configuration)
            raft.raft_configuration_init(&s.m_configuration)
            for i in range(s.raft.configuration.n):
                raft.raft_configuration_add(&s.m_configuration,
                                            s.raft.configuration.servers[i].id,
                                            s.raft.configuration.servers[i].address,
                                            s.raft.configuration.servers[i].role)
    if changed:
        uv.uv_cond_broadcast(&s.changed)
    uv.uv_mutex_unlock(&s.lock)
    return changed


cdef inline void publish_if_changed(NodeState *s) noexcept nogil:
    """Publish at once when a message changed the state or the leader: the
    peers may learn of it from this node's messages before the end of the
    loop iteration, and a user told "X leads" must find X saying so."""
    cdef raft.raft_id leader_id = 0
    cdef const char *address = NULL
    if s.phase != PHASE_RUNNING or s.fatal:
        return
    raft.raft_leader(&s.raft, &leader_id, &address)
    if <int>raft.raft_state(&s.raft) != s.m_state or leader_id != s.m_leader_id:
        if publish_status(s):
            s.notify_pending = True
