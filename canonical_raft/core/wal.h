/* wal.h: the LMDB store's write-ahead file, DATA_DIR/lmdb/wal (storage="lmdb").
 *
 * A fixed-size file, written with zeros once when it is created and synced
 * (file and dir), so a later fdatasync of a record has no metadata to flush:
 * one flush per acknowledged batch. lmdb_store.c owns it: it appends records
 * (cr_store_log), checkpoints them into LMDB and replays them at open; why
 * that is crash safe is written at the top of lmdb_store.c. Here: the file
 * and the record codec, nothing about LMDB.
 *
 * BLOCKS. The file is a sequence of 512-byte blocks (CR_WAL_BLOCK). A
 * record starts on a block boundary (at offset 0 of a generation, then
 * right after the one before) and takes whole blocks: each begins with an
 * 8-byte STAMP, the record's generation (u64), and the record's bytes fill
 * the other 504 of each block in turn (the last block's rest is zeros).
 * A 512-byte sector write is atomic (SQLite's and PostgreSQL's assumption
 * too): after a crash each block holds its new content whole or its old
 * one. So at the tail, the stamps tell a crash from damage (cr_wal_probe):
 * a record whose blocks all carry this generation was written whole, and if
 * it fails its checksum then, it was damaged at rest.
 *
 * A RECORD's bytes (little endian), a 40-byte header:
 *   u32 CRC-32C of the rest of the header | u32 magic "CRW2" |
 *   u64 generation | u64 sequence number | u32 payload length (a multiple
 *   of 8) | u32 number of ops | u32 CRC-32C of the payload and the zeros
 *   after it to the end of the last block | u32 0
 * then the payload, the batch's store ops in order, each
 *   u32 kind | u32 n | u64 a   (TERM, VOTE: a = the value; TRUNCATE: a =
 *                               the index; APPEND: a = the first index and n
 *                               entries follow)
 *   an entry: u64 term | u32 length | u8 type | 3 zero bytes | its bytes,
 *             zero-padded to 8.
 * The header has its own CRC, so a damaged length is seen as damage and
 * never trusted. The stamps are outside both CRCs: a block's stamp says
 * only when it was written, its bytes are checked by the record's CRCs.
 * CR_OP_SNAPSHOT is never logged (snapshots commit straight into LMDB).
 * The format of before the stamps ("CRWL") is refused: lmdb_store.c's
 * format record says which one a store has. */
#ifndef CANONICAL_RAFT_WAL_H
#define CANONICAL_RAFT_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "lmdb_store.h"

#define CR_WAL_FILE "wal"
#define CR_WAL_SIZE ((uint64_t)16 << 20)    /* a new file's length */
#define CR_WAL_BLOCK 512
#define CR_WAL_STAMP 8
#define CR_WAL_BODY (CR_WAL_BLOCK - CR_WAL_STAMP)   /* a record's bytes per block */
#define CR_WAL_HEADER 40
#define CR_WAL_MAGIC 0x32575243u            /* "CRW2" */

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

/* The payload's length for ops; UINT64_MAX if they cannot be logged (a
 * snapshot, an entry over 4 GiB). */
uint64_t cr_wal_payload_size(const struct cr_store_op *ops, unsigned n);
/* The length on disk (whole blocks) of a record of `payload` bytes;
 * UINT64_MAX if none can hold it. */
uint64_t cr_wal_framed_size(uint64_t payload);
/* The record's length on disk for ops: 0 if they cannot be logged. */
uint64_t cr_wal_record_size(const struct cr_store_op *ops, unsigned n);
/* Encode into rec (cr_wal_record_size bytes): stamps, header, payload and
 * both CRCs. */
void cr_wal_encode(uint8_t *rec, uint64_t gen, uint64_t seq,
                   const struct cr_store_op *ops, unsigned n);
/* Recompute both CRCs of an encoded record from its bytes (the encoder's
 * last step; tests use it to forge records). */
void cr_wal_seal(uint8_t *rec);
/* Write rec at offset and fdatasync: durable when it returns 0. */
int cr_wal_append(struct cr_wal *w, uint64_t offset, const uint8_t *rec,
                  uint64_t len, char *errmsg);

/* What is at a block boundary where a record of generation gen may start. */
enum cr_wal_found {
    CR_WAL_END,      /* no record of gen: never written in this generation */
    CR_WAL_WHOLE,    /* a whole record of gen (seq, len filled) */
    CR_WAL_TORN,     /* its first block landed, not all of the others: a
                        crash while it was written */
    CR_WAL_DAMAGED,  /* written whole (or its header says gen where its
                        stamp does not), and fails a check: why says which */
    CR_WAL_NEWER     /* a whole header of a generation after gen (rgen) */
};
struct cr_wal_found_rec
{
    uint64_t seq, rgen, len;
    const char *why;
};
/* Reads within the file only, whatever the bytes say. */
enum cr_wal_found cr_wal_probe(const struct cr_wal *w, uint64_t offset,
                               uint64_t gen, struct cr_wal_found_rec *out);
/* Is there a whole record of generation gen at offset? 1 and its seq and
 * length, or 0. */
int cr_wal_check(const struct cr_wal *w, uint64_t offset, uint64_t gen,
                 uint64_t *seq, uint64_t *len);

/* The ops of a whole record, one at a time; an APPEND comes one entry at a
 * time (n = 1, entries = e, its bytes valid until cr_wal_reader_close).
 * The payload is copied out of its blocks into one buffer (bounded by the
 * file; replay is rare). Every length is checked against the payload: a
 * malformed payload is -1, never a read outside it. */
struct cr_wal_reader
{
    uint8_t *buf;
    const uint8_t *p, *end;
    unsigned ops_left;
    unsigned entries_left;
    raft_index next_index;
};
/* 0, or RAFT_NOMEM. Close it either way. */
int cr_wal_reader_init(struct cr_wal_reader *r, const struct cr_wal *w,
                       uint64_t offset);
void cr_wal_reader_close(struct cr_wal_reader *r);
/* 1: *op filled (e holds its entry for an APPEND); 0: done; -1: malformed. */
int cr_wal_next(struct cr_wal_reader *r, struct cr_store_op *op,
                struct raft_entry *e);

#endif
