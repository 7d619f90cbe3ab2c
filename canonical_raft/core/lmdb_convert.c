/* lmdb_convert.c: offline conversion of a data dir between the two storage
 * kinds (canonical_raft/convert.py drives it, under the data dir's lock).
 *
 * uv -> lmdb: libraft's uv backend loads the dir (its own load(), the same
 * as a start: term, vote, newest snapshot, every entry), and one LMDB
 * transaction writes all of it into DIR/lmdb/data.mdb, entries before the
 * snapshot included.
 * lmdb -> uv: the store is loaded (every checksum checked), and the uv
 * backend, opened on the same dir, gets set_term, set_vote, the snapshot
 * (snapshot_put with trailing 0, so its log starts after it) and the entries
 * after the snapshot in one append; each call waits for its callback.
 *
 * Either way the source is only read, and the new files are complete and
 * synced when these return 0; convert.py then commits the change by
 * rewriting the data dir's storage record. */
#include "lmdb_convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft/uv.h>
#include <uv.h>

#include "lmdb_store.h"

struct conv
{
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    int loop_open;
    int io_open;
    int done;
    int status;
};

static void io_closed_cb(struct raft_io *io)
{
    struct conv *c = io->data;
    raft_uv_close(&c->io);
    raft_uv_tcp_close(&c->transport);
    c->done = 1;
}

static void conv_close(struct conv *c)
{
    if (c->io_open) {
        c->io.data = c;
        c->done = 0;
        c->io.close(&c->io, io_closed_cb);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        c->io_open = 0;
        c->io.data = NULL;
    }
    if (c->loop_open) {
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
        c->loop_open = 0;
    }
}

/* libraft's uv io on dir, initialised (not started). */
static int conv_open(struct conv *c, const char *dir, char *errmsg)
{
    int rv;
    memset(c, 0, sizeof *c);
    if (uv_loop_init(&c->loop) != 0) {
        snprintf(errmsg, CR_STORE_ERRMSG, "uv_loop_init failed");
        return RAFT_IOERR;
    }
    c->loop_open = 1;
    c->transport.version = 1;
    rv = raft_uv_tcp_init(&c->transport, &c->loop);
    if (rv != 0) {
        snprintf(errmsg, CR_STORE_ERRMSG, "raft_uv_tcp_init: %s",
                 raft_strerror(rv));
        conv_close(c);
        return rv;
    }
    rv = raft_uv_init(&c->io, &c->loop, dir, &c->transport);
    if (rv != 0) {
        snprintf(errmsg, CR_STORE_ERRMSG, "%s: %s", dir, c->io.errmsg);
        raft_uv_tcp_close(&c->transport);
        conv_close(c);
        return rv;
    }
    c->io_open = 1;
    c->io.data = NULL; /* no raft: its loop callbacks fire nothing */
    rv = c->io.init(&c->io, 1, "127.0.0.1:1");
    if (rv != 0) {
        snprintf(errmsg, CR_STORE_ERRMSG, "%s: %s", dir, c->io.errmsg);
        conv_close(c);
        return rv;
    }
    return 0;
}

/* Free entries loaded by libraft: each distinct batch once. */
static void entries_free(struct raft_entry *entries, size_t n)
{
    void *last = NULL;
    size_t i;
    for (i = 0; i < n; i++) {
        if (entries[i].batch != last) {
            last = entries[i].batch;
            raft_free(last);
        }
    }
    raft_free(entries);
}

int cr_convert_uv_to_lmdb(const char *dir, char *errmsg)
{
    struct conv c;
    struct raft_snapshot *snap = NULL;
    struct raft_entry *entries = NULL;
    struct cr_store *store = NULL;
    struct cr_store_op ops[4];
    raft_index start = 1;
    raft_term term = 0;
    raft_id vote = 0;
    size_t n = 0;
    unsigned k = 0;
    int rv = conv_open(&c, dir, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = c.io.load(&c.io, &term, &vote, &snap, &start, &entries, &n);
    if (rv != 0) {
        snprintf(errmsg, CR_STORE_ERRMSG, "%s: load: %s", dir, c.io.errmsg);
        conv_close(&c);
        return rv;
    }
    rv = cr_store_open(dir, 1, &store, errmsg);
    if (rv == 0) {
        memset(ops, 0, sizeof ops);
        if (term != 0) {
            ops[k].kind = CR_OP_TERM;
            ops[k++].value = term;
        }
        if (vote != 0) {
            ops[k].kind = CR_OP_VOTE;
            ops[k++].value = vote;
        }
        if (snap != NULL) {
            ops[k].kind = CR_OP_SNAPSHOT;
            ops[k].snapshot = snap;
            ops[k++].trailing = (unsigned)-1; /* keep every entry loaded */
        }
        if (n > 0) {
            ops[k].kind = CR_OP_APPEND;
            ops[k].index = start;
            ops[k].entries = entries;
            ops[k++].n = (unsigned)n;
        }
        rv = cr_store_write(store, ops, k, errmsg);
        cr_store_close(store);
    }
    if (entries != NULL) {
        entries_free(entries, n);
    }
    cr_store_snapshot_free(snap);
    conv_close(&c);
    return rv;
}

static void put_cb(struct raft_io_snapshot_put *req, int status)
{
    struct conv *c = req->data;
    c->status = status;
    c->done = 1;
}

static void append_cb(struct raft_io_append *req, int status)
{
    struct conv *c = req->data;
    c->status = status;
    c->done = 1;
}

static int wait_done(struct conv *c)
{
    while (!c->done) {
        uv_run(&c->loop, UV_RUN_ONCE);
    }
    return c->status;
}

int cr_convert_lmdb_to_uv(const char *dir, char *errmsg)
{
    struct conv c;
    struct cr_store *store = NULL;
    struct cr_store_state st;
    struct raft_snapshot *usnap = NULL;
    struct raft_entry *uentries = NULL;
    struct raft_io_snapshot_put put;
    struct raft_io_append append;
    raft_index ustart;
    raft_term uterm;
    raft_id uvote;
    size_t un = 0;
    size_t skip = 0;
    int rv;
    errmsg[0] = 0;
    rv = cr_store_open(dir, 0, &store, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = cr_store_load(store, &st, errmsg);
    cr_store_close(store);
    if (rv != 0) {
        return rv;
    }
    rv = conv_open(&c, dir, errmsg);
    if (rv != 0) {
        cr_store_state_free(&st);
        return rv;
    }
    rv = c.io.load(&c.io, &uterm, &uvote, &usnap, &ustart, &uentries, &un);
    if (rv == 0 && (uterm != 0 || usnap != NULL || un != 0)) {
        snprintf(errmsg, CR_STORE_ERRMSG, "%s already holds uv state", dir);
        rv = RAFT_CANTBOOTSTRAP;
    } else if (rv != 0) {
        snprintf(errmsg, CR_STORE_ERRMSG, "%s: load: %s", dir, c.io.errmsg);
    }
    if (uentries != NULL) {
        entries_free(uentries, un);
    }
    cr_store_snapshot_free(usnap);
    if (rv == 0 && st.term != 0) {
        rv = c.io.set_term(&c.io, st.term);
    }
    if (rv == 0 && st.vote != 0) {
        rv = c.io.set_vote(&c.io, st.vote);
    }
    if (rv == 0 && st.snapshot != NULL) {
        put.data = &c;
        c.done = 0;
        rv = c.io.snapshot_put(&c.io, 0, &put, st.snapshot, put_cb);
        if (rv == 0) {
            rv = wait_done(&c);
        }
        /* uv's log starts after the snapshot: its trailing entries stay
         * behind (the snapshot holds them). */
        while (skip < st.n_entries &&
               st.start_index + skip <= st.snapshot->index) {
            skip++;
        }
    }
    if (rv == 0 && st.n_entries > skip) {
        append.data = &c;
        c.done = 0;
        rv = c.io.append(&c.io, &append, st.entries + skip,
                         (unsigned)(st.n_entries - skip), append_cb);
        if (rv == 0) {
            rv = wait_done(&c);
        }
    }
    if (rv != 0 && errmsg[0] == 0) {
        snprintf(errmsg, CR_STORE_ERRMSG, "%s: write: %s (%s)", dir,
                 raft_strerror(rv), c.io.errmsg);
    }
    conv_close(&c);
    cr_store_state_free(&st);
    return rv;
}
