/* forward_link.c: see forward_link.h. */
#include "forward_link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward_wire.h"
#include "peer_transport.h"

#define RETRY_MS 100              /* after a failed link, before the next */
#define MAX_QUEUED (64u << 20)    /* bytes queued to one peer, at most */
#define READ_BUF (64u * 1024)
#define ADDRESS_MAX 256

static long long live_objects;
#define LIVE_ADD(n) __atomic_add_fetch(&live_objects, (n), __ATOMIC_RELAXED)

long long cr_fl_live(void)
{
    return __atomic_load_n(&live_objects, __ATOMIC_RELAXED);
}

enum lstate { L_IDLE, L_CONNECTING, L_OPEN };

struct link;

struct frame
{
    uv_write_t req;
    struct link *link;
    unsigned gen;            /* the stream it was written on */
    struct frame *next;      /* queued while connecting */
    size_t len;
    uint8_t data[];
};

struct link
{
    struct cr_fl *fl;
    struct link *next;
    uint64_t id;
    char address[ADDRESS_MAX];
    int state;
    unsigned gen;            /* bumped per stream */
    struct raft_uv_connect req;
    int connecting;          /* req handed to the transport, cb not yet */
    uv_stream_t *stream;     /* L_OPEN */
    struct frame *head, *tail;
    size_t queued;           /* bytes queued or being written */
    uint64_t retry_at;
};

struct in
{
    struct cr_fl *fl;
    struct in *prev, *next;
    uv_stream_t *stream;
    uint64_t id;
    char address[ADDRESS_MAX];
    struct fwd_dec dec;
    uint64_t last_rx;
    int drop;                /* on_frame asked to drop the stream */
    int closing;
};

struct cr_fl
{
    uv_loop_t *loop;
    struct raft_uv_transport *transport;
    struct cr_fl_config cfg;
    struct link *links;
    struct in *ins;
    uv_timer_t sweep;
    int sweep_open;
    int closing;
    int free_asked;
    int busy;                /* handles closing, writes and connects pending */
    uint8_t rbuf[READ_BUF];
};

static void maybe_free(struct cr_fl *fl)
{
    struct link *l;
    if (!fl->free_asked || fl->busy > 0 || fl->sweep_open) {
        return;
    }
    while (fl->links != NULL) {
        l = fl->links;
        fl->links = l->next;
        free(l);
        LIVE_ADD(-1);
    }
    free(fl);
    LIVE_ADD(-1);
}

static void stream_freed_cb(uv_handle_t *h)
{
    struct cr_fl *fl = h->data;
    raft_free(h);
    fl->busy--;
    maybe_free(fl);
}

static void close_stream(struct cr_fl *fl, uv_stream_t *stream)
{
    stream->data = fl;
    fl->busy++;
    uv_close((uv_handle_t *)stream, stream_freed_cb);
}

/* ---- inbound --------------------------------------------------------------- */

static void in_close(struct in *in, int refuse, const char *detail)
{
    struct cr_fl *fl = in->fl;
    if (in->closing) {
        return;
    }
    in->closing = 1;
    if (refuse) {
        cr_pt_refuse_forward(fl->transport, refuse, in->address, detail);
    }
    fwd_dec_free(&in->dec);
    if (in->prev != NULL) {
        in->prev->next = in->next;
    } else {
        fl->ins = in->next;
    }
    if (in->next != NULL) {
        in->next->prev = in->prev;
    }
    close_stream(fl, in->stream);
    free(in);
    LIVE_ADD(-1);
}

static void in_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct in *in = h->data;
    (void)size;
    buf->base = (char *)in->fl->rbuf;
    buf->len = READ_BUF;
}

static void in_frame(void *arg, int type, const uint8_t *body, uint64_t len)
{
    struct in *in = arg;
    struct cr_fl *fl = in->fl;
    if (in->drop || fl->closing) {
        return;
    }
    if (fl->cfg.on_frame(fl->cfg.arg, in->id, type, body, len) != 0) {
        in->drop = 1;
    }
}

static void in_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct in *in = st->data;
    enum fwd_reason r;
    char detail[64];
    if (n == 0) {
        return;
    }
    if (n < 0) {
        r = fwd_eof(&in->dec);
        snprintf(detail, sizeof detail, "frame %s", fwd_reason_name(r));
        in_close(in, r != FWD_OK ? CR_PT_FORWARD_MALFORMED : 0, detail);
        return;
    }
    in->last_rx = uv_now(in->fl->loop);
    r = fwd_feed(&in->dec, (const uint8_t *)buf->base, (size_t)n, in_frame, in);
    if (r != FWD_OK) {
        snprintf(detail, sizeof detail, "frame %s", fwd_reason_name(r));
        in_close(in, CR_PT_FORWARD_MALFORMED, detail);
    } else if (in->drop) {
        in_close(in, CR_PT_FORWARD_NOT_MEMBER, "not in the configuration");
    }
}

static void sweep_cb(uv_timer_t *timer)
{
    struct cr_fl *fl = timer->data;
    uint64_t now = uv_now(fl->loop);
    struct in *in = fl->ins;
    while (in != NULL) {
        struct in *next = in->next;
        if (fwd_dec_busy(&in->dec) &&
            now - in->last_rx > fl->cfg.idle_timeout_ms) {
            in_close(in, CR_PT_FORWARD_MALFORMED, "no byte of a frame part-way");
        }
        in = next;
    }
}

static void sweep_closed_cb(uv_handle_t *h)
{
    struct cr_fl *fl = h->data;
    fl->sweep_open = 0;
    maybe_free(fl);
}

void cr_fl_accept(struct cr_fl *fl, uint64_t id, const char *address,
                  uv_stream_t *stream)
{
    struct in *in;
    if (fl == NULL || fl->closing ||
        (in = calloc(1, sizeof *in)) == NULL) {
        if (fl != NULL) {
            close_stream(fl, stream);
        } else {
            uv_close((uv_handle_t *)stream, (uv_close_cb)raft_free);
        }
        return;
    }
    LIVE_ADD(1);
    in->fl = fl;
    in->stream = stream;
    in->id = id;
    snprintf(in->address, sizeof in->address, "%s", address);
    fwd_dec_init(&in->dec, fl->cfg.max_frame);
    in->last_rx = uv_now(fl->loop);
    in->next = fl->ins;
    if (fl->ins != NULL) {
        fl->ins->prev = in;
    }
    fl->ins = in;
    stream->data = in;
    if (!fl->sweep_open) {
        uv_timer_init(fl->loop, &fl->sweep);
        fl->sweep.data = fl;
        fl->sweep_open = 1;
        uv_timer_start(&fl->sweep, sweep_cb, 1000, 1000);
        uv_unref((uv_handle_t *)&fl->sweep);
    }
    if (uv_read_start(stream, in_alloc, in_read_cb) != 0) {
        in_close(in, 0, NULL);
    }
}

/* ---- outbound ------------------------------------------------------------- */

static void link_down(struct link *l)
{
    struct cr_fl *fl = l->fl;
    struct frame *f;
    int was = l->state;
    if (l->state == L_OPEN) {
        uv_read_stop(l->stream);
        close_stream(fl, l->stream);   /* pending writes end with ECANCELED */
        l->stream = NULL;
    }
    while ((f = l->head) != NULL) {    /* never written */
        l->head = f->next;
        l->queued -= f->len;
        free(f);
        LIVE_ADD(-1);
    }
    l->tail = NULL;
    l->state = L_IDLE;
    l->gen++;
    l->retry_at = uv_now(fl->loop) + RETRY_MS;
    if (was != L_IDLE && !fl->closing) {
        fl->cfg.on_down(fl->cfg.arg, l->id);
    }
}

static void frame_written_cb(uv_write_t *req, int status)
{
    struct frame *f = (struct frame *)req;
    struct link *l = f->link;
    struct cr_fl *fl = l->fl;
    l->queued -= f->len;
    fl->busy--;
    if (status != 0 && f->gen == l->gen && l->state == L_OPEN) {
        link_down(l);
    }
    free(f);
    LIVE_ADD(-1);
    maybe_free(fl);
}

static int write_frame(struct link *l, struct frame *f)
{
    uv_buf_t b = uv_buf_init((char *)f->data, (unsigned)f->len);
    int rv;
    f->gen = l->gen;
    f->req.data = f;
    rv = uv_write(&f->req, l->stream, &b, 1, frame_written_cb);
    if (rv == 0) {
        l->fl->busy++;
    }
    return rv;
}

static void out_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct link *l = h->data;
    (void)size;
    buf->base = (char *)l->fl->rbuf;
    buf->len = READ_BUF;
}

/* Nothing may come back on an outbound stream: EOF, an error or a byte
 * ends the link. */
static void out_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct link *l = st->data;
    (void)buf;
    if (n != 0 && l->state == L_OPEN && l->stream == st) {
        link_down(l);
    }
}

static void connected_cb(struct raft_uv_connect *req, uv_stream_t *stream,
                         int status)
{
    struct link *l = req->data;
    struct cr_fl *fl = l->fl;
    struct frame *f;
    l->connecting = 0;
    fl->busy--;
    if (fl->closing || l->state != L_CONNECTING) {
        if (stream != NULL) {
            close_stream(fl, stream);
        }
        maybe_free(fl);
        return;
    }
    if (status != 0 || stream == NULL) {
        link_down(l);
        return;
    }
    l->state = L_OPEN;
    l->stream = stream;
    stream->data = l;
    if (uv_read_start(stream, out_alloc, out_read_cb) != 0) {
        link_down(l);
        return;
    }
    while ((f = l->head) != NULL) {
        l->head = f->next;
        if (write_frame(l, f) != 0) {
            l->queued -= f->len;
            free(f);
            LIVE_ADD(-1);
            link_down(l);
            return;
        }
    }
    l->tail = NULL;
}

static struct link *find_link(struct cr_fl *fl, uint64_t id)
{
    struct link *l;
    for (l = fl->links; l != NULL; l = l->next) {
        if (l->id == id) {
            return l;
        }
    }
    return NULL;
}

int cr_fl_can_send(struct cr_fl *fl, uint64_t to)
{
    struct link *l;
    if (fl == NULL || fl->closing) {
        return 0;
    }
    l = find_link(fl, to);
    return l == NULL || l->state != L_IDLE ||
           (!l->connecting && uv_now(fl->loop) >= l->retry_at);
}

int cr_fl_send(struct cr_fl *fl, uint64_t to, const char *address, int type,
               const void *a, size_t alen, const void *b, size_t blen)
{
    struct link *l;
    struct frame *f;
    size_t len = FWD_HEADER + alen + blen;
    if (fl == NULL || fl->closing) {
        return -1;
    }
    l = find_link(fl, to);
    if (l == NULL) {
        l = calloc(1, sizeof *l);
        if (l == NULL) {
            return -1;
        }
        LIVE_ADD(1);
        l->fl = fl;
        l->id = to;
        l->next = fl->links;
        fl->links = l;
    }
    if (l->state != L_IDLE && strcmp(l->address, address) != 0) {
        link_down(l); /* the peer moved: a new connection to its address */
        l->retry_at = 0;
    }
    if (l->state == L_IDLE &&
        (l->connecting || uv_now(fl->loop) < l->retry_at)) {
        return -1; /* backing off, or an abandoned connect still pending */
    }
    if (l->queued + len > MAX_QUEUED) {
        return -1;
    }
    f = malloc(sizeof *f + len);
    if (f == NULL) {
        return -1;
    }
    LIVE_ADD(1);
    f->link = l;
    f->next = NULL;
    f->len = len;
    fwd_put_header(f->data, type, alen + blen);
    if (alen) {
        memcpy(f->data + FWD_HEADER, a, alen);
    }
    if (blen) {
        memcpy(f->data + FWD_HEADER + alen, b, blen);
    }
    l->queued += len;
    if (l->state == L_OPEN) {
        if (write_frame(l, f) != 0) {
            l->queued -= len;
            free(f);
            LIVE_ADD(-1);
            link_down(l);
            return -1;
        }
        return 0;
    }
    if (l->tail != NULL) {
        l->tail->next = f;
    } else {
        l->head = f;
    }
    l->tail = f;
    if (l->state == L_IDLE) {
        snprintf(l->address, sizeof l->address, "%s", address);
        l->state = L_CONNECTING;
        l->req.data = l;
        l->connecting = 1;
        fl->busy++;
        if (cr_pt_connect_forward(fl->transport, &l->req, to, address,
                                  connected_cb) != 0) {
            l->connecting = 0;
            fl->busy--;
            link_down(l);
            return -1;
        }
    }
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

struct cr_fl *cr_fl_new(uv_loop_t *loop, struct raft_uv_transport *transport,
                        const struct cr_fl_config *cfg)
{
    struct cr_fl *fl = calloc(1, sizeof *fl);
    if (fl == NULL) {
        return NULL;
    }
    LIVE_ADD(1);
    fl->loop = loop;
    fl->transport = transport;
    fl->cfg = *cfg;
    if (fl->cfg.idle_timeout_ms == 0) {
        fl->cfg.idle_timeout_ms = 30000;
    }
    return fl;
}

void cr_fl_close(struct cr_fl *fl)
{
    struct link *l;
    if (fl == NULL || fl->closing) {
        return;
    }
    fl->closing = 1;
    while (fl->ins != NULL) {
        in_close(fl->ins, 0, NULL);
    }
    for (l = fl->links; l != NULL; l = l->next) {
        link_down(l);  /* a connect still pending ends in connected_cb */
    }
    if (fl->sweep_open && !uv_is_closing((uv_handle_t *)&fl->sweep)) {
        uv_close((uv_handle_t *)&fl->sweep, sweep_closed_cb);
    }
}

void cr_fl_free(struct cr_fl *fl)
{
    if (fl == NULL) {
        return;
    }
    cr_fl_close(fl);
    fl->free_asked = 1;
    maybe_free(fl);
}
