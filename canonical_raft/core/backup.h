/* backup.h: the parts of backups (core/backup.pxi) that need raft.h's
 * structs in full: the committed configuration of a running node, and
 * seeding an empty data dir with a snapshot through libraft's own uv
 * backend (so libraft writes its files, the .meta and the metadata, in its
 * own format: nothing here knows that format).
 *
 * Seeding runs on the caller's thread with a throwaway loop, as bootstrap
 * does (core/offline.pxi): io->init, io->load (the dir must hold no term,
 * no snapshot and no entries), io->set_term, then io->snapshot_put with
 * trailing 0, libraft's "install" path (the one a follower takes for an
 * InstallSnapshot from its leader). */
#ifndef CANONICAL_RAFT_BACKUP_H
#define CANONICAL_RAFT_BACKUP_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "log_guard.h"

/* The term of the entry at `index`, which must be applied: in the log, or
 * the last snapshot's. */
static inline raft_term cr_applied_term(const struct raft *r, raft_index index)
{
    return cr_trail_term_of(&r->trail, index);
}

static inline const struct raft_configuration *cr_committed_configuration(const struct raft *r)
{
    return &r->configuration_committed;
}

struct cr_seed
{
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft_io_snapshot_put put;
    int put_status; /* -1 while the put runs */
};

static void cr_seed_put_done(struct raft_io_snapshot_put *put, int status)
{
    struct cr_seed *seed = put->data;
    seed->put_status = status;
}

static void cr_seed_io_closed(struct raft_io *io)
{
    /* Not io->data: libraft's uv backend reads that as a struct raft. */
    struct cr_seed *seed = (struct cr_seed *)((char *)io - offsetof(struct cr_seed, io));
    raft_uv_close(&seed->io);
    raft_uv_tcp_close(&seed->transport);
}

/* What io->load returned, freed (each entry batch once). */
static void cr_seed_free_loaded(struct raft_snapshot *snapshot, struct raft_entry *entries,
                                size_t n)
{
    size_t i;
    void *batch = NULL;
    if (snapshot != NULL) {
        for (i = 0; i < snapshot->n_bufs; i++) {
            raft_free(snapshot->bufs[i].base);
        }
        raft_free(snapshot->bufs);
        raft_configuration_close(&snapshot->configuration);
        raft_free(snapshot);
    }
    for (i = 0; i < n; i++) {
        if (entries[i].batch != batch) {
            batch = entries[i].batch;
            raft_free(batch);
        }
    }
    if (entries != NULL) {
        raft_free(entries);
    }
}

/* Write a snapshot (index, term, conf committed at conf_index, the bytes
 * data[0:len]) into the empty data dir `dir`, with the term in the
 * metadata. 0, or libraft's error code with errmsg set. */
static int cr_seed_snapshot(const char *dir, raft_id id, const char *address, raft_index index,
                            raft_term term, const struct raft_configuration *conf,
                            raft_index conf_index, void *data, size_t len, char *errmsg,
                            size_t errlen)
{
    struct cr_seed *seed = calloc(1, sizeof *seed);
    struct raft_snapshot snapshot;
    struct raft_buffer buf;
    struct raft_snapshot *loaded = NULL;
    struct raft_entry *entries = NULL;
    size_t n_entries = 0;
    raft_term loaded_term = 0;
    raft_id voted_for = 0;
    raft_index start_index = 0;
    bool io_ready = false;
    int rv;

    errmsg[0] = 0;
    if (seed == NULL) {
        return RAFT_NOMEM;
    }
    rv = uv_loop_init(&seed->loop);
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s", uv_strerror(rv));
        free(seed);
        return RAFT_IOERR;
    }
    seed->transport.version = 1;
    rv = raft_uv_tcp_init(&seed->transport, &seed->loop);
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s", seed->transport.errmsg);
        goto out_loop;
    }
    rv = raft_uv_init(&seed->io, &seed->loop, dir, &seed->transport);
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s", seed->io.errmsg);
        raft_uv_tcp_close(&seed->transport);
        goto out_loop;
    }
    rv = seed->io.init(&seed->io, id, address);
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s", seed->io.errmsg);
        raft_uv_close(&seed->io);
        raft_uv_tcp_close(&seed->transport);
        goto out_loop;
    }
    io_ready = true;
    rv = seed->io.load(&seed->io, &loaded_term, &voted_for, &loaded, &start_index, &entries,
                       &n_entries);
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s", seed->io.errmsg);
        goto out_io;
    }
    if (loaded_term != 0 || loaded != NULL || n_entries != 0) {
        cr_seed_free_loaded(loaded, entries, n_entries);
        snprintf(errmsg, errlen, "the data dir has state (a term, a snapshot or entries): "
                 "a backup seeds an empty one");
        rv = RAFT_CANTBOOTSTRAP;
        goto out_io;
    }
    cr_seed_free_loaded(NULL, entries, 0);
    rv = seed->io.set_term(&seed->io, term);
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s", seed->io.errmsg);
        goto out_io;
    }
    buf.base = data;
    buf.len = len;
    memset(&snapshot, 0, sizeof snapshot);
    snapshot.index = index;
    snapshot.term = term;
    snapshot.configuration = *conf; /* borrowed: libraft encodes it */
    snapshot.configuration_index = conf_index;
    snapshot.bufs = &buf;
    snapshot.n_bufs = 1;
    seed->put.data = seed;
    seed->put_status = -1;
    rv = seed->io.snapshot_put(&seed->io, 0, &seed->put, &snapshot, cr_seed_put_done);
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s", seed->io.errmsg);
        goto out_io;
    }
    while (seed->put_status == -1 && uv_run(&seed->loop, UV_RUN_ONCE)) {
    }
    rv = seed->put_status == -1 ? RAFT_IOERR : seed->put_status;
    if (rv != 0) {
        snprintf(errmsg, errlen, "writing the snapshot failed: %s",
                 seed->io.errmsg[0] ? seed->io.errmsg : raft_strerror(rv));
    }
out_io:
    if (io_ready) {
        seed->io.close(&seed->io, cr_seed_io_closed);
    }
out_loop:
    uv_run(&seed->loop, UV_RUN_DEFAULT);
    uv_loop_close(&seed->loop);
    free(seed);
    return rv;
}

#endif
