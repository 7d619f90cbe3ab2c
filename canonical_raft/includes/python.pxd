# The Python C-API the core needs beyond Cython's own cpython/*.pxd: the
# raft thread calls these without the GIL (or while it holds it outside
# Cython's knowledge, see core/gil.pxi), so they are declared nogil here.

from cpython.pystate cimport PyThreadState, PyGILState_STATE
from cpython.pythread cimport PyThread_type_lock, PyLockStatus
from cpython.ref cimport PyObject

cdef extern from "Python.h" nogil:
    PyGILState_STATE PyGILState_Ensure()
    void PyGILState_Release(PyGILState_STATE state)
    int PyGILState_Check()
    PyThreadState *PyEval_SaveThread()
    void PyEval_RestoreThread(PyThreadState *tstate)
    void Py_DecRef(PyObject *o)         # only where the GIL is held

cdef extern from "pythread.h" nogil:
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock lock,
                                             long long microseconds,
                                             int intr_flag)
