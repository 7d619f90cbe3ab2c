/* tls_stream.h: a TLS 1.3 pump between a TCP connection and a plain stream.
 *
 * Given a connected uv_tcp_t, the pump runs a mutual-TLS 1.3 handshake with
 * OpenSSL over memory BIOs (libuv owns the socket), then hands the caller one
 * end of a uv_socketpair opened as a uv_pipe_t: a plain uv_stream_t that
 * anything using only uv_read_start / uv_write / uv_close (libraft's uv
 * transport) can use as if it were the TCP connection. Bytes written on the
 * plain stream are encrypted to the socket; bytes decrypted from the socket go
 * through an optional inbound filter, then into the plain stream.
 *
 * Depends on libuv and OpenSSL only. Single-threaded: every function and every
 * callback runs on the thread of the loop given to cr_tls_stream_start. No
 * global state besides OpenSSL's. The process must ignore SIGPIPE (Python does
 * at startup), as for any libuv program writing to sockets.
 *
 * IDENTITY RULE
 *   A node certificate names the raft id its holder may use as a
 *   subjectAltName URI of exactly this form:
 *
 *       urn:canonical-raft:id:<decimal id>
 *
 *   lowercase prefix, then 1 to 20 ASCII digits, no sign, no leading zero,
 *   value in 1 .. 2^64-1. The leaf certificate must carry exactly one URI with
 *   the prefix "urn:canonical-raft:id:"; zero, two (even equal) or a malformed
 *   one fail with CR_TLS_ENOID. Other SAN entries (DNS, IP, other URIs) are
 *   ignored. The check runs inside OpenSSL's verify callback, so a refusal is
 *   a TLS alert the peer sees. If cr_tls_config.expect_id is non-zero, the
 *   certificate's id must equal it (CR_TLS_EIDMISMATCH otherwise): a client
 *   sets it to the id it dialled. The id reported to the ready callback is the
 *   certificate's; the caller must refuse a connection whose raft handshake
 *   later declares a different id.
 *   Node certificates need extendedKeyUsage serverAuth and clientAuth (or no
 *   extendedKeyUsage at all): every node is both client and server. There is
 *   no hostname check: the id is the identity, pinned by expect_id.
 *
 * TRUST
 *   TLS 1.3 only; both sides require and verify the peer's chain against the
 *   cafile (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT) with OpenSSL's
 *   default checks, validity times included (expired: CR_TLS_EEXPIRED, not yet
 *   valid: CR_TLS_ENOTYETVALID). No session tickets, no resumption: every
 *   connection verifies a full certificate chain.
 *
 * WIRE
 *   Plain TLS 1.3 records, plus one rule: after its handshake succeeds the
 *   server sends one application byte, 0x01 ("accepted"), which the client's
 *   pump consumes before reporting ready. In TLS 1.3 the client finishes its
 *   handshake before the server has checked the client's certificate; the byte
 *   lets a client refused by the server fail (CR_TLS_EREFUSED) instead of
 *   reporting a connection that is already dead. Both ends must use this pump.
 *
 * LIFETIME AND OWNERSHIP
 *   - cr_tls_stream_start takes ownership of `tcp` whenever it returns 0: the
 *     pump sets tcp->data, closes the handle and then frees it with cfg->free.
 *     On a non-zero return nothing was started, no callback will fire, and the
 *     caller still owns `tcp`.
 *   - The ready callback fires exactly once: with status 0 and the plain
 *     stream, or with a negative status (plain == NULL). It never fires after
 *     cr_tls_stream_close returns: closing a stream that is not ready yet fires
 *     it with CR_TLS_ECANCELED from inside cr_tls_stream_close.
 *   - On success the plain stream (a uv_pipe_t allocated with cfg->malloc) is
 *     the caller's: the caller must uv_close it and then release it with the
 *     free matching cfg->malloc (libraft does raft_free in its close
 *     callback, so pass raft_malloc/raft_free). The pump never touches it again.
 *     Its `data` field is the caller's.
 *   - After a failed ready, the pump tears itself down. After a successful one
 *     it runs until the peer closes (TLS close_notify or TCP EOF: pending
 *     plaintext is delivered, then the plain stream sees EOF), the caller
 *     closes the plain stream (the pump sends close_notify and closes TCP;
 *     no half-close: EOF from the caller ends both directions), an error, an
 *     inbound filter refusal, or cr_tls_stream_close. An orderly end that
 *     cannot drain within handshake_timeout_ms is cut (reason
 *     CR_TLS_ETIMEDOUT).
 *   - The pump sets TCP_NODELAY on `tcp` and owns tcp->data.
 *   - Either way the closed callback fires exactly once, after every handle the
 *     pump owns (tcp, its end of the socketpair, its timer) is closed and right
 *     before the pump's memory is freed; `s` is invalid after it returns.
 *     cr_tls_stream_close may be called any number of times until then
 *     (including from the ready callback); it is a no-op while closing.
 *   - The SSL_CTX is reference counted: each stream's SSL holds a reference
 *     (SSL_new / SSL_free), so the caller may SSL_CTX_free its own reference
 *     at any time, e.g. to swap in a reloaded one for new connections, while
 *     existing streams keep theirs.
 *
 * MEMORY
 *   Per direction the pump holds at most cfg->max_buffered bytes of data it has
 *   queued but not yet written (ciphertext to TCP, plaintext to the plain
 *   stream); before a read could exceed that it stops reading the other side
 *   (uv_read_stop) until writes drain. Fixed cost: until the handshake is
 *   done, the struct (about 5 KiB, a 4 KiB read buffer) and OpenSSL's SSL
 *   object, so idle strangers stay cheap; once open, 48 KiB more (tcp reads,
 *   plain reads, decrypted plaintext). Nothing else grows with what a peer
 *   sends.
 *
 * FOR A raft_uv_transport (how the pieces fit; see libraft's uv_tcp_*.c)
 *   - listen: accept the TCP connection, cr_tls_stream_start(server,
 *     expect_id 0). On ready, read libraft's preamble (protocol, id, address)
 *     from the plain stream with an alloc callback sized to exactly what is
 *     still missing (so no byte past it is read), check the declared id equals
 *     peer_id, uv_read_stop, then accept_cb(t, id, address, plain).
 *   - connect: TCP connect, cr_tls_stream_start(client, expect_id = the id
 *     dialled); on ready write the preamble on the plain stream and fire the
 *     connect callback with it from the write callback; on any failure fire it
 *     with RAFT_NOCONNECTION; on transport close, cr_tls_stream_close (ready
 *     then fires CR_TLS_ECANCELED: report RAFT_CANCELED).
 *   - cfg.malloc/free = raft_malloc/raft_free: libraft frees the streams it
 *     was given with raft_free after uv_close, and overwrites stream->data.
 */
#ifndef CANONICAL_RAFT_TLS_STREAM_H
#define CANONICAL_RAFT_TLS_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every failure has its own status; all are negative. */
enum cr_tls_status {
    CR_TLS_OK = 0,
    CR_TLS_ECANCELED = -1,      /* cr_tls_stream_close before ready */
    CR_TLS_ETIMEDOUT = -2,      /* not ready within handshake_timeout_ms */
    CR_TLS_EEOF = -3,           /* peer closed TCP before the handshake ended */
    CR_TLS_EIO = -4,            /* a socket read or write failed */
    CR_TLS_EHANDSHAKE = -5,     /* TLS protocol failure (not TLS, bad version...) */
    CR_TLS_ENOCERT = -6,        /* peer presented no certificate */
    CR_TLS_EVERIFY = -7,        /* peer chain not trusted (unknown CA, bad sig...) */
    CR_TLS_EEXPIRED = -8,       /* peer certificate (or chain) expired */
    CR_TLS_ENOTYETVALID = -9,   /* peer certificate (or chain) not yet valid */
    CR_TLS_ENOID = -10,         /* no, several or malformed id URIs */
    CR_TLS_EIDMISMATCH = -11,   /* certificate id != cfg->expect_id */
    CR_TLS_EREFUSED = -12,      /* the peer refused us (alert, or closed before
                                   accepting) */
    CR_TLS_EFILTER = -13,       /* the inbound filter refused bytes */
    CR_TLS_EPROTO = -14,        /* TLS failure after ready (bad record, alert) */
    CR_TLS_ENOMEM = -15,        /* out of memory */
    CR_TLS_EINVAL = -16,        /* bad argument to cr_tls_stream_start */
    CR_TLS_EUV = -17,           /* a libuv call failed (socketpair, pipe_open) */
};
#define CR_TLS_STATUS_MIN CR_TLS_EUV

/* "CR_TLS_OK", "CR_TLS_ETIMEDOUT", ...; "CR_TLS_UNKNOWN" for anything else. */
const char *cr_tls_status_name(int status);
/* A short human description ("handshake timed out", ...). */
const char *cr_tls_status_message(int status);

struct cr_tls_stream;

/* Called with every chunk of decrypted inbound plaintext, in order, before it
 * is written to the plain stream. Non-zero drops the connection (closed
 * callback reason CR_TLS_EFILTER) and the chunk is not delivered. Must not
 * call cr_tls_stream_close itself: return non-zero instead. */
typedef int (*cr_tls_inbound_fn)(void *arg, const uint8_t *buf, size_t len);

struct cr_tls_config {
    SSL_CTX *ctx;                 /* from cr_tls_ctx_new (or compatible) */
    uint64_t expect_id;           /* 0: any id; else the peer's must equal it */
    unsigned handshake_timeout_ms;/* 0: 10000 */
    size_t max_buffered;          /* per direction; 0: 1 MiB; min 128 KiB */
    cr_tls_inbound_fn inbound;    /* NULL: no filter */
    void *inbound_arg;
    void *(*malloc)(size_t);      /* NULL: malloc; allocates the plain stream */
    void (*free)(void *);         /* NULL: free; frees the plain stream on
                                     failure paths, and `tcp` */
};

/* status 0: handshake done, peer verified; plain is the caller's (see
 * LIFETIME). status < 0: plain is NULL; peer_id is the certificate's id when it
 * was read (0 otherwise). */
typedef void (*cr_tls_ready_cb)(struct cr_tls_stream *s, int status,
                                uint64_t peer_id, uv_stream_t *plain,
                                void *data);

/* reason: 0 for an orderly end (either side closed), the status of the
 * failure that ended it otherwise (the ready status if it never got ready,
 * CR_TLS_ECANCELED after cr_tls_stream_close). */
typedef void (*cr_tls_closed_cb)(struct cr_tls_stream *s, int reason,
                                 void *data);

/* Start the handshake on a connected `tcp` of `loop` (cfg is copied; its ctx
 * gets a reference of its own). *out (may be NULL) is set before any callback
 * can run. Returns 0, CR_TLS_EINVAL or CR_TLS_ENOMEM. */
int cr_tls_stream_start(uv_loop_t *loop, uv_tcp_t *tcp,
                        const struct cr_tls_config *cfg, int is_server,
                        cr_tls_ready_cb ready_cb, cr_tls_closed_cb closed_cb,
                        void *data, struct cr_tls_stream **out);

/* Tear the stream down now: pending data is dropped, every handle the pump
 * owns is closed; the closed callback fires later, from the loop. */
void cr_tls_stream_close(struct cr_tls_stream *s);

struct cr_tls_stats {
    size_t out_pending;    /* ciphertext queued on tcp, not yet written */
    size_t in_pending;     /* plaintext queued on the plain stream */
    size_t out_high;       /* high-water marks of the two above */
    size_t in_high;
    uint64_t bytes_out;    /* plaintext read from the caller and encrypted */
    uint64_t bytes_in;     /* plaintext decrypted and delivered */
    uint64_t tls_out;      /* ciphertext handed to tcp (handshake included) */
    uint64_t tls_in;       /* ciphertext read from tcp */
    unsigned out_paused;   /* times reading the plain stream was paused */
    unsigned in_paused;    /* times reading tcp was paused */
};
void cr_tls_stream_stats(const struct cr_tls_stream *s,
                         struct cr_tls_stats *out);
uint64_t cr_tls_stream_peer_id(const struct cr_tls_stream *s);
/* Detail of the failure being reported ("certificate has expired", OpenSSL's
 * reason...), "" if none; valid until the closed callback returns. For logs. */
const char *cr_tls_stream_errmsg(const struct cr_tls_stream *s);
void *cr_tls_stream_data(const struct cr_tls_stream *s);

/* A TLS 1.3-only SSL_CTX for both roles: certificate chain and key from PEM
 * files (checked to match), peer verification against cafile required, no
 * tickets. NULL on failure with errmsg naming the file that failed and why.
 * The caller owns the one reference returned (SSL_CTX_free). */
SSL_CTX *cr_tls_ctx_new(const char *certfile, const char *keyfile,
                        const char *cafile, char *errmsg, size_t errlen);

/* The id the identity rule gives `cert`: 0 and *id set, or CR_TLS_ENOID. */
int cr_tls_cert_id(X509 *cert, uint64_t *id);
/* The id of ctx's own certificate (to check it names the node's id). */
int cr_tls_ctx_id(SSL_CTX *ctx, uint64_t *id);

#ifdef __cplusplus
}
#endif

#endif /* CANONICAL_RAFT_TLS_STREAM_H */
