/* log_guard.h: the one check on inbound messages that needs the local log
 * (core/io_guard.pxi calls it before libraft sees a message).
 *
 * libraft 0.22.1 aborts (SIGABRT, a double free on recv_append_entries.c's
 * error path, fixed upstream after 0.22.1) when an AppendEntries carries an
 * entry whose term differs from the local one at an index that is already
 * committed. Honest leaders never send one (Leader Completeness), so with
 * mutual TLS only a rogue member could; in plaintext mode anyone who can
 * reach the port and knows a member's id. A stateless parser (firewall.h)
 * cannot see it: here the entries are compared with the local log's terms
 * (struct raft_trail, public in raft.h) up to the commit index, and such a
 * message is dropped unanswered. Messages of an older term are left to
 * libraft, which rejects them before it looks at the entries. */
#ifndef CANONICAL_RAFT_LOG_GUARD_H
#define CANONICAL_RAFT_LOG_GUARD_H

#include <raft.h>

/* The term of the entry at `index` in the local log, 0 if unknown (as
 * libraft's TrailTermOf). */
static inline raft_term cr_trail_term_of(const struct raft_trail *t,
                                         raft_index index)
{
    unsigned k;
    unsigned n;
    raft_index last;
    if (t->size == 0 || t->front == t->back) {
        return index == t->snapshot.index ? t->snapshot.term : 0;
    }
    n = t->front <= t->back ? t->back - t->front : t->size - t->front + t->back;
    last = t->records[(t->front + n - 1) % t->size].index;
    if (index <= t->offset || index > last) {
        return index == t->snapshot.index ? t->snapshot.term : 0;
    }
    for (k = 0; k < n; k++) {
        unsigned i = (t->front + k) % t->size;
        if (t->records[i].index >= index) {
            return t->records[i].term;
        }
    }
    return 0;
}

/* Nonzero if `m` is an AppendEntries of the current term (or newer) with an
 * entry at or below the commit index whose term is not the local one. */
static inline int cr_conflicts_with_committed(const struct raft *r,
                                              const struct raft_message *m)
{
    const struct raft_append_entries *ae = &m->append_entries;
    raft_index commit = raft_commit_index((struct raft *)r);
    raft_index index = ae->prev_log_index;
    unsigned i;
    if (m->type != RAFT_APPEND_ENTRIES ||
        ae->term < raft_current_term((struct raft *)r)) {
        return 0;
    }
    /* The entry it builds on: libraft shuts down on a committed one of
     * another term too (replication.c checkLogMatchingProperty). */
    if (index > 0 && index <= commit) {
        raft_term local = cr_trail_term_of(&r->trail, index);
        if (local != 0 && local != ae->prev_log_term) {
            return 1;
        }
    }
    for (i = 0; i < ae->n_entries; i++) {
        raft_term local;
        index++;
        if (index > commit) {
            break;
        }
        local = cr_trail_term_of(&r->trail, index);
        if (local != 0 && local != ae->entries[i].term) {
            return 1;
        }
    }
    return 0;
}

/* Free an AppendEntries message libraft will not see (what it does with
 * one it ignores: each distinct batch, then the array). */
static inline void cr_discard_append_entries(struct raft_message *m)
{
    struct raft_append_entries *ae = &m->append_entries;
    void *last = NULL;
    unsigned i;
    for (i = 0; i < ae->n_entries; i++) {
        if (ae->entries[i].batch != NULL && ae->entries[i].batch != last) {
            last = ae->entries[i].batch;
            raft_free(last);
        }
    }
    if (ae->entries != NULL) {
        raft_free(ae->entries);
    }
    ae->entries = NULL;
    ae->n_entries = 0;
}

#endif
