/* tls_stream.c: see tls_stream.h for the contract. */
#include "tls_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define ID_URI_PREFIX "urn:canonical-raft:id:"
#define ACCEPT_BYTE 0x01

/* One read, either side. 16 KiB is the largest TLS record's plaintext, so one
 * read of the plain stream becomes exactly one record. */
#define READ_CHUNK 16384
/* Largest ciphertext one READ_CHUNK of plaintext can become (one record:
 * header, content type, tag; margin for a KeyUpdate riding along). */
#define OUT_WORST (READ_CHUNK + 512)
/* Largest plaintext one tcp read can release: the read itself, plus the
 * partial record already waiting in the read BIO. */
#define IN_WORST (READ_CHUNK + 16384 + 512)

/* Handshake messages are small: reads before the stream is open. */
#define HS_READ 4096

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_BUFFERED (1024 * 1024)
#define MIN_MAX_BUFFERED (128 * 1024)

enum phase {
    PH_HANDSHAKE, /* TLS handshake running */
    PH_WAIT,      /* client: handshake done, waiting for the accept byte */
    PH_OPEN,      /* pumping both ways */
    PH_SHUT,      /* orderly end: flushing one side, reading neither */
};

/* A write that could not complete at once: owns a copy of the rest. */
struct wreq {
    uv_write_t req;
    struct cr_tls_stream *s;
    size_t len;
    int to_tcp;
    uint8_t buf[];
};

struct cr_tls_stream {
    uv_loop_t *loop;
    uv_tcp_t *tcp;       /* owned from start; freed with cfg.free */
    uv_pipe_t peer;      /* our end of the socketpair, once open */
    uv_pipe_t *plain;    /* the caller's end, until handed over */
    uv_timer_t timer;    /* kick, then handshake timeout, then linger */
    uv_shutdown_t sreq;
    SSL *ssl;
    BIO *rbio;           /* ciphertext from tcp, owned by ssl */
    BIO *wbio;           /* ciphertext to tcp, owned by ssl */
    struct cr_tls_config cfg;
    int is_server;
    cr_tls_ready_cb ready_cb;
    cr_tls_closed_cb closed_cb;
    void *data;

    enum phase phase;
    int kicked;
    int ready_fired;
    int closing;
    int reason;
    int handles;         /* open uv handles the pump owns */
    int peer_open;
    int reading_tcp;
    int reading_peer;
    int id_status;
    uint64_t peer_id;
    struct cr_tls_stats st;
    char errmsg[200];

    /* Reads during the handshake; a stranger costs no more than this. */
    uint8_t hs_buf[HS_READ];
    /* Once open: tcp reads, plain reads, decrypted plaintext. */
    uint8_t *bufs;
};

#define TCP_BUF(s) ((s)->bufs)
#define PEER_BUF(s) ((s)->bufs + READ_CHUNK)
#define DEC_BUF(s) ((s)->bufs + 2 * READ_CHUNK)

/* ---- names ------------------------------------------------------------ */

static const struct {
    int status;
    const char *name;
    const char *message;
} status_table[] = {
    {CR_TLS_OK, "CR_TLS_OK", "ok"},
    {CR_TLS_ECANCELED, "CR_TLS_ECANCELED", "closed before the handshake ended"},
    {CR_TLS_ETIMEDOUT, "CR_TLS_ETIMEDOUT", "handshake timed out"},
    {CR_TLS_EEOF, "CR_TLS_EEOF", "peer closed during the handshake"},
    {CR_TLS_EIO, "CR_TLS_EIO", "socket error"},
    {CR_TLS_EHANDSHAKE, "CR_TLS_EHANDSHAKE", "TLS handshake failed"},
    {CR_TLS_ENOCERT, "CR_TLS_ENOCERT", "peer sent no certificate"},
    {CR_TLS_EVERIFY, "CR_TLS_EVERIFY", "peer certificate not trusted"},
    {CR_TLS_EEXPIRED, "CR_TLS_EEXPIRED", "peer certificate expired"},
    {CR_TLS_ENOTYETVALID, "CR_TLS_ENOTYETVALID",
     "peer certificate not yet valid"},
    {CR_TLS_ENOID, "CR_TLS_ENOID",
     "peer certificate names no single raft id (urn:canonical-raft:id:N)"},
    {CR_TLS_EIDMISMATCH, "CR_TLS_EIDMISMATCH",
     "peer certificate names another raft id"},
    {CR_TLS_EREFUSED, "CR_TLS_EREFUSED", "refused by the peer"},
    {CR_TLS_EFILTER, "CR_TLS_EFILTER", "inbound filter refused the data"},
    {CR_TLS_EPROTO, "CR_TLS_EPROTO", "TLS error on an open connection"},
    {CR_TLS_ENOMEM, "CR_TLS_ENOMEM", "out of memory"},
    {CR_TLS_EINVAL, "CR_TLS_EINVAL", "invalid argument"},
    {CR_TLS_EUV, "CR_TLS_EUV", "libuv call failed"},
};

const char *cr_tls_status_name(int status)
{
    size_t i;
    for (i = 0; i < sizeof status_table / sizeof status_table[0]; i++) {
        if (status_table[i].status == status) {
            return status_table[i].name;
        }
    }
    return "CR_TLS_UNKNOWN";
}

const char *cr_tls_status_message(int status)
{
    size_t i;
    for (i = 0; i < sizeof status_table / sizeof status_table[0]; i++) {
        if (status_table[i].status == status) {
            return status_table[i].message;
        }
    }
    return "unknown status";
}

/* ---- identity --------------------------------------------------------- */

/* 0 and *out for exactly the digits of a valid id, -1 otherwise. */
static int parse_id(const unsigned char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (n == 0 || n > 20 || p[0] == '0') {
        return -1;
    }
    for (i = 0; i < n; i++) {
        unsigned d;
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int cr_tls_cert_id(X509 *cert, uint64_t *id)
{
    const size_t plen = sizeof ID_URI_PREFIX - 1;
    GENERAL_NAMES *names;
    int crit = 0;
    int i;
    int count = 0;
    int bad = 0;
    uint64_t found = 0;

    if (cert == NULL) {
        return CR_TLS_ENOID;
    }
    /* NULL also when the extension appears twice (crit == -2). */
    names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (names == NULL) {
        return CR_TLS_ENOID;
    }
    for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        const unsigned char *p;
        int len;
        if (g->type != GEN_URI) {
            continue;
        }
        p = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (len < 0 || (size_t)len < plen || memcmp(p, ID_URI_PREFIX, plen)) {
            continue;
        }
        count++;
        if (parse_id(p + plen, (size_t)len - plen, &found) != 0) {
            bad = 1;
        }
    }
    GENERAL_NAMES_free(names);
    if (count != 1 || bad) {
        return CR_TLS_ENOID;
    }
    *id = found;
    return 0;
}

int cr_tls_ctx_id(SSL_CTX *ctx, uint64_t *id)
{
    return cr_tls_cert_id(SSL_CTX_get0_certificate(ctx), id);
}

/* ---- context ---------------------------------------------------------- */

static void set_err(char *errmsg, size_t errlen, const char *what,
                    const char *file, const char *why)
{
    if (errmsg != NULL && errlen > 0) {
        snprintf(errmsg, errlen, "%s %s: %s", what, file, why);
    }
}

static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

/* A readable regular file, else the reason. */
static const char *check_file(const char *path)
{
    FILE *f;
    if (path == NULL || path[0] == '\0') {
        return "no file given";
    }
    f = fopen(path, "r");
    if (f == NULL) {
        return strerror(errno);
    }
    fclose(f);
    return NULL;
}

SSL_CTX *cr_tls_ctx_new(const char *certfile, const char *keyfile,
                        const char *cafile, char *errmsg, size_t errlen)
{
    SSL_CTX *ctx;
    const char *why;
    uint64_t id;

    if ((why = check_file(certfile)) != NULL) {
        set_err(errmsg, errlen, "certfile", certfile ? certfile : "", why);
        return NULL;
    }
    if ((why = check_file(keyfile)) != NULL) {
        set_err(errmsg, errlen, "keyfile", keyfile ? keyfile : "", why);
        return NULL;
    }
    if ((why = check_file(cafile)) != NULL) {
        set_err(errmsg, errlen, "cafile", cafile ? cafile : "", why);
        return NULL;
    }
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        set_err(errmsg, errlen, "SSL_CTX_new", "", ssl_reason());
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        set_err(errmsg, errlen, "SSL_CTX", "TLS 1.3", ssl_reason());
        goto err;
    }
    /* No tickets, no cache: every connection does a full, verified
     * handshake. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

    if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1) {
        set_err(errmsg, errlen, "certfile", certfile, ssl_reason());
        goto err;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
        set_err(errmsg, errlen, "keyfile", keyfile, ssl_reason());
        goto err;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        set_err(errmsg, errlen, "keyfile", keyfile,
                "does not match the certificate in certfile");
        goto err;
    }
    if (cr_tls_ctx_id(ctx, &id) != 0) {
        set_err(errmsg, errlen, "certfile", certfile,
                "no single subjectAltName URI " ID_URI_PREFIX "<id>");
        goto err;
    }
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
        set_err(errmsg, errlen, "cafile", cafile, ssl_reason());
        goto err;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    ERR_clear_error();
    return ctx;

err:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- the pump --------------------------------------------------------- */

static void teardown(struct cr_tls_stream *s);
static void update_reading(struct cr_tls_stream *s);
static void process_inbound(struct cr_tls_stream *s);

static void set_errmsg(struct cr_tls_stream *s, const char *msg)
{
    if (s->errmsg[0] == '\0' && msg != NULL) {
        snprintf(s->errmsg, sizeof s->errmsg, "%s", msg);
    }
}

/* End the stream with `status`: fires ready once if it has not fired, then
 * closes everything. The first non-zero status is the closed reason. */
static void finish(struct cr_tls_stream *s, int status)
{
    if (s->closing) {
        return;
    }
    if (s->reason == 0) {
        s->reason = status;
    }
    if (!s->ready_fired) {
        s->ready_fired = 1;
        if (s->errmsg[0] == '\0') {
            set_errmsg(s, cr_tls_status_message(status));
        }
        s->ready_cb(s, status, s->peer_id, NULL, s->data);
    }
    teardown(s);
}

static void destroy(struct cr_tls_stream *s)
{
    if (s->closed_cb != NULL) {
        s->closed_cb(s, s->reason, s->data);
    }
    SSL_free(s->ssl); /* and both BIOs, and the ctx reference */
    free(s->bufs);
    free(s);
}

static void handle_closed(uv_handle_t *h)
{
    struct cr_tls_stream *s = h->data;
    if (h == (uv_handle_t *)s->tcp) {
        s->cfg.free(s->tcp);
        s->tcp = NULL;
    } else if (s->plain != NULL && h == (uv_handle_t *)s->plain) {
        s->cfg.free(s->plain);
        s->plain = NULL;
    }
    if (--s->handles == 0) {
        destroy(s);
    }
}

static void teardown(struct cr_tls_stream *s)
{
    if (s->closing) {
        return;
    }
    s->closing = 1;
    s->reading_tcp = s->reading_peer = 0;
    uv_close((uv_handle_t *)&s->timer, handle_closed);
    uv_close((uv_handle_t *)s->tcp, handle_closed);
    if (s->peer_open) {
        uv_close((uv_handle_t *)&s->peer, handle_closed);
    }
    if (s->plain != NULL) { /* created, never handed over */
        uv_close((uv_handle_t *)s->plain, handle_closed);
    }
}

static void tcp_write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct cr_tls_stream *s = w->s;
    s->st.out_pending -= w->len;
    free(w);
    if (s->closing) {
        return;
    }
    if (status < 0) {
        set_errmsg(s, uv_strerror(status));
        finish(s, CR_TLS_EIO);
        return;
    }
    update_reading(s);
}

static void plain_close_out(struct cr_tls_stream *s);

static void peer_write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct cr_tls_stream *s = w->s;
    s->st.in_pending -= w->len;
    free(w);
    if (s->closing) {
        return;
    }
    if (status < 0) {
        /* The caller closed its end: end the connection in order. */
        plain_close_out(s);
        return;
    }
    update_reading(s);
}

/* Write buf to `stream` now if it can take it, queue a copy of the rest.
 * Returns 0 or a libuv error. */
static int send_bytes(struct cr_tls_stream *s, uv_stream_t *stream,
                      const uint8_t *buf, size_t len, int to_tcp)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    struct wreq *w;
    int rv;
    size_t *pending = to_tcp ? &s->st.out_pending : &s->st.in_pending;
    size_t *high = to_tcp ? &s->st.out_high : &s->st.in_high;

    /* uv_try_write refuses (UV_EAGAIN) while writes are queued: order is
     * kept. */
    rv = uv_try_write(stream, &b, 1);
    if (rv == UV_EAGAIN || rv == UV_ENOSYS) {
        rv = 0;
    } else if (rv < 0) {
        return rv;
    }
    if ((size_t)rv == len) {
        return 0;
    }
    buf += rv;
    len -= (size_t)rv;
    w = malloc(sizeof *w + len);
    if (w == NULL) {
        return UV_ENOMEM;
    }
    memcpy(w->buf, buf, len);
    w->s = s;
    w->len = len;
    w->to_tcp = to_tcp;
    b = uv_buf_init((char *)w->buf, (unsigned)len);
    rv = uv_write(&w->req, stream, &b, 1,
                  to_tcp ? tcp_write_cb : peer_write_cb);
    if (rv != 0) {
        free(w);
        return rv;
    }
    *pending += len;
    if (*pending > *high) {
        *high = *pending;
    }
    return 0;
}

/* Move whatever OpenSSL wrote into wbio to the socket. */
static int flush_tcp(struct cr_tls_stream *s)
{
    char *p;
    long n = BIO_get_mem_data(s->wbio, &p);
    int rv;
    if (n <= 0) {
        return 0;
    }
    s->st.tls_out += (uint64_t)n;
    rv = send_bytes(s, (uv_stream_t *)s->tcp, (uint8_t *)p, (size_t)n, 1);
    (void)BIO_reset(s->wbio);
    return rv;
}

/* Flush, and end the stream with CR_TLS_EIO if the socket refuses. */
static int flush_or_fail(struct cr_tls_stream *s)
{
    int rv = flush_tcp(s);
    if (rv != 0) {
        set_errmsg(s, uv_strerror(rv));
        finish(s, CR_TLS_EIO);
        return -1;
    }
    return 0;
}

static void tcp_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf);
static void tcp_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);
static void peer_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf);
static void peer_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* Read a side only while one more read cannot push what the pump holds for
 * the opposite direction past max_buffered. */
static void update_reading(struct cr_tls_stream *s)
{
    int want_tcp;
    int want_peer;
    if (s->closing) {
        return;
    }
    want_tcp = s->phase != PH_SHUT &&
               s->st.in_pending + IN_WORST <= s->cfg.max_buffered;
    want_peer = s->phase == PH_OPEN &&
                s->st.out_pending + OUT_WORST <= s->cfg.max_buffered;
    if (want_tcp && !s->reading_tcp) {
        if (uv_read_start((uv_stream_t *)s->tcp, tcp_alloc_cb, tcp_read_cb)) {
            finish(s, CR_TLS_EIO);
            return;
        }
        s->reading_tcp = 1;
    } else if (!want_tcp && s->reading_tcp) {
        uv_read_stop((uv_stream_t *)s->tcp);
        s->reading_tcp = 0;
        if (s->phase != PH_SHUT) {
            s->st.in_paused++;
        }
    }
    if (want_peer && !s->reading_peer) {
        if (uv_read_start((uv_stream_t *)&s->peer, peer_alloc_cb,
                          peer_read_cb)) {
            finish(s, CR_TLS_EUV);
            return;
        }
        s->reading_peer = 1;
    } else if (!want_peer && s->reading_peer) {
        uv_read_stop((uv_stream_t *)&s->peer);
        s->reading_peer = 0;
        if (s->phase != PH_SHUT) {
            s->st.out_paused++;
        }
    }
}

/* Classify a failed SSL_do_handshake / SSL_read before ready. */
static int handshake_status(struct cr_tls_stream *s)
{
    long v = SSL_get_verify_result(s->ssl);
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    char buf[160];

    if (s->id_status != 0) {
        return s->id_status;
    }
    if (v != X509_V_OK) {
        set_errmsg(s, X509_verify_cert_error_string(v));
        switch (v) {
            case X509_V_ERR_CERT_HAS_EXPIRED:
                return CR_TLS_EEXPIRED;
            case X509_V_ERR_CERT_NOT_YET_VALID:
                return CR_TLS_ENOTYETVALID;
            default:
                return CR_TLS_EVERIFY;
        }
    }
    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        set_errmsg(s, buf);
    }
    if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL) {
        if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
            return CR_TLS_ENOCERT;
        }
        /* Alerts from the peer are reported as SSL_AD_REASON_OFFSET + the
         * alert's code. */
        if (reason >= SSL_AD_REASON_OFFSET &&
            reason < SSL_AD_REASON_OFFSET + 256) {
            return CR_TLS_EREFUSED;
        }
    }
    return CR_TLS_EHANDSHAKE;
}

static int verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(
        x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct cr_tls_stream *s = ssl ? SSL_get_app_data(ssl) : NULL;
    uint64_t id;
    if (s == NULL || !ok) {
        return ok;
    }
    if (X509_STORE_CTX_get_error_depth(x) != 0) {
        return 1;
    }
    if (cr_tls_cert_id(X509_STORE_CTX_get_current_cert(x), &id) != 0) {
        s->id_status = CR_TLS_ENOID;
        set_errmsg(s, "no single " ID_URI_PREFIX "<id> URI in the "
                      "peer certificate");
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    s->peer_id = id;
    if (s->cfg.expect_id != 0 && id != s->cfg.expect_id) {
        char buf[96];
        snprintf(buf, sizeof buf, "peer certificate is for id %llu, "
                 "expected %llu", (unsigned long long)id,
                 (unsigned long long)s->cfg.expect_id);
        set_errmsg(s, buf);
        s->id_status = CR_TLS_EIDMISMATCH;
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}

/* ---- orderly ends ----------------------------------------------------- */

static void linger(struct cr_tls_stream *s);

/* Either orderly end's shutdown finished (or failed): close everything. */
static void shutdown_done_cb(uv_shutdown_t *req, int status)
{
    struct cr_tls_stream *s = req->data;
    (void)status;
    if (!s->closing) {
        teardown(s);
    }
}

/* Enter the orderly end once: 0 if it had begun already. */
static int begin_shut(struct cr_tls_stream *s)
{
    if (s->phase == PH_SHUT) {
        return 0;
    }
    s->phase = PH_SHUT;
    update_reading(s);
    return 1;
}

/* Shut `stream`'s write side once what is queued on it is written, then
 * linger until everything closes. */
static void shut_down(struct cr_tls_stream *s, uv_stream_t *stream)
{
    s->sreq.data = s;
    if (uv_shutdown(&s->sreq, stream, shutdown_done_cb) != 0) {
        teardown(s);
        return;
    }
    linger(s);
}

/* The caller closed its end of the plain stream: send close_notify, let the
 * queued ciphertext reach the socket, then close. */
static void plain_close_out(struct cr_tls_stream *s)
{
    if (!begin_shut(s)) {
        return;
    }
    ERR_clear_error();
    (void)SSL_shutdown(s->ssl);
    if (flush_tcp(s) != 0) {
        teardown(s);
        return;
    }
    shut_down(s, (uv_stream_t *)s->tcp);
}

/* The peer ended the connection: deliver what is queued for the caller, then
 * EOF on the plain stream, then close. */
static void inbound_ended(struct cr_tls_stream *s)
{
    if (begin_shut(s)) {
        shut_down(s, (uv_stream_t *)&s->peer);
    }
}

/* ---- handshake -------------------------------------------------------- */

static void timer_cb(uv_timer_t *t);

static void linger(struct cr_tls_stream *s)
{
    /* A side that never drains must not hold the stream forever. */
    uv_timer_start(&s->timer, timer_cb, s->cfg.handshake_timeout_ms, 0);
}

static void plain_init_failed(struct cr_tls_stream *s, int rv)
{
    set_errmsg(s, uv_strerror(rv));
    finish(s, CR_TLS_EUV);
}

/* Handshake done and the peer accepted: create the socketpair and hand the
 * caller its end. */
static void go_open(struct cr_tls_stream *s)
{
    uv_os_sock_t fds[2];
    uv_pipe_t *plain;
    int rv;

    uv_timer_stop(&s->timer);
    s->bufs = malloc(3 * READ_CHUNK);
    if (s->bufs == NULL) {
        finish(s, CR_TLS_ENOMEM);
        return;
    }
    rv = uv_socketpair(SOCK_STREAM, 0, fds, UV_NONBLOCK_PIPE,
                       UV_NONBLOCK_PIPE);
    if (rv != 0) {
        plain_init_failed(s, rv);
        return;
    }
    plain = s->cfg.malloc(sizeof *plain);
    if (plain == NULL) {
        close(fds[0]);
        close(fds[1]);
        finish(s, CR_TLS_ENOMEM);
        return;
    }
    /* From here until the hand-over, teardown closes and frees `plain`. */
    uv_pipe_init(s->loop, plain, 0);
    plain->data = s;
    s->plain = plain;
    s->handles++;
    uv_pipe_init(s->loop, &s->peer, 0);
    s->peer.data = s;
    s->peer_open = 1;
    s->handles++;
    rv = uv_pipe_open(plain, fds[0]);
    if (rv != 0) {
        close(fds[0]);
        close(fds[1]);
        plain_init_failed(s, rv);
        return;
    }
    rv = uv_pipe_open(&s->peer, fds[1]);
    if (rv != 0) {
        close(fds[1]);
        plain_init_failed(s, rv);
        return;
    }
    s->phase = PH_OPEN;
    update_reading(s);
    if (s->closing) {
        return;
    }
    s->plain = NULL; /* the caller's now, not one of ours */
    s->handles--;
    plain->data = NULL;
    s->ready_fired = 1;
    s->ready_cb(s, 0, s->peer_id, (uv_stream_t *)plain, s->data);
    /* The peer's first bytes may have come with the handshake. */
    process_inbound(s);
}

static void handshake_done(struct cr_tls_stream *s)
{
    /* The verify callback checked chain and id; this is belt and braces. */
    if (SSL_get_verify_result(s->ssl) != X509_V_OK ||
        SSL_get0_peer_certificate(s->ssl) == NULL || s->peer_id == 0) {
        finish(s, CR_TLS_EVERIFY);
        return;
    }
    if (s->is_server) {
        static const uint8_t accept_byte = ACCEPT_BYTE;
        ERR_clear_error();
        if (SSL_write(s->ssl, &accept_byte, 1) != 1) {
            finish(s, CR_TLS_EHANDSHAKE);
            return;
        }
        if (flush_or_fail(s) != 0) {
            return;
        }
        go_open(s);
    } else {
        s->phase = PH_WAIT;
        process_inbound(s);
    }
}

static void handshake_step(struct cr_tls_stream *s)
{
    int r;
    int err;
    int frv;
    ERR_clear_error();
    r = SSL_do_handshake(s->ssl);
    err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
    /* Our flight or our alert: out before anything else. */
    frv = flush_tcp(s);
    if (r != 1 && err != SSL_ERROR_WANT_READ) {
        finish(s, handshake_status(s));
    } else if (frv != 0) {
        set_errmsg(s, uv_strerror(frv));
        finish(s, CR_TLS_EIO);
    } else if (r == 1) {
        handshake_done(s);
    }
    ERR_clear_error();
}

/* ---- data ------------------------------------------------------------- */

/* Decrypt everything the read BIO holds; to the caller through the filter. */
static void process_inbound(struct cr_tls_stream *s)
{
    while (!s->closing && (s->phase == PH_WAIT || s->phase == PH_OPEN)) {
        uint8_t accept_byte = 0;
        int n;
        int err;
        int frv;

        ERR_clear_error();
        if (s->phase == PH_WAIT) {
            /* The accept byte alone; the rest stays in ssl. */
            n = SSL_read(s->ssl, &accept_byte, 1);
        } else {
            n = SSL_read(s->ssl, DEC_BUF(s), READ_CHUNK);
        }
        if (n <= 0) {
            err = SSL_get_error(s->ssl, n);
            /* Answers to the peer (KeyUpdate) or our alert. */
            frv = flush_tcp(s);
            if (err == SSL_ERROR_WANT_READ) {
                if (frv != 0) {
                    set_errmsg(s, uv_strerror(frv));
                    finish(s, CR_TLS_EIO);
                }
            } else if (s->phase == PH_WAIT) {
                /* The server refused us: an alert, or close_notify. */
                finish(s, err == SSL_ERROR_ZERO_RETURN ? CR_TLS_EREFUSED
                                                        : handshake_status(s));
            } else if (err == SSL_ERROR_ZERO_RETURN) {
                inbound_ended(s);
            } else {
                char buf[160];
                ERR_error_string_n(ERR_peek_last_error(), buf, sizeof buf);
                set_errmsg(s, buf);
                finish(s, CR_TLS_EPROTO);
            }
            ERR_clear_error();
            return;
        }
        if (s->phase == PH_WAIT) {
            if (accept_byte != ACCEPT_BYTE) {
                set_errmsg(s, "peer is not a canonical-raft TLS pump");
                finish(s, CR_TLS_EHANDSHAKE);
                return;
            }
            go_open(s); /* and it goes on reading */
            return;
        }
        if (s->cfg.inbound != NULL &&
            s->cfg.inbound(s->cfg.inbound_arg, DEC_BUF(s), (size_t)n) != 0) {
            set_errmsg(s, "inbound filter refused the data");
            finish(s, CR_TLS_EFILTER);
            return;
        }
        if (s->closing) {
            return;
        }
        s->st.bytes_in += (uint64_t)n;
        if (send_bytes(s, (uv_stream_t *)&s->peer, DEC_BUF(s), (size_t)n, 0)) {
            /* The caller's end is gone. */
            plain_close_out(s);
            return;
        }
    }
}

static void tcp_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct cr_tls_stream *s = h->data;
    (void)size;
    if (s->bufs != NULL) {
        *buf = uv_buf_init((char *)TCP_BUF(s), READ_CHUNK);
    } else {
        *buf = uv_buf_init((char *)s->hs_buf, sizeof s->hs_buf);
    }
}

static void tcp_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct cr_tls_stream *s = st->data;
    if (s->closing || n == 0) {
        return;
    }
    if (n < 0) {
        if (n != UV_EOF) {
            set_errmsg(s, uv_strerror((int)n));
            finish(s, CR_TLS_EIO);
        } else if (s->phase == PH_HANDSHAKE) {
            finish(s, CR_TLS_EEOF);
        } else if (s->phase == PH_WAIT) {
            set_errmsg(s, "server closed the connection before accepting");
            finish(s, CR_TLS_EREFUSED);
        } else {
            inbound_ended(s);
        }
        return;
    }
    s->st.tls_in += (uint64_t)n;
    if (BIO_write(s->rbio, buf->base, (int)n) != (int)n) {
        finish(s, CR_TLS_ENOMEM);
        return;
    }
    if (s->phase == PH_HANDSHAKE) {
        handshake_step(s);
    } else {
        process_inbound(s);
    }
    update_reading(s);
}

static void peer_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct cr_tls_stream *s = h->data;
    (void)size;
    *buf = uv_buf_init((char *)PEER_BUF(s), READ_CHUNK);
}

static void peer_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct cr_tls_stream *s = st->data;
    if (s->closing || n == 0) {
        return;
    }
    if (n < 0) {
        /* EOF or reset: the caller closed its end. */
        plain_close_out(s);
        return;
    }
    ERR_clear_error();
    if (SSL_write(s->ssl, buf->base, (int)n) != (int)n) {
        char b[160];
        ERR_error_string_n(ERR_peek_last_error(), b, sizeof b);
        set_errmsg(s, b);
        finish(s, CR_TLS_EPROTO);
        return;
    }
    s->st.bytes_out += (uint64_t)n;
    if (flush_or_fail(s) != 0) {
        return;
    }
    update_reading(s);
}

static void timer_cb(uv_timer_t *t)
{
    struct cr_tls_stream *s = t->data;
    if (s->closing) {
        return;
    }
    if (!s->kicked) {
        s->kicked = 1;
        uv_timer_start(&s->timer, timer_cb, s->cfg.handshake_timeout_ms, 0);
        if (s->phase == PH_HANDSHAKE) {
            handshake_step(s);
        }
        return;
    }
    if (s->phase == PH_SHUT) {
        s->reason = s->reason ? s->reason : CR_TLS_ETIMEDOUT;
        teardown(s);
        return;
    }
    set_errmsg(s, "handshake timed out");
    finish(s, CR_TLS_ETIMEDOUT);
}

/* ---- public ----------------------------------------------------------- */

int cr_tls_stream_start(uv_loop_t *loop, uv_tcp_t *tcp,
                        const struct cr_tls_config *cfg, int is_server,
                        cr_tls_ready_cb ready_cb, cr_tls_closed_cb closed_cb,
                        void *data, struct cr_tls_stream **out)
{
    struct cr_tls_stream *s;
    void *old_data;
    int rv;

    if (loop == NULL || tcp == NULL || cfg == NULL || cfg->ctx == NULL ||
        ready_cb == NULL || tcp->loop != loop) {
        return CR_TLS_EINVAL;
    }
    if ((cfg->malloc == NULL) != (cfg->free == NULL)) {
        return CR_TLS_EINVAL;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        return CR_TLS_ENOMEM;
    }
    s->loop = loop;
    s->tcp = tcp;
    s->cfg = *cfg;
    if (s->cfg.malloc == NULL) {
        s->cfg.malloc = malloc;
        s->cfg.free = free;
    }
    if (s->cfg.handshake_timeout_ms == 0) {
        s->cfg.handshake_timeout_ms = DEFAULT_TIMEOUT_MS;
    }
    if (s->cfg.max_buffered == 0) {
        s->cfg.max_buffered = DEFAULT_MAX_BUFFERED;
    } else if (s->cfg.max_buffered < MIN_MAX_BUFFERED) {
        s->cfg.max_buffered = MIN_MAX_BUFFERED;
    }
    s->is_server = is_server != 0;
    s->ready_cb = ready_cb;
    s->closed_cb = closed_cb;
    s->data = data;
    s->phase = PH_HANDSHAKE;

    ERR_clear_error();
    s->ssl = SSL_new(cfg->ctx); /* takes a reference to ctx */
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL) {
        goto err_nomem;
    }
    s->cfg.ctx = NULL; /* the SSL holds its own reference; ours is unused */
    /* An empty read BIO means "wait for more", not EOF. */
    BIO_set_mem_eof_return(s->rbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    if (!SSL_set_min_proto_version(s->ssl, TLS1_3_VERSION)) {
        goto err_nomem;
    }
    SSL_set_app_data(s->ssl, s);
    SSL_set_verify(s->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                   verify_cb);
    if (s->is_server) {
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
    }

    old_data = tcp->data;
    tcp->data = s;
    rv = uv_read_start((uv_stream_t *)tcp, tcp_alloc_cb, tcp_read_cb);
    if (rv != 0) {
        tcp->data = old_data;
        SSL_free(s->ssl);
        free(s);
        return CR_TLS_EINVAL;
    }
    s->reading_tcp = 1;
    (void)uv_tcp_nodelay(tcp, 1);
    s->handles = 2; /* tcp, timer */
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    /* The first step runs from the loop, so no callback fires inside start. */
    uv_timer_start(&s->timer, timer_cb, 0, 0);
    if (out != NULL) {
        *out = s;
    }
    return 0;

err_nomem:
    if (s->ssl != NULL) {
        if (SSL_get_rbio(s->ssl) == NULL) {
            BIO_free(s->rbio);
            BIO_free(s->wbio);
        }
        SSL_free(s->ssl);
    } else {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
    }
    ERR_clear_error();
    free(s);
    return CR_TLS_ENOMEM;
}

void cr_tls_stream_close(struct cr_tls_stream *s)
{
    if (s == NULL || s->closing) {
        return;
    }
    set_errmsg(s, "closed by the caller");
    finish(s, CR_TLS_ECANCELED);
}

void cr_tls_stream_stats(const struct cr_tls_stream *s,
                         struct cr_tls_stats *out)
{
    *out = s->st;
}

uint64_t cr_tls_stream_peer_id(const struct cr_tls_stream *s)
{
    return s->peer_id;
}

const char *cr_tls_stream_errmsg(const struct cr_tls_stream *s)
{
    return s->errmsg;
}

void *cr_tls_stream_data(const struct cr_tls_stream *s)
{
    return s->data;
}
