/* raft_io.c: the binding's own raft_io over the LMDB store and the peer
 * transport (see raft_io.h). Loop thread only, except work_cb (libuv's
 * thread pool), which touches nothing but the batch it was given and the
 * store. */
#include "raft_io.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_io.h"
#include "firewall.h"
#include "lmdb_store.h"
#include "wal.h"

#define READ_BUF (64u * 1024)
#define CONNECT_QUEUE_MAX 16          /* sends waiting for a connection */
#define WRITE_QUEUE_MAX (64u << 20)   /* bytes queued on one peer's stream */
#define CONNECT_BACKOFF_MS 250        /* after a failed connect */
#define DISK_RETRY_MS 1000            /* after a failed disk batch */
#define CKPT_BYTES (2u << 20)         /* records waiting: checkpoint them */
#define FIXED_HANDLES 5               /* tick, retry, flush, prepare, check */

static long long live_objects;
#define LIVE_ADD(n) __atomic_add_fetch(&live_objects, (n), __ATOMIC_RELAXED)

long long cr_io_live(void)
{
    return __atomic_load_n(&live_objects, __ATOMIC_RELAXED);
}

/* ---- state ---------------------------------------------------------------- */

enum dkind { D_APPEND, D_TRUNCATE, D_META, D_SNAPSHOT, D_GET };

struct dreq                   /* one queued disk request */
{
    struct dreq *next;
    int kind;
    struct cr_store_op op;
    struct raft_io_append *append;
    struct raft_io_snapshot_put *put;
    struct raft_io_snapshot_get *get;
    struct raft_snapshot *got;
    int status;
};

struct peer;

struct sreq                   /* one message to send */
{
    uv_write_t write;
    struct sreq *next;
    struct io *io;
    struct peer *peer;
    struct raft_io_send *req;
    const struct raft_message *m;   /* valid until req->cb */
    uint8_t *head;                  /* frame header + head (malloc'd) */
    size_t head_len;
    uint64_t gate;                  /* meta writes to be durable first */
    int status;
};

enum pstate { P_IDLE, P_CONNECTING, P_OPEN };

struct peer                   /* our outbound stream to one server */
{
    struct peer *next;
    struct io *io;
    raft_id id;
    char *address;
    int state;
    struct raft_uv_connect connect;
    uv_stream_t *stream;
    struct sreq *qhead, *qtail;     /* waiting for the connection */
    unsigned qn;
    uint64_t retry_at;              /* ms: no connect before */
};

struct inconn                 /* a peer's inbound stream */
{
    struct inconn *prev, *next;
    struct io *io;
    uv_stream_t *stream;
    raft_id id;
    char address[FW_ADDRESS_MAX + 1];
    struct cr_io_dec dec;
    uint64_t last_rx;
    int closing;
};

struct io
{
    struct raft_io *raft_io;
    uv_loop_t *loop;
    struct cr_io_config cfg;
    char *data_dir;
    raft_id id;
    struct cr_store *store;
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;
    unsigned random;

    uv_timer_t tick;
    uv_timer_t retry;               /* a failed disk batch, again */
    uv_timer_t flush;               /* deferred send completions */
    uv_prepare_t prepare;           /* libraft's completed requests, */
    uv_check_t check;               /* ... before and after polling */
    int handles;                    /* ours open: the FIXED_HANDLES, streams */
    int timers_open;                /* the FIXED_HANDLES are open */

    /* the disk chain: pending -> running (on the pool) -> callbacks. A
     * batch is one write-ahead record (one flush), or, with a snapshot or
     * when it does not fit, one LMDB transaction ("direct"). */
    struct dreq *pending_head, *pending_tail;
    struct dreq *running;
    int busy;
    int direct;                     /* the running item writes LMDB */
    int reads;                      /* ... or reads it (snapshot_get) */
    struct cr_wal_pos wal;          /* the tail: after the last record */
    struct cr_wal_pos run_pos;      /* the running item's new tail */
    uint64_t wal_size;
    /* checkpoints: records [ckpt, wal) into LMDB, off the ack path */
    struct cr_wal_pos ckpt;         /* what LMDB holds */
    struct cr_wal_pos ckpt_to;      /* the running checkpoint's target */
    int ckpt_busy;
    int ckpt_status;
    uint64_t ckpt_retry_at;         /* ms: after a failed checkpoint */
    uv_work_t ckpt_work;
    char ckpt_errmsg[CR_STORE_ERRMSG];
    int retry_due;
    uv_work_t work;
    int write_status;
    char write_errmsg[CR_STORE_ERRMSG];
    int failing;                    /* logged the current run of failures */
    unsigned short free_kib;
    raft_index next_index;          /* index the next append gets */
    uint64_t meta_queued, meta_done;

    /* the network */
    int listening;
    struct peer *peers;
    struct inconn *in_head;
    struct sreq *held_head, *held_tail;     /* behind a meta write */
    struct sreq *done_head, *done_tail;     /* completed, callback due */
    uint8_t rbuf[READ_BUF];

    /* closing */
    int closing;
    int transport_closing;
    int transport_closed;
    raft_io_close_cb close_cb;
    char errmsg[CR_STORE_ERRMSG];   /* the last store error, whole */
};

static void disk_kick(struct io *io);
static void retry_cb(uv_timer_t *t);
static void meta_done(struct io *io);
static void maybe_closed(struct io *io);
static void peer_write(struct peer *p, struct sreq *s);
static void peer_connect(struct peer *p);
static void peer_drop_stream(struct peer *p);
static void send_done(struct sreq *s, int status);

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void log_line(struct io *io, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_line(struct io *io, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (io->cfg.log == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    io->cfg.log(io->cfg.arg, level, msg);
}

/* The store's message: whole in io->errmsg (cr_io_errmsg), cut to fit in
 * raft_io->errmsg (libraft's 256 bytes). */
static void set_error(struct io *io, const char *msg)
{
    size_t n = strlen(msg);
    memcpy(io->errmsg, msg, n < sizeof io->errmsg ? n + 1 : sizeof io->errmsg);
    io->errmsg[sizeof io->errmsg - 1] = 0;
    n = n < RAFT_ERRMSG_BUF_SIZE - 1 ? n : RAFT_ERRMSG_BUF_SIZE - 1;
    memcpy(io->raft_io->errmsg, msg, n);
    io->raft_io->errmsg[n] = 0;
}

const char *cr_io_errmsg(struct raft_io *raft_io)
{
    struct io *io = raft_io->impl;
    return io != NULL ? io->errmsg : "";
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct io *io = h->data;
    io->handles--;
    maybe_closed(io);
}

/* ---- the disk chain ----------------------------------------------------------- */

static struct dreq *dreq_new(struct io *io, int kind)
{
    struct dreq *d = calloc(1, sizeof *d);
    (void)io;
    if (d != NULL) {
        d->kind = kind;
        LIVE_ADD(1);
    }
    return d;
}

static void dreq_free(struct dreq *d)
{
    free(d);
    LIVE_ADD(-1);
}

static void disk_push(struct io *io, struct dreq *d)
{
    if (io->pending_tail != NULL) {
        io->pending_tail->next = d;
    } else {
        io->pending_head = d;
    }
    io->pending_tail = d;
    disk_kick(io);
}

/* On the pool: the batch's writes, then its reads. The writes are one
 * write-ahead record (durable after its one fdatasync), or, direct, one
 * LMDB transaction that first applies every record not yet checkpointed
 * and starts the file over (a new generation). */
static void work_cb(uv_work_t *work)
{
    struct io *io = work->data;
    struct cr_store_op *ops = NULL;
    struct dreq *d;
    unsigned n = 0;
    char errmsg[CR_STORE_ERRMSG];
    for (d = io->running; d != NULL; d = d->next) {
        n += d->kind != D_GET;
    }
    io->write_status = 0;
    io->run_pos = io->wal;
    if (n > 0 && (ops = malloc(n * sizeof *ops)) == NULL) {
        io->write_status = RAFT_NOMEM;
        snprintf(io->write_errmsg, sizeof io->write_errmsg, "out of memory");
    } else if (n > 0) {
        n = 0;
        for (d = io->running; d != NULL; d = d->next) {
            if (d->kind != D_GET) {
                ops[n++] = d->op;
            }
        }
        io->write_status =
            io->direct ? cr_store_checkpoint(io->store, &io->wal, ops, n, 1,
                                             &io->run_pos, io->write_errmsg)
                       : cr_store_log(io->store, &io->run_pos, ops, n,
                                      io->write_errmsg);
        free(ops);
    }
    for (d = io->running; d != NULL; d = d->next) {
        if (d->kind == D_GET) {
            d->status = cr_store_snapshot_get(io->store, &d->got, errmsg);
            if (d->status == 0 && d->got == NULL) {
                d->status = RAFT_NOTFOUND;
            }
            if (d->status != 0) {
                memcpy(io->write_errmsg, errmsg, sizeof errmsg);
            }
        }
    }
    io->free_kib = cr_store_free_kib(io->store);
}

/* A write request's callback: it is durable (status 0) or cancelled. */
static void fire_write(struct io *io, struct dreq *d, int status)
{
    switch (d->kind) {
        case D_APPEND:
            d->append->cb(d->append, status);
            break;
        case D_SNAPSHOT:
            d->put->cb(d->put, status);
            break;
        case D_META:
            meta_done(io);
            break;
        default:
            break;
    }
    dreq_free(d);
}

static void meta_done(struct io *io)
{
    io->meta_done++;
    while (io->held_head != NULL && io->held_head->gate <= io->meta_done) {
        struct sreq *s = io->held_head;
        io->held_head = s->next;
        if (io->held_head == NULL) {
            io->held_tail = NULL;
        }
        s->next = NULL;
        peer_write(s->peer, s);
    }
}

/* Back on the loop: fire the batch's callbacks in order, or, if its
 * transaction failed, put its writes back in front to retry (unless
 * closing: then they are cancelled, as libraft allows only at close). */
static void after_work_cb(uv_work_t *work, int status)
{
    struct io *io = work->data;
    struct dreq *d = io->running;
    struct dreq *again = NULL;
    struct dreq *again_last = NULL;
    int write_failed = io->write_status != 0 || status != 0;
    int read_failed = 0;
    io->busy = 0;
    io->running = NULL;
    if (!write_failed) {
        io->wal = io->run_pos;
        if (io->direct) {
            io->ckpt = io->run_pos;     /* LMDB holds everything */
        }
    }
    while (d != NULL) {
        struct dreq *next = d->next;
        int keep = 0;
        d->next = NULL;
        if (d->kind == D_GET) {
            if (d->status == 0) {
                d->get->cb(d->get, d->got, 0);
            } else if (io->closing) {
                /* libraft's failure path frees fields it never set
                 * (legacy.c): leave its request unanswered at close. */
                log_line(io, 40, "snapshot read failed at close: %s",
                         io->write_errmsg);
            } else {
                keep = read_failed = 1;
            }
        } else if (write_failed && !io->closing) {
            keep = 1;
        } else {
            fire_write(io, d, write_failed ? RAFT_CANCELED : 0);
            d = next;
            continue;
        }
        if (keep) { /* in order, ahead of what was queued since */
            if (again_last != NULL) {
                again_last->next = d;
            } else {
                again = d;
            }
            again_last = d;
        } else {
            dreq_free(d);
        }
        d = next;
    }
    if (again != NULL) {
        again_last->next = io->pending_head;
        if (io->pending_head == NULL) {
            io->pending_tail = again_last;
        }
        io->pending_head = again;
        io->retry_due = 1;
        uv_timer_start(&io->retry, retry_cb, DISK_RETRY_MS, 0);
        if (!io->failing) {
            log_line(io, 40, "disk %s failed, retrying every %d ms: %s",
                     write_failed ? "write" : "snapshot read", DISK_RETRY_MS,
                     io->write_errmsg);
        }
        io->failing = 1;
        io->raft_io->capacity = 0;
    } else {
        if (io->failing) {
            log_line(io, 30, "disk writes succeed again");
        }
        io->failing = 0;
        io->raft_io->capacity = io->free_kib;
    }
    disk_kick(io);
    maybe_closed(io);
}

static void retry_cb(uv_timer_t *t)
{
    struct io *io = t->data;
    io->retry_due = 0;
    disk_kick(io);
}

/* Checkpoints: once CKPT_BYTES of records wait, all of them in one LMDB
 * transaction on the pool, beside the chain's record writes (other bytes
 * of the file) but never beside its LMDB work. */
static void ckpt_work_cb(uv_work_t *work)
{
    struct io *io = work->data;
    io->ckpt_status = cr_store_checkpoint(io->store, &io->ckpt_to, NULL, 0, 0,
                                          NULL, io->ckpt_errmsg);
}

static void ckpt_after_cb(uv_work_t *work, int status)
{
    struct io *io = work->data;
    io->ckpt_busy = 0;
    if (status == 0 && io->ckpt_status == 0) {
        io->ckpt = io->ckpt_to;
    } else {
        io->ckpt_retry_at = now_ms() + DISK_RETRY_MS;
        log_line(io, 40, "checkpoint failed, retrying in %d ms: %s",
                 DISK_RETRY_MS, status != 0 ? "cancelled" : io->ckpt_errmsg);
    }
    disk_kick(io);
    maybe_closed(io);
}

static void ckpt_kick(struct io *io)
{
    if (io->ckpt_busy || (io->busy && (io->direct || io->reads)) ||
        io->closing || io->wal.gen != io->ckpt.gen ||
        io->wal.offset - io->ckpt.offset < CKPT_BYTES ||
        now_ms() < io->ckpt_retry_at) {
        return;
    }
    io->ckpt_to = io->wal;
    io->ckpt_busy = 1;
    io->ckpt_work.data = io;
    if (uv_queue_work(io->loop, &io->ckpt_work, ckpt_work_cb,
                      ckpt_after_cb) != 0) {
        io->ckpt_busy = 0;
    }
}

/* Start the next work item, unless one runs or a retry is due: everything
 * queued. A batch with a snapshot, or one that does not fit in the rest of
 * the file, goes direct; that and snapshot reads wait for a running
 * checkpoint (LMDB has one user at a time). */
static void disk_kick(struct io *io)
{
    struct dreq *d;
    uint64_t payload = 0;
    int snapshot = 0;
    int reads = 0;
    if (io->busy || (io->retry_due && !io->closing)) {
        return;
    }
    if (io->pending_head == NULL) {
        ckpt_kick(io);
        return;
    }
    for (d = io->pending_head; d != NULL; d = d->next) {
        snapshot |= d->kind == D_SNAPSHOT;
        reads |= d->kind == D_GET;
        if (d->kind != D_GET && d->kind != D_SNAPSHOT) {
            uint64_t p = cr_wal_payload_size(&d->op, 1);
            payload = p > UINT64_MAX - payload ? UINT64_MAX : payload + p;
        }
    }
    io->direct = snapshot || cr_wal_framed_size(payload) >
                                 io->wal_size - io->wal.offset;
    io->reads = reads;
    if ((io->direct || reads) && io->ckpt_busy) {
        return;         /* ckpt_after_cb kicks again */
    }
    io->running = io->pending_head;
    io->pending_head = io->pending_tail = NULL;
    io->busy = 1;
    io->work.data = io;
    if (uv_queue_work(io->loop, &io->work, work_cb, after_work_cb) != 0) {
        /* Cannot happen with a valid loop; treat as a failed batch. */
        io->write_status = RAFT_IOERR;
        snprintf(io->write_errmsg, sizeof io->write_errmsg,
                 "uv_queue_work failed");
        after_work_cb(&io->work, 0);
        return;
    }
    ckpt_kick(io);
}

/* ---- raft_io: disk methods --------------------------------------------------------- */

static struct io *impl(struct raft_io *raft_io)
{
    return raft_io->impl;
}

static int io_init(struct raft_io *raft_io, raft_id id, const char *address)
{
    struct io *io = impl(raft_io);
    char errmsg[CR_STORE_ERRMSG];
    int rv;
    io->id = id;
    rv = io->cfg.transport->init(io->cfg.transport, id, address);
    if (rv != 0) {
        snprintf(raft_io->errmsg, RAFT_ERRMSG_BUF_SIZE, "%s",
                 io->cfg.transport->errmsg);
        return rv;
    }
    rv = cr_store_open(io->data_dir, io->cfg.create, &io->store, errmsg);
    if (rv != 0) {
        set_error(io, errmsg);
        return rv;
    }
    if (cr_store_warning(io->store)[0] != 0) {
        log_line(io, 30, "%s", cr_store_warning(io->store));
    }
    cr_store_wal(io->store, &io->wal, &io->wal_size);
    io->ckpt = io->wal;
    return 0;
}

static int io_load(struct raft_io *raft_io, raft_term *term, raft_id *vote,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries)
{
    struct io *io = impl(raft_io);
    struct cr_store_state st;
    char errmsg[CR_STORE_ERRMSG];
    int rv = cr_store_load(io->store, &st, errmsg);
    if (rv != 0) {
        set_error(io, errmsg);
        return rv;
    }
    *term = st.term;
    *vote = st.vote;
    *snapshot = st.snapshot;
    *start_index = st.start_index;
    *entries = st.entries;
    *n_entries = st.n_entries;
    io->next_index = st.start_index + st.n_entries;
    raft_io->capacity = cr_store_free_kib(io->store);
    return 0;
}

static int io_bootstrap(struct raft_io *raft_io,
                        const struct raft_configuration *conf)
{
    struct io *io = impl(raft_io);
    char errmsg[CR_STORE_ERRMSG];
    int rv = cr_store_bootstrap(io->store, conf, errmsg);
    if (rv != 0) {
        set_error(io, errmsg);
    }
    return rv;
}

static int io_recover(struct raft_io *raft_io,
                      const struct raft_configuration *conf)
{
    struct io *io = impl(raft_io);
    char errmsg[CR_STORE_ERRMSG];
    int rv = cr_store_recover(io->store, conf, errmsg);
    if (rv != 0) {
        set_error(io, errmsg);
    }
    return rv;
}

static int io_meta(struct io *io, int kind, uint64_t value)
{
    struct dreq *d = dreq_new(io, D_META);
    if (d == NULL) {
        return RAFT_NOMEM;
    }
    d->op.kind = kind;
    d->op.value = value;
    io->meta_queued++;
    disk_push(io, d);
    return 0;
}

static int io_set_term(struct raft_io *raft_io, raft_term term)
{
    return io_meta(impl(raft_io), CR_OP_TERM, term);
}

static int io_set_vote(struct raft_io *raft_io, raft_id id)
{
    return io_meta(impl(raft_io), CR_OP_VOTE, id);
}

static int io_append(struct raft_io *raft_io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n,
                     raft_io_append_cb cb)
{
    struct io *io = impl(raft_io);
    struct dreq *d = dreq_new(io, D_APPEND);
    if (d == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    d->append = req;
    d->op.kind = CR_OP_APPEND;
    d->op.index = io->next_index;
    d->op.entries = entries;
    d->op.n = n;
    io->next_index += n;
    disk_push(io, d);
    return 0;
}

static int io_truncate(struct raft_io *raft_io, raft_index index)
{
    struct io *io = impl(raft_io);
    struct dreq *d;
    if (index >= io->next_index) {
        return 0; /* nothing there (libraft truncates before every append) */
    }
    d = dreq_new(io, D_TRUNCATE);
    if (d == NULL) {
        return RAFT_NOMEM;
    }
    d->op.kind = CR_OP_TRUNCATE;
    d->op.index = index;
    io->next_index = index;
    disk_push(io, d);
    return 0;
}

static int io_snapshot_put(struct raft_io *raft_io, unsigned trailing,
                           struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot,
                           raft_io_snapshot_put_cb cb)
{
    struct io *io = impl(raft_io);
    struct dreq *d = dreq_new(io, D_SNAPSHOT);
    if (d == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    d->put = req;
    d->op.kind = CR_OP_SNAPSHOT;
    d->op.snapshot = snapshot;
    d->op.trailing = trailing;
    if (trailing == 0) {
        io->next_index = snapshot->index + 1; /* the log is replaced */
    }
    disk_push(io, d);
    return 0;
}

static int io_snapshot_get(struct raft_io *raft_io,
                           struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb)
{
    struct io *io = impl(raft_io);
    struct dreq *d = dreq_new(io, D_GET);
    if (d == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    d->get = req;
    disk_push(io, d);
    return 0;
}

static raft_time io_time(struct raft_io *raft_io)
{
    (void)raft_io;
    return now_ms();
}

static int io_random(struct raft_io *raft_io, int min, int max)
{
    struct io *io = impl(raft_io);
    unsigned x = io->random;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    io->random = x;
    if (max <= min) {
        return min;
    }
    return min + (int)(x % (unsigned)(max - min));
}

/* ---- sending ----------------------------------------------------------------------- */

static void flush_cb(uv_timer_t *t)
{
    struct io *io = t->data;
    while (io->done_head != NULL) {
        struct sreq *s = io->done_head;
        io->done_head = s->next;
        if (io->done_head == NULL) {
            io->done_tail = NULL;
        }
        s->req->cb(s->req, s->status);
        free(s->head);
        free(s);
        LIVE_ADD(-1);
    }
}

/* Complete a send: its callback from the loop, never from inside send(). */
static void send_done(struct sreq *s, int status)
{
    struct io *io = s->io;
    s->status = status;
    s->next = NULL;
    if (io->done_tail != NULL) {
        io->done_tail->next = s;
    } else {
        io->done_head = s;
    }
    io->done_tail = s;
    if (io->timers_open) {
        uv_timer_start(&io->flush, flush_cb, 0, 0);
    }
}

static void write_cb(uv_write_t *w, int status)
{
    struct sreq *s = (struct sreq *)w;
    struct peer *p = s->peer;
    s->req->cb(s->req, status == 0 ? 0 : RAFT_NOCONNECTION);
    free(s->head);
    free(s);
    LIVE_ADD(-1);
    if (status != 0 && p->state == P_OPEN) {
        peer_drop_stream(p);
    }
}

static void out_stream_closed_cb(uv_handle_t *h)
{
    struct peer *p = h->data;
    struct io *io = p->io;
    raft_free(h);
    io->handles--;
    maybe_closed(io);
}

static void peer_drop_stream(struct peer *p)
{
    if (p->stream != NULL) {
        uv_stream_t *st = p->stream;
        p->stream = NULL;
        st->data = p;
        uv_close((uv_handle_t *)st, out_stream_closed_cb);
    }
    p->state = P_IDLE;
}

static void out_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct peer *p = h->data;
    (void)size;
    buf->base = (char *)p->io->rbuf;
    buf->len = READ_BUF;
}

/* Our outbound streams carry nothing back: EOF, an error or a byte ends it. */
static void out_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct peer *p = st->data;
    (void)buf;
    if (n == 0) {
        return;
    }
    peer_drop_stream(p);
}

static void peer_write(struct peer *p, struct sreq *s)
{
    struct io *io = p->io;
    const struct raft_message *m = s->m;
    uv_buf_t small[8];
    uv_buf_t *bufs = small;
    static char zeros[8];
    unsigned n = 0;
    unsigned i;
    int rv;

    if (io->closing) {
        send_done(s, RAFT_CANCELED);
        return;
    }
    if (p->state != P_OPEN) {
        if (p->qn >= CONNECT_QUEUE_MAX) {
            struct sreq *old = p->qhead;
            p->qhead = old->next;
            if (p->qhead == NULL) {
                p->qtail = NULL;
            }
            p->qn--;
            send_done(old, RAFT_NOCONNECTION);
        }
        s->next = NULL;
        if (p->qtail != NULL) {
            p->qtail->next = s;
        } else {
            p->qhead = s;
        }
        p->qtail = s;
        p->qn++;
        if (p->state == P_IDLE) {
            peer_connect(p);
        }
        return;
    }
    if (p->stream->write_queue_size > WRITE_QUEUE_MAX) {
        send_done(s, RAFT_NOCONNECTION); /* the peer is not keeping up */
        return;
    }
    if (m->type == RAFT_APPEND_ENTRIES &&
        1 + 2 * m->append_entries.n_entries > sizeof small / sizeof small[0]) {
        bufs = malloc((1 + 2 * m->append_entries.n_entries) * sizeof *bufs);
        if (bufs == NULL) {
            send_done(s, RAFT_NOMEM);
            return;
        }
    }
    bufs[n++] = uv_buf_init((char *)s->head, (unsigned)s->head_len);
    if (m->type == RAFT_APPEND_ENTRIES) {
        for (i = 0; i < m->append_entries.n_entries; i++) {
            const struct raft_buffer *b = &m->append_entries.entries[i].buf;
            size_t pad = (size_t)cr_io__pad8(b->len) - b->len;
            bufs[n++] = uv_buf_init(b->base, (unsigned)b->len);
            if (pad > 0) {
                bufs[n++] = uv_buf_init(zeros, (unsigned)pad);
            }
        }
    } else if (m->type == RAFT_INSTALL_SNAPSHOT &&
               m->install_snapshot.data.len > 0) {
        bufs[n++] = uv_buf_init(m->install_snapshot.data.base,
                                (unsigned)m->install_snapshot.data.len);
    }
    s->write.data = s;
    rv = uv_write(&s->write, p->stream, bufs, n, write_cb);
    if (bufs != small) {
        free(bufs);
    }
    if (rv != 0) {
        send_done(s, RAFT_NOCONNECTION);
        peer_drop_stream(p);
    }
}

static void connect_cb(struct raft_uv_connect *req, uv_stream_t *stream,
                       int status)
{
    struct peer *p = req->data;
    struct io *io = p->io;
    struct sreq *q = p->qhead;
    p->qhead = p->qtail = NULL;
    p->qn = 0;
    io->handles--; /* the connect request */
    if (status == 0 && !io->closing) {
        p->state = P_OPEN;
        p->stream = stream;
        stream->data = p;
        io->handles++;
        uv_read_start(stream, out_alloc_cb, out_read_cb);
    } else {
        p->state = P_IDLE;
        p->retry_at = now_ms() + CONNECT_BACKOFF_MS;
        if (status == 0) {
            stream->data = p;
            io->handles++;
            uv_close((uv_handle_t *)stream, out_stream_closed_cb);
        }
    }
    while (q != NULL) {
        struct sreq *next = q->next;
        q->next = NULL;
        if (p->state == P_OPEN) {
            peer_write(p, q);
        } else {
            send_done(q, io->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
        }
        q = next;
    }
    maybe_closed(io);
}

/* Connect, unless backing off from a failure (then the queue fails). */
static void peer_connect(struct peer *p)
{
    struct io *io = p->io;
    struct raft_uv_transport *t = io->cfg.transport;
    int rv;
    if (now_ms() < p->retry_at) {
        struct sreq *q = p->qhead;
        p->qhead = p->qtail = NULL;
        p->qn = 0;
        while (q != NULL) {
            struct sreq *next = q->next;
            send_done(q, RAFT_NOCONNECTION);
            q = next;
        }
        return;
    }
    p->state = P_CONNECTING;
    p->connect.data = p;
    io->handles++;
    rv = t->connect(t, &p->connect, p->id, p->address, connect_cb);
    if (rv != 0) {
        io->handles--;
        p->state = P_IDLE;
        p->retry_at = now_ms() + CONNECT_BACKOFF_MS;
        peer_connect(p); /* fails the queue (backing off) */
    }
}

static struct peer *peer_get(struct io *io, raft_id id, const char *address)
{
    struct peer *p;
    for (p = io->peers; p != NULL; p = p->next) {
        if (p->id == id) {
            break;
        }
    }
    if (p != NULL && strcmp(p->address, address) != 0 && p->state != P_CONNECTING) {
        /* The server moved: a new stream to its new address. */
        char *a = strdup(address);
        if (a == NULL) {
            return NULL;
        }
        free(p->address);
        p->address = a;
        peer_drop_stream(p);
        p->retry_at = 0;
    }
    if (p != NULL) {
        return p;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->address = strdup(address);
    if (p->address == NULL) {
        free(p);
        return NULL;
    }
    p->io = io;
    p->id = id;
    p->next = io->peers;
    io->peers = p;
    LIVE_ADD(1);
    return p;
}

static int io_send(struct raft_io *raft_io, struct raft_io_send *req,
                   const struct raft_message *m, raft_io_send_cb cb)
{
    struct io *io = impl(raft_io);
    struct sreq *s = calloc(1, sizeof *s);
    uint64_t tail_len;
    if (s == NULL) {
        return RAFT_NOMEM;
    }
    LIVE_ADD(1);
    req->cb = cb;
    s->io = io;
    s->req = req;
    s->m = m;
    if (io->closing || m->server_address == NULL) {
        send_done(s, RAFT_CANCELED);
        return 0;
    }
    if (cr_io_encode(m, &s->head, &s->head_len, &tail_len) != 0 ||
        s->head_len + tail_len > io->cfg.max_message_size) {
        /* Over the peers' max_message_size: they would refuse it. */
        send_done(s, RAFT_NOCONNECTION);
        return 0;
    }
    s->peer = peer_get(io, m->server_id, m->server_address);
    if (s->peer == NULL) {
        send_done(s, RAFT_NOMEM);
        return 0;
    }
    if (io->meta_done < io->meta_queued) {
        /* A term or vote is on its way to disk: no word of it before. */
        s->gate = io->meta_queued;
        if (io->held_tail != NULL) {
            io->held_tail->next = s;
        } else {
            io->held_head = s;
        }
        io->held_tail = s;
        return 0;
    }
    peer_write(s->peer, s);
    return 0;
}

/* ---- receiving --------------------------------------------------------------------- */

static void in_closed_cb(uv_handle_t *h)
{
    struct inconn *c = h->data;
    struct io *io = c->io;
    raft_free(h);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        io->in_head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    cr_io_dec_reset(&c->dec);
    free(c);
    LIVE_ADD(-1);
    io->handles--;
    maybe_closed(io);
}

static void in_close(struct inconn *c, const char *why)
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    if (why != NULL && c->io->cfg.refuse != NULL) {
        c->io->cfg.refuse(c->io->cfg.arg, c->address, why);
    }
    uv_close((uv_handle_t *)c->stream, in_closed_cb);
}

static void in_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct inconn *c = h->data;
    (void)size;
    buf->base = (char *)c->io->rbuf;
    buf->len = READ_BUF;
}

static void in_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct inconn *c = st->data;
    struct io *io = c->io;
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t left;
    if (n == 0 || c->closing) {
        return;
    }
    if (n < 0) {
        in_close(c, cr_io_dec_busy(&c->dec) ? "closed part-way through a "
                                              "message"
                                            : NULL);
        return;
    }
    c->last_rx = now_ms();
    left = (size_t)n;
    while (left > 0 && !c->closing) {
        struct raft_message m;
        size_t used;
        int r = cr_io_dec_feed(&c->dec, p, left, &used, &m);
        p += used;
        left -= used;
        if (r < 0) {
            in_close(c, cr_io_reason_name(-r));
            return;
        }
        if (r == 1) {
            m.server_address = c->address;
            if (io->closing || io->recv_cb == NULL) {
                cr_io_message_free(&m);
            } else {
                io->recv_cb(io->raft_io, &m);
            }
        }
    }
}

static void stray_closed_cb(uv_handle_t *h)
{
    struct io *io = h->data;
    raft_free(h);
    io->handles--;
    maybe_closed(io);
}

static void accept_cb(struct raft_uv_transport *t, raft_id id,
                      const char *address, uv_stream_t *stream)
{
    struct io *io = t->data;
    struct inconn *c;
    struct cr_io_limits lim;
    if (io->closing || (c = calloc(1, sizeof *c)) == NULL) {
        stream->data = io;
        io->handles++;
        uv_close((uv_handle_t *)stream, stray_closed_cb);
        return;
    }
    LIVE_ADD(1);
    c->io = io;
    c->stream = stream;
    c->id = id;
    snprintf(c->address, sizeof c->address, "%s", address);
    lim.max_message_size = io->cfg.max_message_size;
    lim.max_entries = io->cfg.max_entries;
    lim.peer_id = id;
    cr_io_dec_init(&c->dec, &lim);
    c->last_rx = now_ms();
    c->next = io->in_head;
    if (io->in_head != NULL) {
        io->in_head->prev = c;
    }
    io->in_head = c;
    io->handles++;
    stream->data = c;
    uv_read_start(stream, in_alloc_cb, in_read_cb);
}

/* ---- libraft's completed requests --------------------------------------------------- */

/* libraft 0.22's legacy layer queues the requests it completed (apply,
 * barrier, change, transfer) on r->legacy.requests and leaves firing their
 * callbacks to the io, once per loop iteration (its uv backend does so from
 * a prepare and a check handle, calling a function libraft does not export).
 * The queue and the request structs are public (raft.h): every request
 * starts with RAFT__REQUEST, its `queue` links it, its `type` says which. */
#define CR_IO_TRANSFER (RAFT_CHANGE + 1) /* libraft's RAFT_TRANSFER_ */

static void fire_completed(struct io *io)
{
    struct raft *r = io->raft_io->data;
    void **q;
    if (r == NULL) {
        return;
    }
    q = r->legacy.requests;
    while ((void **)q[0] != q) {
        void **e = q[0]; /* the head: unlink it */
        struct raft_apply *req = (struct raft_apply *)(void *)((char *)e -
            offsetof(struct raft_apply, queue));
        ((void **)e[1])[0] = e[0];
        ((void **)e[0])[1] = e[1];
        switch (req->type) {
            case RAFT_COMMAND:
                req->cb(req, req->status, req->result);
                break;
            case RAFT_BARRIER: {
                struct raft_barrier *b = (struct raft_barrier *)(void *)req;
                b->cb(b, b->status);
                break;
            }
            case RAFT_CHANGE: {
                struct raft_change *c = (struct raft_change *)(void *)req;
                c->cb(c, c->status);
                break;
            }
            case CR_IO_TRANSFER: {
                struct raft_transfer *t = (struct raft_transfer *)(void *)req;
                t->cb(t);
                break;
            }
            default:
                break;
        }
    }
}

static void prepare_cb(uv_prepare_t *h)
{
    fire_completed(h->data);
}

static void check_cb(uv_check_t *h)
{
    fire_completed(h->data);
}

/* ---- start, tick, close ------------------------------------------------------------ */

static void tick_cb(uv_timer_t *t)
{
    struct io *io = t->data;
    uint64_t now = now_ms();
    struct inconn *c = io->in_head;
    while (c != NULL) {
        struct inconn *next = c->next;
        if (!c->closing && cr_io_dec_busy(&c->dec) &&
            now - c->last_rx > io->cfg.idle_timeout_ms) {
            in_close(c, "idle part-way through a message");
        }
        c = next;
    }
    if (io->tick_cb != NULL && !io->closing) {
        io->tick_cb(io->raft_io);
    }
}

static int io_start(struct raft_io *raft_io, unsigned msecs,
                    raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct io *io = impl(raft_io);
    struct raft_uv_transport *t = io->cfg.transport;
    int rv;
    io->tick_cb = tick;
    io->recv_cb = recv;
    t->data = io;
    rv = t->listen(t, accept_cb);
    if (rv != 0) {
        snprintf(raft_io->errmsg, RAFT_ERRMSG_BUF_SIZE, "%s", t->errmsg);
        return rv;
    }
    io->listening = 1;
    uv_timer_start(&io->tick, tick_cb, msecs, msecs);
    uv_prepare_start(&io->prepare, prepare_cb);
    uv_check_start(&io->check, check_cb);
    return 0;
}

static void transport_closed_cb(struct raft_uv_transport *t)
{
    struct io *io = t->data;
    io->transport_closed = 1;
    maybe_closed(io);
}

/* Close in order: our streams, then the transport (which cancels the
 * connects still pending), then, once the disk chain is idle, the timers,
 * then the callback. */
static void maybe_closed(struct io *io)
{
    struct raft_uv_transport *t = io->cfg.transport;
    struct peer *p;
    int streams;
    if (!io->closing) {
        return;
    }
    if (!io->transport_closing) {
        streams = io->handles - (io->timers_open ? FIXED_HANDLES : 0);
        for (p = io->peers; p != NULL; p = p->next) {
            streams -= p->state == P_CONNECTING;
        }
        if (streams > 0) {
            return;
        }
        io->transport_closing = 1;
        t->data = io;
        t->close(t, transport_closed_cb);
        return;
    }
    if (!io->transport_closed || io->busy || io->pending_head != NULL ||
        io->ckpt_busy) {
        return;
    }
    flush_cb(&io->flush);
    if (io->timers_open) {
        io->timers_open = 0;
        uv_close((uv_handle_t *)&io->tick, handle_closed_cb);
        uv_close((uv_handle_t *)&io->retry, handle_closed_cb);
        uv_close((uv_handle_t *)&io->flush, handle_closed_cb);
        uv_close((uv_handle_t *)&io->prepare, handle_closed_cb);
        uv_close((uv_handle_t *)&io->check, handle_closed_cb);
        return;
    }
    if (io->handles == 0 && io->close_cb != NULL) {
        raft_io_close_cb cb = io->close_cb;
        io->close_cb = NULL;
        cb(io->raft_io);
    }
}

static void io_close(struct raft_io *raft_io, raft_io_close_cb cb)
{
    struct io *io = impl(raft_io);
    struct peer *p;
    struct inconn *c;
    io->closing = 1;
    io->close_cb = cb;
    uv_timer_stop(&io->tick);
    uv_timer_stop(&io->retry);
    io->retry_due = 0;
    while (io->held_head != NULL) {
        struct sreq *s = io->held_head;
        io->held_head = s->next;
        send_done(s, RAFT_CANCELED);
    }
    io->held_tail = NULL;
    for (p = io->peers; p != NULL; p = p->next) {
        struct sreq *q = p->qhead;
        p->qhead = p->qtail = NULL;
        p->qn = 0;
        while (q != NULL) {
            struct sreq *next = q->next;
            send_done(q, RAFT_CANCELED);
            q = next;
        }
        if (p->stream != NULL) {
            peer_drop_stream(p);
        }
    }
    for (c = io->in_head; c != NULL; c = c->next) {
        in_close(c, NULL);
    }
    flush_cb(&io->flush);
    disk_kick(io); /* the chain drains: queued writes still go to disk */
    maybe_closed(io);
}

/* ---- init and free ----------------------------------------------------------------- */

int cr_io_init(struct raft_io *raft_io, uv_loop_t *loop,
               const struct cr_io_config *cfg)
{
    struct io *io = calloc(1, sizeof *io);
    if (io == NULL) {
        return RAFT_NOMEM;
    }
    io->data_dir = strdup(cfg->data_dir);
    if (io->data_dir == NULL) {
        free(io);
        return RAFT_NOMEM;
    }
    io->raft_io = raft_io;
    io->loop = loop;
    io->cfg = *cfg;
    io->random = cfg->seed != 0 ? cfg->seed : 0x9E3779B9u;
    uv_timer_init(loop, &io->tick);
    uv_timer_init(loop, &io->retry);
    uv_timer_init(loop, &io->flush);
    uv_prepare_init(loop, &io->prepare);
    uv_check_init(loop, &io->check);
    io->tick.data = io->retry.data = io->flush.data = io;
    io->prepare.data = io->check.data = io;
    io->timers_open = 1;
    io->handles = FIXED_HANDLES;
    memset(raft_io, 0, sizeof *raft_io);
    raft_io->version = 2;
    raft_io->impl = io;
    raft_io->init = io_init;
    raft_io->close = io_close;
    raft_io->load = io_load;
    raft_io->start = io_start;
    raft_io->bootstrap = io_bootstrap;
    raft_io->recover = io_recover;
    raft_io->set_term = io_set_term;
    raft_io->set_vote = io_set_vote;
    raft_io->send = io_send;
    raft_io->append = io_append;
    raft_io->truncate = io_truncate;
    raft_io->snapshot_put = io_snapshot_put;
    raft_io->snapshot_get = io_snapshot_get;
    raft_io->time = io_time;
    raft_io->random = io_random;
    LIVE_ADD(1);
    return 0;
}

void cr_io_free(struct raft_io *raft_io)
{
    struct io *io = impl(raft_io);
    struct peer *p;
    if (io == NULL) {
        return;
    }
    while ((p = io->peers) != NULL) {
        io->peers = p->next;
        free(p->address);
        free(p);
        LIVE_ADD(-1);
    }
    cr_store_close(io->store);
    free(io->data_dir);
    free(io);
    raft_io->impl = NULL;
    LIVE_ADD(-1);
}
