/* peer_transport.c: see peer_transport.h. */
#include "peer_transport.h"

#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "firewall.h"
#include "tls_stream.h"

/* ---- reasons ---------------------------------------------------------- */

/* Layout: [0, FW_REASON_COUNT) the firewall's (0 unused), then one per TLS
 * status (by -status), then the transport's own. */
#define R_TLS0 FW_REASON_COUNT
#define R_TLS(status) (R_TLS0 + (-(status)))
#define R_OWN0 (R_TLS0 + (-CR_TLS_STATUS_MIN) + 1)
enum {
    R_CONN_LIMIT = R_OWN0,  /* max_inbound reached: refused at accept */
    R_PENDING_LIMIT,        /* max_pending reached: the oldest dropped */
    R_PEER_LIMIT,           /* max_per_peer reached: the oldest dropped */
    R_HANDSHAKE_TIMEOUT,    /* handshake not done within the timeout */
    R_OUTBOUND_DATA,        /* bytes from the peer on an outbound stream */
    R_LOG_CONFLICT,         /* io_guard: an entry conflicting with a committed one */
    R_FORWARD_NOT_MEMBER,   /* a forwarding stream or frame from a non-member */
    R_FORWARD_MALFORMED,    /* a forwarding frame that does not check */
    R_IO_MALFORMED,         /* raft_io.c: a frame refused, or left part-way */
    R_END
};

static char reason_names[CR_PT_REASONS][48];
static int reason_names_ready;

static void init_reason_names(void)
{
    int i;
    if (reason_names_ready) {
        return;
    }
    for (i = 1; i < FW_REASON_COUNT; i++) {
        snprintf(reason_names[i], sizeof reason_names[i], "fw_%s",
                 fw_reason_name(i));
    }
    for (i = -1; i >= CR_TLS_STATUS_MIN; i--) {
        const char *n = cr_tls_status_name(i); /* "CR_TLS_EVERIFY" */
        char *out = reason_names[R_TLS(i)];
        size_t k;
        if (strncmp(n, "CR_TLS_E", 8) == 0) {
            n += 8;
        }
        snprintf(out, sizeof reason_names[0], "tls_%s", n);
        for (k = 4; out[k] != 0; k++) {
            out[k] = (char)tolower((unsigned char)out[k]);
        }
    }
    snprintf(reason_names[R_CONN_LIMIT], 48, "conn_limit");
    snprintf(reason_names[R_PENDING_LIMIT], 48, "pending_limit");
    snprintf(reason_names[R_PEER_LIMIT], 48, "peer_limit");
    snprintf(reason_names[R_HANDSHAKE_TIMEOUT], 48, "handshake_timeout");
    snprintf(reason_names[R_OUTBOUND_DATA], 48, "outbound_data");
    snprintf(reason_names[R_LOG_CONFLICT], 48, "log_conflict");
    snprintf(reason_names[R_FORWARD_NOT_MEMBER], 48, "forward_not_member");
    snprintf(reason_names[R_FORWARD_MALFORMED], 48, "forward_malformed");
    snprintf(reason_names[R_IO_MALFORMED], 48, "io_malformed");
    reason_names_ready = 1;
}

_Static_assert(R_END <= CR_PT_REASONS, "CR_PT_REASONS too small");

const char *cr_pt_reason_name(int reason)
{
    init_reason_names();
    if (reason <= 0 || reason >= R_END) {
        return NULL;
    }
    return reason_names[reason];
}

static long long live_objects;
#define LIVE_ADD(n) __atomic_add_fetch(&live_objects, (n), __ATOMIC_RELAXED)

long long cr_pt_live(void)
{
    return __atomic_load_n(&live_objects, __ATOMIC_RELAXED);
}

/* ---- state ------------------------------------------------------------ */

#define LOG_INTERVAL_MS 5000
#define MAX_QUEUED (1u << 20) /* plaintext bytes queued to libraft's end */
#define READ_BUF (64u * 1024)

enum kind { K_IN_PLAIN, K_IN_TLS, K_OUT };
enum phase {
    P_HANDSHAKE, /* inbound: TLS handshake / raft handshake */
    P_PREAMBLE,  /* inbound TLS: reading the raft handshake off plain */
    P_OPEN,      /* inbound: handed to libraft */
    P_CLOSING,
};
enum ostate { O_RESOLVING, O_CONNECTING, O_TLS, O_WRITING, O_DONE };

struct pt;

struct conn
{
    struct pt *t;
    struct conn *prev, *next;
    int kind;
    int phase;
    int handles;            /* our open handles (tcp, peer, plain) */
    int pump_live;          /* tls pump not yet closed */
    int counted_pending;
    int counted_inbound;
    uv_tcp_t *tcp;          /* ours while set (raft_malloc) */
    uv_pipe_t peer;         /* inbound plaintext: our end of the pair */
    int peer_open;
    uv_stream_t *plain;     /* ours while set (raft_malloc) */
    struct cr_tls_stream *tls;
    uint64_t accepted_at;
    uint64_t last_rx;
    uint64_t peer_id;
    int filter_reason;      /* why our filter refused (a reason index) */
    size_t queued;          /* plaintext bytes queued on peer */
    int paused;
    int eof;
    char addr[64];
    /* inbound */
    struct fw_conn fw;
    size_t pre_have;
    uint8_t pre[FW_HANDSHAKE_PREAMBLE + FW_ADDRESS_MAX + 8];
    /* outbound */
    int ostate;
    int finished;
    int tcp_closing;
    struct raft_uv_connect *req;
    uint64_t dial_id;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_buf_t hs;
};

struct pt
{
    struct raft_uv_transport *transport;
    uv_loop_t *loop;
    const struct cr_pt_config *src;
    struct cr_pt_config cfg;
    struct fw_limits limits;
    raft_id id;
    char *address;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    uv_tcp_t listener;
    int listener_open;
    uv_timer_t sweep;
    int sweep_open;
    int closing;
    struct conn *head, *tail;
    unsigned n_pending;
    unsigned n_inbound;
    uint64_t last_log[CR_PT_REASONS];
    unsigned long long suppressed[CR_PT_REASONS];
    uint8_t rbuf[READ_BUF];
};

static void maybe_fire_close(struct pt *t);
static void apply_config(struct pt *t);

/* ---- refusals ---------------------------------------------------------- */

static void refuse(struct pt *t, int reason, const char *peer,
                   const char *detail)
{
    uint64_t now;
    if (reason <= 0 || reason >= R_END) {
        return;
    }
    __atomic_add_fetch(&t->cfg.refused[reason], 1, __ATOMIC_RELAXED);
    if (t->cfg.log == NULL) {
        return;
    }
    now = uv_now(t->loop);
    if (t->last_log[reason] != 0 &&
        now - t->last_log[reason] < LOG_INTERVAL_MS) {
        t->suppressed[reason]++;
        return;
    }
    t->last_log[reason] = now ? now : 1;
    t->cfg.log(t->cfg.arg, reason_names[reason], peer,
               detail != NULL ? detail : "", t->suppressed[reason]);
    t->suppressed[reason] = 0;
}

/* ---- connections ------------------------------------------------------- */

static struct conn *conn_new(struct pt *t, int kind)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->t = t;
    c->kind = kind;
    c->prev = t->tail;
    if (t->tail != NULL) {
        t->tail->next = c;
    } else {
        t->head = c;
    }
    t->tail = c;
    c->accepted_at = c->last_rx = uv_now(t->loop);
    LIVE_ADD(1);
    return c;
}

static void conn_uncount(struct conn *c)
{
    if (c->counted_pending) {
        c->counted_pending = 0;
        c->t->n_pending--;
    }
    if (c->counted_inbound) {
        c->counted_inbound = 0;
        c->t->n_inbound--;
    }
}

static void conn_maybe_free(struct conn *c)
{
    struct pt *t = c->t;
    if (c->handles > 0 || c->pump_live) {
        return;
    }
    if (c->kind == K_OUT ? !c->finished : c->phase != P_CLOSING) {
        return;
    }
    conn_uncount(c);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        t->head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    } else {
        t->tail = c->prev;
    }
    raft_free(c->hs.base);
    free(c);
    LIVE_ADD(-1);
    maybe_fire_close(t);
}

static void handle_freed_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    raft_free(h);
    c->handles--;
    conn_maybe_free(c);
}

static void peer_closed_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->handles--;
    conn_maybe_free(c);
}

/* Close an inbound connection; reason > 0 is counted and logged. */
static void conn_close(struct conn *c, int reason, const char *detail)
{
    if (c->phase == P_CLOSING) {
        return;
    }
    c->phase = P_CLOSING;
    conn_uncount(c);
    refuse(c->t, reason, c->addr, detail);
    if (c->tcp != NULL) {
        uv_close((uv_handle_t *)c->tcp, handle_freed_cb);
        c->tcp = NULL;
    }
    if (c->peer_open) {
        c->peer_open = 0;
        uv_close((uv_handle_t *)&c->peer, peer_closed_cb);
    }
    if (c->plain != NULL) {
        uv_close((uv_handle_t *)c->plain, handle_freed_cb);
        c->plain = NULL;
    }
    if (c->tls != NULL && c->pump_live) {
        cr_tls_stream_close(c->tls);
    }
    conn_maybe_free(c);
}

static void set_open(struct conn *c)
{
    struct pt *t = c->t;
    struct conn *o;
    unsigned same = 0;
    c->phase = P_OPEN;
    if (c->counted_pending) {
        c->counted_pending = 0;
        t->n_pending--;
    }
    c->peer_id = c->fw.peer_id;
    for (o = t->head; o != NULL; o = o->next) {
        if (o != c && o->kind != K_OUT && o->phase == P_OPEN &&
            o->peer_id == c->peer_id && o->fw.forward == c->fw.forward) {
            same++;
        }
    }
    /* Drop the oldest connections of that id beyond the cap. */
    for (o = t->head; o != NULL && same >= t->cfg.max_per_peer;) {
        struct conn *next = o->next;
        if (o != c && o->kind != K_OUT && o->phase == P_OPEN &&
            o->peer_id == c->peer_id && o->fw.forward == c->fw.forward) {
            conn_close(o, R_PEER_LIMIT, "too many connections from this id");
            same--;
        }
        o = next;
    }
}

static uint64_t now_ms(struct pt *t)
{
    return uv_now(t->loop);
}

/* A stream past its handshake: to libraft, or to the forwarding channel. */
static void hand_over(struct conn *c, uv_stream_t *stream)
{
    struct pt *t = c->t;
    if (c->fw.forward) {
        t->cfg.forward_accept(t->cfg.arg, c->fw.peer_id, c->fw.peer_address,
                              stream);
    } else {
        t->accept_cb(t->transport, c->fw.peer_id, c->fw.peer_address, stream);
    }
}

/* The reason to count for a firewall verdict: a forwarding stream's id
 * refusal is its own. */
static int fw_refusal(struct conn *c, int r)
{
    return r == FW_HS_ID_REFUSED && c->fw.forward ? R_FORWARD_NOT_MEMBER : r;
}

/* ---- inbound plaintext -------------------------------------------------- */

static void rbuf_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)size;
    buf->base = (char *)c->t->rbuf;
    buf->len = READ_BUF;
}

static void peer_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    (void)buf;
    if (n < 0) {
        /* libraft closed its end. */
        conn_close(c, 0, NULL);
    }
    /* libraft never writes on an inbound stream: anything else is ignored. */
}

static void plain_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

struct qwrite
{
    uv_write_t req;
    struct conn *c;
    size_t len;
    char data[];
};

static void qwrite_cb(uv_write_t *req, int status)
{
    struct qwrite *w = (struct qwrite *)req;
    struct conn *c = w->c;
    c->queued -= w->len;
    free(w);
    if (c->phase == P_CLOSING) {
        return;
    }
    if (status != 0) {
        conn_close(c, 0, NULL);
        return;
    }
    if (c->eof && c->queued == 0) {
        conn_close(c, 0, NULL);
        return;
    }
    if (c->paused && c->queued < MAX_QUEUED / 2 && c->tcp != NULL) {
        c->paused = 0;
        uv_read_start((uv_stream_t *)c->tcp, rbuf_alloc, plain_read_cb);
    }
}

static void plain_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* Bytes that passed the firewall, to libraft's end. */
static int forward(struct conn *c, const char *p, size_t len)
{
    struct qwrite *w;
    uv_buf_t b;
    int rv;
    if (len == 0) {
        return 0;
    }
    if (c->queued == 0) {
        b = uv_buf_init((char *)p, (unsigned)len);
        rv = uv_try_write((uv_stream_t *)&c->peer, &b, 1);
        if (rv >= 0) {
            p += rv;
            len -= (size_t)rv;
            if (len == 0) {
                return 0;
            }
        } else if (rv != UV_EAGAIN) {
            return rv;
        }
    }
    w = malloc(sizeof *w + len);
    if (w == NULL) {
        return UV_ENOMEM;
    }
    w->c = c;
    w->len = len;
    memcpy(w->data, p, len);
    b = uv_buf_init(w->data, (unsigned)len);
    rv = uv_write(&w->req, (uv_stream_t *)&c->peer, &b, 1, qwrite_cb);
    if (rv != 0) {
        free(w);
        return rv;
    }
    c->queued += len;
    if (c->queued >= MAX_QUEUED && !c->paused) {
        c->paused = 1;
        uv_read_stop((uv_stream_t *)c->tcp);
    }
    return 0;
}

/* The raft handshake passed: the socketpair, then libraft's accept. */
static int plain_open(struct conn *c, const char *rest, size_t len)
{
    struct pt *t = c->t;
    uv_os_sock_t fds[2];
    uv_pipe_t *plain;
    int rv = uv_socketpair(SOCK_STREAM, 0, fds, UV_NONBLOCK_PIPE,
                           UV_NONBLOCK_PIPE);
    if (rv != 0) {
        return rv;
    }
    plain = raft_malloc(sizeof *plain);
    if (plain == NULL) {
        close(fds[0]);
        close(fds[1]);
        return UV_ENOMEM;
    }
    uv_pipe_init(t->loop, plain, 0);
    plain->data = c;
    c->plain = (uv_stream_t *)plain;
    c->handles++;
    uv_pipe_init(t->loop, &c->peer, 0);
    c->peer.data = c;
    c->peer_open = 1;
    c->handles++;
    if (uv_pipe_open(plain, fds[0]) != 0) {
        close(fds[0]);
        close(fds[1]);
        return UV_EIO;
    }
    if (uv_pipe_open(&c->peer, fds[1]) != 0) {
        close(fds[1]);
        return UV_EIO;
    }
    uv_read_start((uv_stream_t *)&c->peer, rbuf_alloc, peer_read_cb);
    set_open(c);
    rv = forward(c, rest, len);
    if (rv != 0) {
        return rv;
    }
    c->plain = NULL; /* libraft's from here */
    c->handles--;
    plain->data = NULL;
    hand_over(c, (uv_stream_t *)plain);
    return 0;
}

static void plain_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    size_t passed = 0;
    uint64_t before;
    enum fw_reason r;
    if (n == 0 || c->phase == P_CLOSING) {
        return;
    }
    if (n < 0) {
        r = fw_eof(&c->fw);
        if (r != FW_OK) {
            conn_close(c, r, "connection closed part-way");
        } else if (c->queued == 0) {
            conn_close(c, 0, NULL);
        } else {
            c->eof = 1;
            uv_read_stop(st);
        }
        return;
    }
    c->last_rx = now_ms(c->t);
    before = c->fw.bytes;
    r = fw_feed(&c->fw, (const uint8_t *)buf->base, (size_t)n, &passed);
    if (c->phase == P_HANDSHAKE) {
        size_t off;
        int rv;
        if (r != FW_OK) {
            conn_close(c, fw_refusal(c, r), NULL);
            return;
        }
        if (!c->fw.handshake_done) {
            return;
        }
        off = (size_t)(c->fw.hs_len - before);
        rv = plain_open(c, buf->base + off, (size_t)n - off);
        if (rv != 0) {
            conn_close(c, 0, NULL);
        }
        return;
    }
    if (r != FW_OK) {
        forward(c, buf->base, passed);
        conn_close(c, r, NULL);
        return;
    }
    if (forward(c, buf->base, (size_t)n) != 0) {
        conn_close(c, 0, NULL);
    }
}

/* ---- inbound TLS --------------------------------------------------------- */

static int tls_in_filter(void *arg, const uint8_t *buf, size_t len)
{
    struct conn *c = arg;
    size_t passed;
    enum fw_reason r;
    c->last_rx = now_ms(c->t);
    r = fw_feed(&c->fw, buf, len, &passed);
    if (r != FW_OK) {
        c->filter_reason = fw_refusal(c, r);
        return 1;
    }
    return 0;
}

static void pre_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct conn *c = h->data;
    size_t need = c->fw.hs_len ? (size_t)c->fw.hs_len : FW_HANDSHAKE_PREAMBLE;
    (void)size;
    if (need > sizeof c->pre) {
        need = sizeof c->pre;
    }
    buf->base = (char *)c->pre + c->pre_have;
    buf->len = need > c->pre_have ? need - c->pre_have : 0;
}

static void pre_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    uv_stream_t *plain;
    (void)buf;
    if (n == 0 || c->phase == P_CLOSING) {
        return;
    }
    if (n < 0) {
        conn_close(c, 0, NULL); /* the pump says why (closed callback) */
        return;
    }
    c->pre_have += (size_t)n;
    if (!c->fw.handshake_done || c->pre_have < c->fw.hs_len) {
        if (c->pre_have >= sizeof c->pre) {
            conn_close(c, FW_HS_ADDR_LEN, NULL); /* cannot happen */
        }
        return;
    }
    uv_read_stop(st);
    set_open(c);
    plain = c->plain;
    c->plain = NULL;
    c->handles--;
    plain->data = NULL;
    hand_over(c, plain);
}

static void tls_in_ready(struct cr_tls_stream *s, int status, uint64_t peer_id,
                         uv_stream_t *plain, void *data)
{
    struct conn *c = data;
    struct fw_limits lim;
    (void)s;
    if (status != 0) {
        return; /* the closed callback follows */
    }
    c->plain = plain;
    plain->data = c;
    c->handles++;
    lim = c->t->limits;
    lim.expected_id = peer_id;
    fw_conn_init(&c->fw, &lim, 0);
    c->phase = P_PREAMBLE;
    uv_read_start(plain, pre_alloc, pre_read_cb);
}

/* Both directions' pumps end here. */
static void tls_closed(struct cr_tls_stream *s, int reason, void *data)
{
    struct conn *c = data;
    struct pt *t = c->t;
    int r = 0;
    if (reason == CR_TLS_EFILTER) {
        r = c->filter_reason;
    } else if (reason < 0 && reason != CR_TLS_ECANCELED) {
        r = R_TLS(reason);
    }
    c->pump_live = 0;
    c->tls = NULL;
    if (c->kind == K_OUT) {
        /* A peer of ours that went away (reset, EOF) is not a refusal:
         * libraft's client retries; only what we refused is counted. */
        if (reason != CR_TLS_EIO && reason != CR_TLS_EEOF) {
            refuse(t, r, c->addr, cr_tls_stream_errmsg(s));
        }
        conn_maybe_free(c);
        return;
    }
    if (c->phase != P_CLOSING) {
        conn_close(c, r, cr_tls_stream_errmsg(s)); /* may free c */
        return;
    }
    refuse(t, r, c->addr, cr_tls_stream_errmsg(s));
    conn_maybe_free(c);
}

static SSL_CTX *current_ctx(struct pt *t)
{
    return t->cfg.get_ctx != NULL ? t->cfg.get_ctx(t->cfg.arg) : NULL;
}

static int start_pump(struct conn *c, uv_tcp_t *tcp, int server,
                      uint64_t expect_id, cr_tls_ready_cb ready,
                      cr_tls_inbound_fn filter)
{
    struct pt *t = c->t;
    struct cr_tls_config cfg;
    SSL_CTX *ctx = current_ctx(t);
    int rv;
    if (ctx == NULL) {
        return -1;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.ctx = ctx;
    cfg.expect_id = expect_id;
    cfg.handshake_timeout_ms = t->cfg.handshake_timeout_ms;
    cfg.inbound = filter;
    cfg.inbound_arg = c;
    cfg.malloc = raft_malloc;
    cfg.free = raft_free;
    rv = cr_tls_stream_start(t->loop, tcp, &cfg, server, ready, tls_closed,
                             c, &c->tls);
    SSL_CTX_free(ctx); /* the pump holds its own reference */
    if (rv == 0) {
        c->pump_live = 1;
    }
    return rv;
}

/* ---- listen -------------------------------------------------------------- */

static void peer_name(uv_tcp_t *tcp, char *out, size_t len)
{
    struct sockaddr_storage ss;
    int n = sizeof ss;
    char host[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &n) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof host);
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(out, len, "%s:%d", host, port);
}

static void refuse_closed_cb(uv_handle_t *h)
{
    raft_free(h);
}

static void listen_cb(uv_stream_t *listener, int status)
{
    struct pt *t = listener->data;
    uv_tcp_t *tcp;
    struct conn *c;
    if (status != 0 || t->closing) {
        return;
    }
    tcp = raft_malloc(sizeof *tcp);
    if (tcp == NULL) {
        return;
    }
    uv_tcp_init(t->loop, tcp);
    if (uv_accept(listener, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, refuse_closed_cb);
        return;
    }
    if (t->n_inbound >= t->cfg.max_inbound) {
        char addr[64];
        peer_name(tcp, addr, sizeof addr);
        refuse(t, R_CONN_LIMIT, addr, "too many inbound connections");
        uv_close((uv_handle_t *)tcp, refuse_closed_cb);
        return;
    }
    if (t->n_pending >= t->cfg.max_pending) {
        struct conn *o;
        for (o = t->head; o != NULL; o = o->next) {
            if (o->kind != K_OUT && o->counted_pending) {
                conn_close(o, R_PENDING_LIMIT,
                           "too many connections in their handshakes");
                break;
            }
        }
    }
    c = conn_new(t, t->cfg.tls ? K_IN_TLS : K_IN_PLAIN);
    if (c == NULL) {
        uv_close((uv_handle_t *)tcp, refuse_closed_cb);
        return;
    }
    peer_name(tcp, c->addr, sizeof c->addr);
    c->counted_pending = 1;
    t->n_pending++;
    c->counted_inbound = 1;
    t->n_inbound++;
    c->phase = P_HANDSHAKE;
    if (t->cfg.tls) {
        c->handles++; /* tcp, until the pump owns it */
        c->tcp = tcp;
        tcp->data = c;
        if (start_pump(c, tcp, 1, 0, tls_in_ready, tls_in_filter) != 0) {
            conn_close(c, 0, NULL);
            return;
        }
        c->tcp = NULL; /* the pump's */
        c->handles--;
        return;
    }
    tcp->data = c;
    c->tcp = tcp;
    c->handles++;
    if (t->cfg.tcp_nodelay) {
        uv_tcp_nodelay(tcp, 1);
    }
    fw_conn_init(&c->fw, &t->limits, 0);
    uv_read_start((uv_stream_t *)tcp, rbuf_alloc, plain_read_cb);
}

static void sweep_cb(uv_timer_t *timer)
{
    struct pt *t = timer->data;
    uint64_t now = now_ms(t);
    struct conn *c = t->head;
    while (c != NULL) {
        struct conn *next = c->next;
        if (c->kind != K_OUT && c->phase != P_CLOSING) {
            if (c->phase != P_OPEN) {
                if (now - c->accepted_at > t->cfg.handshake_timeout_ms) {
                    conn_close(c, R_HANDSHAKE_TIMEOUT, "handshake timed out");
                }
            } else if (fw_busy(&c->fw) &&
                       now - c->last_rx > t->cfg.idle_timeout_ms) {
                conn_close(c, fw_expire(&c->fw),
                           "no byte of a message part-way");
            }
        }
        c = next;
    }
}

static void listener_closed_cb(uv_handle_t *h)
{
    struct pt *t = h->data;
    t->listener_open = 0;
    maybe_fire_close(t);
}

static void sweep_closed_cb(uv_handle_t *h)
{
    struct pt *t = h->data;
    t->sweep_open = 0;
    maybe_fire_close(t);
}

/* "host:port" -> host, port; 0 or -1. */
static int split_address(const char *address, char *host, size_t hlen,
                         char *port, size_t plen)
{
    const char *colon = strrchr(address, ':');
    size_t n;
    if (colon == NULL || colon == address || colon[1] == 0) {
        return -1;
    }
    n = (size_t)(colon - address);
    if (address[0] == '[' && n >= 2 && address[n - 1] == ']') {
        address++;
        n -= 2;
    }
    if (n >= hlen || strlen(colon + 1) >= plen) {
        return -1;
    }
    memcpy(host, address, n);
    host[n] = 0;
    strcpy(port, colon + 1);
    return 0;
}

static int pt_listen(struct raft_uv_transport *transport,
                     raft_uv_accept_cb cb)
{
    struct pt *t = transport->impl;
    char host[NI_MAXHOST];
    char port[NI_MAXSERV];
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    const char *at;
    unsigned sweep_ms;
    int rv;
    t->accept_cb = cb;
    apply_config(t);
    at = t->cfg.bind_address[0] ? t->cfg.bind_address : t->address;
    if (split_address(at, host, sizeof host, port, sizeof port)) {
        snprintf(transport->errmsg, RAFT_ERRMSG_BUF_SIZE,
                 "cannot split %.200s into host and port", at);
        return RAFT_INVALID;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rv = getaddrinfo(host, port, &hints, &res);
    if (rv != 0 || res == NULL) {
        snprintf(transport->errmsg, RAFT_ERRMSG_BUF_SIZE,
                 "getaddrinfo(%.200s): %s", host, gai_strerror(rv));
        return RAFT_IOERR;
    }
    uv_tcp_init(t->loop, &t->listener);
    t->listener.data = t;
    t->listener_open = 1;
    rv = uv_tcp_bind(&t->listener, res->ai_addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&t->listener, 128, listen_cb);
    }
    freeaddrinfo(res);
    if (rv != 0) {
        snprintf(transport->errmsg, RAFT_ERRMSG_BUF_SIZE,
                 "listen on %.200s: %s", at, uv_strerror(rv));
        uv_close((uv_handle_t *)&t->listener, listener_closed_cb);
        return RAFT_IOERR;
    }
    uv_timer_init(t->loop, &t->sweep);
    t->sweep.data = t;
    t->sweep_open = 1;
    sweep_ms = t->cfg.handshake_timeout_ms < t->cfg.idle_timeout_ms
                   ? t->cfg.handshake_timeout_ms
                   : t->cfg.idle_timeout_ms;
    sweep_ms /= 4;
    sweep_ms = sweep_ms < 20 ? 20 : sweep_ms > 1000 ? 1000 : sweep_ms;
    uv_timer_start(&t->sweep, sweep_cb, sweep_ms, sweep_ms);
    uv_unref((uv_handle_t *)&t->sweep);
    return 0;
}

/* ---- connect ------------------------------------------------------------- */

static void out_finish(struct conn *c, uv_stream_t *stream, int status)
{
    struct raft_uv_connect *req = c->req;
    if (c->finished) {
        return;
    }
    c->finished = 1;
    c->ostate = O_DONE;
    req->cb(req, stream, status);
    conn_maybe_free(c);
}

static int out_status(struct conn *c)
{
    return c->t->closing ? RAFT_CANCELED : RAFT_NOCONNECTION;
}

/* An outbound connection's tcp handle or plain stream closed. */
static void out_handle_closed_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    raft_free(h);
    c->handles--;
    out_finish(c, NULL, out_status(c));
}

static void out_close_tcp(struct conn *c)
{
    if (c->tcp != NULL && !c->tcp_closing) {
        c->tcp_closing = 1;
        uv_close((uv_handle_t *)c->tcp, out_handle_closed_cb);
    }
}

/* Give up an outbound connection while its handshake is being written:
 * close what exists of it (out_finish follows from the close callbacks). */
static void out_abandon_write(struct conn *c)
{
    if (c->plain != NULL) {
        uv_close((uv_handle_t *)c->plain, out_handle_closed_cb);
        c->plain = NULL;
        if (c->tls != NULL && c->pump_live) {
            cr_tls_stream_close(c->tls);
        }
    } else {
        out_close_tcp(c);
    }
}

static void out_write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    uv_stream_t *stream;
    if (status != 0 || c->t->closing) {
        out_abandon_write(c);
        return;
    }
    if (c->plain != NULL) {
        stream = c->plain;
        c->plain = NULL;
    } else {
        stream = (uv_stream_t *)c->tcp;
        c->tcp = NULL;
    }
    c->handles--;
    stream->data = NULL;
    out_finish(c, stream, 0);
}

static int out_write(struct conn *c, uv_stream_t *stream)
{
    c->ostate = O_WRITING;
    c->wreq.data = c;
    return uv_write(&c->wreq, stream, &c->hs, 1, out_write_cb);
}

static int out_filter(void *arg, const uint8_t *buf, size_t len)
{
    struct conn *c = arg;
    (void)buf;
    (void)len;
    c->filter_reason = R_OUTBOUND_DATA;
    return 1;
}

static void out_tls_ready(struct cr_tls_stream *s, int status,
                          uint64_t peer_id, uv_stream_t *plain, void *data)
{
    struct conn *c = data;
    (void)s;
    (void)peer_id;
    if (status != 0) {
        out_finish(c, NULL,
                   status == CR_TLS_ECANCELED ? RAFT_CANCELED
                                               : RAFT_NOCONNECTION);
        return;
    }
    c->plain = plain;
    plain->data = c;
    c->handles++;
    if (c->t->closing || out_write(c, plain) != 0) {
        uv_close((uv_handle_t *)plain, out_handle_closed_cb);
        c->plain = NULL;
        cr_tls_stream_close(c->tls);
    }
}

static void out_connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct pt *t = c->t;
    if (c->tcp_closing) {
        return; /* the close callback finishes */
    }
    if (status != 0 || t->closing) {
        if (status != 0) {
            snprintf(t->transport->errmsg, RAFT_ERRMSG_BUF_SIZE,
                     "connect to %s: %s", c->addr, uv_strerror(status));
        }
        out_close_tcp(c);
        return;
    }
    if (t->cfg.tls || t->cfg.tcp_nodelay) {
        uv_tcp_nodelay(c->tcp, 1);
    }
    if (t->cfg.tls) {
        c->ostate = O_TLS;
        if (start_pump(c, c->tcp, 0, c->dial_id, out_tls_ready, out_filter) !=
            0) {
            out_close_tcp(c);
            return;
        }
        c->tcp = NULL; /* the pump's */
        c->handles--;
        return;
    }
    if (out_write(c, (uv_stream_t *)c->tcp) != 0) {
        out_close_tcp(c);
    }
}

static void out_resolved_cb(uv_getaddrinfo_t *req, int status,
                            struct addrinfo *res)
{
    struct conn *c = req->data;
    struct pt *t = c->t;
    int rv;
    if (status != 0 || t->closing || res == NULL) {
        if (res != NULL) {
            uv_freeaddrinfo(res);
        }
        if (status != 0 && !t->closing) {
            snprintf(t->transport->errmsg, RAFT_ERRMSG_BUF_SIZE,
                     "getaddrinfo(%s): %s", c->addr, uv_err_name(status));
        }
        out_finish(c, NULL, out_status(c));
        return;
    }
    c->tcp = raft_malloc(sizeof *c->tcp);
    if (c->tcp == NULL) {
        uv_freeaddrinfo(res);
        out_finish(c, NULL, RAFT_NOCONNECTION);
        return;
    }
    uv_tcp_init(t->loop, c->tcp);
    c->tcp->data = c;
    c->handles++;
    c->ostate = O_CONNECTING;
    c->creq.data = c;
    rv = uv_tcp_connect(&c->creq, c->tcp, res->ai_addr, out_connect_cb);
    uv_freeaddrinfo(res);
    if (rv != 0) {
        out_close_tcp(c);
    }
}

static int encode_handshake(struct pt *t, uint64_t protocol, uv_buf_t *buf)
{
    size_t alen = strlen(t->address) + 1;
    size_t padded = (alen + 7) & ~(size_t)7;
    uint8_t *p;
    uint64_t v[3];
    int i;
    buf->len = 24 + padded;
    buf->base = raft_malloc(buf->len);
    if (buf->base == NULL) {
        return RAFT_NOMEM;
    }
    p = (uint8_t *)buf->base;
    v[0] = protocol;
    v[1] = t->id;
    v[2] = padded;
    for (i = 0; i < 3; i++) {
        int k;
        for (k = 0; k < 8; k++) {
            *p++ = (uint8_t)(v[i] >> (8 * k));
        }
    }
    memset(p, 0, padded);
    memcpy(p, t->address, alen);
    return 0;
}

static int connect_protocol(struct raft_uv_transport *transport,
                            struct raft_uv_connect *req, raft_id id,
                            const char *address, raft_uv_connect_cb cb,
                            uint64_t protocol)
{
    struct pt *t = transport->impl;
    char host[NI_MAXHOST];
    char port[NI_MAXSERV];
    struct addrinfo hints;
    struct conn *c;
    int rv;
    if (t->closing) {
        return RAFT_CANCELED;
    }
    if (split_address(address, host, sizeof host, port, sizeof port)) {
        snprintf(transport->errmsg, RAFT_ERRMSG_BUF_SIZE,
                 "cannot split %s into host and port", address);
        return RAFT_NOCONNECTION;
    }
    c = conn_new(t, K_OUT);
    if (c == NULL) {
        return RAFT_NOMEM;
    }
    snprintf(c->addr, sizeof c->addr, "%s", address);
    c->req = req;
    c->dial_id = id;
    req->cb = cb;
    if (encode_handshake(t, protocol, &c->hs) != 0) {
        c->finished = 1;
        conn_maybe_free(c);
        return RAFT_NOMEM;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    c->ostate = O_RESOLVING;
    rv = uv_getaddrinfo(t->loop, &c->gai, out_resolved_cb, host, port, &hints);
    if (rv != 0) {
        snprintf(transport->errmsg, RAFT_ERRMSG_BUF_SIZE,
                 "getaddrinfo(%s): %s", address, uv_strerror(rv));
        c->finished = 1;
        conn_maybe_free(c);
        return RAFT_NOCONNECTION;
    }
    return 0;
}

static int pt_connect(struct raft_uv_transport *transport,
                      struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct pt *t = transport->impl;
    return connect_protocol(transport, req, id, address, cb,
                            fw_raft_protocol(&t->limits));
}

int cr_pt_connect_forward(struct raft_uv_transport *transport,
                          struct raft_uv_connect *req, raft_id id,
                          const char *address, raft_uv_connect_cb cb)
{
    return connect_protocol(transport, req, id, address, cb,
                            FW_FORWARD_PROTOCOL);
}

static void out_abort(struct conn *c)
{
    switch (c->ostate) {
        case O_RESOLVING:
            uv_cancel((uv_req_t *)&c->gai); /* its callback finishes */
            break;
        case O_CONNECTING:
            out_close_tcp(c);
            break;
        case O_TLS:
        case O_DONE:
            if (c->tls != NULL && c->pump_live) {
                cr_tls_stream_close(c->tls);
            }
            break;
        case O_WRITING:
            out_abandon_write(c);
            break;
    }
}

/* ---- lifecycle ------------------------------------------------------------ */

static int pt_init_method(struct raft_uv_transport *transport, raft_id id,
                          const char *address)
{
    struct pt *t = transport->impl;
    t->id = id;
    t->limits.own_id = id; /* no raft stream in our own name */
    free(t->address);
    t->address = strdup(address);
    return t->address == NULL ? RAFT_NOMEM : 0;
}

static void maybe_fire_close(struct pt *t)
{
    raft_uv_transport_close_cb cb;
    if (!t->closing || t->listener_open || t->sweep_open || t->head != NULL ||
        t->close_cb == NULL) {
        return;
    }
    cb = t->close_cb;
    t->close_cb = NULL;
    cb(t->transport);
}

static void pt_close(struct raft_uv_transport *transport,
                     raft_uv_transport_close_cb cb)
{
    struct pt *t = transport->impl;
    struct conn *c;
    t->closing = 1;
    t->close_cb = cb;
    if (t->listener_open && !uv_is_closing((uv_handle_t *)&t->listener)) {
        uv_close((uv_handle_t *)&t->listener, listener_closed_cb);
    }
    if (t->sweep_open) {
        uv_close((uv_handle_t *)&t->sweep, sweep_closed_cb);
    }
    /* Closing one may finish and free it, never another. */
    c = t->head;
    while (c != NULL) {
        struct conn *next = c->next;
        if (c->kind == K_OUT) {
            out_abort(c);
        } else {
            conn_close(c, 0, NULL);
        }
        c = next;
    }
    maybe_fire_close(t);
}

static void apply_config(struct pt *t)
{
    const struct cr_pt_config *cfg = t->src;
    t->cfg = *cfg;
    if (t->cfg.max_pending == 0) {
        t->cfg.max_pending = 64;
    }
    if (t->cfg.max_inbound == 0) {
        t->cfg.max_inbound = 256;
    }
    if (t->cfg.max_per_peer == 0) {
        t->cfg.max_per_peer = 4;
    }
    if (t->cfg.handshake_timeout_ms == 0) {
        t->cfg.handshake_timeout_ms = 10000;
    }
    if (t->cfg.idle_timeout_ms == 0) {
        t->cfg.idle_timeout_ms = 30000;
    }
    fw_limits_init(&t->limits);
    t->limits.max_message_size = cfg->max_message_size;
    if (cfg->max_entries > t->limits.max_entries) {
        t->limits.max_entries = cfg->max_entries;
    }
    t->limits.id_allowed = cfg->id_allowed;
    t->limits.id_ctx = cfg->arg;
    t->limits.protocol = cfg->protocol;
    t->limits.forward = cfg->forward_accept != NULL;
    t->limits.own_id = t->id;
}

int cr_pt_init(struct raft_uv_transport *transport, uv_loop_t *loop,
               const struct cr_pt_config *cfg)
{
    struct pt *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return RAFT_NOMEM;
    }
    init_reason_names();
    t->transport = transport;
    t->loop = loop;
    t->src = cfg;
    t->cfg = *cfg;
    apply_config(t);
    transport->version = 1;
    transport->impl = t;
    transport->init = pt_init_method;
    transport->listen = pt_listen;
    transport->connect = pt_connect;
    transport->close = pt_close;
    LIVE_ADD(1);
    return 0;
}

void cr_pt_free(struct raft_uv_transport *transport)
{
    struct pt *t = transport->impl;
    if (t == NULL) {
        return;
    }
    transport->impl = NULL;
    free(t->address);
    free(t);
    LIVE_ADD(-1);
}

void cr_pt_refuse_log_conflict(struct raft_uv_transport *transport,
                               const char *peer)
{
    struct pt *t = transport->impl;
    if (t != NULL) {
        refuse(t, R_LOG_CONFLICT, peer != NULL ? peer : "?",
               "an AppendEntries entry conflicts with a committed one");
    }
}

unsigned cr_pt_inbound(struct raft_uv_transport *transport)
{
    struct pt *t = transport->impl;
    return t != NULL ? t->n_inbound : 0;
}

void cr_pt_refuse_forward(struct raft_uv_transport *transport, int which,
                          const char *peer, const char *detail)
{
    struct pt *t = transport->impl;
    if (t != NULL) {
        refuse(t,
               which == CR_PT_FORWARD_NOT_MEMBER ? R_FORWARD_NOT_MEMBER
                                                 : R_FORWARD_MALFORMED,
               peer != NULL ? peer : "?", detail);
    }
}

void cr_pt_refuse_io(struct raft_uv_transport *transport, const char *peer,
                     const char *detail)
{
    struct pt *t = transport->impl;
    if (t != NULL) {
        refuse(t, R_IO_MALFORMED, peer != NULL ? peer : "?", detail);
    }
}
