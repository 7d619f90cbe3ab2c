/* lmdb_store.c: the binding's log store over liblmdb (see lmdb_store.h).
 *
 * ON DISK: DATA_DIR/lmdb/, two files. data.mdb, one LMDB environment
 * (MDB_NOLOCK: the data dir's own lock, datadir.py, keeps out every other
 * process, and one thread at a time uses LMDB: core/raft_io.c never runs a
 * checkpoint beside its chain's LMDB work; MDB_NOMETASYNC: below), three
 * databases:
 *   "meta"      "format" -> "canonical_raft lmdb 2" (1: the WAL before its
 *               stamped blocks, refused); "term", "vote" -> a u64
 *               and its CRC-32C (key included); "wal" -> where the
 *               write-ahead file stands (wal_put below)
 *   "log"       u64 index (MDB_INTEGERKEY) -> a 24-byte header (u32 CRC-32C of
 *               the index and everything after the CRC | u8 entry type |
 *               u8 record version 1 | u16 0 | u32 data length | u32 0 |
 *               u64 term) then the entry's bytes
 *   "snapshot"  "meta" -> u32 CRC | u32 version 1 | u64 index | u64 term |
 *               u64 configuration index | u64 data length | u32 data CRC |
 *               u32 configuration length | the configuration (libraft's
 *               encoding); "data" -> the snapshot's bytes
 * and wal, the write-ahead file (wal.h: fixed size, zero-filled once,
 * 512-byte blocks each stamped with the generation that wrote it, records
 * of store ops on block boundaries, each with its generation, sequence
 * number and two CRC-32Cs: header, payload). Little endian throughout (the files are not portable across
 * byte orders anyway: LMDB's own pages are native).
 *
 * CRASH SAFETY. A batch of ops with no snapshot is one record pwrite'd at
 * the file's tail and fdatasync'd (cr_store_log): one flush, and the io
 * fires its callbacks only after it. The file's blocks were written and
 * synced when it was made, so that flush has no file system metadata to
 * carry. Records reach LMDB in checkpoints (cr_store_checkpoint): one write
 * transaction applies them in order and stores the position after them
 * ("wal": generation, offset, seq) with them; committed and synced. At open
 * (wal_setup) the records after the stored position are replayed through
 * that same function. So:
 *   - SIGKILL or power loss after a record's fdatasync: the record is on
 *     disk, and it stays until the file starts over, which needs a synced
 *     transaction that holds it (below); open replays it. Before its
 *     fdatasync returned it was not acknowledged, and may be lost whole or
 *     torn (some of its 512-byte blocks written, each whole: sector writes
 *     are atomic): a torn record is the LAST one of its generation (the
 *     chain writes a record only after the one before is synced), its first
 *     block holds its header (its header CRC checks) and some later block
 *     still holds another generation's stamp, and its payload fails its
 *     CRC: open ignores it with a WARNING, as uv ignores a torn open
 *     segment. If its first block did not land, the old bytes there are no
 *     record of this generation: the clean end;
 *   - a crash in a checkpoint: its transaction is current whole or not at
 *     all (LMDB below); if not, LMDB is at the previous position and open
 *     replays from there: the records are applied exactly once either way,
 *     since the position and what it covers commit together;
 *   - the file starts over (generation + 1, offset 0) only in a synced
 *     transaction that holds every record written (a snapshot, a batch that
 *     does not fit, open after a replay); a record of an older generation
 *     is never read again, so overwriting them loses nothing, and none of
 *     the new generation is written before that transaction is durable;
 *   - a snapshot, and a batch that does not fit in the rest of the file,
 *     commit straight into LMDB, after the records before them in the same
 *     transaction: "snapshot replaces the log prefix" is atomic, and every
 *     op lands in the order the raft core issued it.
 * Nothing wrong is accepted at open (wal_scan): a record's header CRC
 * covers its length, its payload CRC its ops; records must follow in
 * sequence from the stored position. Damage at rest, even to the LAST record
 * (which was acknowledged): a first block stamped with this generation
 * whose header fails its CRC, a header that says this generation under
 * another stamp, a payload failing its CRC though every block of it carries
 * this generation (written whole, so not torn); a damaged record followed
 * by any whole record of the same generation; a sequence gap; a record of a
 * newer generation than LMDB's (LMDB lost a transaction); a missing or cut
 * file: RAFT_CORRUPT naming the file and the offset. A flipped stamp of a
 * later block of a record whose bytes still check is not an error: the
 * record is whole either way (a torn write whose old block matched). Not
 * caught: an entry whose bytes forge a whole record of the current
 * generation (both CRCs), after a torn record, makes open refuse a store it
 * could have opened (refused, never wrongly accepted); damage to two places
 * at once that forges a torn record (a later stamp and a payload byte)
 * drops the last record as torn.
 * Inside LMDB every transaction's commit writes its pages and fdatasync's
 * them, then writes the meta page that makes them current (MDB_NOMETASYNC:
 * not flushed at once); cr_store_sync() flushes it before anything counts
 * on the transaction. The data is on disk before any meta page that points
 * at it, and LMDB is copy-on-write (a transaction never overwrites a page
 * the current meta page reaches), so a crash leaves the previous
 * transaction current, whole. MDB_NOSYNC with one mdb_env_sync() would
 * flush once too, but then the meta page may reach the disk before the
 * pages it points at: a wrong tree that no checksum of ours catches, since
 * each stale record still checks.
 *
 * CORRUPTION of data.mdb is detected at open and load, and refused with
 * RAFT_CORRUPT and a message naming it: a file shorter than LMDB's last page (a cut
 * file would fault, SIGBUS, on access), a missing file the data dir says
 * exists, not an LMDB file, LMDB's own consistency errors, a record whose
 * CRC or shape does not check, a hole in the log, snapshot metadata
 * without its data (or the reverse), a snapshot whose data does not match
 * its checksum. Nothing is repaired. Not detectable here: LMDB does not
 * checksum its own meta pages, so a bit flip that makes the older of the two
 * look newest rolls the store back one transaction (they are 8 bytes of
 * transaction id each; the rest of the page is checked by LMDB).
 */
#include "lmdb_store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lmdb.h>

#include "codec_conf.h"
#include "le.h"
#include "wal.h"

#define FORMAT_VALUE "canonical_raft lmdb 2"   /* 2: the WAL's stamped blocks */
#define RECORD_VERSION 1
#define ENTRY_HEADER 24
#define META_VALUE 16
#define SNAP_HEADER 48
#define WAL_VALUE 40
#define SHORT_PAGES 64      /* check_length: free pages LMDB may not write */
/* Address space reserved for the map, not disk: the file grows as pages are
 * used and freed pages are reused. */
#define MAP_SIZE ((size_t)1 << (sizeof(size_t) >= 8 ? 40 : 30))

struct cr_store
{
    MDB_env *env;
    MDB_dbi meta;
    MDB_dbi log;
    MDB_dbi snap;
    char *dir;                 /* DATA_DIR/lmdb */
    char *path;                /* DATA_DIR/lmdb/data.mdb */
    struct cr_wal *wal;        /* DATA_DIR/lmdb/wal */
    struct cr_wal_pos pos;     /* the write-ahead file's, after open */
    char warning[CR_STORE_ERRMSG];
};

/* ---- CRC-32C, slicing by 8 ----------------------------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    uint32_t i;
    int k;
    for (i = 0; i < 256; i++) {
        uint32_t c = i;
        for (k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_table[0][i] = c;
    }
    for (i = 0; i < 256; i++) {
        for (k = 1; k < 8; k++) {
            uint32_t c = crc_table[k - 1][i];
            crc_table[k][i] = (c >> 8) ^ crc_table[0][c & 0xff];
        }
    }
}

uint32_t cr_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^
              crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--) {
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    }
    return ~crc;
}

/* A log key (MDB_INTEGERKEY, a size_t): LMDB aligns keys to 2 bytes only. */
static size_t key_index(const MDB_val *k)
{
    size_t v;
    memcpy(&v, k->mv_data, sizeof v);
    return v;
}

/* ---- errors ------------------------------------------------------------------ */

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

/* An LMDB or errno code as a libraft one, with the file and what failed. */
static int fail_mdb(const struct cr_store *s, char *errmsg, int rc,
                    const char *what)
{
    int code;
    switch (rc) {
        case MDB_MAP_FULL:
        case ENOSPC:
        case EDQUOT:
            code = RAFT_NOSPACE;
            break;
        case MDB_CORRUPTED:
        case MDB_PAGE_NOTFOUND:
        case MDB_INVALID:
        case MDB_VERSION_MISMATCH:
        case MDB_BAD_TXN:
            code = RAFT_CORRUPT;
            break;
        case ENOMEM:
            code = RAFT_NOMEM;
            break;
        default:
            code = RAFT_IOERR;
            break;
    }
    return fail(errmsg, code, "%s: %s: %s", s->path, what, mdb_strerror(rc));
}

static int corrupt(const struct cr_store *s, char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int corrupt(const struct cr_store *s, char *errmsg, const char *fmt, ...)
{
    char what[CR_STORE_ERRMSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return fail(errmsg, RAFT_CORRUPT, "%s: %s", s->path, what);
}

/* ---- open and close ------------------------------------------------------ */

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + 1 + strlen(b) + 1;
    char *p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s/%s", a, b);
    }
    return p;
}

static void store_free(struct cr_store *s)
{
    cr_wal_close(s->wal);
    if (s->env != NULL) {
        mdb_env_close(s->env);
    }
    free(s->dir);
    free(s->path);
    free(s);
}

/* A file shorter than LMDB's last page would fault (SIGBUS) when a page
 * past its end is read: refuse it before anything reads the tree. */
static int check_length(struct cr_store *s, char *errmsg)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fst;
    uint64_t need;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    if (stat(s->path, &fst) != 0) {
        return fail(errmsg, RAFT_IOERR, "%s: stat: %s", s->path,
                    strerror(errno));
    }
    need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    /* LMDB never writes a page it allocated and freed in one transaction
     * (a loose page, put on the free list): the file may end a few such
     * free pages short of the last page number. Those are never read, so
     * they are added as zeros; a reachable page among them would fail the
     * load's checks (LMDB's page checks, our CRCs). More is a cut file. */
    if ((uint64_t)fst.st_size < need &&
        need - (uint64_t)fst.st_size <= SHORT_PAGES * (uint64_t)st.ms_psize &&
        (uint64_t)fst.st_size % st.ms_psize == 0) {
        if (truncate(s->path, (off_t)need) == 0) {
            return 0;
        }
    }
    if ((uint64_t)fst.st_size < need) {
        return corrupt(s, errmsg,
                       "truncated: %llu bytes, its pages need %llu",
                       (unsigned long long)fst.st_size,
                       (unsigned long long)need);
    }
    return 0;
}

/* The format record: written by a new store, checked by an old one. */
static int check_format(struct cr_store *s, MDB_txn *txn, int fresh,
                        char *errmsg)
{
    MDB_val k = {6, "format"};
    MDB_val v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND && fresh) {
        v.mv_size = strlen(FORMAT_VALUE);
        v.mv_data = FORMAT_VALUE;
        rc = mdb_put(txn, s->meta, &k, &v, 0);
        return rc == 0 ? 0 : fail_mdb(s, errmsg, rc, "write format");
    }
    if (rc == MDB_NOTFOUND) {
        return corrupt(s, errmsg, "no format record (not a canonical_raft "
                                  "store, or damaged)");
    }
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "read format");
    }
    if (v.mv_size != strlen(FORMAT_VALUE) ||
        memcmp(v.mv_data, FORMAT_VALUE, v.mv_size) != 0) {
        return corrupt(s, errmsg, "unknown format record '%.*s' (this "
                                  "version reads '" FORMAT_VALUE "' only)",
                       (int)(v.mv_size < 64 ? v.mv_size : 64),
                       (const char *)v.mv_data);
    }
    return 0;
}

static int wal_setup(struct cr_store *s, char *errmsg);

int cr_store_open(const char *dir, int create, struct cr_store **out,
                  char *errmsg)
{
    struct cr_store *s = calloc(1, sizeof *s);
    struct stat fst;
    MDB_txn *txn;
    unsigned dbflags = create ? MDB_CREATE : 0;
    int fresh;
    int rc;

    *out = NULL;
    if (s == NULL) {
        return fail(errmsg, RAFT_NOMEM, "out of memory");
    }
    s->dir = join(dir, CR_STORE_SUBDIR);
    s->path = s->dir != NULL ? join(s->dir, CR_STORE_FILE) : NULL;
    if (s->path == NULL) {
        store_free(s);
        return fail(errmsg, RAFT_NOMEM, "out of memory");
    }
    if (stat(s->path, &fst) != 0) {
        if (errno != ENOENT) {
            rc = fail(errmsg, RAFT_IOERR, "%s: %s", s->path, strerror(errno));
            store_free(s);
            return rc;
        }
        if (!create) {
            rc = corrupt(s, errmsg, "missing (the data dir records an lmdb "
                                    "store)");
            store_free(s);
            return rc;
        }
        if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
            rc = fail(errmsg, RAFT_IOERR, "%s: mkdir: %s", s->dir,
                      strerror(errno));
            store_free(s);
            return rc;
        }
        fresh = 1;
    } else {
        fresh = fst.st_size == 0;
        if (fresh && !create) {
            rc = corrupt(s, errmsg, "empty file");
            store_free(s);
            return rc;
        }
    }

    rc = mdb_env_create(&s->env);
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(s->env, 3);
    }
    if (rc == 0) {
        rc = mdb_env_set_mapsize(s->env, MAP_SIZE);
    }
    if (rc == 0) {
        rc = mdb_env_open(s->env, s->dir,
                          MDB_NOTLS | MDB_NOLOCK | MDB_NOMETASYNC, 0600);
    }
    if (rc != 0) {
        rc = fail_mdb(s, errmsg, rc, "open");
        store_free(s);
        return rc;
    }
    if (!fresh && (rc = check_length(s, errmsg)) != 0) {
        store_free(s);
        return rc;
    }
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        rc = fail_mdb(s, errmsg, rc, "begin");
        store_free(s);
        return rc;
    }
    if ((rc = mdb_dbi_open(txn, "meta", dbflags, &s->meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "log", dbflags | MDB_INTEGERKEY, &s->log)) !=
            0 ||
        (rc = mdb_dbi_open(txn, "snapshot", dbflags, &s->snap)) != 0) {
        mdb_txn_abort(txn);
        rc = rc == MDB_NOTFOUND
                 ? corrupt(s, errmsg, "a database is missing (not a "
                                      "canonical_raft store, or damaged)")
                 : fail_mdb(s, errmsg, rc, "open databases");
        store_free(s);
        return rc;
    }
    rc = check_format(s, txn, fresh, errmsg);
    if (rc != 0) {
        mdb_txn_abort(txn);
        store_free(s);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        rc = fail_mdb(s, errmsg, rc, "commit");
        store_free(s);
        return rc;
    }
    rc = wal_setup(s, errmsg);
    if (rc != 0) {
        store_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void cr_store_close(struct cr_store *s)
{
    if (s != NULL) {
        store_free(s);
    }
}

const char *cr_store_path(const struct cr_store *s)
{
    return s->path;
}

const char *cr_store_warning(const struct cr_store *s)
{
    return s->warning;
}

void cr_store_wal(const struct cr_store *s, struct cr_wal_pos *pos,
                  uint64_t *size)
{
    *pos = s->pos;
    *size = s->wal->size;
}

/* ---- records ----------------------------------------------------------------- */

static uint32_t meta_crc(const char *key, const uint8_t *v8)
{
    return cr_crc32c(cr_crc32c(0, key, strlen(key)), v8, 8);
}

static int meta_put(struct cr_store *s, MDB_txn *txn, const char *key,
                    uint64_t value, char *errmsg)
{
    uint8_t buf[META_VALUE] = {0};
    MDB_val k = {strlen(key), (void *)key};
    MDB_val v = {sizeof buf, buf};
    int rc;
    cr_put64(buf, value);
    cr_put32(buf + 8, meta_crc(key, buf));
    rc = mdb_put(txn, s->meta, &k, &v, 0);
    return rc == 0 ? 0 : fail_mdb(s, errmsg, rc, key);
}

static int meta_get(struct cr_store *s, MDB_txn *txn, const char *key,
                    uint64_t *value, char *errmsg)
{
    MDB_val k = {strlen(key), (void *)key};
    MDB_val v;
    const uint8_t *p;
    int rc = mdb_get(txn, s->meta, &k, &v);
    *value = 0;
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, key);
    }
    p = v.mv_data;
    if (v.mv_size != META_VALUE || cr_get32(p + 8) != meta_crc(key, p) ||
        cr_get32(p + 12) != 0) {
        return corrupt(s, errmsg, "record '%s' fails its checksum", key);
    }
    *value = cr_get64(p);
    return 0;
}

static uint32_t entry_crc(raft_index index, const uint8_t *rec, size_t len)
{
    uint8_t k[8];
    cr_put64(k, index);
    return cr_crc32c(cr_crc32c(0, k, 8), rec + 4, len - 4);
}

/* Check the record of log entry `index`; its term, type and bytes. */
static int entry_check(struct cr_store *s, raft_index index, const MDB_val *v,
                       struct raft_entry *e, char *errmsg)
{
    const uint8_t *p = v->mv_data;
    uint32_t len;
    if (v->mv_size < ENTRY_HEADER) {
        return corrupt(s, errmsg, "log entry %llu: short record (%zu bytes)",
                       (unsigned long long)index, v->mv_size);
    }
    len = cr_get32(p + 8);
    if (v->mv_size != ENTRY_HEADER + (size_t)len ||
        cr_get32(p) != entry_crc(index, p, v->mv_size)) {
        return corrupt(s, errmsg, "log entry %llu fails its checksum",
                       (unsigned long long)index);
    }
    if (p[5] != RECORD_VERSION || p[4] < RAFT_COMMAND || p[4] > RAFT_CHANGE ||
        cr_get64(p + 16) == 0) {
        return corrupt(s, errmsg, "log entry %llu: bad header",
                       (unsigned long long)index);
    }
    if (p[4] == RAFT_CHANGE && cr_conf_check(p + ENTRY_HEADER, len) != 0) {
        return corrupt(s, errmsg, "log entry %llu: bad configuration",
                       (unsigned long long)index);
    }
    e->type = (enum raft_entry_type)p[4];
    e->term = cr_get64(p + 16);
    e->buf.len = len;
    e->buf.base = (void *)(p + ENTRY_HEADER);
    return 0;
}

static int entry_put(struct cr_store *s, MDB_txn *txn, raft_index index,
                     const struct raft_entry *e, char *errmsg)
{
    size_t key = (size_t)index;
    MDB_val k = {sizeof key, &key};
    MDB_val v = {ENTRY_HEADER + e->buf.len, NULL};
    uint8_t *p;
    int rc;
    if (e->buf.len > UINT32_MAX) {
        return fail(errmsg, RAFT_INVALID, "%s: entry %llu too big", s->path,
                    (unsigned long long)index);
    }
    rc = mdb_put(txn, s->log, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "append");
    }
    p = v.mv_data;
    memset(p, 0, ENTRY_HEADER);
    p[4] = (uint8_t)e->type;
    p[5] = RECORD_VERSION;
    cr_put32(p + 8, (uint32_t)e->buf.len);
    cr_put64(p + 16, e->term);
    if (e->buf.len > 0) {
        memcpy(p + ENTRY_HEADER, e->buf.base, e->buf.len);
    }
    cr_put32(p, entry_crc(index, p, v.mv_size));
    return 0;
}

/* The last entry's index (0: none). */
static int last_index(struct cr_store *s, MDB_txn *txn, raft_index *out,
                      char *errmsg)
{
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    int rc = mdb_cursor_open(txn, s->log, &cur);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "cursor");
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    *out = 0;
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "read log");
    }
    if (k.mv_size != sizeof(size_t)) {
        return corrupt(s, errmsg, "log key of %zu bytes", k.mv_size);
    }
    *out = key_index(&k);
    return 0;
}

/* Delete entries with from <= index <= to. */
static int delete_range(struct cr_store *s, MDB_txn *txn, raft_index from,
                        raft_index to, char *errmsg)
{
    MDB_cursor *cur;
    size_t key = (size_t)from;
    MDB_val k = {sizeof key, &key};
    MDB_val v;
    int rc = mdb_cursor_open(txn, s->log, &cur);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "cursor");
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && key_index(&k) <= to) {
        rc = mdb_cursor_del(cur, 0);
        if (rc == 0) {
            /* After a delete, MDB_NEXT yields the entry that followed. */
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return fail_mdb(s, errmsg, rc, "delete entries");
    }
    return 0;
}

/* ---- snapshots --------------------------------------------------------------- */

static int snapshot_put(struct cr_store *s, MDB_txn *txn,
                        const struct raft_snapshot *snap, char *errmsg)
{
    struct raft_buffer conf = {NULL, 0};
    uint8_t *head = NULL;
    size_t size = 0;
    uint32_t crc = 0;
    MDB_val k;
    MDB_val v;
    unsigned i;
    uint8_t *p;
    int rc;

    for (i = 0; i < snap->n_bufs; i++) {
        size += snap->bufs[i].len;
        crc = cr_crc32c(crc, snap->bufs[i].base, snap->bufs[i].len);
    }
    rc = raft_configuration_encode(&snap->configuration, &conf);
    if (rc != 0) {
        return fail(errmsg, rc, "%s: encode snapshot configuration", s->path);
    }
    head = malloc(SNAP_HEADER + conf.len);
    if (head == NULL) {
        raft_free(conf.base);
        return fail(errmsg, RAFT_NOMEM, "out of memory");
    }
    memset(head, 0, SNAP_HEADER);
    cr_put32(head + 4, RECORD_VERSION);
    cr_put64(head + 8, snap->index);
    cr_put64(head + 16, snap->term);
    cr_put64(head + 24, snap->configuration_index);
    cr_put64(head + 32, size);
    cr_put32(head + 40, crc);
    cr_put32(head + 44, (uint32_t)conf.len);
    memcpy(head + SNAP_HEADER, conf.base, conf.len);
    cr_put32(head, cr_crc32c(0, head + 4, SNAP_HEADER - 4 + conf.len));
    raft_free(conf.base);

    k.mv_size = 4;
    k.mv_data = "meta";
    v.mv_size = SNAP_HEADER + conf.len;
    v.mv_data = head;
    rc = mdb_put(txn, s->snap, &k, &v, 0);
    free(head);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "write snapshot metadata");
    }
    k.mv_data = "data";
    v.mv_size = size;
    v.mv_data = NULL;
    rc = mdb_put(txn, s->snap, &k, &v, MDB_RESERVE);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "write snapshot data");
    }
    p = v.mv_data;
    for (i = 0; i < snap->n_bufs; i++) {
        if (snap->bufs[i].len > 0) {
            memcpy(p, snap->bufs[i].base, snap->bufs[i].len);
        }
        p += snap->bufs[i].len;
    }
    return 0;
}

/* The snapshot's metadata and data, checked; *found = 0 if none. The data
 * is LMDB's memory (valid in txn). conf is decoded into snap (raft_malloc'd
 * servers): the caller closes it. */
static int snapshot_read(struct cr_store *s, MDB_txn *txn, int *found,
                         struct raft_snapshot *snap, MDB_val *data,
                         char *errmsg)
{
    MDB_val k = {4, "meta"};
    MDB_val mv;
    const uint8_t *p;
    struct raft_buffer conf;
    uint32_t conf_len;
    int rc_meta;
    int rc_data;
    int rc;

    *found = 0;
    rc_meta = mdb_get(txn, s->snap, &k, &mv);
    k.mv_data = "data";
    rc_data = mdb_get(txn, s->snap, &k, data);
    if (rc_meta == MDB_NOTFOUND && rc_data == MDB_NOTFOUND) {
        return 0;
    }
    if (rc_meta != 0 && rc_meta != MDB_NOTFOUND) {
        return fail_mdb(s, errmsg, rc_meta, "read snapshot metadata");
    }
    if (rc_data != 0 && rc_data != MDB_NOTFOUND) {
        return fail_mdb(s, errmsg, rc_data, "read snapshot data");
    }
    if (rc_meta == MDB_NOTFOUND) {
        return corrupt(s, errmsg, "snapshot data without its metadata");
    }
    if (rc_data == MDB_NOTFOUND) {
        return corrupt(s, errmsg, "snapshot metadata without its data "
                                  "(missing snapshot)");
    }
    p = mv.mv_data;
    if (mv.mv_size < SNAP_HEADER) {
        return corrupt(s, errmsg, "snapshot metadata: short record");
    }
    conf_len = cr_get32(p + 44);
    if (mv.mv_size != SNAP_HEADER + (size_t)conf_len ||
        cr_get32(p) != cr_crc32c(0, p + 4, mv.mv_size - 4)) {
        return corrupt(s, errmsg, "snapshot metadata fails its checksum");
    }
    if (cr_get32(p + 4) != RECORD_VERSION || cr_get64(p + 8) == 0 ||
        cr_get64(p + 16) == 0 || cr_get64(p + 24) > cr_get64(p + 8) ||
        cr_conf_check(p + SNAP_HEADER, conf_len) != 0) {
        return corrupt(s, errmsg, "snapshot metadata: bad fields");
    }
    if (data->mv_size != cr_get64(p + 32) ||
        cr_crc32c(0, data->mv_data, data->mv_size) != cr_get32(p + 40)) {
        return corrupt(s, errmsg,
                       "snapshot %llu: data (%zu bytes) does not match its "
                       "length and checksum",
                       (unsigned long long)cr_get64(p + 8), data->mv_size);
    }
    memset(snap, 0, sizeof *snap);
    snap->index = cr_get64(p + 8);
    snap->term = cr_get64(p + 16);
    snap->configuration_index = cr_get64(p + 24);
    conf.base = (void *)(p + SNAP_HEADER);
    conf.len = conf_len;
    rc = raft_configuration_decode(&conf, &snap->configuration);
    if (rc != 0) {
        return rc == RAFT_NOMEM
                   ? fail(errmsg, rc, "out of memory")
                   : corrupt(s, errmsg, "snapshot configuration");
    }
    *found = 1;
    return 0;
}

/* A raft_malloc'd raft_snapshot owning a copy of data. */
static int snapshot_new(const struct raft_snapshot *meta, const MDB_val *data,
                        struct raft_snapshot **out)
{
    struct raft_snapshot *snap = raft_malloc(sizeof *snap);
    struct raft_buffer *buf = raft_malloc(sizeof *buf);
    void *copy = raft_malloc(data->mv_size > 0 ? data->mv_size : 1);
    if (snap == NULL || buf == NULL || copy == NULL) {
        raft_free(snap);
        raft_free(buf);
        raft_free(copy);
        return RAFT_NOMEM;
    }
    *snap = *meta;
    memcpy(copy, data->mv_data, data->mv_size);
    buf->base = copy;
    buf->len = data->mv_size;
    snap->bufs = buf;
    snap->n_bufs = 1;
    *out = snap;
    return 0;
}

void cr_store_snapshot_free(struct raft_snapshot *snap)
{
    unsigned i;
    if (snap == NULL) {
        return;
    }
    raft_configuration_close(&snap->configuration);
    for (i = 0; i < snap->n_bufs; i++) {
        raft_free(snap->bufs[i].base);
    }
    raft_free(snap->bufs);
    raft_free(snap);
}

int cr_store_snapshot_get(struct cr_store *s, struct raft_snapshot **out,
                          char *errmsg)
{
    struct raft_snapshot meta;
    MDB_txn *txn;
    MDB_val data;
    int found;
    int rc;

    *out = NULL;
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "begin");
    }
    rc = snapshot_read(s, txn, &found, &meta, &data, errmsg);
    if (rc == 0 && found) {
        rc = snapshot_new(&meta, &data, out);
        if (rc != 0) {
            raft_configuration_close(&meta.configuration);
            fail(errmsg, rc, "out of memory");
        }
    }
    mdb_txn_abort(txn);
    return rc;
}

/* ---- load ------------------------------------------------------------------------ */

void cr_store_state_free(struct cr_store_state *st)
{
    if (st->entries != NULL) {
        raft_free(st->entries[0].batch);
        raft_free(st->entries);
    }
    cr_store_snapshot_free(st->snapshot);
    memset(st, 0, sizeof *st);
}

/* Read and check the whole log into one batch. */
static int load_log(struct cr_store *s, MDB_txn *txn, struct cr_store_state *st,
                    char *errmsg)
{
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    MDB_stat ms;
    size_t total = 0;
    size_t n = 0;
    size_t i;
    raft_index first = 0;
    uint8_t *batch;
    int rc;

    rc = mdb_stat(txn, s->log, &ms);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "stat log");
    }
    if (ms.ms_entries == 0) {
        return 0;
    }
    rc = mdb_cursor_open(txn, s->log, &cur);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "cursor");
    }
    /* First pass: keys contiguous, records checked, sizes summed. */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct raft_entry e;
        raft_index index;
        if (k.mv_size != sizeof(size_t)) {
            mdb_cursor_close(cur);
            return corrupt(s, errmsg, "log key of %zu bytes", k.mv_size);
        }
        index = key_index(&k);
        if (n == 0) {
            first = index;
        } else if (index != first + n) {
            mdb_cursor_close(cur);
            return corrupt(s, errmsg, "log has a hole: entry %llu follows %llu",
                           (unsigned long long)index,
                           (unsigned long long)(first + n - 1));
        }
        rc = entry_check(s, index, &v, &e, errmsg);
        if (rc != 0) {
            mdb_cursor_close(cur);
            return rc;
        }
        total += (e.buf.len + 7) & ~(size_t)7;
        n++;
    }
    if (rc != MDB_NOTFOUND) {
        mdb_cursor_close(cur);
        return fail_mdb(s, errmsg, rc, "read log");
    }
    if (n != ms.ms_entries || first == 0) {
        mdb_cursor_close(cur);
        return corrupt(s, errmsg, "log index is inconsistent");
    }
    st->entries = raft_calloc(n, sizeof *st->entries);
    batch = raft_malloc(total > 0 ? total : 8);
    if (st->entries == NULL || batch == NULL) {
        mdb_cursor_close(cur);
        raft_free(st->entries);
        raft_free(batch);
        st->entries = NULL;
        return fail(errmsg, RAFT_NOMEM, "out of memory loading the log");
    }
    /* Second pass: copy into the batch (checked above, same transaction). */
    total = 0;
    i = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && i < n;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), i++) {
        struct raft_entry *e = &st->entries[i];
        entry_check(s, first + i, &v, e, errmsg);
        memcpy(batch + total, e->buf.base, e->buf.len);
        e->buf.base = batch + total;
        e->batch = batch;
        total += (e->buf.len + 7) & ~(size_t)7;
    }
    mdb_cursor_close(cur);
    st->n_entries = n;
    st->start_index = first;
    return 0;
}

/* The opening of load and stat: a read transaction (*txn, the caller
 * aborts it on 0), term, vote and the snapshot, if any (*found: meta and
 * data; meta's configuration is the caller's to close). */
static int read_begin(struct cr_store *s, MDB_txn **txn, uint64_t *term,
                      uint64_t *vote, int *found, struct raft_snapshot *meta,
                      MDB_val *data, char *errmsg)
{
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "begin");
    }
    if ((rc = meta_get(s, *txn, "term", term, errmsg)) != 0 ||
        (rc = meta_get(s, *txn, "vote", vote, errmsg)) != 0 ||
        (rc = snapshot_read(s, *txn, found, meta, data, errmsg)) != 0) {
        mdb_txn_abort(*txn);
        return rc;
    }
    return 0;
}

int cr_store_load(struct cr_store *s, struct cr_store_state *st, char *errmsg)
{
    struct raft_snapshot meta;
    MDB_txn *txn;
    MDB_val data;
    uint64_t term;
    uint64_t vote;
    int found;
    int rc;

    memset(st, 0, sizeof *st);
    rc = read_begin(s, &txn, &term, &vote, &found, &meta, &data, errmsg);
    if (rc != 0) {
        return rc;
    }
    if (found) {
        rc = snapshot_new(&meta, &data, &st->snapshot);
        if (rc != 0) {
            raft_configuration_close(&meta.configuration);
            mdb_txn_abort(txn);
            return fail(errmsg, rc, "out of memory");
        }
    }
    rc = load_log(s, txn, st, errmsg);
    mdb_txn_abort(txn);
    if (rc != 0) {
        cr_store_state_free(st);
        return rc;
    }
    st->term = term;
    st->vote = vote;
    if (st->n_entries > 0) {
        raft_index last = st->start_index + st->n_entries - 1;
        raft_index snap = st->snapshot != NULL ? st->snapshot->index : 0;
        if (st->start_index > snap + 1) {
            rc = corrupt(s, errmsg, "log starts at %llu, not at %llu (entries "
                                    "are missing)",
                         (unsigned long long)st->start_index,
                         (unsigned long long)(snap + 1));
        } else if (last < snap) {
            rc = corrupt(s, errmsg, "log ends at %llu, behind the snapshot "
                                    "at %llu",
                         (unsigned long long)last, (unsigned long long)snap);
        } else if (term == 0) {
            rc = corrupt(s, errmsg, "entries but no term");
        }
    } else {
        st->start_index = st->snapshot != NULL ? st->snapshot->index + 1 : 1;
        if (st->snapshot != NULL && term == 0) {
            rc = corrupt(s, errmsg, "a snapshot but no term");
        }
    }
    if (rc != 0) {
        cr_store_state_free(st);
    }
    return rc;
}

/* ---- writes ------------------------------------------------------------------------ */

static int apply_op(struct cr_store *s, MDB_txn *txn,
                    const struct cr_store_op *op, raft_index *last,
                    char *errmsg)
{
    unsigned i;
    int rc = 0;
    switch (op->kind) {
        case CR_OP_TERM:
            rc = meta_put(s, txn, "term", op->value, errmsg);
            if (rc == 0) {
                rc = meta_put(s, txn, "vote", 0, errmsg);
            }
            return rc;
        case CR_OP_VOTE:
            return meta_put(s, txn, "vote", op->value, errmsg);
        case CR_OP_APPEND:
            if (*last != 0 && op->index != *last + 1) {
                return fail(errmsg, RAFT_INVALID,
                            "%s: append at %llu after entry %llu", s->path,
                            (unsigned long long)op->index,
                            (unsigned long long)*last);
            }
            for (i = 0; i < op->n && rc == 0; i++) {
                rc = entry_put(s, txn, op->index + i, &op->entries[i], errmsg);
            }
            if (rc == 0 && op->n > 0) {
                *last = op->index + op->n - 1;
            }
            return rc;
        case CR_OP_TRUNCATE:
            if (*last == 0 || op->index > *last) {
                return 0;
            }
            rc = delete_range(s, txn, op->index, *last, errmsg);
            if (rc == 0) {
                rc = last_index(s, txn, last, errmsg);
            }
            return rc;
        case CR_OP_SNAPSHOT: {
            raft_index index = op->snapshot->index;
            rc = snapshot_put(s, txn, op->snapshot, errmsg);
            if (rc != 0) {
                return rc;
            }
            if (op->trailing == 0) {
                rc = delete_range(s, txn, 1, (raft_index)-1, errmsg);
                *last = 0;
            } else if (index > op->trailing) {
                rc = delete_range(s, txn, 1, index - op->trailing, errmsg);
            }
            return rc;
        }
        default:
            return fail(errmsg, RAFT_INVALID, "unknown store op %d", op->kind);
    }
}

int cr_store_write(struct cr_store *s, const struct cr_store_op *ops,
                   unsigned n, char *errmsg)
{
    int rc = cr_store_commit(s, ops, n, errmsg);
    return rc != 0 ? rc : cr_store_sync(s, errmsg);
}

int cr_store_sync(struct cr_store *s, char *errmsg)
{
    int rc = mdb_env_sync(s->env, 1);
    return rc == 0 ? 0 : fail_mdb(s, errmsg, rc, "sync");
}

int cr_store_commit(struct cr_store *s, const struct cr_store_op *ops,
                    unsigned n, char *errmsg)
{
    MDB_txn *txn;
    raft_index last;
    unsigned i;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "begin");
    }
    rc = last_index(s, txn, &last, errmsg);
    for (i = 0; i < n && rc == 0; i++) {
        rc = apply_op(s, txn, &ops[i], &last, errmsg);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);     /* pages flushed, meta page written */
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "commit");
    }
    return 0;
}

/* ---- the write-ahead file ------------------------------------------------------------ */

static int corrupt_wal(const struct cr_store *s, char *errmsg, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));

static int corrupt_wal(const struct cr_store *s, char *errmsg, const char *fmt,
                       ...)
{
    char what[CR_STORE_ERRMSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return fail(errmsg, RAFT_CORRUPT, "%s: %s", s->wal->path, what);
}

/* "meta" "wal" -> u64 generation | u64 next offset | u64 last seq | u64 the
 * file's length | u32 CRC-32C (key included) | u32 0. */
static int wal_put(struct cr_store *s, MDB_txn *txn,
                   const struct cr_wal_pos *pos, uint64_t size, char *errmsg)
{
    uint8_t buf[WAL_VALUE] = {0};
    MDB_val k = {3, "wal"};
    MDB_val v = {sizeof buf, buf};
    int rc;
    cr_put64(buf, pos->gen);
    cr_put64(buf + 8, pos->offset);
    cr_put64(buf + 16, pos->seq);
    cr_put64(buf + 24, size);
    cr_put32(buf + 32, cr_crc32c(cr_crc32c(0, "wal", 3), buf, 32));
    rc = mdb_put(txn, s->meta, &k, &v, 0);
    return rc == 0 ? 0 : fail_mdb(s, errmsg, rc, "write wal position");
}

static int wal_get(struct cr_store *s, MDB_txn *txn, int *found,
                   struct cr_wal_pos *pos, uint64_t *size, char *errmsg)
{
    MDB_val k = {3, "wal"};
    MDB_val v;
    const uint8_t *p;
    int rc = mdb_get(txn, s->meta, &k, &v);
    *found = 0;
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "read wal position");
    }
    p = v.mv_data;
    if (v.mv_size != WAL_VALUE ||
        cr_get32(p + 32) != cr_crc32c(cr_crc32c(0, "wal", 3), p, 32) ||
        cr_get32(p + 36) != 0) {
        return corrupt(s, errmsg, "record 'wal' fails its checksum");
    }
    pos->gen = cr_get64(p);
    pos->offset = cr_get64(p + 8);
    pos->seq = cr_get64(p + 16);
    *size = cr_get64(p + 24);
    if (pos->gen == 0 || *size < CR_WAL_BLOCK || *size % CR_WAL_BLOCK != 0 ||
        pos->offset > *size || pos->offset % CR_WAL_BLOCK != 0) {
        return corrupt(s, errmsg, "record 'wal' has bad fields");
    }
    *found = 1;
    return 0;
}

/* Apply the records after `from` up to `to` in txn, each checked again
 * (the one replay path: checkpoints and open use it). */
static int replay(struct cr_store *s, MDB_txn *txn,
                  const struct cr_wal_pos *from, const struct cr_wal_pos *to,
                  raft_index *last, char *errmsg)
{
    uint64_t off = from->offset;
    uint64_t seq = from->seq;
    while (off < to->offset) {
        struct cr_wal_reader r;
        struct cr_store_op op;
        struct raft_entry e;
        uint64_t rseq;
        uint64_t len;
        int more;
        if (!cr_wal_check(s->wal, off, from->gen, &rseq, &len) ||
            rseq != seq + 1) {
            return corrupt_wal(s, errmsg, "record %llu (offset %llu) is "
                                          "missing or damaged",
                               (unsigned long long)(seq + 1),
                               (unsigned long long)off);
        }
        if (cr_wal_reader_init(&r, s->wal, off) != 0) {
            cr_wal_reader_close(&r);
            return fail(errmsg, RAFT_NOMEM, "out of memory");
        }
        while ((more = cr_wal_next(&r, &op, &e)) == 1) {
            int rc = apply_op(s, txn, &op, last, errmsg);
            if (rc != 0) {
                cr_wal_reader_close(&r);
                return rc;
            }
        }
        cr_wal_reader_close(&r);
        if (more < 0) {
            return corrupt_wal(s, errmsg, "record %llu (offset %llu): "
                                          "malformed ops",
                               (unsigned long long)rseq,
                               (unsigned long long)off);
        }
        off += len;
        seq++;
    }
    if (off != to->offset || seq != to->seq) {
        return corrupt_wal(s, errmsg, "records end at offset %llu, seq %llu, "
                                      "not %llu, %llu",
                           (unsigned long long)off, (unsigned long long)seq,
                           (unsigned long long)to->offset,
                           (unsigned long long)to->seq);
    }
    return 0;
}

uint64_t cr_store_log_size(const struct cr_store_op *ops, unsigned n)
{
    return cr_wal_record_size(ops, n);
}

int cr_store_log(struct cr_store *s, struct cr_wal_pos *pos,
                 const struct cr_store_op *ops, unsigned n, char *errmsg)
{
    uint64_t size = cr_wal_record_size(ops, n);
    uint8_t *rec;
    int rc;
    if (size == 0 || size > s->wal->size - pos->offset) {
        return fail(errmsg, RAFT_INVALID, "%s: these ops cannot be logged "
                                          "here", s->wal->path);
    }
    rec = malloc((size_t)size);
    if (rec == NULL) {
        return fail(errmsg, RAFT_NOMEM, "out of memory");
    }
    cr_wal_encode(rec, pos->gen, pos->seq + 1, ops, n);
    rc = cr_wal_append(s->wal, pos->offset, rec, size, errmsg);
    free(rec);
    if (rc == 0) {
        pos->offset += size;
        pos->seq++;
    }
    return rc;
}

int cr_store_checkpoint(struct cr_store *s, const struct cr_wal_pos *to,
                        const struct cr_store_op *ops, unsigned n, int reset,
                        struct cr_wal_pos *out, char *errmsg)
{
    struct cr_wal_pos from;
    struct cr_wal_pos next;
    uint64_t size;
    raft_index last;
    MDB_txn *txn;
    unsigned i;
    int found;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "begin");
    }
    rc = wal_get(s, txn, &found, &from, &size, errmsg);
    if (rc == 0 && (!found || from.gen != to->gen ||
                    from.offset > to->offset || from.seq > to->seq)) {
        rc = fail(errmsg, RAFT_INVALID, "%s: checkpoint to %llu:%llu from "
                                        "%llu:%llu",
                  s->path, (unsigned long long)to->gen,
                  (unsigned long long)to->offset, (unsigned long long)from.gen,
                  (unsigned long long)from.offset);
    }
    if (rc == 0) {
        rc = last_index(s, txn, &last, errmsg);
    }
    if (rc == 0) {
        rc = replay(s, txn, &from, to, &last, errmsg);
    }
    for (i = 0; i < n && rc == 0; i++) {
        rc = apply_op(s, txn, &ops[i], &last, errmsg);
    }
    next = *to;
    if (reset) {
        next.gen = to->gen + 1;
        next.offset = 0;
    }
    if (rc == 0) {
        rc = wal_put(s, txn, &next, s->wal->size, errmsg);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "commit");
    }
    rc = cr_store_sync(s, errmsg);
    if (rc == 0 && out != NULL) {
        *out = next;
    }
    return rc;
}

/* Where the records after `from` end, checked: *end is the last whole
 * record in sequence. What stands there is told apart by its blocks'
 * stamps (cr_wal_probe): no record of this generation (the clean end), or
 * a torn one (*torn: a crash while it was written, never acknowledged).
 * Damage there (a record written whole that fails a check), any whole
 * record of this generation further on (a record in the middle is
 * damaged), a generation newer than the store's (LMDB lost a transaction):
 * RAFT_CORRUPT naming the file and the offset. */
static int wal_scan(struct cr_store *s, const struct cr_wal_pos *from,
                    struct cr_wal_pos *end, int *torn, char *errmsg)
{
    const struct cr_wal *w = s->wal;
    struct cr_wal_found_rec f;
    enum cr_wal_found found;
    uint64_t off = from->offset;
    uint64_t seq = from->seq;
    uint64_t o;
    *torn = 0;
    while ((found = cr_wal_probe(w, off, from->gen, &f)) == CR_WAL_WHOLE) {
        struct cr_wal_reader r;
        struct cr_store_op op;
        struct raft_entry e;
        int more = -1;
        if (f.seq != seq + 1) {
            return corrupt_wal(s, errmsg, "record %llu at offset %llu where "
                                          "%llu must be",
                               (unsigned long long)f.seq,
                               (unsigned long long)off,
                               (unsigned long long)(seq + 1));
        }
        if (cr_wal_reader_init(&r, w, off) != 0) {
            cr_wal_reader_close(&r);
            return fail(errmsg, RAFT_NOMEM, "out of memory");
        }
        while ((more = cr_wal_next(&r, &op, &e)) == 1) {
        }
        cr_wal_reader_close(&r);
        if (more < 0) {
            return corrupt_wal(s, errmsg, "record %llu (offset %llu): "
                                          "malformed ops",
                               (unsigned long long)f.seq,
                               (unsigned long long)off);
        }
        off += f.len;
        seq++;
    }
    end->gen = from->gen;
    end->offset = off;
    end->seq = seq;
    switch (found) {
        case CR_WAL_NEWER:
            return corrupt_wal(s, errmsg, "a record of generation %llu at "
                                          "offset %llu, newer than the "
                                          "store's %llu",
                               (unsigned long long)f.rgen,
                               (unsigned long long)off,
                               (unsigned long long)from->gen);
        case CR_WAL_DAMAGED:
            return corrupt_wal(s, errmsg, "the record at offset %llu (seq "
                                          "%llu) is damaged: %s",
                               (unsigned long long)off,
                               (unsigned long long)(seq + 1), f.why);
        case CR_WAL_TORN:
            *torn = 1;
            break;
        default:
            break;
    }
    for (o = off + CR_WAL_BLOCK; o + CR_WAL_BLOCK <= w->size;
         o += CR_WAL_BLOCK) {
        uint64_t rseq;
        uint64_t len;
        if (cr_get64(w->map + o) == from->gen &&
            cr_wal_check(w, o, from->gen, &rseq, &len)) {
            return corrupt_wal(s, errmsg, "the record at offset %llu (seq "
                                          "%llu) is damaged: a whole record "
                                          "(seq %llu) follows at %llu",
                               (unsigned long long)off,
                               (unsigned long long)(seq + 1),
                               (unsigned long long)rseq,
                               (unsigned long long)o);
        }
    }
    return 0;
}

/* At open: make the file (a new store, or one from before it), or check it
 * and replay what LMDB does not hold yet; after a replay (or a torn record)
 * the file starts over in a new generation. */
static int wal_setup(struct cr_store *s, char *errmsg)
{
    struct cr_wal_pos pos;
    struct cr_wal_pos end;
    uint64_t size;
    MDB_txn *txn;
    int found;
    int torn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "begin");
    }
    rc = wal_get(s, txn, &found, &pos, &size, errmsg);
    mdb_txn_abort(txn);
    if (rc != 0) {
        return rc;
    }
    if (!found) {
        pos.gen = 1;
        pos.offset = 0;
        pos.seq = 0;
        if ((rc = cr_wal_create(s->dir, CR_WAL_SIZE, errmsg)) != 0 ||
            (rc = cr_wal_open(s->dir, CR_WAL_SIZE, &s->wal, errmsg)) != 0) {
            return rc;
        }
        rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc != 0) {
            return fail_mdb(s, errmsg, rc, "begin");
        }
        rc = wal_put(s, txn, &pos, CR_WAL_SIZE, errmsg);
        if (rc != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
        rc = mdb_txn_commit(txn);
        if (rc != 0) {
            return fail_mdb(s, errmsg, rc, "commit");
        }
        s->pos = pos;
        return cr_store_sync(s, errmsg);
    }
    rc = cr_wal_open(s->dir, size, &s->wal, errmsg);
    if (rc == 0) {
        rc = wal_scan(s, &pos, &end, &torn, errmsg);
    }
    if (rc != 0) {
        return rc;
    }
    if (torn) {
        snprintf(s->warning, sizeof s->warning,
                 "%s: the last record (offset %llu) is torn, a crash while "
                 "it was written (never acknowledged): ignored",
                 s->wal->path, (unsigned long long)end.offset);
    }
    if (end.offset == pos.offset && !torn) {
        s->pos = pos;
        return 0;
    }
    return cr_store_checkpoint(s, &end, NULL, 0, 1, &s->pos, errmsg);
}

/* ---- bootstrap, recover, stat ---------------------------------------------------------- */

int cr_store_bootstrap(struct cr_store *s, const struct raft_configuration *conf,
                       char *errmsg)
{
    struct cr_store_stat st;
    struct raft_entry e;
    struct cr_store_op ops[2];
    int rc = cr_store_stat(s, &st, errmsg);
    if (rc != 0) {
        return rc;
    }
    if (st.term != 0 || st.n_entries != 0 || st.snapshot_index != 0) {
        return fail(errmsg, RAFT_CANTBOOTSTRAP, "%s: the store is not empty",
                    s->path);
    }
    memset(&e, 0, sizeof e);
    rc = raft_configuration_encode(conf, &e.buf);
    if (rc != 0) {
        return fail(errmsg, rc, "encode configuration");
    }
    e.type = RAFT_CHANGE;
    e.term = 1;
    memset(ops, 0, sizeof ops);
    ops[0].kind = CR_OP_TERM;
    ops[0].value = 1;
    ops[1].kind = CR_OP_APPEND;
    ops[1].index = 1;
    ops[1].entries = &e;
    ops[1].n = 1;
    rc = cr_store_write(s, ops, 2, errmsg);
    raft_free(e.buf.base);
    return rc;
}

int cr_store_recover(struct cr_store *s, const struct raft_configuration *conf,
                     char *errmsg)
{
    struct cr_store_state st;
    struct raft_entry e;
    struct cr_store_op op;
    raft_term last_term = 0;
    raft_index next;
    int rc = cr_store_load(s, &st, errmsg);
    if (rc != 0) {
        return rc;
    }
    if (st.snapshot != NULL) {
        last_term = st.snapshot->term;
    }
    if (st.n_entries > 0) {
        last_term = st.entries[st.n_entries - 1].term;
    }
    next = st.start_index + st.n_entries;
    cr_store_state_free(&st);
    if (last_term == 0) {
        return fail(errmsg, RAFT_INVALID, "%s: nothing to recover (empty "
                                          "store)", s->path);
    }
    memset(&e, 0, sizeof e);
    rc = raft_configuration_encode(conf, &e.buf);
    if (rc != 0) {
        return fail(errmsg, rc, "encode configuration");
    }
    e.type = RAFT_CHANGE;
    e.term = last_term;
    memset(&op, 0, sizeof op);
    op.kind = CR_OP_APPEND;
    op.index = next;
    op.entries = &e;
    op.n = 1;
    rc = cr_store_write(s, &op, 1, errmsg);
    raft_free(e.buf.base);
    return rc;
}

int cr_store_stat(struct cr_store *s, struct cr_store_stat *out, char *errmsg)
{
    struct raft_snapshot meta;
    MDB_envinfo info;
    MDB_stat ms;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    MDB_val data;
    struct stat fst;
    uint64_t term;
    uint64_t vote;
    int found;
    int rc;

    memset(out, 0, sizeof *out);
    rc = read_begin(s, &txn, &term, &vote, &found, &meta, &data, errmsg);
    if (rc != 0) {
        return rc;
    }
    out->term = term;
    out->vote = vote;
    if (found) {
        out->snapshot_index = meta.index;
        out->snapshot_term = meta.term;
        out->snapshot_size = data.mv_size;
        raft_configuration_close(&meta.configuration);
    }
    rc = mdb_stat(txn, s->log, &ms);
    if (rc == 0) {
        out->n_entries = ms.ms_entries;
        rc = mdb_cursor_open(txn, s->log, &cur);
    }
    if (rc == 0) {
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0) {
            out->first_index = key_index(&k);
        }
        if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0) {
            out->last_index = key_index(&k);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    if (rc != 0) {
        return fail_mdb(s, errmsg, rc, "stat");
    }
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &ms);
    out->used_bytes = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    if (stat(s->path, &fst) == 0) {
        out->file_size = (uint64_t)fst.st_size;
    }
    return 0;
}

unsigned short cr_store_free_kib(struct cr_store *s)
{
    struct statvfs vfs;
    unsigned long long kib;
    if (statvfs(s->dir, &vfs) != 0) {
        return 0;
    }
    kib = (unsigned long long)vfs.f_bavail * vfs.f_frsize / 1024;
    return kib > 65535 ? 65535 : (unsigned short)kib;
}
