/* Unit tests for canonical_raft/core/lmdb_store.c and codec_conf.h.
 *
 *   cc -std=gnu11 -O1 -g -Wall -Werror -fsanitize=address,undefined \
 *      -I canonical_raft/core tests/c/lmdb_store_test.c \
 *      canonical_raft/core/lmdb_store.c -llmdb -lraft -o lmdb_store_test
 *   ./lmdb_store_test SCRATCH_DIR
 *
 * Each case works in its own directory under SCRATCH_DIR. The last line is
 * "N passed, M failed".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "codec_conf.h"
#include "lmdb_store.h"

#include "store_check.h"

static struct cr_store *open_store(const char *dir, int create)
{
    struct cr_store *s = NULL;
    int rv = cr_store_open(dir, create, &s, errmsg);
    CHECK(rv == 0 && s != NULL);
    return s;
}

static void conf_two(struct raft_configuration *conf)
{
    raft_configuration_init(conf);
    raft_configuration_add(conf, 1, "127.0.0.1:9001", RAFT_VOTER);
    raft_configuration_add(conf, 2, "127.0.0.1:9002", RAFT_VOTER);
}

/* An entry whose bytes are a pattern of its index (len bytes). */
static struct raft_entry make_entry(raft_index index, raft_term term,
                                    size_t len)
{
    struct raft_entry e;
    size_t i;
    memset(&e, 0, sizeof e);
    e.type = RAFT_COMMAND;
    e.term = term;
    e.buf.len = len;
    e.buf.base = raft_malloc(len > 0 ? len : 1);
    for (i = 0; i < len; i++) {
        ((uint8_t *)e.buf.base)[i] = (uint8_t)(index * 31 + i);
    }
    return e;
}

static int entry_ok(const struct raft_entry *e, raft_index index,
                    raft_term term, size_t len)
{
    size_t i;
    if (e->term != term || e->type != RAFT_COMMAND || e->buf.len != len) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (((uint8_t *)e->buf.base)[i] != (uint8_t)(index * 31 + i)) {
            return 0;
        }
    }
    return 1;
}

/* Append entries [first, first + n) of term `term`, entry i of i % 97 * 8 +
 * 8 bytes, in one write. */
static int append(struct cr_store *s, raft_index first, unsigned n,
                  raft_term term)
{
    struct raft_entry *es = calloc(n, sizeof *es);
    struct cr_store_op op;
    unsigned i;
    int rv;
    for (i = 0; i < n; i++) {
        es[i] = make_entry(first + i, term, (first + i) % 97 * 8 + 8);
    }
    memset(&op, 0, sizeof op);
    op.kind = CR_OP_APPEND;
    op.index = first;
    op.entries = es;
    op.n = n;
    rv = cr_store_write(s, &op, 1, errmsg);
    for (i = 0; i < n; i++) {
        raft_free(es[i].buf.base);
    }
    free(es);
    return rv;
}

static int log_ok(const struct cr_store_state *st, raft_index first,
                  raft_index last, raft_term term)
{
    size_t i;
    if (st->start_index != first || st->n_entries != last - first + 1) {
        return 0;
    }
    for (i = 0; i < st->n_entries; i++) {
        raft_index index = first + i;
        if (!entry_ok(&st->entries[i], index, term, index % 97 * 8 + 8) ||
            st->entries[i].batch != st->entries[0].batch) {
            return 0;
        }
    }
    return 1;
}

static int write_op(struct cr_store *s, int kind, uint64_t value,
                    raft_index index)
{
    struct cr_store_op op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    op.value = value;
    op.index = index;
    return cr_store_write(s, &op, 1, errmsg);
}

/* A snapshot at index/term whose data is `size` bytes of a pattern in
 * three buffers. */
static int put_snapshot(struct cr_store *s, raft_index index, raft_term term,
                        size_t size, unsigned trailing)
{
    struct raft_snapshot snap;
    struct raft_buffer bufs[3];
    struct cr_store_op op;
    uint8_t *data = malloc(size > 0 ? size : 1);
    size_t i;
    int rv;
    for (i = 0; i < size; i++) {
        data[i] = (uint8_t)(i * 7 + index);
    }
    memset(&snap, 0, sizeof snap);
    snap.index = index;
    snap.term = term;
    conf_two(&snap.configuration);
    snap.configuration_index = 1;
    bufs[0].base = data;
    bufs[0].len = size / 3;
    bufs[1].base = data + size / 3;
    bufs[1].len = size / 3;
    bufs[2].base = data + 2 * (size / 3);
    bufs[2].len = size - 2 * (size / 3);
    snap.bufs = bufs;
    snap.n_bufs = 3;
    memset(&op, 0, sizeof op);
    op.kind = CR_OP_SNAPSHOT;
    op.snapshot = &snap;
    op.trailing = trailing;
    rv = cr_store_write(s, &op, 1, errmsg);
    raft_configuration_close(&snap.configuration);
    free(data);
    return rv;
}

static int snapshot_ok(const struct raft_snapshot *snap, raft_index index,
                       raft_term term, size_t size)
{
    size_t i;
    if (snap == NULL || snap->index != index || snap->term != term ||
        snap->n_bufs != 1 || snap->bufs[0].len != size ||
        snap->configuration.n != 2 || snap->configuration.servers[1].id != 2 ||
        strcmp(snap->configuration.servers[1].address, "127.0.0.1:9002") != 0) {
        return 0;
    }
    for (i = 0; i < size; i++) {
        if (((uint8_t *)snap->bufs[0].base)[i] != (uint8_t)(i * 7 + index)) {
            return 0;
        }
    }
    return 1;
}

/* ---- cases --------------------------------------------------------------- */

static void test_crc(void)
{
    current = "crc32c";
    CHECK(cr_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(cr_crc32c(cr_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u);
    CHECK(cr_crc32c(0, "", 0) == 0);
}

static void test_conf_check(void)
{
    struct raft_configuration conf;
    struct raft_buffer buf;
    uint8_t b[256];
    size_t i;
    current = "conf_check";
    conf_two(&conf);
    CHECK(raft_configuration_encode(&conf, &buf) == 0);
    CHECK(cr_conf_check(buf.base, buf.len) == 0);
    /* Every shorter prefix fails, and so does any flip of the count, an id
     * to 0 or a role to 3. */
    for (i = 0; i < buf.len; i++) {
        CHECK(cr_conf_check(buf.base, i) != 0);
    }
    memcpy(b, buf.base, buf.len);
    b[0] = 2;
    CHECK(cr_conf_check(b, buf.len) != 0); /* format */
    memcpy(b, buf.base, buf.len);
    b[1] = 3;
    CHECK(cr_conf_check(b, buf.len) != 0); /* count */
    memcpy(b, buf.base, buf.len);
    b[1] = 0;
    CHECK(cr_conf_check(b, buf.len) != 0); /* no servers */
    memcpy(b, buf.base, buf.len);
    memset(b + 9, 0, 8);
    CHECK(cr_conf_check(b, buf.len) != 0); /* id 0 */
    memcpy(b, buf.base, buf.len);
    b[9 + 8 + 14 + 1] = 3;
    CHECK(cr_conf_check(b, buf.len) != 0); /* role */
    memcpy(b, buf.base, buf.len);
    b[9 + 8 + 3] = ' ';
    CHECK(cr_conf_check(b, buf.len) != 0); /* a space in the address */
    memcpy(b, buf.base, buf.len);
    b[buf.len - 1] = 1;
    CHECK(cr_conf_check(b, buf.len) != 0); /* padding */
    memcpy(b, buf.base, buf.len);
    memset(b + buf.len, 0, 8);
    CHECK(cr_conf_check(b, buf.len + 8) != 0); /* 8 bytes of padding */
    memcpy(b, buf.base, buf.len);
    /* second server: same id as the first */
    b[9 + 8 + 15 + 1] = 1;
    CHECK(cr_conf_check(b, buf.len) != 0);
    memcpy(b, buf.base, buf.len);
    b[9 + 8 + 15 + 1 + 8 + 13] = '1'; /* second address = first */
    CHECK(cr_conf_check(b, buf.len) != 0);
    raft_free(buf.base);
    raft_configuration_close(&conf);
    /* Garbage never crashes (ASan). */
    srand(7);
    for (i = 0; i < 20000; i++) {
        size_t len = (size_t)(rand() % 64);
        size_t k;
        for (k = 0; k < len; k++) {
            b[k] = (uint8_t)(k < 9 && rand() % 2 ? (k == 0 ? 1 : 0) : rand());
        }
        (void)cr_conf_check(b, len);
    }
}

static void test_empty(void)
{
    const char *dir = case_dir("empty");
    struct cr_store_state st;
    struct cr_store *s = open_store(dir, 1);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(st.term == 0 && st.vote == 0 && st.snapshot == NULL &&
          st.start_index == 1 && st.n_entries == 0 && st.entries == NULL);
    cr_store_close(s);
    s = open_store(dir, 0); /* exists now */
    cr_store_close(s);
}

static void test_bootstrap(void)
{
    const char *dir = case_dir("bootstrap");
    struct raft_configuration conf;
    struct raft_configuration got;
    struct cr_store_state st;
    struct cr_store *s = open_store(dir, 1);
    conf_two(&conf);
    CHECK(cr_store_bootstrap(s, &conf, errmsg) == 0);
    CHECK(cr_store_bootstrap(s, &conf, errmsg) == RAFT_CANTBOOTSTRAP);
    cr_store_close(s);
    s = open_store(dir, 0);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(st.term == 1 && st.start_index == 1 && st.n_entries == 1);
    CHECK(st.entries[0].type == RAFT_CHANGE && st.entries[0].term == 1);
    CHECK(raft_configuration_decode(&st.entries[0].buf, &got) == 0);
    CHECK(got.n == 2 && got.servers[0].id == 1);
    raft_configuration_close(&got);
    cr_store_state_free(&st);
    /* recover: a configuration entry after the last one, its term */
    CHECK(write_op(s, CR_OP_TERM, 5, 0) == 0);
    CHECK(append(s, 2, 3, 4) == 0);
    CHECK(cr_store_recover(s, &conf, errmsg) == 0);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(st.n_entries == 5 && st.entries[4].type == RAFT_CHANGE &&
          st.entries[4].term == 4 && st.term == 5);
    cr_store_state_free(&st);
    raft_configuration_close(&conf);
    cr_store_close(s);
}

static void test_term_vote(void)
{
    const char *dir = case_dir("term_vote");
    struct cr_store_state st;
    struct cr_store *s = open_store(dir, 1);
    CHECK(write_op(s, CR_OP_TERM, 7, 0) == 0);
    CHECK(write_op(s, CR_OP_VOTE, 3, 0) == 0);
    cr_store_close(s);
    s = open_store(dir, 0);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(st.term == 7 && st.vote == 3);
    CHECK(write_op(s, CR_OP_TERM, 8, 0) == 0); /* a new term clears the vote */
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(st.term == 8 && st.vote == 0);
    cr_store_close(s);
}

static void test_append_truncate(void)
{
    const char *dir = case_dir("append_truncate");
    struct cr_store_state st;
    struct cr_store_stat stat;
    struct cr_store *s = open_store(dir, 1);
    CHECK(write_op(s, CR_OP_TERM, 2, 0) == 0);
    CHECK(append(s, 1, 60, 2) == 0);
    CHECK(append(s, 61, 40, 2) == 0);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(log_ok(&st, 1, 100, 2));
    cr_store_state_free(&st);
    /* A gap or an overwrite without a truncation is refused, whole. */
    CHECK(append(s, 102, 1, 2) == RAFT_INVALID);
    CHECK(append(s, 100, 1, 2) == RAFT_INVALID);
    CHECK(write_op(s, CR_OP_TRUNCATE, 0, 50) == 0);
    CHECK(write_op(s, CR_OP_TRUNCATE, 0, 80) == 0); /* nothing there */
    CHECK(cr_store_stat(s, &stat, errmsg) == 0);
    CHECK(stat.first_index == 1 && stat.last_index == 49 &&
          stat.n_entries == 49 && stat.used_bytes > 0 &&
          stat.file_size >= stat.used_bytes);
    /* Truncate and append in one batch: ordered. */
    {
        struct raft_entry e = make_entry(30, 3, 30 % 97 * 8 + 8);
        struct cr_store_op ops[2];
        memset(ops, 0, sizeof ops);
        ops[0].kind = CR_OP_TRUNCATE;
        ops[0].index = 30;
        ops[1].kind = CR_OP_APPEND;
        ops[1].index = 30;
        ops[1].entries = &e;
        ops[1].n = 1;
        CHECK(cr_store_write(s, ops, 2, errmsg) == 0);
        raft_free(e.buf.base);
    }
    cr_store_close(s);
    s = open_store(dir, 0);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(st.n_entries == 30 && st.entries[29].term == 3 &&
          entry_ok(&st.entries[29], 30, 3, 30 % 97 * 8 + 8));
    CHECK(entry_ok(&st.entries[28], 29, 2, 29 % 97 * 8 + 8));
    cr_store_state_free(&st);
    cr_store_close(s);
}

static void test_snapshots(void)
{
    const char *dir = case_dir("snapshots");
    struct cr_store_state st;
    struct raft_snapshot *snap;
    struct cr_store *s = open_store(dir, 1);
    CHECK(write_op(s, CR_OP_TERM, 2, 0) == 0);
    CHECK(cr_store_snapshot_get(s, &snap, errmsg) == 0 && snap == NULL);
    CHECK(append(s, 1, 100, 2) == 0);
    /* Our own snapshot at 80 keeping 10: entries 71..100 remain. */
    CHECK(put_snapshot(s, 80, 2, 100000, 10) == 0);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(log_ok(&st, 71, 100, 2));
    CHECK(snapshot_ok(st.snapshot, 80, 2, 100000));
    cr_store_state_free(&st);
    CHECK(cr_store_snapshot_get(s, &snap, errmsg) == 0);
    CHECK(snapshot_ok(snap, 80, 2, 100000));
    cr_store_snapshot_free(snap);
    /* A truncation below the snapshot's trailing entries (a follower's
     * conflicting tail) leaves the rest. */
    CHECK(write_op(s, CR_OP_TRUNCATE, 0, 90) == 0);
    CHECK(append(s, 90, 5, 2) == 0);
    /* Installing a leader's snapshot at 500 drops the whole log. */
    CHECK(put_snapshot(s, 500, 3, 7, 0) == 0);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(st.n_entries == 0 && st.start_index == 501 &&
          snapshot_ok(st.snapshot, 500, 3, 7));
    cr_store_state_free(&st);
    CHECK(append(s, 501, 10, 3) == 0);
    cr_store_close(s);
    s = open_store(dir, 0);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(log_ok(&st, 501, 510, 3) && snapshot_ok(st.snapshot, 500, 3, 7));
    cr_store_state_free(&st);
    /* An empty snapshot is a snapshot. */
    CHECK(put_snapshot(s, 505, 3, 0, 2) == 0);
    CHECK(cr_store_load(s, &st, errmsg) == 0);
    CHECK(log_ok(&st, 504, 510, 3) && snapshot_ok(st.snapshot, 505, 3, 0));
    cr_store_state_free(&st);
    cr_store_close(s);
}

/* Flip one byte of the data file at the first occurrence of `pattern`. */
static int flip_in_file(const char *dir, const uint8_t *pattern, size_t n)
{
    char path[4096];
    struct stat fst;
    uint8_t *buf;
    FILE *f;
    size_t i;
    int found = 0;
    snprintf(path, sizeof path, "%s/lmdb/data.mdb", dir);
    if (stat(path, &fst) != 0 || (f = fopen(path, "r+b")) == NULL) {
        return 0;
    }
    buf = malloc((size_t)fst.st_size);
    if (fread(buf, 1, (size_t)fst.st_size, f) == (size_t)fst.st_size) {
        for (i = 0; i + n <= (size_t)fst.st_size; i++) {
            if (memcmp(buf + i, pattern, n) == 0) {
                buf[i + n / 2] ^= 0x10;
                fseek(f, (long)(i + n / 2), SEEK_SET);
                fputc(buf[i + n / 2], f);
                found = 1;
                break;
            }
        }
    }
    fclose(f);
    free(buf);
    return found;
}

static int mentions_file(void)
{
    return strstr(errmsg, "lmdb/data.mdb") != NULL;
}

static void test_corrupt_entry(void)
{
    const char *dir = case_dir("corrupt_entry");
    struct cr_store_state st;
    struct raft_entry e = make_entry(37, 2, 37 % 97 * 8 + 8);
    struct cr_store *s = open_store(dir, 1);
    CHECK(write_op(s, CR_OP_TERM, 2, 0) == 0);
    CHECK(append(s, 1, 60, 2) == 0);
    cr_store_close(s);
    CHECK(flip_in_file(dir, e.buf.base, e.buf.len));
    raft_free(e.buf.base);
    s = open_store(dir, 0);
    CHECK(cr_store_load(s, &st, errmsg) == RAFT_CORRUPT);
    CHECK(mentions_file() && strstr(errmsg, "log entry") != NULL);
    CHECK(st.entries == NULL && st.snapshot == NULL);
    cr_store_close(s);
}

static void test_corrupt_snapshot(void)
{
    const char *dir = case_dir("corrupt_snapshot");
    struct cr_store_state st;
    struct raft_snapshot *snap;
    uint8_t pattern[16];
    size_t i;
    struct cr_store *s = open_store(dir, 1);
    CHECK(write_op(s, CR_OP_TERM, 2, 0) == 0);
    CHECK(append(s, 1, 20, 2) == 0);
    CHECK(put_snapshot(s, 10, 2, 50000, 5) == 0);
    cr_store_close(s);
    for (i = 0; i < sizeof pattern; i++) {
        pattern[i] = (uint8_t)((i + 20000) * 7 + 10);
    }
    CHECK(flip_in_file(dir, pattern, sizeof pattern));
    s = open_store(dir, 0);
    CHECK(cr_store_load(s, &st, errmsg) == RAFT_CORRUPT);
    CHECK(mentions_file() && strstr(errmsg, "snapshot 10") != NULL);
    CHECK(cr_store_snapshot_get(s, &snap, errmsg) == RAFT_CORRUPT &&
          snap == NULL);
    cr_store_close(s);
}

/* The snapshot's data record deleted behind the store's back. */
static void test_missing_snapshot(void)
{
    const char *dir = case_dir("missing_snapshot");
    char sub[4096];
    struct cr_store_state st;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {4, "data"};
    struct cr_store *s = open_store(dir, 1);
    CHECK(write_op(s, CR_OP_TERM, 2, 0) == 0);
    CHECK(append(s, 1, 20, 2) == 0);
    CHECK(put_snapshot(s, 10, 2, 500, 5) == 0);
    cr_store_close(s);
    snprintf(sub, sizeof sub, "%s/lmdb", dir);
    CHECK(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 3);
    CHECK(mdb_env_open(env, sub, MDB_NOLOCK, 0600) == 0);
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK(mdb_dbi_open(txn, "snapshot", 0, &dbi) == 0);
    CHECK(mdb_del(txn, dbi, &k, NULL) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    s = open_store(dir, 0);
    CHECK(cr_store_load(s, &st, errmsg) == RAFT_CORRUPT);
    CHECK(mentions_file() && strstr(errmsg, "missing snapshot") != NULL);
    cr_store_close(s);
}

static void test_truncated_file(void)
{
    const char *dir = case_dir("truncated_file");
    char path[4096];
    struct stat fst;
    struct cr_store *s = open_store(dir, 1);
    CHECK(write_op(s, CR_OP_TERM, 2, 0) == 0);
    CHECK(append(s, 1, 500, 2) == 0);
    cr_store_close(s);
    snprintf(path, sizeof path, "%s/lmdb/data.mdb", dir);
    CHECK(stat(path, &fst) == 0);
    CHECK(truncate(path, fst.st_size / 2) == 0);
    s = NULL;
    CHECK(cr_store_open(dir, 0, &s, errmsg) == RAFT_CORRUPT && s == NULL);
    CHECK(mentions_file() && strstr(errmsg, "truncated") != NULL);
    CHECK(truncate(path, 100) == 0); /* not even the meta pages */
    CHECK(cr_store_open(dir, 0, &s, errmsg) == RAFT_CORRUPT && s == NULL);
    CHECK(mentions_file());
}

static void test_missing_and_foreign(void)
{
    const char *dir = case_dir("missing");
    char path[4096];
    struct cr_store *s = NULL;
    FILE *f;
    int i;
    CHECK(cr_store_open(dir, 0, &s, errmsg) == RAFT_CORRUPT && s == NULL);
    CHECK(mentions_file() && strstr(errmsg, "missing") != NULL);
    dir = case_dir("foreign");
    snprintf(path, sizeof path, "%s/lmdb", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/lmdb/data.mdb", dir);
    f = fopen(path, "wb");
    for (i = 0; i < 20000; i++) {
        fputc(i * 13 & 0xff, f);
    }
    fclose(f);
    CHECK(cr_store_open(dir, 0, &s, errmsg) == RAFT_CORRUPT && s == NULL);
    CHECK(mentions_file());
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    scratch = argv[1];
    check_detail = errmsg;          /* a failure prints the store's last error */
    test_crc();
    test_conf_check();
    test_empty();
    test_bootstrap();
    test_term_vote();
    test_append_truncate();
    test_snapshots();
    test_corrupt_entry();
    test_corrupt_snapshot();
    test_missing_snapshot();
    test_truncated_file();
    test_missing_and_foreign();
    return check_report();
}
