/* Small C helpers for _raft.pyx: things Cython cannot say directly. */
#ifndef CANONICAL_RAFT_COMPAT_H
#define CANONICAL_RAFT_COMPAT_H

#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <raft.h>

/* Live-object counters, read by debug_counters() in the tests: updated from
 * several threads, hence atomics. */
#define CR_COUNT_ADD(var, n) __atomic_add_fetch(&(var), (n), __ATOMIC_RELAXED)
#define CR_COUNT_GET(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)

/* A value written by the raft thread and read as a hint by others. */
#define CR_LOAD(var) __atomic_load_n(&(var), __ATOMIC_ACQUIRE)
#define CR_STORE(var, v) __atomic_store_n(&(var), (v), __ATOMIC_RELEASE)

#include "le.h"    /* cr_put64 .. cr_get16: core/le.h, the one copy */

/* Copy a C string into a buffer of `size` bytes, always terminated. */
static inline void cr_copy(char *dst, const char *src, size_t size) {
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* Index of the last snapshot, through raft.h's anonymous unions. */
static inline raft_index cr_snapshot_index(const struct raft *r) { return r->trail.snapshot.index; }

/* The fields of a diagnostic trace, through raft_tracer_info's union. */
static inline int cr_trace_level(const void *info) {
    return ((const struct raft_tracer_info *)info)->diagnostic.level;
}
static inline const char *cr_trace_message(const void *info) {
    return ((const struct raft_tracer_info *)info)->diagnostic.message;
}
static inline const char *cr_trace_file(const void *info) {
    return ((const struct raft_tracer_info *)info)->diagnostic.file;
}
static inline int cr_trace_line(const void *info) {
    return ((const struct raft_tracer_info *)info)->diagnostic.line;
}

/* The node whose raft thread this is (NULL on other threads): Wakeup.set()
 * asks it whether to release at once or after the GIL is dropped. */
static __thread void *cr_tls_node;
static inline void *cr_current_node(void) { return cr_tls_node; }
static inline void cr_set_current_node(void *s) { cr_tls_node = s; }

#endif
