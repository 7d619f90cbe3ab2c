# cython: language_level=3, binding=False, boundscheck=False, wraparound=False
"""The compiled core of canonical_raft: one libuv thread per node running
libraft, a submission queue into it, and the FSM trampolines out of it.

Private: the public API is canonical_raft.Node (node.py) around Core.
This file is the shell: imports, the constants C defines, the process-wide
counters, and the core's parts by job (core/*.pxi, data model first).
"""

from cpython.buffer cimport (PyObject_CheckBuffer, PyObject_GetBuffer, PyBuffer_Release,
                            PyBUF_SIMPLE, PyBUF_READ)
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.exc cimport PyErr_CheckSignals
from cpython.pystate cimport PyThreadState, PyGILState_STATE
from cpython.pythread cimport (PyThread_type_lock, PyLockStatus, PY_LOCK_ACQUIRED,
                               PY_LOCK_FAILURE, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock)
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, malloc, realloc, free
from libc.string cimport memcmp, memcpy, memset, strcpy, strlen

from .includes cimport raft, uv
from .includes.python cimport (PyGILState_Ensure, PyGILState_Release, PyGILState_Check,
                               PyEval_SaveThread, PyEval_RestoreThread, Py_DecRef,
                               PyThread_acquire_lock_timed)
from .includes.compat cimport (CR_COUNT_ADD, CR_COUNT_GET, CR_LOAD, CR_STORE,
                               cr_put64, cr_put32, cr_put16, cr_get64, cr_get32, cr_get16,
                               cr_copy, cr_snapshot_index, cr_trace_level, cr_trace_message,
                               cr_trace_file, cr_trace_line, cr_current_node,
                               cr_set_current_node)

from concurrent.futures import InvalidStateError
import logging
import os
import sys
import threading
import zlib
from time import monotonic

# The constants raft.h defines, by name: errors.py and types.py build their
# tables and enums from these instead of retyping the numbers. (Defined
# before the package imports at the end of this file, which import them.)
ERROR_CODES = {
    "NOMEM": raft.RAFT_NOMEM,
    "BADID": raft.RAFT_BADID,
    "DUPLICATEID": raft.RAFT_DUPLICATEID,
    "DUPLICATEADDRESS": raft.RAFT_DUPLICATEADDRESS,
    "BADROLE": raft.RAFT_BADROLE,
    "MALFORMED": raft.RAFT_MALFORMED,
    "NOTLEADER": raft.RAFT_NOTLEADER,
    "LEADERSHIPLOST": raft.RAFT_LEADERSHIPLOST,
    "SHUTDOWN": raft.RAFT_SHUTDOWN,
    "CANTBOOTSTRAP": raft.RAFT_CANTBOOTSTRAP,
    "CANTCHANGE": raft.RAFT_CANTCHANGE,
    "CORRUPT": raft.RAFT_CORRUPT,
    "CANCELED": raft.RAFT_CANCELED,
    "NAMETOOLONG": raft.RAFT_NAMETOOLONG,
    "TOOBIG": raft.RAFT_TOOBIG,
    "NOCONNECTION": raft.RAFT_NOCONNECTION,
    "BUSY": raft.RAFT_BUSY,
    "IOERR": raft.RAFT_IOERR,
    "NOTFOUND": raft.RAFT_NOTFOUND,
    "INVALID": raft.RAFT_INVALID,
    "UNAUTHORIZED": raft.RAFT_UNAUTHORIZED,
    "NOSPACE": raft.RAFT_NOSPACE,
    "TOOMANY": raft.RAFT_TOOMANY,
}
ROLES = {"STANDBY": raft.RAFT_STANDBY, "VOTER": raft.RAFT_VOTER, "SPARE": raft.RAFT_SPARE}
STATES = {
    "UNAVAILABLE": raft.RAFT_UNAVAILABLE,
    "FOLLOWER": raft.RAFT_FOLLOWER,
    "CANDIDATE": raft.RAFT_CANDIDATE,
    "LEADER": raft.RAFT_LEADER,
}
# Core.change()'s op (the binding's own: add, assign or remove a server).
CHANGES = {"ADD": CHANGE_ADD, "ASSIGN": CHANGE_ASSIGN, "REMOVE": CHANGE_REMOVE}

log = logging.getLogger("canonical_raft")

# Live objects, for the leak tests (debug_counters()).
cdef long long live_requests = 0
cdef long long live_handles = 0
cdef long long live_nodes = 0
cdef long long live_wakeups = 0
# InstallSnapshot messages held back by io_guard.pxi (cumulative).
cdef long long installs_deferred_count = 0
# Core.key: the last one handed out (with the GIL).
cdef unsigned long long last_key = 0

# Bumped in a forked child: nodes created before the fork refuse to work.
cdef int fork_generation = 0

def _after_fork_in_child():
    global fork_generation
    fork_generation += 1

os.register_at_fork(after_in_child=_after_fork_in_child)


def debug_counters():
    """Live requests, uv handles, native node states and future waiters
    (Wakeup) in this process: all zero once every node is closed and
    collected."""
    return {
        "requests": CR_COUNT_GET(live_requests),
        "handles": CR_COUNT_GET(live_handles),
        "nodes": CR_COUNT_GET(live_nodes),
        "wakeups": CR_COUNT_GET(live_wakeups),
        "transport": cr_pt_live(),     # peer transports and their connections
        "forward": cr_fl_live(),       # forwarding links, streams and frames
        "raft_io": cr_io_live(),       # storage="lmdb": ios, connections, requests
    }


def installs_deferred():
    """How many InstallSnapshot messages io_guard.pxi has held back in this
    process (cumulative; for the regression test of libraft's crash)."""
    return CR_COUNT_GET(installs_deferred_count)


def libraft_version():
    """libraft's version as a string, e.g. "0.22.1" (from the headers built
    against: libraft 0.22 exports no version function)."""
    cdef int n = raft.RAFT_VERSION_NUMBER
    return f"{n // 10000}.{n // 100 % 100}.{n % 100}"


# The data model first, then the parts by job.
include "core/transport_c.pxi"  # the peer transport's C declarations
include "core/forward_state.pxi"  # forwarding, sessions, reads: their state
include "core/state.pxi"        # NodeState: one node's native state
include "core/request.pxi"      # Req: a request, and the one way it fails
include "core/errors.pxi"       # the wording of every error
include "core/gil.pxi"          # the raft thread's GIL, waking waiters
include "core/future.pxi"       # a Future's state; settling a request's futures
include "core/asyncio.pxi"      # asyncio futures settled in batches per event loop
include "core/entry.pxi"        # the entry and snapshot formats
include "core/queue.pxi"        # the submission queue, end to end
include "core/commands.pxi"     # libraft calls and their callbacks
include "core/removed.pxi"      # a removed node stops (ShutdownOnRemove)
include "core/slow_fsm.pxi"     # a WARNING when an FSM method holds the thread
include "core/lane.pxi"         # the batteries' commonest commands, applied in C
include "core/fsm.pxi"          # the FSM trampolines and their Python side
include "core/sessions.pxi"     # the session table: exactly once
include "core/forward.pxi"      # apply on any node (forward=True)
include "core/reads.pxi"        # read_barrier(): ReadIndex rounds
include "core/status.pxi"       # the status mirror
include "core/events.pxi"       # on_event: leader, configuration, snapshots, peers
include "core/transport.pxi"    # the peer transport: TLS, firewall, bounds
include "core/io_guard.pxi"     # a libraft 0.22 workaround; persist() off-thread
include "core/mark.pxi"         # the high-water mark and the term/vote record
include "core/backup.pxi"       # snapshot() on demand, backup(path), the backup format
include "core/raft_io.pxi"      # the io by storage: libraft's uv or ours (lmdb)
include "core/thread.pxi"       # the raft thread: setup, loop, close
include "core/trace.pxi"        # libraft's tracer to logging
include "core/offline.pxi"      # bootstrap and recover
include "core/core.pxi"         # Core: the caller's side

# Last: these modules may import this one back (for the constants above).
from . import datadir as _datadir
from . import events as _events
from . import errors as _errors
from . import futures as _futures
from . import integrity as _integrity
from . import types as _types
