# includes/compat.h: small C helpers for what Cython cannot say directly.

from .raft cimport raft, raft_index
from libc.stdint cimport uint16_t, uint32_t, uint64_t

cdef extern from "includes/compat.h" nogil:
    long long CR_COUNT_ADD(long long var, long long n)
    long long CR_COUNT_GET(long long var)
    int CR_LOAD(int var)
    void CR_STORE(int var, int value)
    void cr_put64(void *p, uint64_t v)
    void cr_put32(void *p, uint32_t v)
    void cr_put16(void *p, uint16_t v)
    uint64_t cr_get64(const void *p)
    uint32_t cr_get32(const void *p)
    uint16_t cr_get16(const void *p)
    void cr_copy(char *dst, const char *src, size_t size)
    raft_index cr_snapshot_index(const raft *r)
    int cr_trace_level(const void *info)
    const char *cr_trace_message(const void *info)
    const char *cr_trace_file(const void *info)
    int cr_trace_line(const void *info)
    void *cr_current_node()
    void cr_set_current_node(void *s)
