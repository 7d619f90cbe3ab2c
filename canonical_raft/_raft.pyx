# cython: language_level=3, binding=False, boundscheck=False, wraparound=False
"""The compiled core of canonical_raft: one libuv thread per node running
libraft, a submission queue into it, and the FSM trampolines out of it.

Private: the public API is canonical_raft.Node (node.py) around Core.
"""

from cpython.buffer cimport PyObject_CheckBuffer, PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, malloc, realloc, free
from libc.string cimport memcpy, memset, strcpy, strlen

from .includes.uv cimport *
from .includes.raft cimport *

import logging
import os
import zlib
from time import monotonic

from .errors import error_for, RaftError, ShutdownError, NotLeaderError
from .types import Server, Role, State
from .futures import Future as _BaseFuture

cdef extern from "Python.h":
    ctypedef struct PyThreadState
    ctypedef int PyGILState_STATE
    PyGILState_STATE PyGILState_Ensure() nogil
    void PyGILState_Release(PyGILState_STATE state) nogil
    PyThreadState *PyEval_SaveThread() nogil
    void PyEval_RestoreThread(PyThreadState *tstate) nogil
    unsigned long PyThread_get_thread_ident() nogil
    int PyErr_CheckSignals() except -1
    void Py_DecRef(PyObject *o) nogil       # only where the GIL is held

cdef extern from "pythread.h":
    ctypedef void *PyThread_type_lock
    ctypedef enum PyLockStatus:
        PY_LOCK_FAILURE = 0
        PY_LOCK_ACQUIRED = 1
        PY_LOCK_INTR
    PyThread_type_lock PyThread_allocate_lock()
    void PyThread_free_lock(PyThread_type_lock lock)
    int PyThread_acquire_lock(PyThread_type_lock lock, int waitflag) nogil
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock lock,
                                             long long microseconds,
                                             int intr_flag) nogil
    void PyThread_release_lock(PyThread_type_lock lock) nogil

cdef extern from "includes/compat.h" nogil:
    long long CR_COUNT_ADD(long long var, long long n)
    long long CR_COUNT_GET(long long var)
    int CR_LOAD(int var)
    void CR_STORE(int var, int value)
    void cr_put64(char *p, uint64_t v)
    void cr_put32(char *p, uint32_t v)
    void cr_put16(char *p, uint16_t v)
    uint64_t cr_get64(const char *p)
    uint32_t cr_get32(const char *p)
    uint16_t cr_get16(const char *p)
    void cr_copy(char *dst, const char *src, size_t size)
    raft_index cr_snapshot_index(const raft *r)
    int cr_trace_level(const void *info)
    const char *cr_trace_message(const void *info)
    const char *cr_trace_file(const void *info)
    int cr_trace_line(const void *info)
    void *cr_current_node()
    void cr_set_current_node(void *s)

log = logging.getLogger("canonical_raft")

# Live objects, for the leak tests (debug_counters()).
cdef long long live_requests = 0
cdef long long live_handles = 0
cdef long long live_nodes = 0
cdef long long live_wakeups = 0
# InstallSnapshot messages held back by io_guard.pxi (cumulative).
cdef long long installs_deferred_count = 0

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
    }


def installs_deferred():
    """How many InstallSnapshot messages io_guard.pxi has held back in this
    process (cumulative; for the regression test of libraft's crash)."""
    return CR_COUNT_GET(installs_deferred_count)


def libraft_version():
    """libraft's version as a string, e.g. "0.22.1" (from the headers built
    against: libraft 0.22 exports no version function)."""
    cdef int n = RAFT_VERSION_NUMBER
    return f"{n // 10000}.{n // 100 % 100}.{n % 100}"


include "core/requests.pxi"
include "core/status.pxi"
include "core/wakeup.pxi"
include "core/fsm.pxi"
include "core/transport.pxi"
include "core/io_guard.pxi"
include "core/loop.pxi"
include "core/cluster.pxi"
include "core/trace.pxi"
include "core/offline.pxi"
include "core/node.pxi"
