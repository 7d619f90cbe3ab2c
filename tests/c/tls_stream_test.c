/* Standalone tests for canonical_raft/core/tls_stream.c.
 *
 *   tls_stream_test CERTDIR [TEST...]
 *
 * CERTDIR is what tests/c/make_test_certs.sh made. One libuv loop; client and
 * server in this process on 127.0.0.1, ephemeral ports. Every test runs the
 * loop under an unreferenced watchdog timer, so a bug fails a test instead of
 * hanging; the loop must end on its own (every handle closed) for a test to
 * pass. Built with ASan/UBSan by tests/test_tls_stream_c.py: leaks fail the run.
 * Prints "N passed, M failed"; exit status 0 only if all passed.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "tls_stream.h"

static uv_loop_t loop;
static const char *certdir;
static int test_failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__,       \
                    __LINE__, #cond);                                      \
            test_failures++;                                               \
        }                                                                  \
    } while (0)

#define CHECK_STATUS(got, want)                                            \
    do {                                                                   \
        int g_ = (got), w_ = (want);                                       \
        if (g_ != w_) {                                                    \
            fprintf(stderr, "  %s:%d: %s is %s, want %s\n", __FILE__,      \
                    __LINE__, #got, cr_tls_status_name(g_),                \
                    cr_tls_status_name(w_));                               \
            test_failures++;                                               \
        }                                                                  \
    } while (0)

static const char *path(const char *name)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", certdir, name);
    return b;
}

/* A node context: NAME.pem / NAME.key, trusting CA.pem. */
static SSL_CTX *ctx_for(const char *name, const char *ca)
{
    char cert[64], key[64], caf[64], err[512];
    char c[512], k[512], a[512];
    SSL_CTX *ctx;
    snprintf(cert, sizeof cert, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(caf, sizeof caf, "%s.pem", ca);
    snprintf(c, sizeof c, "%s", path(cert));
    snprintf(k, sizeof k, "%s", path(key));
    snprintf(a, sizeof a, "%s", path(caf));
    ctx = cr_tls_ctx_new(c, k, a, err, sizeof err);
    if (ctx == NULL) {
        fprintf(stderr, "  cr_tls_ctx_new(%s): %s\n", name, err);
        exit(2);
    }
    return ctx;
}

/* The same by hand, without cr_tls_ctx_new's own-id check, for certificates
 * that break the identity rule on purpose; name NULL: no certificate. */
static SSL_CTX *raw_ctx(const char *name, const char *ca)
{
    char buf[64];
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(ctx, 0);
    if (name != NULL) {
        snprintf(buf, sizeof buf, "%s.pem", name);
        if (SSL_CTX_use_certificate_chain_file(ctx, path(buf)) != 1) {
            exit(2);
        }
        snprintf(buf, sizeof buf, "%s.key", name);
        if (SSL_CTX_use_PrivateKey_file(ctx, path(buf), SSL_FILETYPE_PEM) !=
            1) {
            exit(2);
        }
    }
    snprintf(buf, sizeof buf, "%s.pem", ca);
    if (SSL_CTX_load_verify_locations(ctx, path(buf), NULL) != 1) {
        exit(2);
    }
    return ctx;
}

/* ---- the pattern: byte i of a stream is a function of i ------------------ */

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static uint8_t *make_payload(size_t n)
{
    uint8_t *p = malloc(n);
    size_t i;
    for (i = 0; i < n; i++) {
        p[i] = pattern(i);
    }
    return p;
}

/* ---- one connection: a client side and a server side --------------------- */

struct side;
typedef void (*plain_fn)(struct side *);

struct side {
    struct pair *pair;
    const char *name;
    int is_server;
    struct cr_tls_config cfg;
    struct cr_tls_stream *s;
    int ready_calls;
    int ready_status;
    uint64_t peer_id;
    int closed_calls;
    int closed_reason;
    uv_pipe_t *plain;     /* from ready, until its close callback */
    int plain_closed;
    int plain_eof;
    int plain_error;

    /* what this side does with its plain stream */
    int echo;             /* write back what it reads */
    int no_read;          /* do not read until told */
    const uint8_t *send;  /* write this once ready */
    size_t send_len;
    size_t expect_len;    /* bytes to read before closing the plain stream */
    size_t got;
    int mismatch;
    size_t close_pump_at; /* cr_tls_stream_close both once got >= this */
    uint64_t t_ready;
    uint64_t t_done;

    /* inbound filter bookkeeping */
    uint64_t filter_pos;
    int filter_bad_order;
    uint64_t filter_limit; /* refuse the chunk that would pass this */
    int filter_refused;

    struct cr_tls_stats last_stats;

    /* ping-pong: write pp_size bytes, wait for them to come back, repeat */
    size_t pp_size;
    const uint8_t *pp_payload;

    /* read exactly this many bytes first, stop, then read the rest later
     * (how a transport takes libraft's preamble off the plain stream) */
    size_t preamble_len;
    uint8_t preamble[64];
    size_t preamble_got;
    uv_timer_t preamble_timer;
    int preamble_stopped;
};

struct pair {
    const char *name;
    uv_tcp_t listener;
    int listener_open;
    int port;
    uv_connect_t connect_req;
    struct side srv, cli;
    int raw_client;       /* the client is a bare TCP socket (no pump) */
    int raw_server;       /* the server is a bare TCP socket (no pump) */
    uv_tcp_t *raw;        /* that socket */
    int raw_closed;
    const char *raw_send; /* what the raw side sends once connected */
    int raw_close_after_send;
    int raw_close_client_on_read; /* raw server: close the client pump when
                                     its first bytes arrive */
    uv_write_t raw_write;
    uv_tcp_t *accepted;   /* raw server side */
    int close_server_at_start;
    uv_check_t check;     /* polls for mid-handshake closes */
    int check_open;
    int close_srv_midway; /* close the server pump once it read ciphertext */
    int close_cli_midway; /* close the client pump once it read ciphertext */
    int closed_midway;
    int tcp_small_buffers;
    void (*on_ready)(struct side *);
    /* what pair_setup() made, freed by pair_free() */
    SSL_CTX *own_srv, *own_cli;
    uint8_t *payload;
};

static void maybe_end(struct pair *p);

static void plain_closed_cb(uv_handle_t *h)
{
    struct side *sd = h->data;
    free(h);
    sd->plain = NULL;
    sd->plain_closed = 1;
    maybe_end(sd->pair);
}

static void close_plain(struct side *sd)
{
    if (sd->plain != NULL && !uv_is_closing((uv_handle_t *)sd->plain)) {
        uv_close((uv_handle_t *)sd->plain, plain_closed_cb);
    }
}

static void listener_closed_cb(uv_handle_t *h)
{
    (void)h;
}

static void raw_closed_cb(uv_handle_t *h)
{
    struct pair *p = h->data;
    free(h);
    p->raw = NULL;
    p->raw_closed = 1;
    maybe_end(p);
}

static void close_listener(struct pair *p)
{
    if (p->listener_open) {
        p->listener_open = 0;
        uv_close((uv_handle_t *)&p->listener, listener_closed_cb);
    }
}

static void check_closed_cb(uv_handle_t *h)
{
    (void)h;
}

/* The pair's own handles: the listener and the mid-handshake check. */
static void close_pair_handles(struct pair *p)
{
    close_listener(p);
    if (p->check_open) {
        p->check_open = 0;
        uv_close((uv_handle_t *)&p->check, check_closed_cb);
    }
}

/* Everything of this pair is over: let the loop end. */
static void maybe_end(struct pair *p)
{
    int srv_done = p->raw_server ? p->raw_closed
                                 : (p->srv.closed_calls &&
                                    (p->srv.plain == NULL));
    int cli_done = p->raw_client ? p->raw_closed
                                 : (p->cli.closed_calls &&
                                    (p->cli.plain == NULL));
    if (srv_done && cli_done) {
        close_pair_handles(p);
    }
}

/* plain stream I/O */

static void plain_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(size);
    buf->len = size;
}

static void send_write_cb(uv_write_t *req, int status);

struct echo_write {
    uv_write_t req;
    char *buf;
};

static void echo_write_cb(uv_write_t *req, int status)
{
    struct echo_write *w = (struct echo_write *)req;
    (void)status;
    free(w->buf);
    free(w);
}

static void plain_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct side *sd = st->data;
    struct pair *p = sd->pair;
    if (n < 0) {
        free(buf->base);
        if (n == UV_EOF) {
            sd->plain_eof = 1;
        } else {
            sd->plain_error = 1;
        }
        close_plain(sd);
        return;
    }
    if (sd->echo && n > 0) {
        struct echo_write *w = malloc(sizeof *w);
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
        w->buf = buf->base;
        if (uv_write(&w->req, st, &b, 1, echo_write_cb) != 0) {
            free(w);
            free(buf->base);
        }
    } else {
        ssize_t i;
        for (i = 0; i < n; i++) {
            if ((uint8_t)buf->base[i] != pattern(sd->got + (uint64_t)i)) {
                sd->mismatch = 1;
            }
        }
        free(buf->base);
    }
    sd->got += (size_t)n;
    if (sd->pp_size && sd->got % sd->pp_size == 0 && sd->got < sd->expect_len) {
        uv_write_t *w = malloc(sizeof *w);
        uv_buf_t b = uv_buf_init((char *)sd->pp_payload + sd->got,
                                 (unsigned)sd->pp_size);
        CHECK(uv_write(w, st, &b, 1, send_write_cb) == 0);
    }
    if (sd->close_pump_at && sd->got >= sd->close_pump_at &&
        !p->closed_midway) {
        p->closed_midway = 1;
        cr_tls_stream_close(p->cli.s);
        cr_tls_stream_close(p->srv.s);
        return;
    }
    if (sd->expect_len && sd->got >= sd->expect_len && !sd->t_done) {
        sd->t_done = uv_hrtime();
        close_plain(sd);
    }
}

static void start_plain_reading(struct side *sd)
{
    if (sd->plain != NULL) {
        uv_read_start((uv_stream_t *)sd->plain, plain_alloc, plain_read_cb);
    }
}

static void preamble_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct side *sd = h->data;
    (void)size;
    *buf = uv_buf_init((char *)sd->preamble + sd->preamble_got,
                       (unsigned)(sd->preamble_len - sd->preamble_got));
}

static void preamble_resume(uv_timer_t *t)
{
    struct side *sd = t->data;
    uv_close((uv_handle_t *)t, NULL);
    sd->got = sd->preamble_got;
    start_plain_reading(sd);
}

static void preamble_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct side *sd = st->data;
    size_t i;
    (void)buf;
    if (n < 0) {
        CHECK(0);
        close_plain(sd);
        return;
    }
    sd->preamble_got += (size_t)n;
    CHECK(sd->preamble_got <= sd->preamble_len);
    if (sd->preamble_got < sd->preamble_len) {
        return;
    }
    for (i = 0; i < sd->preamble_len; i++) {
        CHECK(sd->preamble[i] == pattern(i));
    }
    uv_read_stop(st);
    sd->preamble_stopped = 1;
    /* later, from another callback, as a transport handing over would */
    uv_timer_init(&loop, &sd->preamble_timer);
    sd->preamble_timer.data = sd;
    uv_timer_start(&sd->preamble_timer, preamble_resume, 20, 0);
}

static void send_write_cb(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

/* pump callbacks */

static int filter(void *arg, const uint8_t *buf, size_t len)
{
    struct side *sd = arg;
    size_t i;
    if (sd->filter_limit && sd->filter_pos + len > sd->filter_limit) {
        sd->filter_refused = 1;
        return 1;
    }
    for (i = 0; i < len; i++) {
        if (buf[i] != pattern(sd->filter_pos + i)) {
            sd->filter_bad_order = 1;
        }
    }
    sd->filter_pos += len;
    return 0;
}

static void ready_cb(struct cr_tls_stream *s, int status, uint64_t peer_id,
                     uv_stream_t *plain, void *data)
{
    struct side *sd = data;
    CHECK(s == sd->s || sd->s == NULL);
    sd->ready_calls++;
    sd->ready_status = status;
    sd->peer_id = peer_id;
    sd->t_ready = uv_hrtime();
    if (status != 0) {
        CHECK(plain == NULL);
        if (getenv("TLS_TEST_VERBOSE")) {
            fprintf(stderr, "    %s %s: %s (%s)\n", sd->pair->name, sd->name,
                    cr_tls_status_name(status), cr_tls_stream_errmsg(s));
        }
        return;
    }
    CHECK(plain != NULL);
    sd->plain = (uv_pipe_t *)plain;
    plain->data = sd;
    if (sd->send != NULL) {
        uv_write_t *w = malloc(sizeof *w);
        uv_buf_t b = uv_buf_init((char *)sd->send, (unsigned)sd->send_len);
        CHECK(uv_write(w, plain, &b, 1, send_write_cb) == 0);
    }
    if (sd->preamble_len) {
        uv_read_start(plain, preamble_alloc, preamble_read);
    } else if (!sd->no_read) {
        start_plain_reading(sd);
    }
    if (sd->pair->on_ready != NULL) {
        sd->pair->on_ready(sd);
    }
}

static void closed_cb(struct cr_tls_stream *s, int reason, void *data)
{
    struct side *sd = data;
    sd->closed_calls++;
    sd->closed_reason = reason;
    cr_tls_stream_stats(s, &sd->last_stats);
    CHECK(sd->ready_calls == 1);
    sd->s = NULL;
    if (sd->no_read) { /* it will never see the EOF: close it now */
        close_plain(sd);
    }
    maybe_end(sd->pair);
}

static void start_side(struct side *sd, uv_tcp_t *tcp)
{
    int rv;
    if (sd->pair->tcp_small_buffers) {
        int v = 32 * 1024;
        uv_recv_buffer_size((uv_handle_t *)tcp, &v);
        v = 32 * 1024;
        uv_send_buffer_size((uv_handle_t *)tcp, &v);
    }
    rv = cr_tls_stream_start(&loop, tcp, &sd->cfg, sd->is_server, ready_cb,
                             closed_cb, sd, &sd->s);
    CHECK(rv == 0);
    if (rv != 0) {
        exit(2);
    }
}

/* Close a pump before its handshake is done: ready fires inside the close,
 * cancelled. */
static void cancel_handshake(struct side *sd)
{
    cr_tls_stream_close(sd->s);
    CHECK(sd->ready_calls == 1);
    CHECK_STATUS(sd->ready_status, CR_TLS_ECANCELED);
}

/* With `flag`: close sd's pump once it has read ciphertext, mid-handshake. */
static void close_if_midway(struct side *sd, int flag)
{
    struct cr_tls_stats st;
    if (flag && sd->s != NULL && !sd->ready_calls) {
        cr_tls_stream_stats(sd->s, &st);
        if (st.tls_in > 0) {
            cancel_handshake(sd);
        }
    }
}

/* raw sockets (no pump) */

static void raw_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char b[65536];
    (void)h;
    (void)size;
    *buf = uv_buf_init(b, sizeof b);
}

static void raw_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct pair *p = st->data;
    (void)buf;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)st)) {
            uv_close((uv_handle_t *)st, raw_closed_cb);
        }
        return;
    }
    if (n > 0 && p->raw_close_client_on_read && p->cli.s != NULL &&
        p->cli.ready_calls == 0) {
        cancel_handshake(&p->cli);
    }
}

static void raw_write_cb(uv_write_t *req, int status)
{
    struct pair *p = req->handle->data;
    (void)status;
    if (p->raw_close_after_send && !uv_is_closing((uv_handle_t *)p->raw)) {
        uv_close((uv_handle_t *)p->raw, raw_closed_cb);
    }
}

static void raw_start(struct pair *p, uv_tcp_t *tcp)
{
    p->raw = tcp;
    tcp->data = p;
    uv_read_start((uv_stream_t *)tcp, raw_alloc, raw_read_cb);
    if (p->raw_send != NULL) {
        uv_buf_t b = uv_buf_init((char *)p->raw_send, strlen(p->raw_send));
        uv_write(&p->raw_write, (uv_stream_t *)tcp, &b, 1, raw_write_cb);
    }
}

/* accept and connect */

static void on_connection(uv_stream_t *server, int status)
{
    struct pair *p = server->data;
    uv_tcp_t *tcp;
    CHECK(status == 0);
    tcp = malloc(sizeof *tcp);
    uv_tcp_init(&loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
        CHECK(0);
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    close_listener(p); /* one connection per pair */
    if (p->raw_server) {
        raw_start(p, tcp);
        return;
    }
    start_side(&p->srv, tcp);
    if (p->close_server_at_start) {
        cancel_handshake(&p->srv);
        cr_tls_stream_close(p->srv.s); /* a no-op while closing */
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct pair *p = req->data;
    uv_tcp_t *tcp = (uv_tcp_t *)req->handle;
    CHECK(status == 0);
    if (status != 0) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    if (p->raw_client) {
        raw_start(p, tcp);
        return;
    }
    start_side(&p->cli, tcp);
}

static void check_cb(uv_check_t *c)
{
    struct pair *p = c->data;
    close_if_midway(&p->srv, p->close_srv_midway);
    close_if_midway(&p->cli, p->close_cli_midway);
}

/* the watchdog */

static struct pair *current;
static int watchdog_fired;

static void walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "    open handle: %s%s\n", uv_handle_type_name(h->type),
            uv_is_closing(h) ? " (closing)" : "");
}

static void watchdog_cb(uv_timer_t *t)
{
    struct pair *p = current;
    if (watchdog_fired++) {
        fprintf(stderr, "  %s: still hung after a forced close\n", p->name);
        uv_walk(&loop, walk_cb, NULL);
        fprintf(stderr, "0 passed, 1 failed\n");
        exit(1);
    }
    fprintf(stderr, "  %s: watchdog fired, forcing a close\n", p->name);
    test_failures++;
    cr_tls_stream_close(p->cli.s);
    cr_tls_stream_close(p->srv.s);
    close_plain(&p->cli);
    close_plain(&p->srv);
    if (p->raw != NULL && !uv_is_closing((uv_handle_t *)p->raw)) {
        uv_close((uv_handle_t *)p->raw, raw_closed_cb);
    }
    close_pair_handles(p);
    uv_timer_start(t, watchdog_cb, 3000, 0);
}

static void watchdog_closed_cb(uv_handle_t *h)
{
    (void)h;
}

/* Run until every handle of the pair is closed (or the watchdog fires). */
static void run_loop(struct pair *p, unsigned timeout_ms)
{
    uv_timer_t watchdog;
    current = p;
    watchdog_fired = 0;
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, watchdog_cb, timeout_ms, 0);
    uv_unref((uv_handle_t *)&watchdog);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&watchdog, watchdog_closed_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    current = NULL;
}

static void pair_init(struct pair *p, const char *name, SSL_CTX *srv_ctx,
                      SSL_CTX *cli_ctx)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    p->srv.pair = p->cli.pair = p;
    p->srv.name = "server";
    p->cli.name = "client";
    p->srv.is_server = 1;
    p->srv.cfg.ctx = srv_ctx;
    p->cli.cfg.ctx = cli_ctx;
    p->srv.cfg.handshake_timeout_ms = 5000;
    p->cli.cfg.handshake_timeout_ms = 5000;
}

/* pair_init() with contexts for the nodes named (NULL: none; each trusting
 * "ca") and, if n > 0, n bytes of the pattern in p->payload; pair_free()
 * frees them. */
static void pair_setup(struct pair *p, const char *name, const char *srv,
                       const char *cli, size_t n)
{
    SSL_CTX *s = srv != NULL ? ctx_for(srv, "ca") : NULL;
    SSL_CTX *c = cli != NULL ? ctx_for(cli, "ca") : NULL;
    pair_init(p, name, s, c);
    p->own_srv = s;
    p->own_cli = c;
    p->payload = n > 0 ? make_payload(n) : NULL;
}

static void pair_free(struct pair *p)
{
    SSL_CTX_free(p->own_srv);
    SSL_CTX_free(p->own_cli);
    free(p->payload);
}

/* The usual pair: node2 serves, node1 connects, with an n-byte payload. */
static void pair_nodes(struct pair *p, const char *name, size_t n)
{
    pair_setup(p, name, "node2", "node1", n);
}

/* sd writes the first n bytes of the payload once ready. */
static void send_payload(struct side *sd, size_t n)
{
    sd->send = sd->pair->payload;
    sd->send_len = n;
}

/* The usual transfer: node1 sends n bytes of the pattern to node2. */
static void pair_transfer(struct pair *p, const char *name, size_t n)
{
    pair_nodes(p, name, n);
    send_payload(&p->cli, n);
}

/* The same, node2 writing back what it reads. */
static void pair_echo(struct pair *p, const char *name, size_t n)
{
    pair_transfer(p, name, n);
    p->srv.echo = 1;
}

/* Listen, connect, run. */
static void pair_run(struct pair *p, unsigned timeout_ms)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_t *client;

    uv_tcp_init(&loop, &p->listener);
    p->listener.data = p;
    p->listener_open = 1;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    CHECK(uv_tcp_bind(&p->listener, (struct sockaddr *)&addr, 0) == 0);
    CHECK(uv_listen((uv_stream_t *)&p->listener, 8, on_connection) == 0);
    uv_tcp_getsockname(&p->listener, (struct sockaddr *)&bound, &len);
    p->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);

    if (p->close_srv_midway || p->close_cli_midway) {
        uv_check_init(&loop, &p->check);
        p->check.data = p;
        uv_check_start(&p->check, check_cb);
        uv_unref((uv_handle_t *)&p->check);
        p->check_open = 1;
    }

    client = malloc(sizeof *client);
    uv_tcp_init(&loop, client);
    uv_ip4_addr("127.0.0.1", p->port, &addr);
    p->connect_req.data = p;
    CHECK(uv_tcp_connect(&p->connect_req, client, (struct sockaddr *)&addr,
                         on_connect) == 0);
    run_loop(p, timeout_ms);
}

/* ---- tests ------------------------------------------------------------ */

static double echo_mbps;

/* A few MB both ways, compared byte for byte; the filters see every byte in
 * order; peer ids are the certificates'. */
static void test_echo(void)
{
    struct pair p;
    const size_t n = 8u << 20;
    double secs;

    pair_echo(&p, "echo", n);
    p.cli.cfg.expect_id = 2;
    p.srv.cfg.expect_id = 1;
    p.srv.cfg.inbound = filter;
    p.srv.cfg.inbound_arg = &p.srv;
    p.cli.cfg.inbound = filter;
    p.cli.cfg.inbound_arg = &p.cli;
    p.cli.expect_len = n;
    pair_run(&p, 60000);

    CHECK_STATUS(p.cli.ready_status, CR_TLS_OK);
    CHECK_STATUS(p.srv.ready_status, CR_TLS_OK);
    CHECK(p.cli.ready_calls == 1 && p.srv.ready_calls == 1);
    CHECK(p.cli.peer_id == 2);
    CHECK(p.srv.peer_id == 1);
    CHECK(p.cli.got == n);
    CHECK(p.srv.got == n);
    CHECK(!p.cli.mismatch);
    CHECK(p.srv.filter_pos == n && !p.srv.filter_bad_order);
    CHECK(p.cli.filter_pos == n && !p.cli.filter_bad_order);
    CHECK(p.cli.closed_calls == 1 && p.srv.closed_calls == 1);
    CHECK_STATUS(p.cli.closed_reason, 0);
    CHECK_STATUS(p.srv.closed_reason, 0);
    CHECK(p.srv.plain_eof); /* the client's close reached the server */
    CHECK(p.cli.last_stats.bytes_out == n && p.cli.last_stats.bytes_in == n);
    CHECK(p.srv.last_stats.bytes_out == n && p.srv.last_stats.bytes_in == n);
    secs = (double)(p.cli.t_done - p.cli.t_ready) / 1e9;
    echo_mbps = secs > 0 ? (double)n / (1 << 20) / secs : 0;
    printf("    echo: %zu MiB each way in %.3f s: %.1f MiB/s\n", n >> 20, secs,
           echo_mbps);
    pair_free(&p);
}

/* Small messages one at a time: the round-trip latency the pump adds. */
static double pingpong_us;
static void test_pingpong(void)
{
    struct pair p;
    const size_t size = 128, rounds = 2000;
    pair_nodes(&p, "pingpong", size * rounds);
    p.srv.echo = 1;
    send_payload(&p.cli, size);
    p.cli.pp_size = size;
    p.cli.pp_payload = p.payload;
    p.cli.expect_len = size * rounds;
    pair_run(&p, 60000);
    CHECK(p.cli.got == size * rounds && !p.cli.mismatch);
    pingpong_us = (double)(p.cli.t_done - p.cli.t_ready) / 1e3 / rounds;
    printf("    pingpong: %zu round trips of %zu bytes, %.1f us each\n", rounds,
           size, pingpong_us);
    pair_free(&p);
}

/* Server sends a stream to a client that sends nothing: the other direction
 * on its own, and the server's close is the orderly end. */
static void test_server_push(void)
{
    struct pair p;
    const size_t n = 3u << 20;

    pair_nodes(&p, "server_push", n);
    send_payload(&p.srv, n);
    p.srv.no_read = 1;
    p.cli.expect_len = n;
    p.on_ready = NULL;
    pair_run(&p, 30000);
    /* The client closed after reading all; the server never read, so its
     * plain stream is closed by the test once its pump ended. */
    CHECK(p.cli.got == n && !p.cli.mismatch);
    CHECK(p.cli.closed_calls == 1);
    pair_free(&p);
}

/* The filter refuses the chunk that would pass 100,000 bytes: the server's
 * user never sees it, the connection drops, the client sees EOF. */
static void test_filter_drop(void)
{
    struct pair p;

    pair_transfer(&p, "filter_drop", 1u << 20);
    p.srv.cfg.inbound = filter;
    p.srv.cfg.inbound_arg = &p.srv;
    p.srv.filter_limit = 100000;
    pair_run(&p, 30000);

    CHECK_STATUS(p.srv.ready_status, CR_TLS_OK);
    CHECK(p.srv.filter_refused);
    CHECK(!p.srv.filter_bad_order);
    CHECK(p.srv.filter_pos <= 100000 && p.srv.filter_pos > 0);
    CHECK_STATUS(p.srv.closed_reason, CR_TLS_EFILTER);
    /* Only bytes the filter passed reached the server's user, in order. */
    CHECK(p.srv.got == p.srv.filter_pos);
    CHECK(!p.srv.mismatch);
    CHECK(p.srv.last_stats.bytes_in == p.srv.filter_pos);
    CHECK(p.cli.plain_eof || p.cli.plain_error);
    CHECK(p.cli.closed_calls == 1);
    pair_free(&p);
}

/* A reader takes exactly 24 bytes (alloc sized to what is missing), stops,
 * and resumes later: not a byte is lost or read past. */
static void test_preamble_handoff(void)
{
    struct pair p;
    const size_t n = 1u << 20;
    pair_transfer(&p, "preamble_handoff", n);
    p.srv.preamble_len = 24;
    p.srv.expect_len = n;
    pair_run(&p, 30000);
    CHECK(p.srv.preamble_stopped);
    CHECK(p.srv.got == n && !p.srv.mismatch);
    CHECK(p.srv.closed_calls == 1 && p.cli.closed_calls == 1);
    pair_free(&p);
}

/* Many strangers at once: 64 bare TCP connections that never speak, each
 * with its own server pump on one loop; every one times out, everything is
 * freed (ASan), and each stranger's socket sees the close. */
#define N_STRANGERS 64
static struct {
    uv_tcp_t listener;
    int accepted, ready_timeouts, closed, raw_closed, connected;
    struct cr_tls_config cfg;
    uv_connect_t reqs[N_STRANGERS];
} many;

static void many_ready(struct cr_tls_stream *s, int status, uint64_t id,
                       uv_stream_t *plain, void *data)
{
    (void)s;
    (void)id;
    (void)data;
    CHECK(plain == NULL);
    many.ready_timeouts += status == CR_TLS_ETIMEDOUT;
}

static void many_closed(struct cr_tls_stream *s, int reason, void *data)
{
    (void)s;
    (void)data;
    CHECK(reason == CR_TLS_ETIMEDOUT);
    many.closed++;
}

static void many_raw_closed(uv_handle_t *h)
{
    free(h);
    if (++many.raw_closed == N_STRANGERS) {
        uv_close((uv_handle_t *)&many.listener, NULL);
    }
}

static void many_raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0) {
        uv_close((uv_handle_t *)st, many_raw_closed);
    }
}

static void many_on_connect(uv_connect_t *req, int status)
{
    CHECK(status == 0);
    many.connected++;
    uv_read_start(req->handle, raw_alloc, many_raw_read);
}

static void many_on_connection(uv_stream_t *server, int status)
{
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    CHECK(status == 0);
    uv_tcp_init(&loop, tcp);
    CHECK(uv_accept(server, (uv_stream_t *)tcp) == 0);
    many.accepted++;
    CHECK(cr_tls_stream_start(&loop, tcp, &many.cfg, 1, many_ready,
                              many_closed, NULL, NULL) == 0);
}

static void test_many_strangers(void)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    int i;
    struct pair p; /* for the watchdog only */
    memset(&many, 0, sizeof many);
    pair_init(&p, "many_strangers", NULL, NULL);
    many.cfg.ctx = ctx_for("node2", "ca");
    many.cfg.handshake_timeout_ms = 300;
    uv_tcp_init(&loop, &many.listener);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    CHECK(uv_tcp_bind(&many.listener, (struct sockaddr *)&addr, 0) == 0);
    CHECK(uv_listen((uv_stream_t *)&many.listener, N_STRANGERS,
                    many_on_connection) == 0);
    uv_tcp_getsockname(&many.listener, (struct sockaddr *)&bound, &len);
    for (i = 0; i < N_STRANGERS; i++) {
        uv_tcp_t *c = malloc(sizeof *c);
        uv_tcp_init(&loop, c);
        CHECK(uv_tcp_connect(&many.reqs[i], c, (struct sockaddr *)&bound,
                             many_on_connect) == 0);
    }
    run_loop(&p, 20000);
    CHECK(many.connected == N_STRANGERS);
    CHECK(many.accepted == N_STRANGERS);
    CHECK(many.ready_timeouts == N_STRANGERS);
    CHECK(many.closed == N_STRANGERS);
    CHECK(many.raw_closed == N_STRANGERS);
    SSL_CTX_free(many.cfg.ctx);
}

/* Refusals: one side's handshake fails with a verdict, the other side is
 * refused (CR_TLS_EREFUSED); each side's ready status and closed reason. */
enum { SRV, CLI };

struct refusal {
    const char *name;
    const char *srv_cert, *cli_cert; /* NULL: no certificate (raw only) */
    const char *srv_ca, *cli_ca;     /* the CA each trusts (NULL: "ca") */
    int raw_srv, raw_cli; /* build with raw_ctx (identity rule broken) */
    uint64_t srv_expect, cli_expect;
    int refuser; /* SRV or CLI: the side whose handshake fails with verdict */
    int verdict;
    uint64_t want_cli_peer_id;
};

static SSL_CTX *refusal_ctx(int raw, const char *cert, const char *ca)
{
    ca = ca != NULL ? ca : "ca";
    return raw ? raw_ctx(cert, ca) : ctx_for(cert, ca);
}

static void run_refusal(const struct refusal *r)
{
    struct pair p;
    SSL_CTX *s = refusal_ctx(r->raw_srv, r->srv_cert, r->srv_ca);
    SSL_CTX *c = refusal_ctx(r->raw_cli, r->cli_cert, r->cli_ca);
    int want_srv = r->refuser == SRV ? r->verdict : CR_TLS_EREFUSED;
    int want_cli = r->refuser == CLI ? r->verdict : CR_TLS_EREFUSED;
    pair_init(&p, r->name, s, c);
    p.srv.cfg.expect_id = r->srv_expect;
    p.cli.cfg.expect_id = r->cli_expect;
    pair_run(&p, 10000);
    if (p.srv.ready_status != want_srv || p.cli.ready_status != want_cli) {
        fprintf(stderr, "  %s:\n", r->name);
    }
    CHECK_STATUS(p.srv.ready_status, want_srv);
    CHECK_STATUS(p.cli.ready_status, want_cli);
    CHECK(p.srv.ready_calls == 1 && p.cli.ready_calls == 1);
    CHECK_STATUS(p.srv.closed_reason, want_srv);
    CHECK_STATUS(p.cli.closed_reason, want_cli);
    CHECK(p.srv.closed_calls == 1 && p.cli.closed_calls == 1);
    CHECK(p.srv.plain == NULL && p.cli.plain == NULL);
    if (r->want_cli_peer_id) {
        CHECK(p.cli.peer_id == r->want_cli_peer_id);
    }
    SSL_CTX_free(s);
    SSL_CTX_free(c);
}

static const struct refusal refusals[] = {
    /* the server's certificate is from another CA */
    {.name = "wrong_ca_server", .srv_cert = "other1", .srv_ca = "ca2",
     .cli_cert = "node1", .refuser = CLI, .verdict = CR_TLS_EVERIFY},
    /* the client's certificate is from another CA (it trusts ours) */
    {.name = "wrong_ca_client", .srv_cert = "node2", .cli_cert = "other1",
     .refuser = SRV, .verdict = CR_TLS_EVERIFY},
    /* two clusters: each refuses the other */
    {.name = "wrong_ca_both", .srv_cert = "node2", .cli_cert = "other1",
     .cli_ca = "ca2", .refuser = CLI, .verdict = CR_TLS_EVERIFY},
    {.name = "noid_server", .srv_cert = "noid", .raw_srv = 1,
     .cli_cert = "node1", .refuser = CLI, .verdict = CR_TLS_ENOID},
    {.name = "twoid_client", .srv_cert = "node2", .cli_cert = "twoid",
     .raw_cli = 1, .refuser = SRV, .verdict = CR_TLS_ENOID},
    {.name = "no_client_cert", .srv_cert = "node2", .raw_cli = 1,
     .refuser = SRV, .verdict = CR_TLS_ENOCERT},
};

/* A certificate problem tried on each side in turn: `bad` against `good`
 * (which expects id `expect`, 0: any); the good side refuses with verdict. */
static const struct {
    const char *name[2]; /* bad on the server, bad on the client */
    const char *bad, *good;
    uint64_t expect;
    int verdict;
    uint64_t cli_peer_id; /* checked when the client refuses (0: not) */
} mirrored[] = {
    {{"expired_server", "expired_client"}, "expired1", "node2", 0,
     CR_TLS_EEXPIRED, 0},
    {{"future_server", "future_client"}, "future1", "node2", 0,
     CR_TLS_ENOTYETVALID, 0},
    /* the refusing side dials (expects) id 3, the certificate says 2 */
    {{"id_mismatch_client", "id_mismatch_server"}, "node2", "node1", 3,
     CR_TLS_EIDMISMATCH, 2},
};

static void test_refusals(void)
{
    size_t i;
    for (i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        run_refusal(&refusals[i]);
    }
    for (i = 0; i < sizeof mirrored / sizeof mirrored[0]; i++) {
        struct refusal r = {.refuser = CLI};
        r.verdict = mirrored[i].verdict;
        /* bad on the server: the client refuses */
        r.name = mirrored[i].name[0];
        r.srv_cert = mirrored[i].bad;
        r.cli_cert = mirrored[i].good;
        r.cli_expect = mirrored[i].expect;
        r.want_cli_peer_id = mirrored[i].cli_peer_id;
        run_refusal(&r);
        /* bad on the client: the server refuses */
        r.name = mirrored[i].name[1];
        r.srv_cert = mirrored[i].good;
        r.cli_cert = mirrored[i].bad;
        r.srv_expect = mirrored[i].expect;
        r.cli_expect = 0;
        r.want_cli_peer_id = 0;
        r.refuser = SRV;
        run_refusal(&r);
    }
}

/* A client that connects and sends nothing: the server's timeout fires. */
static void test_server_timeout(void)
{
    struct pair p;
    uint64_t t0 = uv_hrtime();
    double ms;
    pair_setup(&p, "server_timeout", "node2", NULL, 0);
    p.raw_client = 1;
    p.srv.cfg.handshake_timeout_ms = 300;
    pair_run(&p, 10000);
    ms = (double)(p.srv.t_ready - t0) / 1e6;
    CHECK_STATUS(p.srv.ready_status, CR_TLS_ETIMEDOUT);
    CHECK_STATUS(p.srv.closed_reason, CR_TLS_ETIMEDOUT);
    CHECK(ms >= 250 && ms < 3000);
    CHECK(p.raw_closed); /* the raw client saw the server close */
    pair_free(&p);
}

/* A server that accepts and never answers: the client's timeout fires. */
static void test_client_timeout(void)
{
    struct pair p;
    pair_setup(&p, "client_timeout", NULL, "node1", 0);
    p.raw_server = 1;
    p.cli.cfg.handshake_timeout_ms = 300;
    pair_run(&p, 10000);
    CHECK_STATUS(p.cli.ready_status, CR_TLS_ETIMEDOUT);
    CHECK(p.cli.closed_calls == 1);
    CHECK(p.raw_closed);
    pair_free(&p);
}

/* A bare TCP client sends `send` (then closes, if close_after) to a server
 * pump: the server's handshake ends with `want`, the client sees the close. */
static void run_raw_client(const char *name, const char *send,
                           int close_after, int want)
{
    struct pair p;
    pair_setup(&p, name, "node2", NULL, 0);
    p.raw_client = 1;
    p.raw_send = send;
    p.raw_close_after_send = close_after;
    pair_run(&p, 10000);
    CHECK_STATUS(p.srv.ready_status, want);
    CHECK(p.raw_closed);
    pair_free(&p);
}

/* Not TLS at all. */
static void test_garbage(void)
{
    run_raw_client("garbage", "GET / HTTP/1.0\r\nHost: x\r\n\r\n", 0,
                   CR_TLS_EHANDSHAKE);
}

/* The client sends a record header and goes away: EEOF. */
static void test_eof_in_handshake(void)
{
    /* a record header, then nothing */
    run_raw_client("eof_in_handshake", "\x16\x03\x01\x02\x00", 1, CR_TLS_EEOF);
}

/* close() in the middle of handshakes: right at start (server), after the
 * server read the ClientHello, after the client read the server's flight,
 * and a client whose server only ever reads. All freed (ASan).  The closed
 * side's ready status is checked in cancel_handshake(). */
enum close_at { AT_START, SRV_MIDWAY, CLI_MIDWAY, RAW_SERVER };

/* Run a pair with one close_* switch set; every pump closed exactly once. */
static void run_close(struct pair *p, const char *name, enum close_at at)
{
    pair_setup(p, name, at == RAW_SERVER ? NULL : "node2", "node1", 0);
    p->close_server_at_start = at == AT_START;
    p->close_srv_midway = at == SRV_MIDWAY;
    p->close_cli_midway = at == CLI_MIDWAY;
    p->raw_server = p->raw_close_client_on_read = at == RAW_SERVER;
    pair_run(p, 10000);
    if (at == RAW_SERVER) {
        CHECK(p->cli.closed_calls == 1 && p->raw_closed);
    } else {
        CHECK(p->srv.closed_calls == 1 && p->cli.closed_calls == 1);
    }
}

static void test_close_in_handshake(void)
{
    struct pair p;
    int i;

    run_close(&p, "close_server_at_start", AT_START);
    CHECK_STATUS(p.srv.closed_reason, CR_TLS_ECANCELED);
    CHECK(p.cli.ready_status == CR_TLS_EEOF ||
          p.cli.ready_status == CR_TLS_EIO);
    pair_free(&p);

    run_close(&p, "close_server_midway", SRV_MIDWAY);
    CHECK_STATUS(p.srv.ready_status, CR_TLS_ECANCELED);
    CHECK(p.cli.ready_status == CR_TLS_EEOF ||
          p.cli.ready_status == CR_TLS_EIO ||
          p.cli.ready_status == CR_TLS_EREFUSED);
    pair_free(&p);

    /* The client closed midway, against a server pump or a bare reader. */
    for (i = 0; i < 2; i++) {
        run_close(&p, i == 0 ? "close_client_midway" : "close_client_raw_server",
                  i == 0 ? CLI_MIDWAY : RAW_SERVER);
        CHECK_STATUS(p.cli.ready_status, CR_TLS_ECANCELED);
        pair_free(&p);
    }
}

/* cr_tls_stream_close on both pumps in the middle of an echo of 16 MiB. */
static void test_close_in_transfer(void)
{
    struct pair p;
    const size_t n = 16u << 20;
    pair_echo(&p, "close_in_transfer", n);
    p.cli.close_pump_at = 1u << 20;
    pair_run(&p, 30000);
    CHECK(p.closed_midway);
    CHECK(p.cli.got >= (1u << 20) && p.cli.got < n);
    CHECK_STATUS(p.cli.closed_reason, CR_TLS_ECANCELED);
    CHECK_STATUS(p.srv.closed_reason, CR_TLS_ECANCELED);
    CHECK(p.cli.plain_closed && p.srv.plain_closed);
    pair_free(&p);
}

/* The peer closes its plain stream mid-transfer: orderly end on both. */
static void test_peer_eof(void)
{
    struct pair p;
    const size_t n = 4u << 20;
    pair_transfer(&p, "peer_eof", n);
    p.srv.expect_len = 1u << 20; /* reads 1 MiB, then closes its end */
    pair_run(&p, 30000);
    CHECK(p.srv.got >= (1u << 20));
    CHECK(!p.srv.mismatch);
    CHECK(p.cli.plain_eof || p.cli.plain_error);
    CHECK(p.srv.closed_calls == 1 && p.cli.closed_calls == 1);
    CHECK_STATUS(p.srv.closed_reason, 0);
    pair_free(&p);
}

/* The server's user stops reading: both pumps stay under max_buffered and
 * pause the side that feeds them; then it reads everything, intact. */
static uv_timer_t bp_timer;
static struct pair *bp_pair;
static void bp_resume(uv_timer_t *t)
{
    struct pair *p = bp_pair;
    struct cr_tls_stats cs, ss;
    (void)t;
    cr_tls_stream_stats(p->cli.s, &cs);
    cr_tls_stream_stats(p->srv.s, &ss);
    printf("    backpressure: client out_high %zu (paused %u), server "
           "in_high %zu (paused %u), %llu of %zu bytes through\n",
           cs.out_high, cs.out_paused, ss.in_high, ss.in_paused,
           (unsigned long long)ss.bytes_in, (size_t)(16u << 20));
    CHECK(cs.out_paused > 0);
    CHECK(ss.in_paused > 0);
    CHECK(ss.bytes_in < (16u << 20)); /* it really stalled */
    p->srv.last_stats = ss;
    p->cli.last_stats = cs;
    p->srv.no_read = 0;
    start_plain_reading(&p->srv);
    uv_close((uv_handle_t *)&bp_timer, NULL);
}

static void bp_on_ready(struct side *sd)
{
    if (sd->is_server) {
        uv_timer_init(&loop, &bp_timer);
        uv_timer_start(&bp_timer, bp_resume, 700, 0);
    }
}

static void test_backpressure(void)
{
    struct pair p;
    const size_t n = 16u << 20;
    const size_t max = 128 * 1024;
    pair_transfer(&p, "backpressure", n);
    bp_pair = &p;
    p.tcp_small_buffers = 1;
    p.srv.cfg.max_buffered = max;
    p.cli.cfg.max_buffered = max;
    p.srv.no_read = 1;
    p.srv.expect_len = n;
    p.on_ready = bp_on_ready;
    pair_run(&p, 60000);
    CHECK(p.srv.got == n && !p.srv.mismatch);
    CHECK(p.cli.last_stats.out_high <= max);
    CHECK(p.srv.last_stats.in_high <= max);
    CHECK(p.cli.last_stats.out_paused > 0 && p.srv.last_stats.in_paused > 0);
    CHECK(p.srv.closed_calls == 1 && p.cli.closed_calls == 1);
    pair_free(&p);
}

/* Reload: the caller drops its references to the contexts as soon as the
 * streams started, the connection still works; a second connection uses new
 * contexts (other certificates). */
static void let_go(struct side *sd)
{
    if (sd->cfg.ctx != NULL) {
        SSL_CTX_free(sd->cfg.ctx);
        sd->cfg.ctx = NULL;
    }
}

static void reload_on_ready(struct side *sd)
{
    /* Both contexts' owners let go while the streams run. */
    let_go(&sd->pair->srv);
    let_go(&sd->pair->cli);
}

/* An echo of the payload's n bytes from cli to srv (new contexts each, let
 * go of once ready), the client expecting id expect_id (0: any). */
static void run_reload(struct pair *p, const char *name, const char *srv,
                       const char *cli, uint64_t expect_id,
                       const uint8_t *payload, size_t n)
{
    pair_init(p, name, ctx_for(srv, "ca"), ctx_for(cli, "ca"));
    p->cli.cfg.expect_id = expect_id;
    p->srv.echo = 1;
    p->cli.send = payload;
    p->cli.send_len = n;
    p->cli.expect_len = n;
    p->on_ready = reload_on_ready;
    pair_run(p, 30000);
    CHECK(p->cli.got == n && !p->cli.mismatch);
}

static void test_ctx_reload(void)
{
    struct pair p;
    const size_t n = 2u << 20;
    uint8_t *payload = make_payload(n);

    run_reload(&p, "reload_old", "node2", "node1", 0, payload, n);
    CHECK(p.srv.cfg.ctx == NULL && p.cli.cfg.ctx == NULL);
    run_reload(&p, "reload_new", "node3", "node2", 3, payload, n);
    CHECK(p.cli.peer_id == 3 && p.srv.peer_id == 2);
    free(payload);
}

/* cr_tls_ctx_new names the file that failed. */
static void expect_ctx_error(const char *cert, const char *key, const char *ca,
                             const char *needle)
{
    char err[512] = "";
    SSL_CTX *ctx = cr_tls_ctx_new(cert, key, ca, err, sizeof err);
    CHECK(ctx == NULL);
    if (ctx != NULL) {
        SSL_CTX_free(ctx);
    }
    if (strstr(err, needle) == NULL) {
        fprintf(stderr, "  error \"%s\" does not name \"%s\"\n", err, needle);
        test_failures++;
    }
}

static void test_ctx_errors(void)
{
    char c1[512], k1[512], k2[512], ca[512], missing[512], bogus[512];
    char err[512];
    SSL_CTX *ctx;
    uint64_t id = 0;
    FILE *f;

    snprintf(c1, sizeof c1, "%s", path("node1.pem"));
    snprintf(k1, sizeof k1, "%s", path("node1.key"));
    snprintf(k2, sizeof k2, "%s", path("node2.key"));
    snprintf(ca, sizeof ca, "%s", path("ca.pem"));
    snprintf(missing, sizeof missing, "%s", path("missing.pem"));
    snprintf(bogus, sizeof bogus, "%s", path("bogus.pem"));
    f = fopen(bogus, "w");
    fputs("not a certificate\n", f);
    fclose(f);

    expect_ctx_error(missing, k1, ca, "certfile");
    expect_ctx_error(missing, k1, ca, missing);
    expect_ctx_error(c1, missing, ca, "keyfile");
    expect_ctx_error(c1, k1, missing, missing);
    expect_ctx_error(bogus, k1, ca, bogus);
    expect_ctx_error(c1, bogus, ca, bogus);
    expect_ctx_error(c1, k1, bogus, bogus);
    expect_ctx_error(c1, k2, ca, k2); /* OpenSSL: "key values mismatch" */
    {
        char nc[512], nk[512];
        snprintf(nc, sizeof nc, "%s", path("noid.pem"));
        snprintf(nk, sizeof nk, "%s", path("noid.key"));
        expect_ctx_error(nc, nk, ca, "urn:canonical-raft:id");
    }

    ctx = cr_tls_ctx_new(c1, k1, ca, err, sizeof err);
    CHECK(ctx != NULL);
    CHECK(cr_tls_ctx_id(ctx, &id) == 0 && id == 1);
    SSL_CTX_free(ctx);

    CHECK(strcmp(cr_tls_status_name(CR_TLS_EIDMISMATCH),
                 "CR_TLS_EIDMISMATCH") == 0);
    CHECK(strcmp(cr_tls_status_name(12345), "CR_TLS_UNKNOWN") == 0);
    {
        /* every status has its own name */
        int a, b;
        for (a = CR_TLS_STATUS_MIN; a <= 0; a++) {
            CHECK(strcmp(cr_tls_status_name(a), "CR_TLS_UNKNOWN") != 0);
            for (b = CR_TLS_STATUS_MIN; b < a; b++) {
                CHECK(strcmp(cr_tls_status_name(a), cr_tls_status_name(b)));
            }
        }
    }
}

/* The identity rule on hand-made certificates. */
static X509 *cert_with_uris(const char **uris, int n)
{
    X509 *x = X509_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int i;
    for (i = 0; i < n; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ASN1_STRING_set(s, uris[i], (int)strlen(uris[i]));
        GENERAL_NAME_set0_value(g, GEN_URI, s);
        sk_GENERAL_NAME_push(gens, g);
    }
    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0);
    GENERAL_NAMES_free(gens);
    return x;
}

static int id_of(const char *uri, uint64_t *id)
{
    const char *u[1] = {uri};
    X509 *x = cert_with_uris(u, 1);
    int rv = cr_tls_cert_id(x, id);
    X509_free(x);
    return rv;
}

static void test_identity_rule(void)
{
    uint64_t id = 0;
    const char *two[2] = {"urn:canonical-raft:id:5",
                          "urn:canonical-raft:id:5"};
    const char *mixed[3] = {"https://example.com/x", "urn:canonical-raft:id:9",
                            "urn:other:id:4"};
    X509 *x;

    CHECK(id_of("urn:canonical-raft:id:1", &id) == 0 && id == 1);
    CHECK(id_of("urn:canonical-raft:id:18446744073709551615", &id) == 0 &&
          id == UINT64_MAX);
    CHECK(id_of("urn:canonical-raft:id:18446744073709551616", &id) ==
          CR_TLS_ENOID);
    CHECK(id_of("urn:canonical-raft:id:0", &id) == CR_TLS_ENOID);
    CHECK(id_of("urn:canonical-raft:id:01", &id) == CR_TLS_ENOID);
    CHECK(id_of("urn:canonical-raft:id:", &id) == CR_TLS_ENOID);
    CHECK(id_of("urn:canonical-raft:id:+1", &id) == CR_TLS_ENOID);
    CHECK(id_of("urn:canonical-raft:id:1 ", &id) == CR_TLS_ENOID);
    CHECK(id_of("urn:canonical-raft:id:12a", &id) == CR_TLS_ENOID);
    CHECK(id_of("URN:CANONICAL-RAFT:ID:1", &id) == CR_TLS_ENOID);
    x = cert_with_uris(two, 2);
    CHECK(cr_tls_cert_id(x, &id) == CR_TLS_ENOID);
    X509_free(x);
    x = cert_with_uris(mixed, 3);
    CHECK(cr_tls_cert_id(x, &id) == 0 && id == 9);
    X509_free(x);
    x = X509_new();
    CHECK(cr_tls_cert_id(x, &id) == CR_TLS_ENOID);
    X509_free(x);
    CHECK(cr_tls_cert_id(NULL, &id) == CR_TLS_ENOID);
}

/* Bad arguments: nothing started, the caller keeps its tcp. */
static void test_bad_args(void)
{
    uv_tcp_t tcp;
    struct cr_tls_config cfg;
    struct cr_tls_stream *s = NULL;
    SSL_CTX *c = ctx_for("node1", "ca");
    memset(&cfg, 0, sizeof cfg);
    uv_tcp_init(&loop, &tcp);
    CHECK(cr_tls_stream_start(&loop, &tcp, &cfg, 0, ready_cb, NULL, NULL,
                              &s) == CR_TLS_EINVAL);
    cfg.ctx = c;
    CHECK(cr_tls_stream_start(&loop, &tcp, &cfg, 0, NULL, NULL, NULL, &s) ==
          CR_TLS_EINVAL);
    /* not connected: uv_read_start refuses */
    CHECK(cr_tls_stream_start(&loop, &tcp, &cfg, 0, ready_cb, NULL, NULL,
                              &s) == CR_TLS_EINVAL);
    CHECK(s == NULL);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    SSL_CTX_free(c);
}

/* ---- main ------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"identity_rule", test_identity_rule},
    {"ctx_errors", test_ctx_errors},
    {"bad_args", test_bad_args},
    {"echo", test_echo},
    {"pingpong", test_pingpong},
    {"server_push", test_server_push},
    {"filter_drop", test_filter_drop},
    {"preamble_handoff", test_preamble_handoff},
    {"refusals", test_refusals},
    {"server_timeout", test_server_timeout},
    {"many_strangers", test_many_strangers},
    {"client_timeout", test_client_timeout},
    {"garbage", test_garbage},
    {"eof_in_handshake", test_eof_in_handshake},
    {"close_in_handshake", test_close_in_handshake},
    {"close_in_transfer", test_close_in_transfer},
    {"peer_eof", test_peer_eof},
    {"backpressure", test_backpressure},
    {"ctx_reload", test_ctx_reload},
};

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    size_t i;
    if (argc < 2) {
        fprintf(stderr, "usage: %s CERTDIR [TEST...]\n", argv[0]);
        return 2;
    }
    certdir = argv[1];
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IONBF, 0);
    uv_loop_init(&loop);
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int j, selected = argc == 2;
        for (j = 2; j < argc; j++) {
            selected |= strcmp(argv[j], tests[i].name) == 0;
        }
        if (!selected) {
            continue;
        }
        test_failures = 0;
        tests[i].fn();
        ERR_clear_error();
        if (test_failures == 0) {
            printf("ok   %s\n", tests[i].name);
            passed++;
        } else {
            printf("FAIL %s (%d checks)\n", tests[i].name, test_failures);
            failed++;
        }
    }
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "loop still has handles:\n");
        uv_walk(&loop, walk_cb, NULL);
        failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    if (echo_mbps > 0) {
        printf("echo throughput: %.1f MiB/s\n", echo_mbps);
    }
    return failed ? 1 : 0;
}
