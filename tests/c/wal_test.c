/* Unit tests for canonical_raft/core/wal.c and the write-ahead path of
 * lmdb_store.c (cr_store_log, cr_store_checkpoint, the replay at open).
 *
 *   cc -std=gnu11 -O1 -g -Wall -Werror -fsanitize=address,undefined \
 *      -I canonical_raft/core tests/c/wal_test.c canonical_raft/core/wal.c \
 *      canonical_raft/core/lmdb_store.c -llmdb -lraft -o wal_test
 *   ./wal_test SCRATCH_DIR
 *
 * Each case works in its own directory under SCRATCH_DIR. The last line is
 * "N passed, M failed".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "lmdb_store.h"
#include "wal.h"

#include "store_check.h"

static char *wal_file(const char *dir)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/lmdb/wal", dir);
    return path;
}

static uint8_t payload[4096];

static struct raft_entry entry(raft_term term, size_t len, uint8_t seed)
{
    struct raft_entry e;
    size_t i;
    memset(&e, 0, sizeof e);
    e.type = RAFT_COMMAND;
    e.term = term;
    e.buf.len = len;
    e.buf.base = payload + seed;
    for (i = 0; i < len; i++) {
        payload[seed + i] = (uint8_t)(seed + i);
    }
    return e;
}

/* ---- the codec, on a file of its own --------------------------------------- */

static void test_codec(void)
{
    const char *dir = case_dir("codec");
    struct raft_entry es[3] = {entry(2, 0, 0), entry(2, 5, 1), entry(3, 17, 9)};
    struct cr_store_op ops[4];
    struct cr_store_op op;
    struct raft_entry e;
    struct cr_wal_reader r;
    struct cr_wal *w = NULL;
    uint64_t size;
    uint64_t seq, len;
    uint8_t *rec;
    size_t i;

    memset(ops, 0, sizeof ops);
    ops[0].kind = CR_OP_TERM;
    ops[0].value = 7;
    ops[1].kind = CR_OP_VOTE;
    ops[1].value = 3;
    ops[2].kind = CR_OP_APPEND;
    ops[2].index = 10;
    ops[2].entries = es;
    ops[2].n = 3;
    ops[3].kind = CR_OP_TRUNCATE;
    ops[3].index = 11;
    CHECK(cr_wal_payload_size(ops, 4) == 4 * 16 + 3 * 16 + 0 + 8 + 24);
    size = cr_wal_record_size(ops, 4);
    CHECK(size == CR_WAL_BLOCK);                /* 40 + 144 bytes: 1 block */
    op.kind = CR_OP_SNAPSHOT;
    CHECK(cr_wal_record_size(&op, 1) == 0);     /* never logged */
    CHECK(cr_wal_framed_size(CR_WAL_BODY - CR_WAL_HEADER) == CR_WAL_BLOCK &&
          cr_wal_framed_size(CR_WAL_BODY - CR_WAL_HEADER + 8) ==
              2 * CR_WAL_BLOCK);

    CHECK(cr_wal_create(dir, 4096, errmsg) == 0);
    CHECK(cr_wal_open(dir, 4096, &w, errmsg) == 0);
    rec = malloc(size);
    cr_wal_encode(rec, 5, 42, ops, 4);
    CHECK(cr_wal_append(w, 512, rec, size, errmsg) == 0);
    CHECK(cr_wal_check(w, 512, 5, &seq, &len) == 1 && seq == 42 &&
          len == size);
    CHECK(cr_wal_check(w, 512, 6, &seq, &len) == 0);   /* another gen */
    CHECK(cr_wal_check(w, 0, 5, &seq, &len) == 0);     /* zeros */
    CHECK(cr_wal_check(w, 520, 5, &seq, &len) == 0);   /* unaligned */
    CHECK(cr_wal_check(w, 4096, 5, &seq, &len) == 0);
    CHECK(cr_wal_reader_init(&r, w, 512) == 0);
    CHECK(cr_wal_next(&r, &op, &e) == 1 && op.kind == CR_OP_TERM &&
          op.value == 7);
    CHECK(cr_wal_next(&r, &op, &e) == 1 && op.kind == CR_OP_VOTE &&
          op.value == 3);
    for (i = 0; i < 3; i++) {
        CHECK(cr_wal_next(&r, &op, &e) == 1 && op.kind == CR_OP_APPEND &&
              op.index == 10 + i && op.n == 1 && op.entries == &e &&
              e.term == es[i].term && e.buf.len == es[i].buf.len &&
              e.type == RAFT_COMMAND &&
              (e.buf.len == 0 ||
               memcmp(e.buf.base, es[i].buf.base, e.buf.len) == 0));
    }
    CHECK(cr_wal_next(&r, &op, &e) == 1 && op.kind == CR_OP_TRUNCATE &&
          op.index == 11);
    CHECK(cr_wal_next(&r, &op, &e) == 0);
    cr_wal_reader_close(&r);
    /* A record that does not fit, or off a block boundary: refused. */
    CHECK(cr_wal_append(w, 4096 - 512, rec, 1024, errmsg) == RAFT_INVALID);
    CHECK(cr_wal_append(w, 8, rec, size, errmsg) == RAFT_INVALID);
    cr_wal_close(w);
    free(rec);

    /* A record over three blocks, its bytes across them, read back whole. */
    {
        struct raft_entry big = entry(4, 1200, 3);
        struct cr_wal_found_rec f;
        char path[4200];
        int fd;
        int damaged = 1;
        int whole = 1;
        memset(&op, 0, sizeof op);
        op.kind = CR_OP_APPEND;
        op.index = 1;
        op.entries = &big;
        op.n = 1;
        size = cr_wal_record_size(&op, 1);
        CHECK(size == 3 * CR_WAL_BLOCK);
        rec = malloc(size);
        cr_wal_encode(rec, 5, 43, &op, 1);
        CHECK(cr_wal_open(dir, 4096, &w, errmsg) == 0);
        CHECK(cr_wal_append(w, 1024, rec, size, errmsg) == 0);
        CHECK(cr_wal_probe(w, 1024, 5, &f) == CR_WAL_WHOLE && f.seq == 43 &&
              f.len == size);
        CHECK(cr_wal_reader_init(&r, w, 1024) == 0);
        CHECK(cr_wal_next(&r, &op, &e) == 1 && e.buf.len == 1200 &&
              memcmp(e.buf.base, big.buf.base, 1200) == 0 && e.term == 4);
        CHECK(cr_wal_next(&r, &op, &e) == 0);
        cr_wal_reader_close(&r);
        CHECK(cr_wal_probe(w, 1024, 6, &f) == CR_WAL_END);   /* gen 5 < 6 */
        CHECK(cr_wal_probe(w, 1024, 4, &f) == CR_WAL_NEWER && f.rgen == 5);
        cr_wal_close(w);
        /* Every byte flipped: damage, seen as damage (all its blocks are
         * stamped 5), except the stamps after the first: its bytes still
         * check, so it is whole. */
        snprintf(path, sizeof path, "%s/wal", dir);
        fd = open(path, O_RDWR);
        for (i = 0; i < size; i++) {
            uint8_t b;
            int later_stamp = i >= CR_WAL_BLOCK && i % CR_WAL_BLOCK < CR_WAL_STAMP;
            enum cr_wal_found got;
            CHECK(pread(fd, &b, 1, (off_t)(1024 + i)) == 1);
            b ^= 0x10;
            CHECK(pwrite(fd, &b, 1, (off_t)(1024 + i)) == 1);
            CHECK(cr_wal_open(dir, 4096, &w, errmsg) == 0);
            got = cr_wal_probe(w, 1024, 5, &f);
            damaged &= later_stamp || (got == CR_WAL_DAMAGED && f.why != NULL);
            whole &= !later_stamp || got == CR_WAL_WHOLE;
            cr_wal_close(w);
            b ^= 0x10;
            CHECK(pwrite(fd, &b, 1, (off_t)(1024 + i)) == 1);
        }
        CHECK(damaged && whole);
        /* Torn: a later block holds its old bytes (zeros here). */
        memset(rec, 0, CR_WAL_BLOCK);
        CHECK(pwrite(fd, rec, CR_WAL_BLOCK, 1024 + 2 * CR_WAL_BLOCK) ==
              CR_WAL_BLOCK);
        CHECK(cr_wal_open(dir, 4096, &w, errmsg) == 0);
        CHECK(cr_wal_probe(w, 1024, 5, &f) == CR_WAL_TORN);
        cr_wal_close(w);
        close(fd);
        /* Wrong length: refused at open, naming the file. */
        truncate(path, 2048);
        CHECK(cr_wal_open(dir, 4096, &w, errmsg) == RAFT_CORRUPT &&
              strstr(errmsg, "truncated") != NULL &&
              strstr(errmsg, path) != NULL);
        unlink(path);
        CHECK(cr_wal_open(dir, 4096, &w, errmsg) == RAFT_CORRUPT &&
              strstr(errmsg, "missing") != NULL);
        free(rec);
    }
}

/* A payload whose lengths lie (CRC recomputed): -1, no read outside it
 * (ASan would catch one). */
static void test_malformed_payload(void)
{
    const char *dir = case_dir("malformed");
    struct raft_entry es[2] = {entry(2, 8, 0), entry(2, 8, 1)};
    struct cr_store_op ops[1];
    struct cr_store_op op;
    struct raft_entry e;
    struct cr_wal_reader r;
    struct cr_wal *w = NULL;
    uint64_t size;
    uint8_t *rec;
    char path[4200];
    int fd;
    int field;
    int bad_seen = 0;

    memset(ops, 0, sizeof ops);
    ops[0].kind = CR_OP_APPEND;
    ops[0].index = 1;
    ops[0].entries = es;
    ops[0].n = 2;
    size = cr_wal_record_size(ops, 1);
    rec = malloc(size);
    CHECK(cr_wal_create(dir, 1024, errmsg) == 0);
    snprintf(path, sizeof path, "%s/wal", dir);
    fd = open(path, O_RDWR);
    /* Lies in: op count, op kind, entry count, entry length, entry type
     * (the record fits in one block: byte k of it is at 8 + k). */
    for (field = 0; field < 6; field++) {
        int rc;
        uint8_t *h = rec + CR_WAL_STAMP;
        cr_wal_encode(rec, 1, 1, ops, 1);
        switch (field) {
            case 0: h[28] = 2; break;                       /* ops */
            case 1: h[CR_WAL_HEADER] = 9; break;            /* kind */
            case 2: h[CR_WAL_HEADER + 4] = 200; break;      /* entries */
            case 3: h[CR_WAL_HEADER + 16 + 8] = 250; break; /* length */
            case 4: h[CR_WAL_HEADER + 16 + 12] = 77; break; /* type */
            case 5: h[CR_WAL_HEADER + 16 + 8] = 0xff;       /* 4 GiB */
                    h[CR_WAL_HEADER + 16 + 11] = 0xff; break;
        }
        cr_wal_seal(rec);
        pwrite(fd, rec, size, 0);
        CHECK(cr_wal_open(dir, 1024, &w, errmsg) == 0);
        {
            uint64_t seq, len;
            CHECK(cr_wal_check(w, 0, 1, &seq, &len) == 1);
        }
        CHECK(cr_wal_reader_init(&r, w, 0) == 0);
        while ((rc = cr_wal_next(&r, &op, &e)) == 1) {
        }
        cr_wal_reader_close(&r);
        bad_seen += rc == -1;
        cr_wal_close(w);
    }
    /* A header whose length lies, its own CRC recomputed: damage, never a
     * read past the file. */
    {
        struct cr_wal_found_rec f;
        uint8_t *h = rec + CR_WAL_STAMP;
        uint32_t crc;
        cr_wal_encode(rec, 1, 1, ops, 1);
        h[26] = 0x10;                                   /* 1 MiB */
        crc = cr_crc32c(0, h + 4, CR_WAL_HEADER - 4);
        memcpy(h, &crc, 4);     /* little endian hosts (the store's) */
        pwrite(fd, rec, size, 0);
        CHECK(cr_wal_open(dir, 1024, &w, errmsg) == 0);
        CHECK(cr_wal_probe(w, 0, 1, &f) == CR_WAL_DAMAGED &&
              strstr(f.why, "length") != NULL);
        cr_wal_close(w);
    }
    CHECK(bad_seen == 6);
    close(fd);
    free(rec);
}

/* ---- the store's write-ahead path ------------------------------------------------ */

static struct cr_store *open_store(const char *dir, int create)
{
    struct cr_store *s = NULL;
    int rv = cr_store_open(dir, create, &s, errmsg);
    CHECK(rv == 0 && s != NULL);
    return s;
}

#define ENTRY_LEN 600   /* a record of one entry: two blocks */

/* Term 2, then entries first..first + n - 1 (one per record), logged, not
 * checkpointed; at[k] = record k's offset (k = 0: the term). */
static void log_entries_from(struct cr_store *s, struct cr_wal_pos *pos,
                             raft_index first, int n, uint64_t *at)
{
    struct cr_store_op op;
    struct raft_entry e;
    int i;
    memset(&op, 0, sizeof op);
    op.kind = CR_OP_TERM;
    op.value = 2;
    if (at != NULL) {
        at[0] = pos->offset;
    }
    CHECK(cr_store_log(s, pos, &op, 1, errmsg) == 0);
    for (i = 0; i < n; i++) {
        e = entry(2, ENTRY_LEN, (uint8_t)(first + (raft_index)i));
        memset(&op, 0, sizeof op);
        op.kind = CR_OP_APPEND;
        op.index = first + (raft_index)i;
        op.entries = &e;
        op.n = 1;
        if (at != NULL) {
            at[i + 1] = pos->offset;
        }
        CHECK(cr_store_log(s, pos, &op, 1, errmsg) == 0);
    }
}

static void log_entries(struct cr_store *s, struct cr_wal_pos *pos, int n,
                        uint64_t *at)
{
    log_entries_from(s, pos, 1, n, at);
}

static size_t loaded(const char *dir, raft_term *term)
{
    struct cr_store *s = open_store(dir, 0);
    struct cr_store_state st;
    size_t n = 0;
    if (s == NULL) {
        return 0;
    }
    if (cr_store_load(s, &st, errmsg) == 0) {
        n = st.n_entries;
        *term = st.term;
        cr_store_state_free(&st);
    }
    cr_store_close(s);
    return n;
}

static void test_replay_and_checkpoint(void)
{
    const char *dir = case_dir("replay");
    struct cr_store *s = open_store(dir, 1);
    struct cr_wal_pos pos;
    struct cr_wal_pos after;
    struct cr_store_state st;
    struct cr_store_op op;
    struct raft_entry e;
    uint64_t size;
    raft_term term = 0;

    cr_store_wal(s, &pos, &size);
    CHECK(pos.gen == 1 && pos.offset == 0 && pos.seq == 0 &&
          size == CR_WAL_SIZE);
    log_entries(s, &pos, 10, NULL);
    CHECK(pos.seq == 11);
    /* LMDB does not hold them yet... */
    CHECK(cr_store_load(s, &st, errmsg) == 0 && st.n_entries == 0);
    cr_store_state_free(&st);
    /* ... a checkpoint puts them there, and the file goes on after it. */
    CHECK(cr_store_checkpoint(s, &pos, NULL, 0, 0, &after, errmsg) == 0 &&
          after.gen == 1 && after.offset == pos.offset);
    CHECK(cr_store_load(s, &st, errmsg) == 0 && st.n_entries == 10 &&
          st.term == 2);
    cr_store_state_free(&st);
    e = entry(2, 3, 50);
    memset(&op, 0, sizeof op);
    op.kind = CR_OP_APPEND;
    op.index = 11;
    op.entries = &e;
    op.n = 1;
    CHECK(cr_store_log(s, &pos, &op, 1, errmsg) == 0);
    op.kind = CR_OP_TRUNCATE;
    op.index = 5;
    CHECK(cr_store_log(s, &pos, &op, 1, errmsg) == 0);
    cr_store_close(s);           /* a crash, as far as the store knows */
    /* Open replays entry 11 and the truncation, and starts a generation. */
    CHECK(loaded(dir, &term) == 4 && term == 2);
    s = open_store(dir, 0);
    cr_store_wal(s, &pos, &size);
    CHECK(pos.gen == 2 && pos.offset == 0 && pos.seq == 13);
    CHECK(cr_store_warning(s)[0] == 0);
    /* A direct batch: the records before it, then its ops, one txn. */
    e = entry(2, 3, 60);
    op.kind = CR_OP_APPEND;
    op.index = 5;
    op.entries = &e;
    op.n = 1;
    CHECK(cr_store_log(s, &pos, &op, 1, errmsg) == 0);
    e = entry(3, 3, 61);
    op.index = 6;
    CHECK(cr_store_checkpoint(s, &pos, &op, 1, 1, &after, errmsg) == 0 &&
          after.gen == 3 && after.offset == 0 && after.seq == 14);
    /* A checkpoint that does not start where LMDB is: refused. */
    CHECK(cr_store_checkpoint(s, &pos, NULL, 0, 0, NULL, errmsg) ==
          RAFT_INVALID);
    cr_store_close(s);
    CHECK(loaded(dir, &term) == 6);
}

static void flip_at(const char *dir, uint64_t offset)
{
    int fd = open(wal_file(dir), O_RDWR);
    uint8_t b = 0;
    CHECK(pread(fd, &b, 1, (off_t)offset) == 1);
    b ^= 0x04;
    CHECK(pwrite(fd, &b, 1, (off_t)offset) == 1);
    close(fd);
}

static void zero_block(const char *dir, uint64_t offset)
{
    static const uint8_t zeros[CR_WAL_BLOCK];
    int fd = open(wal_file(dir), O_RDWR);
    CHECK(pwrite(fd, zeros, sizeof zeros, (off_t)offset) == CR_WAL_BLOCK);
    close(fd);
}

/* Write a record of entry `index` with generation gen and seq at offset. */
static void forge(const char *dir, uint64_t offset, uint64_t gen,
                  uint64_t seq, raft_index index)
{
    struct raft_entry e = entry(2, ENTRY_LEN, (uint8_t)index);
    struct cr_store_op op;
    uint64_t size;
    uint8_t *rec;
    int fd = open(wal_file(dir), O_RDWR);
    memset(&op, 0, sizeof op);
    op.kind = CR_OP_APPEND;
    op.index = index;
    op.entries = &e;
    op.n = 1;
    size = cr_wal_record_size(&op, 1);
    rec = malloc(size);
    cr_wal_encode(rec, gen, seq, &op, 1);
    CHECK(pwrite(fd, rec, size, (off_t)offset) == (ssize_t)size);
    close(fd);
    free(rec);
}

/* Open refuses damage naming the file, and ignores a torn last record. */
static void test_damage(void)
{
    static const char *names[] = {"torn", "flipped", "gap", "newer",
                                  "truncated", "missing", "last-flipped"};
    int k;
    for (k = 0; k < 7; k++) {
        const char *dir = case_dir(names[k]);
        struct cr_store *s = open_store(dir, 1);
        struct cr_store *again = NULL;
        struct cr_wal_pos pos;
        uint64_t at[5];
        uint64_t size;
        raft_term term = 0;
        int rc;
        cr_store_wal(s, &pos, &size);
        log_entries(s, &pos, 4, at);      /* records: term, e1..e4 */
        cr_store_close(s);
        switch (k) {
            case 0: zero_block(dir, at[4] + CR_WAL_BLOCK); break; /* last */
            case 1: flip_at(dir, at[2] + 40); break;    /* e2 of e1..e4 */
            case 2: forge(dir, at[3], 1, 9, 3); break;  /* seq 9, not 4 */
            case 3: forge(dir, pos.offset, 7, 6, 5); break;
            case 4: truncate(wal_file(dir), (off_t)(size / 2)); break;
            case 5: unlink(wal_file(dir)); break;
            case 6: flip_at(dir, at[4] + CR_WAL_BLOCK + 100); break;
        }
        errmsg[0] = 0;
        rc = cr_store_open(dir, 0, &again, errmsg);
        if (k == 0) {
            CHECK(rc == 0 && again != NULL);
            CHECK(again != NULL &&
                  strstr(cr_store_warning(again), "torn") != NULL &&
                  strstr(cr_store_warning(again), wal_file(dir)) != NULL);
            cr_store_close(again);
            CHECK(loaded(dir, &term) == 3 && term == 2);    /* e4 lost */
            continue;
        }
        CHECK(rc == RAFT_CORRUPT && again == NULL &&
              strstr(errmsg, wal_file(dir)) != NULL);
        CHECK(k != 1 || strstr(errmsg, "damaged") != NULL);
        CHECK(k != 2 || strstr(errmsg, "must be") != NULL);
        CHECK(k != 3 || strstr(errmsg, "newer") != NULL);
        CHECK(k != 4 || strstr(errmsg, "truncated") != NULL);
        CHECK(k != 5 || strstr(errmsg, "missing") != NULL);
        CHECK(k != 6 || (strstr(errmsg, "damaged") != NULL &&
                         strstr(errmsg, "written") != NULL));
        cr_store_close(again);
    }
}

/* The last record, damaged at rest after it was written whole: every byte
 * of it flipped in turn (a dense sample of its second block), and open
 * refuses each one naming the file and the offset, never reading it as torn
 * or as the end. A flipped stamp after the first block leaves bytes that
 * check: the record is kept. */
static void test_last_record_damaged(void)
{
    const char *dir = case_dir("last-damaged");
    struct cr_store *s = open_store(dir, 1);
    struct cr_store *again;
    struct cr_wal_pos pos;
    uint64_t at[4];
    uint64_t size;
    uint64_t i;
    char where[64];
    raft_term term = 0;
    int refused = 1;
    int tried = 0;
    cr_store_wal(s, &pos, &size);
    log_entries(s, &pos, 3, at);
    cr_store_close(s);
    CHECK(pos.offset - at[3] == 2 * CR_WAL_BLOCK);
    snprintf(where, sizeof where, "offset %llu ", (unsigned long long)at[3]);
    for (i = 0; i < 2 * CR_WAL_BLOCK; i += i < CR_WAL_BLOCK ? 1 : 3) {
        int rc;
        if (i >= CR_WAL_BLOCK && i < CR_WAL_BLOCK + CR_WAL_STAMP) {
            continue;
        }
        flip_at(dir, at[3] + i);
        again = NULL;
        errmsg[0] = 0;
        rc = cr_store_open(dir, 0, &again, errmsg);
        if (rc != RAFT_CORRUPT || again != NULL ||
            strstr(errmsg, wal_file(dir)) == NULL ||
            strstr(errmsg, where) == NULL || strstr(errmsg, "damaged") == NULL) {
            refused = 0;
            fprintf(stderr, "byte %llu: rc %d: %s\n", (unsigned long long)i,
                    rc, errmsg);
        }
        cr_store_close(again);
        flip_at(dir, at[3] + i);
        tried++;
    }
    CHECK(refused && tried > 600);
    flip_at(dir, at[3] + CR_WAL_BLOCK + 3);
    CHECK(loaded(dir, &term) == 3 && term == 2);
}

/* A torn last record (a crash mid-write: some of its blocks new, some
 * still holding what was there, zeros or the previous generation's
 * bytes): ignored with a WARNING if its first block landed, the clean end
 * if it did not; the records before it are kept either way. */
static void test_torn_last_record(void)
{
    static const char *names[] = {"torn-zeros", "torn-old-gen",
                                  "torn-first-old"};
    int k;
    for (k = 0; k < 3; k++) {
        const char *dir = case_dir(names[k]);
        struct cr_store *s = open_store(dir, 1);
        struct cr_wal_pos pos;
        uint64_t at[4];
        uint64_t size;
        uint8_t old[2 * CR_WAL_BLOCK];
        raft_term term = 0;
        size_t kept = 3;
        int fd;
        cr_store_wal(s, &pos, &size);
        log_entries(s, &pos, 3, at);
        cr_store_close(s);
        if (k > 0) {
            /* Open replays generation 1; generation 2 writes over it. */
            fd = open(wal_file(dir), O_RDONLY);
            CHECK(pread(fd, old, sizeof old, (off_t)at[3]) == sizeof old);
            close(fd);
            s = open_store(dir, 0);
            cr_store_wal(s, &pos, &size);
            CHECK(pos.gen == 2 && pos.offset == 0);
            log_entries_from(s, &pos, 4, 3, at);
            cr_store_close(s);
            kept = 6;
        } else {
            memset(old, 0, sizeof old);
        }
        fd = open(wal_file(dir), O_RDWR);
        if (k < 2) {
            CHECK(pwrite(fd, old + CR_WAL_BLOCK, CR_WAL_BLOCK,
                         (off_t)(at[3] + CR_WAL_BLOCK)) == CR_WAL_BLOCK);
        } else {
            CHECK(pwrite(fd, old, CR_WAL_BLOCK, (off_t)at[3]) == CR_WAL_BLOCK);
        }
        close(fd);
        s = open_store(dir, 0);
        CHECK(s != NULL &&
              (k == 2 ? cr_store_warning(s)[0] == 0
                      : strstr(cr_store_warning(s), "torn") != NULL));
        cr_store_close(s);
        CHECK(loaded(dir, &term) == kept - 1 && term == 2);
    }
}

/* A store of the format before the stamped blocks: refused, saying so. */
static void test_old_format(void)
{
    const char *dir = case_dir("old-format");
    struct cr_store *s = open_store(dir, 1);
    struct cr_store *again = NULL;
    char path[4200];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    MDB_val k = {6, "format"};
    MDB_val v = {21, "canonical_raft lmdb 1"};
    cr_store_close(s);
    snprintf(path, sizeof path, "%s/lmdb", dir);
    CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 8) == 0 &&
          mdb_env_open(env, path, MDB_NOLOCK, 0600) == 0);
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0 &&
          mdb_dbi_open(txn, "meta", 0, &meta) == 0 &&
          mdb_put(txn, meta, &k, &v, 0) == 0 && mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    CHECK(cr_store_open(dir, 0, &again, errmsg) == RAFT_CORRUPT &&
          again == NULL && strstr(errmsg, "'canonical_raft lmdb 1'") != NULL &&
          strstr(errmsg, "lmdb 2") != NULL);
}

/* A file that fills: cr_store_log refuses what does not fit (the io then
 * goes direct), and a reset makes room again. */
static void test_full(void)
{
    const char *dir = case_dir("full");
    struct cr_store *s = open_store(dir, 1);
    struct cr_wal_pos pos;
    struct cr_store_op op;
    struct raft_entry e;
    uint64_t size;
    raft_index i = 1;
    raft_term term = 0;
    static uint8_t big[1 << 20];
    cr_store_wal(s, &pos, &size);
    memset(&op, 0, sizeof op);
    op.kind = CR_OP_TERM;
    op.value = 1;
    CHECK(cr_store_log(s, &pos, &op, 1, errmsg) == 0);
    memset(&e, 0, sizeof e);
    e.type = RAFT_COMMAND;
    e.term = 1;
    e.buf.base = big;
    e.buf.len = sizeof big;
    memset(&op, 0, sizeof op);
    op.kind = CR_OP_APPEND;
    op.entries = &e;
    op.n = 1;
    while (pos.offset + cr_store_log_size(&op, 1) <= size) {
        op.index = i++;
        CHECK(cr_store_log(s, &pos, &op, 1, errmsg) == 0);
    }
    op.index = i;
    CHECK(cr_store_log(s, &pos, &op, 1, errmsg) == RAFT_INVALID);
    CHECK(cr_store_checkpoint(s, &pos, &op, 1, 1, &pos, errmsg) == 0 &&
          pos.offset == 0 && pos.gen == 2);
    op.index = ++i;
    CHECK(cr_store_log(s, &pos, &op, 1, errmsg) == 0);
    cr_store_close(s);
    CHECK(loaded(dir, &term) == i);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    scratch = argv[1];
    check_detail = errmsg;          /* a failure prints the store's last error */
    test_codec();
    test_malformed_payload();
    test_replay_and_checkpoint();
    test_damage();
    test_last_record_damaged();
    test_torn_last_record();
    test_old_format();
    test_full();
    return check_report();
}
