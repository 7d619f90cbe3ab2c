# Every message the core words itself, each in one place; for the other
# codes the message is libraft's own (raft_strerror).

cdef enum Why:
    WHY_LIBRAFT = 0         # libraft's text for the code
    WHY_NOT_APPLIED         # a request failed while the node closes
    WHY_CLOSING
    WHY_CLOSED
    WHY_NOT_STARTED
    WHY_NOT_LEADER
    WHY_NOT_RUNNING
    WHY_FSM_UNKNOWN
    WHY_STARTED
    WHY_START_FAILED
    WHY_NOT_BEFORE_START
    WHY_NOT_A_SNAPSHOT
    WHY_SNAPSHOT_LENGTH
    WHY_SNAPSHOT_CHECKSUM
    WHY_SNAPSHOT_INFLATED
    WHY_SESSION_GONE
    WHY_SNAPSHOT_PAST
    WHY_SECTION

_WORDING = {
    WHY_NOT_APPLIED: "node is closing: the command was not applied here",
    WHY_CLOSING: "node is closing",
    WHY_CLOSED: "node is closed",
    WHY_NOT_STARTED: "node is not started",
    WHY_NOT_LEADER: "this node is not the leader",
    WHY_NOT_RUNNING: "node is not running",
    WHY_FSM_UNKNOWN: "node stopped: its FSM state is unknown",
    WHY_STARTED: "node was already started or closed",
    WHY_START_FAILED: "start failed",
    WHY_NOT_BEFORE_START: "bootstrap and recover must come before start()",
    WHY_NOT_A_SNAPSHOT: "snapshot is not in canonical_raft's format",
    WHY_SNAPSHOT_LENGTH: "snapshot length does not match its header",
    WHY_SNAPSHOT_CHECKSUM: "snapshot data does not match its checksum",
    WHY_SNAPSHOT_INFLATED: "snapshot data does not inflate to the length its header declares",
    WHY_SESSION_GONE: ("outcome unknown: this node's forwarding session expired from the "
                       "session table (session_expiry, max_sessions) before the command was applied"),
    WHY_SNAPSHOT_PAST: ("applied, but this node learned it from a snapshot: "
                        "its result is unknown here"),
    WHY_SECTION: "snapshot's session table does not check",
}


cdef object raft_error(int code, int why=WHY_LIBRAFT, leader=None):
    """The exception for libraft error `code` (errors.py picks its class),
    worded by `why`."""
    message = _WORDING[why] if why else raft.raft_strerror(code).decode()
    return _errors.error_for(code, message, leader)
