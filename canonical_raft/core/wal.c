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

#include "le.h"

#define OP_HEADER 16
#define ENTRY_HEADER 16
#define ZEROS (1u << 20)

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
    if (offset % CR_WAL_BLOCK != 0 || len % CR_WAL_BLOCK != 0 ||
        offset > w->size || len > w->size - offset) {
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

/* A record's bytes as one stream: byte `at` of it is in block at / BODY,
 * after that block's stamp. */
static uint8_t *at_byte(uint8_t *rec, uint64_t at)
{
    return rec + (at / CR_WAL_BODY) * CR_WAL_BLOCK + CR_WAL_STAMP +
           at % CR_WAL_BODY;
}

static const uint8_t *at_cbyte(const uint8_t *rec, uint64_t at)
{
    return at_byte((uint8_t *)rec, at);
}

/* Copy n bytes into the stream at *at. */
static void put_bytes(uint8_t *rec, uint64_t *at, const void *src, uint64_t n)
{
    const uint8_t *s = src;
    while (n > 0) {
        uint64_t room = CR_WAL_BODY - *at % CR_WAL_BODY;
        uint64_t k = n < room ? n : room;
        memcpy(at_byte(rec, *at), s, (size_t)k);
        *at += k;
        s += k;
        n -= k;
    }
}

/* CRC-32C of the stream's bytes [from, to). */
static uint32_t crc_bytes(const uint8_t *rec, uint64_t from, uint64_t to)
{
    uint32_t crc = 0;
    while (from < to) {
        uint64_t room = CR_WAL_BODY - from % CR_WAL_BODY;
        uint64_t k = to - from < room ? to - from : room;
        crc = cr_crc32c(crc, at_cbyte(rec, from), (size_t)k);
        from += k;
    }
    return crc;
}

uint64_t cr_wal_payload_size(const struct cr_store_op *ops, unsigned n)
{
    uint64_t size = 0;
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
                        return UINT64_MAX;
                    }
                    size += ENTRY_HEADER + pad8(ops[i].entries[k].buf.len);
                }
                break;
            default:
                return UINT64_MAX;
        }
        if (size > UINT32_MAX) {
            return UINT64_MAX;
        }
    }
    return size;
}

uint64_t cr_wal_framed_size(uint64_t payload)
{
    if (payload > UINT32_MAX) {
        return UINT64_MAX;
    }
    return (CR_WAL_HEADER + payload + CR_WAL_BODY - 1) / CR_WAL_BODY *
           CR_WAL_BLOCK;
}

uint64_t cr_wal_record_size(const struct cr_store_op *ops, unsigned n)
{
    uint64_t size = cr_wal_framed_size(cr_wal_payload_size(ops, n));
    return size == UINT64_MAX ? 0 : size;
}

void cr_wal_encode(uint8_t *rec, uint64_t gen, uint64_t seq,
                   const struct cr_store_op *ops, unsigned n)
{
    uint64_t plen = cr_wal_payload_size(ops, n);
    uint64_t size = cr_wal_framed_size(plen);
    uint64_t at = CR_WAL_HEADER;
    uint8_t h[OP_HEADER];
    uint8_t *head;
    uint64_t b;
    unsigned i;
    unsigned k;
    memset(rec, 0, (size_t)size);
    for (b = 0; b < size; b += CR_WAL_BLOCK) {
        cr_put64(rec + b, gen);
    }
    head = at_byte(rec, 0);
    cr_put32(head + 4, CR_WAL_MAGIC);
    cr_put64(head + 8, gen);
    cr_put64(head + 16, seq);
    cr_put32(head + 24, (uint32_t)plen);
    cr_put32(head + 28, n);
    for (i = 0; i < n; i++) {
        const struct cr_store_op *op = &ops[i];
        cr_put32(h, (uint32_t)op->kind);
        cr_put32(h + 4, op->kind == CR_OP_APPEND ? op->n : 0);
        cr_put64(h + 8, op->kind == CR_OP_APPEND || op->kind == CR_OP_TRUNCATE
                            ? op->index
                            : op->value);
        put_bytes(rec, &at, h, OP_HEADER);
        if (op->kind != CR_OP_APPEND) {
            continue;
        }
        for (k = 0; k < op->n; k++) {
            const struct raft_entry *e = &op->entries[k];
            memset(h, 0, sizeof h);
            cr_put64(h, e->term);
            cr_put32(h + 8, (uint32_t)e->buf.len);
            h[12] = (uint8_t)e->type;
            put_bytes(rec, &at, h, ENTRY_HEADER);
            put_bytes(rec, &at, e->buf.base, e->buf.len);
            at += pad8(e->buf.len) - e->buf.len;    /* zeros already */
        }
    }
    cr_wal_seal(rec);
}

void cr_wal_seal(uint8_t *rec)
{
    uint8_t *head = at_byte(rec, 0);
    uint64_t size = cr_wal_framed_size(cr_get32(head + 24));
    cr_put32(head + 32, crc_bytes(rec, CR_WAL_HEADER,
                                  size / CR_WAL_BLOCK * CR_WAL_BODY));
    cr_put32(head, cr_crc32c(0, head + 4, CR_WAL_HEADER - 4));
}

/* Tell a whole record, a torn one, damage and a clean end apart (wal.h). */
enum cr_wal_found cr_wal_probe(const struct cr_wal *w, uint64_t offset,
                               uint64_t gen, struct cr_wal_found_rec *out)
{
    const uint8_t *rec;
    const uint8_t *head;
    uint64_t hgen;
    uint64_t size;
    uint64_t b;
    int header_ok;
    int claims;
    int stamps_ok = 1;
    memset(out, 0, sizeof *out);
    if (offset % CR_WAL_BLOCK != 0 || offset > w->size ||
        w->size - offset < CR_WAL_BLOCK) {
        return CR_WAL_END;
    }
    rec = w->map + offset;
    head = at_cbyte(rec, 0);
    hgen = cr_get64(head + 8);
    header_ok = cr_get32(head) == cr_crc32c(0, head + 4, CR_WAL_HEADER - 4) &&
                cr_get32(head + 4) == CR_WAL_MAGIC && cr_get32(head + 36) == 0;
    claims = cr_get32(head + 4) == CR_WAL_MAGIC && hgen == gen;
    if (cr_get64(rec) != gen) {
        if (header_ok && hgen > gen && cr_get64(rec) == hgen) {
            out->rgen = hgen;
            return CR_WAL_NEWER;
        }
        if (claims) {
            out->why = "its first block's stamp is not its generation";
            return CR_WAL_DAMAGED;
        }
        return CR_WAL_END;      /* zeros, an older generation's bytes */
    }
    /* Its first block was written in this generation, whole (atomic). */
    if (!header_ok || !claims) {
        out->why = "its header fails its checksum";
        return CR_WAL_DAMAGED;
    }
    size = cr_get32(head + 24) % 8 == 0 ? cr_wal_framed_size(cr_get32(head + 24))
                                        : UINT64_MAX;
    if (size > w->size - offset) {
        out->why = "its header's length passes the file's end";
        return CR_WAL_DAMAGED;
    }
    for (b = CR_WAL_BLOCK; b < size; b += CR_WAL_BLOCK) {
        stamps_ok &= cr_get64(rec + b) == gen;
    }
    if (cr_get32(head + 32) ==
        crc_bytes(rec, CR_WAL_HEADER, size / CR_WAL_BLOCK * CR_WAL_BODY)) {
        /* Its bytes check. A block of another stamp is then one whose old
         * content matched the new: applying the record is right either way. */
        out->seq = cr_get64(head + 16);
        out->rgen = gen;
        out->len = size;
        return CR_WAL_WHOLE;
    }
    if (!stamps_ok) {
        return CR_WAL_TORN;
    }
    out->why = "its payload fails its checksum, though every block of it "
               "was written";
    return CR_WAL_DAMAGED;
}

int cr_wal_check(const struct cr_wal *w, uint64_t offset, uint64_t gen,
                 uint64_t *seq, uint64_t *len)
{
    struct cr_wal_found_rec f;
    if (cr_wal_probe(w, offset, gen, &f) != CR_WAL_WHOLE) {
        return 0;
    }
    *seq = f.seq;
    *len = f.len;
    return 1;
}

int cr_wal_reader_init(struct cr_wal_reader *r, const struct cr_wal *w,
                       uint64_t offset)
{
    const uint8_t *rec = w->map + offset;
    const uint8_t *head = at_cbyte(rec, 0);
    uint64_t plen = cr_get32(head + 24);
    uint64_t at = CR_WAL_HEADER;
    uint64_t done = 0;
    memset(r, 0, sizeof *r);
    r->buf = malloc(plen > 0 ? (size_t)plen : 1);
    if (r->buf == NULL) {
        return RAFT_NOMEM;
    }
    while (done < plen) {
        uint64_t room = CR_WAL_BODY - at % CR_WAL_BODY;
        uint64_t k = plen - done < room ? plen - done : room;
        memcpy(r->buf + done, at_cbyte(rec, at), (size_t)k);
        at += k;
        done += k;
    }
    r->p = r->buf;
    r->end = r->buf + plen;
    r->ops_left = cr_get32(head + 28);
    return 0;
}

void cr_wal_reader_close(struct cr_wal_reader *r)
{
    free(r->buf);
    r->buf = NULL;
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
        len = cr_get32(r->p + 8);
        if (pad8(len) > (uint64_t)(r->end - r->p) - ENTRY_HEADER ||
            r->p[12] < RAFT_COMMAND || r->p[12] > RAFT_CHANGE ||
            cr_get64(r->p) == 0) {
            return -1;
        }
        memset(e, 0, sizeof *e);
        e->term = cr_get64(r->p);
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
    op->kind = (int)cr_get32(r->p);
    switch (op->kind) {
        case CR_OP_TERM:
        case CR_OP_VOTE:
            op->value = cr_get64(r->p + 8);
            break;
        case CR_OP_TRUNCATE:
            op->index = cr_get64(r->p + 8);
            break;
        case CR_OP_APPEND:
            r->entries_left = cr_get32(r->p + 4);
            r->next_index = cr_get64(r->p + 8);
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
    if (cr_get32(r->p + 4) != 0) {
        return -1;
    }
    r->p += OP_HEADER;
    return 1;
}
