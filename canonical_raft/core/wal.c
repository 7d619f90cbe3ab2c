/* wal.c: the write-ahead file and its record codec (see wal.h). */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define OP_HEADER 16
#define ENTRY_HEADER 16
#define ZEROS (1u << 20)

static void put32(uint8_t *p, uint32_t v)
{
    int k;
    for (k = 0; k < 4; k++) {
        p[k] = (uint8_t)(v >> (8 * k));
    }
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint64_t pad8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

static int fail(char *errmsg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *errmsg, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, CR_STORE_ERRMSG, fmt, ap);
    va_end(ap);
    return code;
}

static int io_code(int err)
{
    return err == ENOSPC || err == EDQUOT ? RAFT_NOSPACE : RAFT_IOERR;
}

static char *wal_path(const char *dir, const char *suffix)
{
    size_t n = strlen(dir) + sizeof CR_WAL_FILE + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s/%s%s", dir, CR_WAL_FILE, suffix);
    }
    return p;
}

/* ---- the file ---------------------------------------------------------------- */

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;
    if (fd < 0) {
        return -1;
    }
    rc = fsync(fd);
    close(fd);
    return rc;
}

int cr_wal_create(const char *dir, uint64_t size, char *errmsg)
{
    char *tmp = wal_path(dir, ".tmp");
    char *path = wal_path(dir, "");
    uint8_t *zeros = calloc(1, ZEROS);
    uint64_t done = 0;
    int fd = -1;
    int rc = 0;
    if (tmp == NULL || path == NULL || zeros == NULL) {
        rc = fail(errmsg, RAFT_NOMEM, "out of memory");
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = fail(errmsg, io_code(errno), "%s: %s", tmp, strerror(errno));
        goto out;
    }
    /* Written, not fallocate'd: an unwritten extent would make every later
     * fdatasync that converts it commit the file system's journal. */
    while (done < size) {
        size_t n = size - done < ZEROS ? (size_t)(size - done) : ZEROS;
        ssize_t w = pwrite(fd, zeros, n, (off_t)done);
        if (w <= 0) {
            rc = fail(errmsg, io_code(errno), "%s: write: %s", tmp,
                      w < 0 ? strerror(errno) : "short write");
            goto out;
        }
        done += (uint64_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        rc = fail(errmsg, io_code(errno), "%s: fsync: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0 || fsync_dir(dir) != 0) {
        rc = fail(errmsg, io_code(errno), "%s: %s", path, strerror(errno));
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    if (rc != 0 && tmp != NULL) {
        unlink(tmp);
    }
    free(zeros);
    free(tmp);
    free(path);
    return rc;
}

int cr_wal_open(const char *dir, uint64_t size, struct cr_wal **out,
                char *errmsg)
{
    struct cr_wal *w = calloc(1, sizeof *w);
    struct stat st;
    void *map;
    int rc;
    *out = NULL;
    if (w == NULL || (w->path = wal_path(dir, "")) == NULL) {
        free(w);
        return fail(errmsg, RAFT_NOMEM, "out of memory");
    }
    w->fd = open(w->path, O_RDWR | O_CLOEXEC);
    if (w->fd < 0) {
        rc = errno == ENOENT
                 ? fail(errmsg, RAFT_CORRUPT, "%s: missing (the store "
                                              "records a write-ahead file)",
                        w->path)
                 : fail(errmsg, RAFT_IOERR, "%s: %s", w->path, strerror(errno));
        cr_wal_close(w);
        return rc;
    }
    if (fstat(w->fd, &st) != 0) {
        rc = fail(errmsg, RAFT_IOERR, "%s: stat: %s", w->path, strerror(errno));
        cr_wal_close(w);
        return rc;
    }
    /* A cut file would fault (SIGBUS) where the map passes its end. */
    if ((uint64_t)st.st_size != size) {
        rc = fail(errmsg, RAFT_CORRUPT, "%s: %s: %llu bytes, not %llu",
                  w->path, (uint64_t)st.st_size < size ? "truncated"
                                                       : "wrong length",
                  (unsigned long long)st.st_size, (unsigned long long)size);
        cr_wal_close(w);
        return rc;
    }
    map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, w->fd, 0);
    if (map == MAP_FAILED) {
        rc = fail(errmsg, RAFT_IOERR, "%s: mmap: %s", w->path, strerror(errno));
        cr_wal_close(w);
        return rc;
    }
    w->map = map;
    w->size = size;
    *out = w;
    return 0;
}

void cr_wal_close(struct cr_wal *w)
{
    if (w == NULL) {
        return;
    }
    if (w->map != NULL) {
        munmap((void *)w->map, (size_t)w->size);
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    free(w->path);
    free(w);
}

int cr_wal_append(struct cr_wal *w, uint64_t offset, const uint8_t *rec,
                  uint64_t len, char *errmsg)
{
    uint64_t done = 0;
    if (offset > w->size || len > w->size - offset) {
        return fail(errmsg, RAFT_INVALID, "%s: a record of %llu bytes at "
                                          "%llu does not fit",
                    w->path, (unsigned long long)len,
                    (unsigned long long)offset);
    }
    while (done < len) {
        ssize_t n = pwrite(w->fd, rec + done, (size_t)(len - done),
                           (off_t)(offset + done));
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return fail(errmsg, io_code(errno), "%s: write: %s", w->path,
                        n < 0 ? strerror(errno) : "short write");
        }
        done += (uint64_t)n;
    }
    if (fdatasync(w->fd) != 0) {
        return fail(errmsg, io_code(errno), "%s: fdatasync: %s", w->path,
                    strerror(errno));
    }
    return 0;
}

/* ---- the codec -------------------------------------------------------------------- */

uint64_t cr_wal_record_size(const struct cr_store_op *ops, unsigned n)
{
    uint64_t size = CR_WAL_HEADER;
    unsigned i;
    unsigned k;
    for (i = 0; i < n; i++) {
        size += OP_HEADER;
        switch (ops[i].kind) {
            case CR_OP_TERM:
            case CR_OP_VOTE:
            case CR_OP_TRUNCATE:
                break;
            case CR_OP_APPEND:
                for (k = 0; k < ops[i].n; k++) {
                    if (ops[i].entries[k].buf.len > UINT32_MAX) {
                        return 0;
                    }
                    size += ENTRY_HEADER + pad8(ops[i].entries[k].buf.len);
                }
                break;
            default:
                return 0;
        }
    }
    return size - CR_WAL_HEADER > UINT32_MAX ? 0 : size;
}

void cr_wal_encode(uint8_t *rec, uint64_t gen, uint64_t seq,
                   const struct cr_store_op *ops, unsigned n)
{
    uint64_t size = cr_wal_record_size(ops, n);
    uint8_t *p = rec + CR_WAL_HEADER;
    unsigned i;
    unsigned k;
    memset(rec, 0, (size_t)size);
    put32(rec + 4, CR_WAL_MAGIC);
    put64(rec + 8, gen);
    put64(rec + 16, seq);
    put32(rec + 24, (uint32_t)(size - CR_WAL_HEADER));
    put32(rec + 28, n);
    for (i = 0; i < n; i++) {
        const struct cr_store_op *op = &ops[i];
        put32(p, (uint32_t)op->kind);
        put32(p + 4, op->kind == CR_OP_APPEND ? op->n : 0);
        put64(p + 8, op->kind == CR_OP_APPEND || op->kind == CR_OP_TRUNCATE
                         ? op->index
                         : op->value);
        p += OP_HEADER;
        if (op->kind != CR_OP_APPEND) {
            continue;
        }
        for (k = 0; k < op->n; k++) {
            const struct raft_entry *e = &op->entries[k];
            put64(p, e->term);
            put32(p + 8, (uint32_t)e->buf.len);
            p[12] = (uint8_t)e->type;
            if (e->buf.len > 0) {
                memcpy(p + ENTRY_HEADER, e->buf.base, e->buf.len);
            }
            p += ENTRY_HEADER + pad8(e->buf.len);
        }
    }
    put32(rec, cr_crc32c(0, rec + 4, (size_t)size - 4));
}

int cr_wal_check(const struct cr_wal *w, uint64_t offset, uint64_t gen,
                 uint64_t *seq, uint64_t *rgen, uint64_t *len)
{
    const uint8_t *p;
    uint64_t plen;
    if (offset % 8 != 0 || offset > w->size ||
        w->size - offset < CR_WAL_HEADER) {
        return 0;
    }
    p = w->map + offset;
    if (get32(p + 4) != CR_WAL_MAGIC || get64(p + 8) == 0 ||
        (gen != 0 && get64(p + 8) != gen)) {
        return 0;
    }
    plen = get32(p + 24);
    if (plen % 8 != 0 || plen > w->size - offset - CR_WAL_HEADER ||
        get32(p) != cr_crc32c(0, p + 4, (size_t)(CR_WAL_HEADER - 4 + plen))) {
        return 0;
    }
    *seq = get64(p + 16);
    *rgen = get64(p + 8);
    *len = CR_WAL_HEADER + plen;
    return 1;
}

void cr_wal_reader_init(struct cr_wal_reader *r, const struct cr_wal *w,
                        uint64_t offset)
{
    const uint8_t *p = w->map + offset;
    r->p = p + CR_WAL_HEADER;
    r->end = r->p + get32(p + 24);
    r->ops_left = get32(p + 28);
    r->entries_left = 0;
    r->next_index = 0;
}

int cr_wal_next(struct cr_wal_reader *r, struct cr_store_op *op,
                struct raft_entry *e)
{
    memset(op, 0, sizeof *op);
    if (r->entries_left > 0) {
        uint64_t len;
        if ((size_t)(r->end - r->p) < ENTRY_HEADER) {
            return -1;
        }
        len = get32(r->p + 8);
        if (pad8(len) > (uint64_t)(r->end - r->p) - ENTRY_HEADER ||
            r->p[12] < RAFT_COMMAND || r->p[12] > RAFT_CHANGE ||
            get64(r->p) == 0) {
            return -1;
        }
        memset(e, 0, sizeof *e);
        e->term = get64(r->p);
        e->type = (enum raft_entry_type)r->p[12];
        e->buf.len = (size_t)len;
        e->buf.base = (void *)(r->p + ENTRY_HEADER);
        r->p += ENTRY_HEADER + pad8(len);
        op->kind = CR_OP_APPEND;
        op->index = r->next_index++;
        op->entries = e;
        op->n = 1;
        r->entries_left--;
        return 1;
    }
    if (r->ops_left == 0) {
        return r->p == r->end ? 0 : -1;
    }
    if ((size_t)(r->end - r->p) < OP_HEADER) {
        return -1;
    }
    r->ops_left--;
    op->kind = (int)get32(r->p);
    switch (op->kind) {
        case CR_OP_TERM:
        case CR_OP_VOTE:
            op->value = get64(r->p + 8);
            break;
        case CR_OP_TRUNCATE:
            op->index = get64(r->p + 8);
            break;
        case CR_OP_APPEND:
            r->entries_left = get32(r->p + 4);
            r->next_index = get64(r->p + 8);
            if (r->next_index == 0 ||
                (uint64_t)r->entries_left >
                    (uint64_t)(r->end - r->p - OP_HEADER) / ENTRY_HEADER) {
                return -1;
            }
            r->p += OP_HEADER;
            if (r->entries_left == 0) {
                op->index = r->next_index;
                return 1;   /* an empty append: nothing to do */
            }
            return cr_wal_next(r, op, e);
        default:
            return -1;
    }
    if (get32(r->p + 4) != 0) {
        return -1;
    }
    r->p += OP_HEADER;
    return 1;
}
