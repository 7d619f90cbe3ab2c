/* lmdb_store.h: the binding's log store (storage="lmdb"), one LMDB
 * environment per data dir: DATA_DIR/lmdb/data.mdb.
 *
 * Synchronous C over liblmdb and libraft's public types (raft.h), no libuv,
 * no Python. core/raft_io.c calls it from libuv's thread pool, one call at a
 * time per store (a single chain of work, never two at once); offline tools
 * (bootstrap, recover, convert) call it directly. What is on disk and why it
 * survives a crash is written down at the top of lmdb_store.c.
 *
 * Every function returns 0 or a libraft error code (RAFT_IOERR, RAFT_CORRUPT,
 * RAFT_NOSPACE, RAFT_NOMEM, RAFT_CANTBOOTSTRAP, RAFT_INVALID) and, on error,
 * leaves a message naming the file in `errmsg` (CR_STORE_ERRMSG bytes). */
#ifndef CANONICAL_RAFT_LMDB_STORE_H
#define CANONICAL_RAFT_LMDB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>

#define CR_STORE_ERRMSG 512
#define CR_STORE_SUBDIR "lmdb"       /* DATA_DIR/lmdb/ */
#define CR_STORE_FILE "data.mdb"     /* LMDB's name for its data file */

struct cr_store;

/* A place in the write-ahead file (wal.h): its generation, the offset of
 * the next record, the sequence number of the last one (0: none yet). */
struct cr_wal_pos
{
    uint64_t gen;
    uint64_t offset;
    uint64_t seq;
};

/* One change in a write batch (cr_store_write). */
enum cr_store_op_kind {
    CR_OP_TERM = 1,   /* term = t, vote = 0 (libraft's set_term) */
    CR_OP_VOTE,       /* vote = id */
    CR_OP_APPEND,     /* entries [index, index + n) after the last one */
    CR_OP_TRUNCATE,   /* delete entries >= index */
    CR_OP_SNAPSHOT    /* replace the snapshot; delete the log prefix */
};

struct cr_store_op
{
    int kind;
    uint64_t value;                     /* TERM: the term; VOTE: the id */
    raft_index index;                   /* APPEND: first index; TRUNCATE */
    const struct raft_entry *entries;   /* APPEND (read, not kept) */
    unsigned n;
    const struct raft_snapshot *snapshot;   /* SNAPSHOT (read, not kept) */
    unsigned trailing;  /* SNAPSHOT: keep this many entries up to its index;
                           0: delete the whole log (installing a leader's) */
};

/* What cr_store_load() hands over; raft_malloc'd, libraft's load contract
 * (raft_io->load): entries share one batch, the snapshot has one buffer. */
struct cr_store_state
{
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snapshot;     /* NULL: none */
    raft_index start_index;             /* index of entries[0] */
    struct raft_entry *entries;
    size_t n_entries;
};

/* Counts for tests, stats and conversion. */
struct cr_store_stat
{
    raft_term term;
    raft_id vote;
    raft_index first_index;     /* 0: no entries */
    raft_index last_index;
    uint64_t n_entries;
    raft_index snapshot_index;  /* 0: no snapshot */
    raft_term snapshot_term;
    uint64_t snapshot_size;
    uint64_t file_size;         /* data.mdb's length */
    uint64_t used_bytes;        /* pages in use */
};

/* Open DIR/lmdb/data.mdb and its write-ahead file DIR/lmdb/wal. create:
 * make them (and DIR/lmdb/) if missing; without it a missing file is
 * RAFT_CORRUPT ("missing"). Checks the files' lengths and the store's format
 * record, then replays the write-ahead records LMDB does not hold yet into
 * it (a checkpoint): every caller, the io and the offline tools, sees the
 * whole state in LMDB. The other checksums are checked by cr_store_load(). */
int cr_store_open(const char *dir, int create, struct cr_store **out,
                  char *errmsg);
void cr_store_close(struct cr_store *s);
/* The data file's path ("DIR/lmdb/data.mdb"). */
const char *cr_store_path(const struct cr_store *s);
/* What open() found worth a WARNING (a torn last record, ignored), or "". */
const char *cr_store_warning(const struct cr_store *s);
/* The write-ahead file's position after open (everything before it is in
 * LMDB) and its length. */
void cr_store_wal(const struct cr_store *s, struct cr_wal_pos *pos,
                  uint64_t *size);

/* Everything, every checksum checked: term, vote, the snapshot and the log.
 * RAFT_CORRUPT naming the file and the record on any damage. */
int cr_store_load(struct cr_store *s, struct cr_store_state *out,
                  char *errmsg);
/* Free what cr_store_load() returned (if libraft did not take it). */
void cr_store_state_free(struct cr_store_state *st);

/* Apply ops in order in one write transaction, durable (synced) when it
 * returns 0; on error nothing of the batch is applied. Straight into LMDB,
 * for the offline tools: right after open, when the write-ahead file holds
 * nothing LMDB lacks. */
int cr_store_write(struct cr_store *s, const struct cr_store_op *ops,
                   unsigned n, char *errmsg);
/* The same, but durable only after the next cr_store_commit() or
 * cr_store_write() returns 0, or cr_store_sync(): its pages are on disk, the
 * meta page that makes them current is written but not flushed. */
int cr_store_commit(struct cr_store *s, const struct cr_store_op *ops,
                    unsigned n, char *errmsg);
/* Flush the last commit's meta page: everything committed is durable. */
int cr_store_sync(struct cr_store *s, char *errmsg);

/* The write-ahead path (core/raft_io.c), called from at most two threads at
 * once: one cr_store_log() and one cr_store_checkpoint() (never with any
 * other call: LMDB runs with MDB_NOLOCK); they share no mutable state.
 *
 * Append ops (no snapshot) as one record at *pos (gen, offset, seq + 1) and
 * fdatasync: durable when it returns 0, and *pos is then past it. The
 * record must fit: pos->offset + cr_store_log_size() <= the file's size. */
int cr_store_log(struct cr_store *s, struct cr_wal_pos *pos,
                 const struct cr_store_op *ops, unsigned n, char *errmsg);
/* The record's length for ops; 0 if they cannot be logged (a snapshot). */
uint64_t cr_store_log_size(const struct cr_store_op *ops, unsigned n);
/* One LMDB write transaction, committed and synced: the records from where
 * LMDB is (its stored position) up to *to, then ops (none: n = 0), then the
 * new position: *to, or with reset the next generation at offset 0 (the
 * file starts over; *to must then be everything written). *out (if not
 * NULL) gets the new position. */
int cr_store_checkpoint(struct cr_store *s, const struct cr_wal_pos *to,
                        const struct cr_store_op *ops, unsigned n, int reset,
                        struct cr_wal_pos *out, char *errmsg);

/* The newest snapshot (raft_malloc'd, one buffer), checksums checked;
 * *out = NULL if there is none. */
int cr_store_snapshot_get(struct cr_store *s, struct raft_snapshot **out,
                          char *errmsg);
/* Free a snapshot from cr_store_snapshot_get()/cr_store_load(). */
void cr_store_snapshot_free(struct raft_snapshot *snap);

/* libraft's bootstrap: term 1 and entry 1 holding conf; RAFT_CANTBOOTSTRAP
 * unless the store is empty. */
int cr_store_bootstrap(struct cr_store *s, const struct raft_configuration *conf,
                       char *errmsg);
/* libraft's recover: append conf as a RAFT_CHANGE entry after the last one
 * (term of the last entry or snapshot). */
int cr_store_recover(struct cr_store *s, const struct raft_configuration *conf,
                     char *errmsg);

int cr_store_stat(struct cr_store *s, struct cr_store_stat *out, char *errmsg);
/* KiB free on the file system of the store (capped at 65535, libraft's
 * capacity unit and width). */
unsigned short cr_store_free_kib(struct cr_store *s);

/* CRC-32C (Castagnoli) of buf, continuing from crc (0 to start). */
uint32_t cr_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
