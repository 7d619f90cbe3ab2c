/* wal.h: the LMDB store's write-ahead file, DATA_DIR/lmdb/wal (storage="lmdb").
 *
 * A fixed-size file, written with zeros once when it is created and synced
 * (file and dir), so a later fdatasync of a record has no metadata to flush:
 * one flush per acknowledged batch. lmdb_store.c owns it: it appends records
 * (cr_store_log), checkpoints them into LMDB and replays them at open; why
 * that is crash safe is written at the top of lmdb_store.c. Here: the file
 * and the record codec, nothing about LMDB.
 *
 * A RECORD (little endian, 8-byte aligned, at offset 0 of a generation and
 * then each right after the one before):
 *   u32 CRC-32C of everything after it (header and payload) | u32 magic
 *   "CRWL" | u64 generation | u64 sequence number | u32 payload length (a
 *   multiple of 8, bounded by the file) | u32 number of ops
 * then the payload, the batch's store ops in order, each
 *   u32 kind | u32 n | u64 a   (TERM, VOTE: a = the value; TRUNCATE: a =
 *                               the index; APPEND: a = the first index and n
 *                               entries follow)
 *   an entry: u64 term | u32 length | u8 type | 3 zero bytes | its bytes,
 *             zero-padded to 8.
 * CR_OP_SNAPSHOT is never logged (snapshots commit straight into LMDB). */
#ifndef CANONICAL_RAFT_WAL_H
#define CANONICAL_RAFT_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "lmdb_store.h"

#define CR_WAL_FILE "wal"
#define CR_WAL_SIZE ((uint64_t)16 << 20)    /* a new file's length */
#define CR_WAL_HEADER 32
#define CR_WAL_MAGIC 0x4C575243u            /* "CRWL" */

struct cr_wal
{
    int fd;
    char *path;                 /* DATA_DIR/lmdb/wal */
    const uint8_t *map;         /* the whole file, read-only (page cache) */
    uint64_t size;
};

/* Make DIR/wal of `size` zero bytes, durable (a temporary name, written,
 * fsync'd, renamed, the dir fsync'd). */
int cr_wal_create(const char *dir, uint64_t size, char *errmsg);
/* Open DIR/wal, which must be `size` bytes: RAFT_CORRUPT naming it if it is
 * missing or of another length. */
int cr_wal_open(const char *dir, uint64_t size, struct cr_wal **out,
                char *errmsg);
void cr_wal_close(struct cr_wal *w);

/* The record's length for ops (header, payload): 0 if one cannot be logged
 * (a snapshot, an entry over 4 GiB). */
uint64_t cr_wal_record_size(const struct cr_store_op *ops, unsigned n);
/* Encode into rec (cr_wal_record_size bytes). */
void cr_wal_encode(uint8_t *rec, uint64_t gen, uint64_t seq,
                   const struct cr_store_op *ops, unsigned n);
/* Write rec at offset and fdatasync: durable when it returns 0. */
int cr_wal_append(struct cr_wal *w, uint64_t offset, const uint8_t *rec,
                  uint64_t len, char *errmsg);

/* Is there a whole record of generation gen (any, if gen is 0) at offset?
 * 1 and its seq, generation and length, or 0. Reads within the file only. */
int cr_wal_check(const struct cr_wal *w, uint64_t offset, uint64_t gen,
                 uint64_t *seq, uint64_t *rgen, uint64_t *len);

/* The ops of a checked record, one at a time; an APPEND comes one entry
 * at a time (n = 1, entries = e). Every length is checked against the
 * payload: a malformed payload is -1, never a read outside it. */
struct cr_wal_reader
{
    const uint8_t *p, *end;
    unsigned ops_left;
    unsigned entries_left;
    raft_index next_index;
};
void cr_wal_reader_init(struct cr_wal_reader *r, const struct cr_wal *w,
                        uint64_t offset);
/* 1: *op filled (e holds its entry for an APPEND); 0: done; -1: malformed. */
int cr_wal_next(struct cr_wal_reader *r, struct cr_store_op *op,
                struct raft_entry *e);

#endif
